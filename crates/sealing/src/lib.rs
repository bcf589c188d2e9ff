//! Sealing of message payloads from the proxy to the main server: the proxy links the sealing
//! side, the main server the opening side. The worker links none of it (it forwards sealed bytes
//! it cannot read), and nothing here can decrypt the database: that is `msgrelay-at-rest`.

mod keys;
mod legacy;
mod rng;
pub mod seal;

pub use keys::SealingKeyPair;
pub use msgrelay_files::KeyFileError;
pub use seal::{Envelope, Opener, PlainPayload, Sealer};

#[cfg(feature = "v1-fixture")]
pub use legacy::seal_v1;

/// The HPKE suite of format v2 (RFC 9180): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;
pub(crate) type Kdf = hpke::kdf::HkdfSha256;
pub(crate) type Aead = hpke::aead::ChaCha20Poly1305;

/// Length of a binary key id in a payload header.
pub(crate) const KID: usize = 8;

/// Everything that can go wrong with sealing keys or sealed payloads. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The payload names a server or proxy key this opener does not hold. Not the payload's fault:
    /// a key that is being rolled out or was left out of the configuration, so callers retry.
    #[error("unknown sealing key id {0} (server key/proxy key)")]
    UnknownKey(String),
    #[error("sealed payload is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed payload failed authentication (forged, corrupted or sealed to another key)")]
    Unauthentic,
    #[error("sealed payload does not belong to this message: {0} differs")]
    Mismatch(&'static str),
    #[error("encryption failed")]
    Encrypt,
}

impl SealError {
    /// True when the payload may open later (a key is missing here), false when it never will.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SealError::UnknownKey(_))
    }
}

/// Short identifier of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public_key: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(public_key)[..8])
}
