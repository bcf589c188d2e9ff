//! X25519 key pairs of the main server and of proxies, in owner-only files.
//!
//! The same 32-byte secret serves both formats: HPKE (v2, X25519-HKDF-SHA256) for new payloads
//! and crypto_box (v1) to open payloads that were queued before the upgrade. Both are plain X25519
//! scalars, so existing key files and key ids stay valid.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hpke::{Deserializable, Serializable};
use msgrelay_files::{read_secret, write_new_secret, KeyFileError};

use crate::{Kem, SealError};

/// An X25519 key pair (the main server's, or a proxy's). `Debug` never shows the secret.
#[derive(Clone)]
pub struct SealingKeyPair {
    pub(crate) secret: crypto_box::SecretKey,
}

impl fmt::Debug for SealingKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKeyPair(key_id={}, secret=***)", self.key_id())
    }
}

impl SealingKeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self {
            secret: crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng),
        }
    }

    /// Creates the secret key file (owner-only) and its `.pub` companion if missing; returns true if created.
    pub fn create_if_missing(path: &Path) -> Result<bool, SealError> {
        if path.exists() {
            return Ok(false);
        }
        let kp = Self::generate();
        let created = write_new_secret(path, B64.encode(kp.secret.to_bytes()).as_bytes())?;
        if created {
            let kp = Self::load(path)?;
            let pub_path = path.with_extension("pub");
            std::fs::write(&pub_path, kp.public_key_b64()).map_err(|source| KeyFileError::Io {
                path: pub_path.display().to_string(),
                source,
            })?;
        }
        Ok(created)
    }

    /// Loads a secret key file (base64 of 32 bytes). A missing file is an error naming it: roles
    /// never generate keys silently (`msgrelay init` does).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let text = read_secret(path)?;
        let bytes = decode_key(std::str::from_utf8(&text).unwrap_or(""))
            .ok_or_else(|| KeyFileError::invalid(path, "not a base64 X25519 secret key"))?;
        Ok(Self {
            secret: crypto_box::SecretKey::from(bytes),
        })
    }

    /// The public key, base64.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.secret.public_key().as_bytes())
    }

    /// Identifier of the public key (8 bytes of its SHA-256, hex).
    pub fn key_id(&self) -> String {
        crate::key_id(self.secret.public_key().as_bytes())
    }

    pub(crate) fn kid(&self) -> Kid {
        kid_of(self.secret.public_key().as_bytes())
    }

    pub(crate) fn hpke_private(&self) -> <Kem as hpke::Kem>::PrivateKey {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.secret.to_bytes())
            .expect("any 32 bytes are an X25519 secret")
    }

    pub(crate) fn hpke_public(&self) -> <Kem as hpke::Kem>::PublicKey {
        <Kem as hpke::Kem>::PublicKey::from_bytes(self.secret.public_key().as_bytes())
            .expect("32-byte X25519 public key")
    }
}

/// A peer's public key (the server's, seen by a proxy; a proxy's, seen by the server).
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub kid: Kid,
    pub box_key: crypto_box::PublicKey,
    pub hpke: <Kem as hpke::Kem>::PublicKey,
}

impl PublicKey {
    pub fn parse_b64(b64: &str) -> Result<Self, SealError> {
        let bytes =
            decode_key(b64).ok_or(SealError::Malformed("public key is not base64 of 32 bytes"))?;
        let hpke = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| SealError::Malformed("not an X25519 public key"))?;
        Ok(Self {
            kid: kid_of(&bytes),
            box_key: crypto_box::PublicKey::from(bytes),
            hpke,
        })
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.hpke.to_bytes().to_vec()
    }
}

/// Binary key id as carried in a payload header.
pub(crate) type Kid = [u8; crate::KID];

fn kid_of(public: &[u8]) -> Kid {
    let mut out = [0u8; crate::KID];
    hex::decode_to_slice(crate::key_id(public), &mut out).expect("key_id is 16 hex chars");
    out
}

fn decode_key(b64: &str) -> Option<[u8; 32]> {
    B64.decode(b64.trim()).ok()?.try_into().ok()
}
