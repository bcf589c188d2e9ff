//! Backup and restore of the relay's own Redis keys (`<queue.key_prefix>:*`), for a server that
//! other applications may share.
//!
//! - Export: one Lua script SCANs the prefix and DUMPs every key with its remaining TTL. Redis runs
//!   a script atomically, so the copy is one point in time: a message accepted while the backup
//!   runs is in it with its idempotency record, or not at all. The server answers nothing else
//!   while the script runs (time grows with the server's key count and the queue's size).
//! - Import: onto a prefix that holds no key, each key is `RESTORE`d under the configured prefix
//!   (the backup's prefix is replaced). Consumer groups are remade under the new prefix's name:
//!   entries a worker had leased when the backup was taken go to `:delayed`, due at once, so the
//!   next lease hands them out again (a delivery is idempotent by message id); entries never read
//!   stay after the group's last-delivered id and are read as new.
//!
//! Redis Cluster is refused: a script cannot reach keys of several slots.

use std::path::Path;
use std::time::Duration;

use msgrelay_core::config::QueueConfig;
use msgrelay_core::RedisUrl;
use redis::{Script, Value};

use super::link::{Con, LinkOptions};
use super::{acl_hint, read_ca};
use crate::QueueError;

/// Longest a snapshot or restore call may take (a large queue is one reply).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// SCAN + DUMP + PTTL of every key matching ARGV[1], in one atomic step.
const EXPORT_LUA: &str = r#"
local out = {}
local cursor = "0"
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local v = redis.call('DUMP', k)
    if v then
      out[#out + 1] = k
      out[#out + 1] = redis.call('PTTL', k)
      out[#out + 1] = v
    end
  end
until cursor == "0"
return out
"#;

/// One key as `DUMP` serialised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedKey {
    /// The key name without the prefix (starts with `:`).
    pub suffix: Vec<u8>,
    /// Remaining time to live in ms; 0 for none.
    pub ttl_ms: u64,
    /// `DUMP`'s serialisation (carries its own RDB version and checksum).
    pub value: Vec<u8>,
}

/// The relay's keys of one Redis server, taken at one instant.
#[derive(Debug, Clone, Default)]
pub struct RedisSnapshot {
    pub keys: Vec<DumpedKey>,
}

const MAGIC: &[u8] = b"msgrelay-redis-keys 1\n";

impl RedisSnapshot {
    /// A length-prefixed binary file: magic line, then per key: u32 suffix length, suffix,
    /// u64 TTL (ms), u64 value length, value (all big-endian).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        for k in &self.keys {
            w.write_all(&(k.suffix.len() as u32).to_be_bytes())?;
            w.write_all(&k.suffix)?;
            w.write_all(&k.ttl_ms.to_be_bytes())?;
            w.write_all(&(k.value.len() as u64).to_be_bytes())?;
            w.write_all(&k.value)?;
        }
        Ok(())
    }

    /// Reads what [`RedisSnapshot::write_to`] wrote.
    pub fn read_from(bytes: &[u8]) -> Result<Self, QueueError> {
        let bad = |what: &str| QueueError::Corrupt(format!("redis key backup: {what}"));
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a msgrelay Redis key backup"))?;
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], QueueError> {
            let end = at.checked_add(n).filter(|e| *e <= body.len());
            let end = end.ok_or_else(|| bad("truncated"))?;
            let s = &body[at..end];
            at = end;
            Ok(s)
        };
        let mut keys = Vec::new();
        let mut left = body.len();
        while left > 0 {
            let len = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            let suffix = take(len)?.to_vec();
            let ttl_ms = u64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
            let vlen = u64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
            let vlen = usize::try_from(vlen).map_err(|_| bad("value too large"))?;
            let value = take(vlen)?.to_vec();
            left -= 4 + len + 16 + vlen;
            keys.push(DumpedKey {
                suffix,
                ttl_ms,
                value,
            });
        }
        Ok(Self { keys })
    }
}

/// `prefix` as a SCAN MATCH pattern for `<prefix>:*` (glob characters escaped).
fn own_keys_pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push_str(":*");
    p
}

async fn connect(cfg: &QueueConfig, data_dir: &Path) -> Result<Con, QueueError> {
    let url = RedisUrl::parse(&cfg.redis_url)
        .map_err(|reason| QueueError::Config(format!("queue.redis_url: {reason}")))?;
    let ca_pem = if cfg.redis_ca_file.as_os_str().is_empty() {
        None
    } else if cfg.redis_ca_file.is_absolute() {
        Some(read_ca(&cfg.redis_ca_file)?)
    } else {
        Some(read_ca(&data_dir.join(&cfg.redis_ca_file))?)
    };
    let opts = LinkOptions {
        ca_pem,
        response_timeout: SNAPSHOT_TIMEOUT,
        connect_timeout: Duration::from_millis(2000),
    };
    let con = Con::connect(&url, &opts).await?;
    if con.is_cluster() {
        return Err(QueueError::Config(
            "queue.redis_url names a Redis Cluster: `msgrelay backup`/`restore` copy the relay's keys with one script, which a cluster cannot run across slots; back up each primary's AOF instead (docs/operations.md §8)".into(),
        ));
    }
    Ok(con)
}

fn err(e: redis::RedisError) -> QueueError {
    acl_hint(QueueError::from(e))
}

fn conv<T: redis::FromRedisValue>(v: &Value) -> Result<T, QueueError> {
    redis::from_redis_value(v.clone())
        .map_err(|e| QueueError::Corrupt(format!("redis: unexpected reply: {e}")))
}

/// Copies every key under `<queue.key_prefix>:` at one instant.
pub async fn export(cfg: &QueueConfig, data_dir: &Path) -> Result<RedisSnapshot, QueueError> {
    let mut con = connect(cfg, data_dir).await?.handle();
    let reply: Vec<Value> = Script::new(EXPORT_LUA)
        .arg(own_keys_pattern(&cfg.key_prefix))
        .invoke_async(&mut con)
        .await
        .map_err(err)?;
    let own = cfg.key_prefix.as_bytes();
    let mut keys = Vec::with_capacity(reply.len() / 3);
    for chunk in reply.chunks(3) {
        let [Value::BulkString(key), ttl, Value::BulkString(value)] = chunk else {
            return Err(QueueError::Corrupt(
                "redis: unexpected reply of the export script".into(),
            ));
        };
        let ttl: i64 = conv(ttl)?;
        let suffix = key
            .strip_prefix(own)
            .ok_or_else(|| QueueError::Corrupt("redis: a key outside the prefix".into()))?;
        keys.push(DumpedKey {
            suffix: suffix.to_vec(),
            ttl_ms: u64::try_from(ttl).unwrap_or(0),
            value: value.clone(),
        });
    }
    Ok(RedisSnapshot { keys })
}

/// How many keys `<queue.key_prefix>:*` holds (restore needs none).
pub async fn count_own_keys(cfg: &QueueConfig, data_dir: &Path) -> Result<u64, QueueError> {
    let mut con = connect(cfg, data_dir).await?.handle();
    let pattern = own_keys_pattern(&cfg.key_prefix);
    let mut cursor = 0u64;
    let mut n = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await
            .map_err(err)?;
        n += keys.len() as u64;
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

/// Restores `snap` under `cfg.key_prefix` (which must hold no key; `RESTORE` refuses to replace
/// one), calling `progress` after each key; returns the number of keys restored.
pub async fn import(
    cfg: &QueueConfig,
    data_dir: &Path,
    snap: &RedisSnapshot,
    mut progress: impl FnMut(),
) -> Result<usize, QueueError> {
    let mut con = connect(cfg, data_dir).await?.handle();
    let prefix = cfg.key_prefix.as_bytes();
    let name = |suffix: &[u8]| [prefix, suffix].concat();
    for k in &snap.keys {
        let _: () = redis::cmd("RESTORE")
            .arg(name(&k.suffix))
            .arg(k.ttl_ms)
            .arg(&k.value)
            .query_async(&mut con)
            .await
            .map_err(err)?;
        progress();
    }
    let group = format!("{}:workers", cfg.key_prefix);
    for k in snap.keys.iter().filter(|k| k.suffix.ends_with(b":stream")) {
        let stream = name(&k.suffix);
        let delayed = [&stream[..stream.len() - b"stream".len()], b"delayed"].concat();
        regroup(&mut con, &stream, &delayed, &group).await?;
    }
    Ok(snap.keys.len())
}

/// Replaces the consumer groups of a restored stream by one named `group`: entries leased under
/// the old groups become due retries, the rest keeps its place.
async fn regroup(
    con: &mut Con,
    stream: &[u8],
    delayed: &[u8],
    group: &str,
) -> Result<(), QueueError> {
    let groups: Vec<std::collections::HashMap<String, Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(con)
        .await
        .map_err(err)?;
    let mut last_id = "0".to_owned();
    for g in &groups {
        let (Some(old), Some(last)) = (g.get("name"), g.get("last-delivered-id")) else {
            return Err(QueueError::Corrupt(
                "redis: XINFO GROUPS without a name".into(),
            ));
        };
        let old: String = conv(old)?;
        let last: String = conv(last)?;
        if stream_id_after(&last, &last_id) {
            last_id = last;
        }
        loop {
            let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
                .arg(stream)
                .arg(&old)
                .arg("-")
                .arg("+")
                .arg(1000)
                .query_async(con)
                .await
                .map_err(err)?;
            if pending.is_empty() {
                break;
            }
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(delayed);
            for (entry, ..) in &pending {
                zadd.arg(0).arg(entry);
            }
            let _: i64 = zadd.query_async(con).await.map_err(err)?;
            let mut ack = redis::cmd("XACK");
            ack.arg(stream).arg(&old);
            for (entry, ..) in &pending {
                ack.arg(entry);
            }
            let _: i64 = ack.query_async(con).await.map_err(err)?;
        }
        let _: i64 = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(stream)
            .arg(&old)
            .query_async(con)
            .await
            .map_err(err)?;
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg(&last_id)
        .query_async(con)
        .await
        .map_err(err)?;
    Ok(())
}

/// Whether stream id `a` (`ms-seq`) is after `b`.
fn stream_id_after(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    parse(a) > parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_round_trips_and_refuses_damage() {
        let snap = RedisSnapshot {
            keys: vec![
                DumpedKey {
                    suffix: b":stream".to_vec(),
                    ttl_ms: 0,
                    value: vec![0, 1, 2, 255],
                },
                DumpedKey {
                    suffix: b":idem:demo:k".to_vec(),
                    ttl_ms: 86_400_000,
                    value: Vec::new(),
                },
            ],
        };
        let mut bytes = Vec::new();
        snap.write_to(&mut bytes).unwrap();
        assert_eq!(RedisSnapshot::read_from(&bytes).unwrap().keys, snap.keys);
        assert!(RedisSnapshot::read_from(&bytes[..bytes.len() - 1]).is_err());
        assert!(RedisSnapshot::read_from(&bytes[1..]).is_err());
    }

    #[test]
    fn the_prefix_is_matched_literally() {
        assert_eq!(own_keys_pattern("msgrelay"), "msgrelay:*");
        assert_eq!(own_keys_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\:*");
    }

    #[test]
    fn stream_ids_compare_by_time_then_sequence() {
        assert!(stream_id_after("2-0", "1-9"));
        assert!(stream_id_after("1-10", "1-9"));
        assert!(!stream_id_after("0", "0"));
    }
}
