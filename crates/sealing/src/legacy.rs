//! Format v1 (`MRS1`), kept only to open payloads that were queued before the upgrade to v2.
//!
//! v1 was a static–static `crypto_box` between the proxy's and the server's key pairs: whoever
//! held `keys/proxy-sealing.key` could derive the same box key as the server and open every v1
//! payload. Nothing seals v1 any more (except the test fixture below); the opener accepts it until
//! queues that held v1 entries have drained, and then this module can be deleted.
//!
//! Wire format: `b"MRS1" | server key id (8) | proxy key id (8) | nonce (24) | ciphertext`, the
//! inner JSON carries id, client_id and accepted_at (v1 had no associated data).

use crypto_box::aead::Aead;
use crypto_box::ChaChaBox;

use crate::keys::{PublicKey, SealingKeyPair};
use crate::{SealError, KID};

pub(crate) const MAGIC: &[u8; 4] = b"MRS1";
const NONCE: usize = 24;
const HEADER: usize = 4 + 2 * KID + NONCE;
/// The shortest v1 payload: header and the authentication tag.
pub(crate) const MIN_LEN: usize = HEADER + 16;

/// Opens a v1 payload with the box of (server secret, proxy public); returns the inner JSON.
pub(crate) fn open(
    server: &SealingKeyPair,
    proxy: &PublicKey,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < MIN_LEN {
        return Err(SealError::Malformed("v1 payload too short"));
    }
    let cipher = ChaChaBox::new(&proxy.box_key, &server.secret);
    let nonce = crypto_box::Nonce::from_slice(&sealed[4 + 2 * KID..HEADER]);
    cipher
        .decrypt(nonce, &sealed[HEADER..])
        .map_err(|_| SealError::Unauthentic)
}

/// Seals in the retired v1 format, exactly as the proxy did before v2: only so that tests can put
/// pre-upgrade payloads into a queue. No role calls this.
#[cfg(any(test, feature = "v1-fixture"))]
pub fn seal_v1(
    proxy: &SealingKeyPair,
    server_public_b64: &str,
    payload: &crate::PlainPayload,
) -> Result<Vec<u8>, SealError> {
    use crypto_box::aead::{AeadCore, OsRng};
    let server = PublicKey::parse_b64(server_public_b64)?;
    let cipher = ChaChaBox::new(&server.box_key, &proxy.secret);
    let plain = serde_json::to_vec(payload).map_err(|_| SealError::Encrypt)?;
    let nonce = ChaChaBox::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, plain.as_slice())
        .map_err(|_| SealError::Encrypt)?;
    let mut out = Vec::with_capacity(HEADER + ct.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&server.kid);
    out.extend_from_slice(&proxy.kid());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}
