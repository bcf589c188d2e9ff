//! Sealing: the proxy encrypts each payload so that only the main server can open it, and the
//! main server can tell which of its trusted proxies made it.
//!
//! Format v2 (`MRS2`): HPKE (RFC 9180) in Auth mode, DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 +
//! ChaCha20-Poly1305. Every message gets a fresh ephemeral key pair whose secret is dropped once
//! the payload is sealed, so the proxy's own secret (`keys/proxy-sealing.key`) cannot open anything
//! it sealed: opening needs the ephemeral secret or the server's secret. Auth mode mixes the
//! proxy's static key into the key schedule, so only a trusted proxy can produce a payload that
//! opens. The message id, client_id and accepted_at are associated data: a payload copied under
//! another id or client, or with another accepted time, fails authentication.
//!
//! Wire format: `b"MRS2" | server key id (8) | proxy key id (8) | encapsulated key (32) | ciphertext`.
//! The header (magic and both key ids) is also associated data. Key ids select keys for rotation:
//! the server keeps retired secrets until queues have drained. v1 payloads still open (`legacy`).

use std::collections::HashMap;
use std::fmt;

use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use msgrelay_core::{ClientId, MessageId};
use serde::{Deserialize, Serialize};

use crate::keys::{Kid, PublicKey, SealingKeyPair};
use crate::{legacy, Aead, Kdf, Kem, SealError, KID};

const MAGIC: &[u8; 4] = b"MRS2";
/// HPKE `info`: separates msgrelay's sealing from any other use of the same keys.
const INFO: &[u8] = b"msgrelay sealing v2";
const ENC: usize = 32;
const HEADER: usize = 4 + 2 * KID + ENC;
const TAG: usize = 16;

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

/// Associated data of a v2 payload: its header, then id, accepted_at and client_id.
fn aad(header: &[u8], id: &MessageId, client_id: &ClientId, accepted_at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * KID + 4 + 16 + 8 + client_id.as_str().len());
    out.extend_from_slice(&header[..4 + 2 * KID]);
    out.extend_from_slice(id.0.as_bytes());
    out.extend_from_slice(&accepted_at_ms.to_be_bytes());
    out.extend_from_slice(client_id.as_str().as_bytes());
    out
}

/// The proxy side: seals payloads to one main-server public key.
pub struct Sealer {
    proxy_private: <Kem as hpke::Kem>::PrivateKey,
    proxy_public: <Kem as hpke::Kem>::PublicKey,
    server: PublicKey,
    header_ids: [u8; 2 * KID],
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
        })
    }

    /// Key id of the server key this sealer seals to.
    pub fn server_key_id(&self) -> String {
        crate::key_id(&self.server.bytes())
    }

    /// Seals one payload under a fresh ephemeral key.
    pub fn seal(&self, payload: &PlainPayload) -> Result<Vec<u8>, SealError> {
        let plain = serde_json::to_vec(payload).map_err(|_| SealError::Encrypt)?;
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
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
            INFO,
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
        Ok(Self { servers, proxies })
    }

    /// Key ids of the proxies whose payloads this opener accepts.
    pub fn trusted_proxy_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.proxies.keys().map(hex::encode).collect();
        ids.sort();
        ids
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
            m if m == MAGIC => HEADER + TAG,
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
        let plain = if magic == MAGIC {
            let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[4 + 2 * KID..HEADER])
                .map_err(|_| SealError::Malformed("encapsulated key"))?;
            let aad = aad(
                sealed,
                envelope.id,
                envelope.client_id,
                envelope.accepted_at_ms,
            );
            let mode = OpModeR::Auth(proxy.hpke.clone());
            hpke::single_shot_open::<Aead, Kdf, Kem>(
                &mode,
                &server.1,
                &enc,
                INFO,
                &sealed[HEADER..],
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
        if magic == MAGIC && payload.accepted_at_ms != envelope.accepted_at_ms {
            return Err(SealError::Mismatch("accepted_at"));
        }
        Ok(payload)
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
