//! Where the queue's keys are: one partition under the original names, or `queue.partitions`
//! hash-tagged partitions (Redis Cluster, or more than one stream on one server).
//!
//! - `Single` (one server, `queue.partitions = 1`): `<p>:stream`, `<p>:delayed`, `<p>:failed`,
//!   `<p>:attempts`, `<p>:idem:<client>:<key>` — the names every earlier version used, so an
//!   upgrade finds what was queued before it.
//! - `Tagged(n)`: partition `i` is `<p>:{<tag>}:stream`, `…:delayed`, `…:failed`, `…:attempts`,
//!   `…:idem:<client>:<key>`. The `{tag}` makes all of a partition's keys one cluster slot, so each
//!   Lua script touches one slot. Tags are `q<i>-<j>` with the smallest `j` whose slot lies in the
//!   `i`-th of `n` equal slot ranges, so partitions spread over the primaries of a cluster whose
//!   slots are split evenly (as `redis-cli --cluster create` does).
//!
//! Every layout a deployment has used is remembered in the set `<p>:layouts`; workers lease from
//! the partitions of all of them, so changing `queue.partitions` (or moving between one server
//! and partitions) never strands queued messages, and idempotency records of earlier layouts are
//! still honoured.

use crate::{Idempotency, NewMessage};
use msgrelay_core::ClientId;
use sha2::{Digest, Sha256};

/// Slots in a Redis Cluster.
const SLOTS: u32 = 16384;

/// One partition's keys.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    pub stream: String,
    pub delayed: String,
    pub failed: String,
    pub attempts: String,
    /// Prefix of the idempotency records: `<idem><client>:<key>`.
    pub idem: String,
}

impl Part {
    fn named(base: &str) -> Part {
        Part {
            stream: format!("{base}:stream"),
            delayed: format!("{base}:delayed"),
            failed: format!("{base}:failed"),
            attempts: format!("{base}:attempts"),
            idem: format!("{base}:idem:"),
        }
    }

    pub fn idem_key(&self, client: &ClientId, key: &str) -> String {
        format!("{}{}:{}", self.idem, client.as_str(), key)
    }
}

/// How a deployment's keys are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Single,
    Tagged(u32),
}

impl Layout {
    /// The layout for this configuration.
    pub fn configured(partitions: u32, cluster: bool) -> Layout {
        if partitions <= 1 && !cluster {
            Layout::Single
        } else {
            Layout::Tagged(partitions.max(1))
        }
    }

    /// Its name in `<p>:layouts`.
    pub fn name(self) -> String {
        match self {
            Layout::Single => "single".into(),
            Layout::Tagged(n) => format!("tagged:{n}"),
        }
    }

    pub fn parse(name: &str) -> Option<Layout> {
        match name {
            "single" => Some(Layout::Single),
            _ => name
                .strip_prefix("tagged:")
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=MAX_PARTITIONS).contains(n))
                .map(Layout::Tagged),
        }
    }

    /// The partitions' keys, in partition order.
    pub fn parts(self, prefix: &str) -> Vec<Part> {
        match self {
            Layout::Single => vec![Part::named(prefix)],
            Layout::Tagged(n) => (0..n)
                .map(|i| Part::named(&format!("{prefix}:{{{}}}", tag(i, n))))
                .collect(),
        }
    }

    /// The partition a message goes to: by its Idempotency-Key when it has one (a client's retry
    /// is a new request with a new message id, and must meet the record of the first attempt),
    /// by its message id otherwise.
    pub fn partition_of(self, msg: &NewMessage, idem: Option<&(ClientId, Idempotency)>) -> usize {
        let n = match self {
            Layout::Single => return 0,
            Layout::Tagged(n) => n,
        };
        match idem {
            Some((client, i)) => idem_partition(n, client, &i.key),
            None => spread(n, &[b"id".as_slice(), msg.id.0.as_bytes().as_slice()]),
        }
    }

    /// The partition that holds the idempotency record of `client` + `key` in this layout.
    pub fn idem_partition(self, client: &ClientId, key: &str) -> usize {
        match self {
            Layout::Single => 0,
            Layout::Tagged(n) => idem_partition(n, client, key),
        }
    }
}

/// Most partitions `queue.partitions` allows (checked by the configuration too).
pub(crate) const MAX_PARTITIONS: u32 = 256;

fn idem_partition(n: u32, client: &ClientId, key: &str) -> usize {
    spread(
        n,
        &[
            b"idem".as_slice(),
            client.as_str().as_bytes(),
            b"\0".as_slice(),
            key.as_bytes(),
        ],
    )
}

fn spread(n: u32, parts: &[&[u8]]) -> usize {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    let v = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (v % u64::from(n)) as usize
}

/// The hash tag of partition `i` of `n`: the first `q<i>-<j>` whose slot is in the `i`-th range.
fn tag(i: u32, n: u32) -> String {
    let (lo, hi) = (i * SLOTS / n, (i + 1) * SLOTS / n);
    (0u32..)
        .map(|j| format!("q{i}-{j}"))
        .find(|t| (lo..hi).contains(&slot(t)))
        .expect("some tag lands in every range")
}

/// The cluster slot of a key without braces: CRC16 (XMODEM) mod 16384, as Redis computes it.
fn slot(key: &str) -> u32 {
    u32::from(crc16::State::<crc16::XMODEM>::calculate(key.as_bytes())) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_keeps_the_original_names() {
        let p = &Layout::Single.parts("msgrelay")[0];
        assert_eq!(
            (
                p.stream.as_str(),
                p.delayed.as_str(),
                p.failed.as_str(),
                p.attempts.as_str()
            ),
            (
                "msgrelay:stream",
                "msgrelay:delayed",
                "msgrelay:failed",
                "msgrelay:attempts"
            )
        );
        assert_eq!(
            p.idem_key(&ClientId::parse("demo").unwrap(), "k"),
            "msgrelay:idem:demo:k"
        );
    }

    #[test]
    fn tagged_partitions_share_a_slot_each_and_spread_over_the_slot_ranges() {
        // Redis's documented example: the slot of "123456789" is 12739 (CRC16 XMODEM 0x31C3).
        assert_eq!(slot("123456789"), 0x31C3 % SLOTS);
        for n in [1, 2, 3, 6, 16, 256] {
            let parts = Layout::Tagged(n).parts("msgrelay");
            assert_eq!(parts.len(), n as usize);
            for (i, p) in parts.iter().enumerate() {
                let tag = p
                    .stream
                    .split_once('{')
                    .and_then(|(_, r)| r.split_once('}'))
                    .unwrap()
                    .0;
                for key in [&p.stream, &p.delayed, &p.failed, &p.attempts, &p.idem] {
                    assert!(key.starts_with("msgrelay:{"), "{key}");
                    assert!(key.contains(&format!("{{{tag}}}")), "{key}");
                }
                let s = slot(tag);
                let i = i as u32;
                assert!(
                    (i * SLOTS / n..(i + 1) * SLOTS / n).contains(&s),
                    "{tag}: {s}"
                );
            }
        }
        assert_eq!(
            Layout::parse(&Layout::Tagged(6).name()),
            Some(Layout::Tagged(6))
        );
        assert_eq!(Layout::parse("single"), Some(Layout::Single));
        assert_eq!(Layout::parse("tagged:0"), None);
        assert_eq!(Layout::parse("tagged:x"), None);
    }
}
