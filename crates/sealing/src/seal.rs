//! Sealing: the proxy encrypts each payload so that only the main server can open it, and the
//! main server can tell which of its trusted proxies made it.
//!
//! Format v3 (`MRS3`), sealed today: an **epoch** key per proxy process, at most
//! [`EPOCH_MAX_AGE`] old and used for at most [`EPOCH_MAX_MESSAGES`] payloads. An epoch starts
//! with an HPKE (RFC 9180) Auth-mode key exchange, DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 with
//! the export-only AEAD, under a fresh ephemeral key pair that lives only in the proxy's memory;
//! the epoch key is the context's exported secret. Each payload of the epoch is then one
//! ChaCha20-Poly1305 encryption under that key, with the payload's sequence number in the epoch
//! as the nonce. So:
//! - the proxy's own secret (`keys/proxy-sealing.key`) opens nothing it sealed: opening needs the
//!   server's secret or the epoch's ephemeral secret, which is never written anywhere and is
//!   dropped (zeroed) when the epoch ends;
//! - Auth mode mixes the proxy's static key into the epoch key, so only a trusted proxy can
//!   produce a payload that opens;
//! - the main server runs the key exchange once per epoch, not once per payload: it keeps the
//!   epoch keys it has opened with (a bounded LRU of [`OPENER_EPOCHS`]) and caches only keys that
//!   opened an authentic payload, so forged epochs cost a forger one exchange each and evict nothing
//!   useful.
//!
//! The X25519 work (four scalar multiplications per payload in v2) was ~85 % of the relay's CPU per
//! message; an epoch pays it once (docs/design.md D3, docs/benchmarks.md).
//!
//! The message id, client_id and accepted_at are associated data: a payload copied under another
//! id or client, or with another accepted time, fails authentication.
//!
//! Wire format v3: `b"MRS3" | server key id (8) | proxy key id (8) | epoch's encapsulated key (32)
//! | sequence (8, big-endian) | ciphertext and tag`. The whole header is associated data too.
//! Key ids select keys for rotation: the server keeps retired secrets until queues have drained.
//!
//! Payloads of the earlier formats still open: v2 (`MRS2`, one HPKE single-shot seal per payload,
//! same header without the sequence) and v1 (`legacy`).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead as _, AeadInPlace as _, KeyInit as _, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use msgrelay_core::{ClientId, MessageId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::{Kid, PublicKey, SealingKeyPair};
use crate::{legacy, Aead, Kdf, Kem, SealError, KID};

const MAGIC_V2: &[u8; 4] = b"MRS2";
const MAGIC_V3: &[u8; 4] = b"MRS3";
/// HPKE `info` of v2 payloads.
const INFO_V2: &[u8] = b"msgrelay sealing v2";
/// HPKE `info` of a v3 epoch: separates msgrelay's sealing from any other use of the same keys.
const INFO_V3: &[u8] = b"msgrelay sealing v3 epoch";
/// HPKE exporter context of the v3 epoch key.
const EXPORT_V3: &[u8] = b"msgrelay sealing v3 payload key";
/// Length of an encapsulated X25519 key.
const ENC: usize = 32;
const HEADER_V2: usize = 4 + 2 * KID + ENC;
/// The key ids and the encapsulated key: what names an epoch.
const EPOCH_ID: usize = 2 * KID + ENC;
const HEADER_V3: usize = 4 + EPOCH_ID + 8;
const TAG: usize = 16;

/// A v3 epoch ends after this long, so the ephemeral secret that could open its payloads stays in
/// the proxy's memory for about a second.
pub const EPOCH_MAX_AGE: Duration = Duration::from_secs(1);
/// ... or after this many payloads, whichever comes first.
pub const EPOCH_MAX_MESSAGES: u64 = 1 << 20;
/// Epoch keys the main server keeps (about 100 bytes each): one a second for every proxy, so
/// delivery in queue order, a backlog or a late retry rarely pays the key exchange twice.
pub const OPENER_EPOCHS: usize = 4096;

type EpochSuite = hpke::aead::ExportOnlyAead;
/// What names an epoch in the opener's cache: both key ids and the encapsulated key.
type EpochId = [u8; EPOCH_ID];

/// What a client sent, as sealed by the proxy. `Debug` never shows the number or the body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainPayload {
    pub id: MessageId,
    pub client_id: ClientId,
    pub sender_number: String,
    pub message_body: String,
    pub accepted_at_ms: i64,
}

impl fmt::Debug for PlainPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PlainPayload(id={}, client_id={}, ***)",
            self.id, self.client_id
        )
    }
}

/// The unsealed fields that travel next to a payload through the queue. The opener checks them
/// against the sealed content; callers then use the opened [`PlainPayload`], never these.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub id: &'a MessageId,
    pub client_id: &'a ClientId,
    pub accepted_at_ms: i64,
}

/// Associated data of a payload: its header (v2: magic and key ids; v3: all of it), then id,
/// accepted_at and client_id.
fn aad(header: &[u8], id: &MessageId, client_id: &ClientId, accepted_at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 16 + 8 + client_id.as_str().len());
    out.extend_from_slice(header);
    out.extend_from_slice(id.0.as_bytes());
    out.extend_from_slice(&accepted_at_ms.to_be_bytes());
    out.extend_from_slice(client_id.as_str().as_bytes());
    out
}

/// The ChaCha20-Poly1305 nonce of the payload with this sequence number in its epoch. Epoch keys
/// are never reused (each comes from a fresh ephemeral key) and a sequence number is handed out
/// once per epoch, so no (key, nonce) pair repeats.
fn nonce(seq: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n.into()
}

/// The payload cipher of an epoch, from the HPKE context's exported secret.
fn epoch_cipher(
    export: impl FnOnce(&mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Result<ChaCha20Poly1305, SealError> {
    let mut key = Zeroizing::new([0u8; 32]);
    export(key.as_mut_slice()).map_err(|_| SealError::Encrypt)?;
    Ok(ChaCha20Poly1305::new(key.as_ref().into()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is always consistent (plain assignments), so a panic elsewhere while
    // holding the lock leaves nothing half-done.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The proxy's current epoch. The ephemeral secret is gone once the key exchange is done: only the
/// exported key remains, inside the cipher, which zeroes it when the last payload of the epoch
/// has been sealed.
struct Epoch {
    enc: [u8; ENC],
    cipher: ChaCha20Poly1305,
}

struct Current {
    epoch: Arc<Epoch>,
    started: Instant,
    next_seq: u64,
}

/// The proxy side: seals payloads to one main-server public key.
pub struct Sealer {
    proxy_private: <Kem as hpke::Kem>::PrivateKey,
    proxy_public: <Kem as hpke::Kem>::PublicKey,
    server: PublicKey,
    header_ids: [u8; 2 * KID],
    current: Mutex<Option<Current>>,
    max_age: Duration,
    max_messages: u64,
}

impl Sealer {
    /// `server_public_b64` is the main server's sealing public key (see the proxy's upstream for
    /// how it is obtained and pinned).
    pub fn new(proxy: &SealingKeyPair, server_public_b64: &str) -> Result<Self, SealError> {
        let server = PublicKey::parse_b64(server_public_b64)?;
        let mut header_ids = [0u8; 2 * KID];
        header_ids[..KID].copy_from_slice(&server.kid);
        header_ids[KID..].copy_from_slice(&proxy.kid());
        Ok(Self {
            proxy_private: proxy.hpke_private(),
            proxy_public: proxy.hpke_public(),
            server,
            header_ids,
            current: Mutex::new(None),
            max_age: EPOCH_MAX_AGE,
            max_messages: EPOCH_MAX_MESSAGES,
        })
    }

    /// The same sealer with other epoch limits (tests; a zero age gives every payload its own epoch).
    #[doc(hidden)]
    pub fn with_epoch_limits(mut self, max_age: Duration, max_messages: u64) -> Self {
        self.max_age = max_age;
        self.max_messages = max_messages.max(1);
        self
    }

    /// Key id of the server key this sealer seals to.
    pub fn server_key_id(&self) -> String {
        crate::key_id(&self.server.bytes())
    }

    /// Seals one payload (format v3) under the current epoch's key, starting a new epoch first
    /// when the current one is too old or full.
    pub fn seal(&self, payload: &PlainPayload) -> Result<Vec<u8>, SealError> {
        let plain = serde_json::to_vec(payload).map_err(|_| SealError::Encrypt)?;
        let (epoch, seq) = self.next_slot()?;
        let mut header = [0u8; HEADER_V3];
        header[..4].copy_from_slice(MAGIC_V3);
        header[4..4 + 2 * KID].copy_from_slice(&self.header_ids);
        header[4 + 2 * KID..4 + EPOCH_ID].copy_from_slice(&epoch.enc);
        header[4 + EPOCH_ID..].copy_from_slice(&seq.to_be_bytes());
        let aad = aad(
            &header,
            &payload.id,
            &payload.client_id,
            payload.accepted_at_ms,
        );
        // Encrypted in place behind the header: one buffer, no copy of the ciphertext.
        let mut out = Vec::with_capacity(HEADER_V3 + plain.len() + TAG);
        out.extend_from_slice(&header);
        out.extend_from_slice(&plain);
        let tag = epoch
            .cipher
            .encrypt_in_place_detached(&nonce(seq), &aad, &mut out[HEADER_V3..])
            .map_err(|_| SealError::Encrypt)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The epoch to seal the next payload with, and the payload's sequence number in it.
    fn next_slot(&self) -> Result<(Arc<Epoch>, u64), SealError> {
        let mut current = lock(&self.current);
        let fresh = current
            .as_ref()
            .is_some_and(|c| c.next_seq < self.max_messages && c.started.elapsed() < self.max_age);
        if !fresh {
            *current = Some(Current {
                epoch: Arc::new(self.start_epoch()?),
                started: Instant::now(),
                next_seq: 0,
            });
        }
        let c = current.as_mut().expect("set above");
        let seq = c.next_seq;
        c.next_seq += 1;
        Ok((c.epoch.clone(), seq))
    }

    /// One HPKE Auth-mode key exchange under a fresh ephemeral key; the ephemeral secret is
    /// dropped when this returns.
    fn start_epoch(&self) -> Result<Epoch, SealError> {
        let mode = OpModeS::Auth((self.proxy_private.clone(), self.proxy_public.clone()));
        let (enc, ctx) = hpke::setup_sender::<EpochSuite, Kdf, Kem, _>(
            &mode,
            &self.server.hpke,
            INFO_V3,
            &mut crate::rng::OsRng,
        )
        .map_err(|_| SealError::Encrypt)?;
        let cipher = epoch_cipher(|out| ctx.export(EXPORT_V3, out))?;
        let mut enc_bytes = [0u8; ENC];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        Ok(Epoch {
            enc: enc_bytes,
            cipher,
        })
    }

    /// Seals in the retired v2 format (one HPKE single-shot seal per payload): for tests that
    /// put payloads of the previous release into a queue.
    #[cfg(any(test, feature = "v1-fixture"))]
    pub fn seal_v2(&self, payload: &PlainPayload) -> Result<Vec<u8>, SealError> {
        let plain = serde_json::to_vec(payload).map_err(|_| SealError::Encrypt)?;
        let mut header = Vec::with_capacity(HEADER_V2);
        header.extend_from_slice(MAGIC_V2);
        header.extend_from_slice(&self.header_ids);
        let aad = aad(
            &header,
            &payload.id,
            &payload.client_id,
            payload.accepted_at_ms,
        );
        let mode = OpModeS::Auth((self.proxy_private.clone(), self.proxy_public.clone()));
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
            &mode,
            &self.server.hpke,
            INFO_V2,
            &plain,
            &aad,
            &mut crate::rng::OsRng,
        )
        .map_err(|_| SealError::Encrypt)?;
        let mut out = header;
        out.extend_from_slice(&enc.to_bytes());
        out.extend_from_slice(&ct);
        Ok(out)
    }
}

/// The main-server side: opens payloads sealed by any trusted proxy to any of its key pairs.
pub struct Opener {
    servers: HashMap<Kid, (SealingKeyPair, <Kem as hpke::Kem>::PrivateKey)>,
    proxies: HashMap<Kid, PublicKey>,
    /// v3 epoch keys that opened an authentic payload, most recently used last.
    epochs: Mutex<lru::LruCache<EpochId, Arc<ChaCha20Poly1305>>>,
}

impl Opener {
    /// `server_keys`: current and retired server key pairs; `trusted_proxies`: proxies' public keys (base64).
    pub fn new(
        server_keys: &[SealingKeyPair],
        trusted_proxies: &[String],
    ) -> Result<Self, SealError> {
        let servers = server_keys
            .iter()
            .map(|k| (k.kid(), (k.clone(), k.hpke_private())))
            .collect();
        let proxies = trusted_proxies
            .iter()
            .map(|b64| PublicKey::parse_b64(b64).map(|p| (p.kid, p)))
            .collect::<Result<_, _>>()?;
        let capacity = NonZeroUsize::new(OPENER_EPOCHS).expect("non-zero");
        Ok(Self {
            servers,
            proxies,
            epochs: Mutex::new(lru::LruCache::new(capacity)),
        })
    }

    /// Key ids of the proxies whose payloads this opener accepts.
    pub fn trusted_proxy_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.proxies.keys().map(hex::encode).collect();
        ids.sort();
        ids
    }

    /// How many v3 epoch keys this opener holds (tests and diagnostics).
    #[doc(hidden)]
    pub fn cached_epochs(&self) -> usize {
        lock(&self.epochs).len()
    }

    /// Opens a payload and checks it against its envelope. The result is the sealed content:
    /// id, client_id and accepted_at come from inside the seal, never from the envelope.
    pub fn open(&self, envelope: &Envelope<'_>, sealed: &[u8]) -> Result<PlainPayload, SealError> {
        if sealed.len() < 4 + 2 * KID {
            return Err(SealError::Malformed("too short for a header"));
        }
        let magic = &sealed[..4];
        // Too short to be a payload of its format: malformed whatever keys it names, so that
        // bytes which merely start with a magic are refused at once, never retried as a payload
        // sealed to a key this server lacks.
        let min_len = match magic {
            m if m == MAGIC_V3 => HEADER_V3 + TAG,
            m if m == MAGIC_V2 => HEADER_V2 + TAG,
            m if m == legacy::MAGIC => legacy::MIN_LEN,
            _ => return Err(SealError::Malformed("unknown format")),
        };
        if sealed.len() < min_len {
            return Err(SealError::Malformed("too short"));
        }
        let server_kid: Kid = sealed[4..4 + KID].try_into().expect("length checked");
        let proxy_kid: Kid = sealed[4 + KID..4 + 2 * KID]
            .try_into()
            .expect("length checked");
        let (server, proxy) = match (self.servers.get(&server_kid), self.proxies.get(&proxy_kid)) {
            (Some(s), Some(p)) => (s, p),
            _ => {
                return Err(SealError::UnknownKey(format!(
                    "{}/{}",
                    hex::encode(server_kid),
                    hex::encode(proxy_kid)
                )))
            }
        };
        let plain = if magic == MAGIC_V3 {
            self.open_v3(&server.1, proxy, envelope, sealed)?
        } else if magic == MAGIC_V2 {
            let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[4 + 2 * KID..HEADER_V2])
                .map_err(|_| SealError::Malformed("encapsulated key"))?;
            let aad = aad(
                &sealed[..4 + 2 * KID],
                envelope.id,
                envelope.client_id,
                envelope.accepted_at_ms,
            );
            let mode = OpModeR::Auth(proxy.hpke.clone());
            hpke::single_shot_open::<Aead, Kdf, Kem>(
                &mode,
                &server.1,
                &enc,
                INFO_V2,
                &sealed[HEADER_V2..],
                &aad,
            )
            .map_err(|_| SealError::Unauthentic)?
        } else {
            legacy::open(&server.0, proxy, sealed)?
        };
        let payload: PlainPayload =
            serde_json::from_slice(&plain).map_err(|_| SealError::Malformed("inner payload"))?;
        if payload.id != *envelope.id {
            return Err(SealError::Mismatch("message id"));
        }
        if payload.client_id != *envelope.client_id {
            return Err(SealError::Mismatch("client_id"));
        }
        // v1 had no associated data: its accepted_at is the sealed one, whatever the envelope says.
        if magic != legacy::MAGIC && payload.accepted_at_ms != envelope.accepted_at_ms {
            return Err(SealError::Mismatch("accepted_at"));
        }
        Ok(payload)
    }

    /// Opens a v3 payload with its epoch's key: from the cache, or from one key exchange that is
    /// cached only once it has opened this (authentic) payload.
    fn open_v3(
        &self,
        server_secret: &<Kem as hpke::Kem>::PrivateKey,
        proxy: &PublicKey,
        envelope: &Envelope<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let epoch_id: EpochId = sealed[4..4 + EPOCH_ID].try_into().expect("length checked");
        let seq = u64::from_be_bytes(
            sealed[4 + EPOCH_ID..HEADER_V3]
                .try_into()
                .expect("length checked"),
        );
        let aad = aad(
            &sealed[..HEADER_V3],
            envelope.id,
            envelope.client_id,
            envelope.accepted_at_ms,
        );
        let ciphertext = Payload {
            msg: &sealed[HEADER_V3..],
            aad: &aad,
        };
        let cached = lock(&self.epochs).get(&epoch_id).cloned();
        if let Some(cipher) = cached {
            return cipher
                .decrypt(&nonce(seq), ciphertext)
                .map_err(|_| SealError::Unauthentic);
        }
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[4 + 2 * KID..4 + EPOCH_ID])
            .map_err(|_| SealError::Malformed("encapsulated key"))?;
        let ctx = hpke::setup_receiver::<EpochSuite, Kdf, Kem>(
            &OpModeR::Auth(proxy.hpke.clone()),
            server_secret,
            &enc,
            INFO_V3,
        )
        .map_err(|_| SealError::Unauthentic)?;
        let cipher = epoch_cipher(|out| ctx.export(EXPORT_V3, out))?;
        let plain = cipher
            .decrypt(&nonce(seq), ciphertext)
            .map_err(|_| SealError::Unauthentic)?;
        lock(&self.epochs).put(epoch_id, Arc::new(cipher));
        Ok(plain)
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
