//! Cryptography of message content: the proxy seals each payload to the main server
//! (`seal`), the main server encrypts body and sender number at rest (`at_rest`).
//! Key material lives in owner-only files (`keyfile`); nothing here logs or prints secrets.

pub mod at_rest;
pub mod keyfile;
pub mod seal;

pub use at_rest::{AtRestKeys, EncryptedFields};
pub use seal::{Opener, PlainPayload, Sealer, SealingKeyPair};

/// Everything that can go wrong with keys or ciphertexts. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("unknown key id {0}")]
    UnknownKey(String),
    #[error("sealed payload is malformed: {0}")]
    Malformed(&'static str),
    #[error("sealed payload failed authentication (forged, corrupted or sealed to another key)")]
    Unauthentic,
    #[error("sealed payload does not belong to this message: {0} differs")]
    Mismatch(&'static str),
    #[error("encryption failed")]
    Encrypt,
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Short identifier of a public key: the first 8 bytes of its SHA-256, hex.
pub fn key_id(public_key: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(public_key)[..8])
}
