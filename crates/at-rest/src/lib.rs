//! Encryption at rest on the main server (only the main server and the operator tools link this
//! crate; the proxy and the worker cannot name these keys, which a test checks with cargo metadata): AES-256-GCM for the body and the sender number, with
//! the message id and the column name as associated data (a ciphertext cannot be moved to another
//! row or column), a key id stored per row (rotation), and HMAC-SHA256 of the sender number for
//! exact-match search.
//!
//! Key file (`keys/at-rest.json`, owner-only): `{"current": "k1", "keys": {"k1": "<b64>"}, "hmac_key": "<b64>"}`.
//! Rotation adds a key and moves `current`; old keys stay to decrypt old rows. Each key must be
//! rotated before 2^32 encryptions (random 96-bit nonces).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use msgrelay_core::MessageId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use msgrelay_files::{read_secret, write_new_secret, KeyFileError};

/// What can go wrong with at-rest keys or stored ciphertexts. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("unknown at-rest key id {0}")]
    UnknownKey(String),
    #[error("stored ciphertext is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "stored ciphertext failed authentication (corrupted, or moved to another row or column)"
    )]
    Unauthentic,
    #[error("encryption failed")]
    Encrypt,
}

const NONCE: usize = 12;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: String,
    keys: BTreeMap<String, String>,
    hmac_key: String,
}

/// Loaded at-rest keys. `Debug` never shows key material.
pub struct AtRestKeys {
    current: String,
    ciphers: BTreeMap<String, Aes256Gcm>,
    hmac_key: Vec<u8>,
}

impl fmt::Debug for AtRestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AtRestKeys(current={}, keys={}, ***)",
            self.current,
            self.ciphers.len()
        )
    }
}

/// The encrypted columns of one message row.
#[derive(Debug, Clone)]
pub struct EncryptedFields {
    pub key_id: String,
    pub encrypted_body: Vec<u8>,
    pub encrypted_sender: Vec<u8>,
    pub sender_hash: String,
}

fn random_key_b64() -> String {
    B64.encode(Aes256Gcm::generate_key(&mut OsRng))
}

impl AtRestKeys {
    /// Creates the key file with one AES key and one HMAC key if it does not exist; returns true if created.
    pub fn create_if_missing(path: &Path) -> Result<bool, AtRestError> {
        if path.exists() {
            return Ok(false);
        }
        let file = KeyFile {
            current: "k1".into(),
            keys: BTreeMap::from([("k1".to_owned(), random_key_b64())]),
            hmac_key: random_key_b64(),
        };
        Ok(write_new_secret(
            path,
            &serde_json::to_vec_pretty(&file).expect("serializable"),
        )?)
    }

    /// Loads and checks the key file.
    pub fn load(path: &Path) -> Result<Self, AtRestError> {
        let bad = |reason: &str| AtRestError::KeyFile(KeyFileError::invalid(path, reason));
        let file: KeyFile = serde_json::from_slice(&read_secret(path)?)
            .map_err(|_| bad("not a valid at-rest key file"))?;
        let mut ciphers = BTreeMap::new();
        for (id, b64) in &file.keys {
            let bytes = B64.decode(b64).map_err(|_| bad("a key is not base64"))?;
            if bytes.len() != 32 {
                return Err(bad("a key is not 32 bytes"));
            }
            ciphers.insert(
                id.clone(),
                Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            );
        }
        if !ciphers.contains_key(&file.current) {
            return Err(bad("`current` names a key that is not in `keys`"));
        }
        let hmac_key = B64
            .decode(&file.hmac_key)
            .map_err(|_| bad("hmac_key is not base64"))?;
        if hmac_key.len() < 32 {
            return Err(bad("hmac_key must be at least 32 bytes"));
        }
        Ok(Self {
            current: file.current,
            ciphers,
            hmac_key,
        })
    }

    /// Adds a new key and makes it current (old rows stay readable). Returns the new key id.
    pub fn rotate(path: &Path) -> Result<String, AtRestError> {
        let bad = |reason: &str| AtRestError::KeyFile(KeyFileError::invalid(path, reason));
        let mut file: KeyFile = serde_json::from_slice(&read_secret(path)?)
            .map_err(|_| bad("not a valid at-rest key file"))?;
        let next = (1..)
            .map(|n| format!("k{n}"))
            .find(|k| !file.keys.contains_key(k))
            .expect("unbounded");
        file.keys.insert(next.clone(), random_key_b64());
        file.current = next.clone();
        msgrelay_files::replace_private(
            path,
            &serde_json::to_vec_pretty(&file).expect("serializable"),
        )?;
        Ok(next)
    }

    /// The key id new rows are encrypted with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Keyed hash of a sender number, lowercase hex (what the `sender` filter matches on).
    pub fn sender_hash(&self, sender_number: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key)
            .expect("HMAC takes any key length");
        mac.update(sender_number.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Encrypts both columns of a message with the current key.
    pub fn encrypt_message(
        &self,
        id: &MessageId,
        sender_number: &str,
        body: &str,
    ) -> Result<EncryptedFields, AtRestError> {
        Ok(EncryptedFields {
            key_id: self.current.clone(),
            encrypted_body: self.encrypt(&self.current, id, "encrypted_body", body.as_bytes())?,
            encrypted_sender: self.encrypt(
                &self.current,
                id,
                "encrypted_sender",
                sender_number.as_bytes(),
            )?,
            sender_hash: self.sender_hash(sender_number),
        })
    }

    /// Decrypts one column; `column` is `encrypted_body` or `encrypted_sender`.
    pub fn decrypt(
        &self,
        key_id: &str,
        id: &MessageId,
        column: &str,
        data: &[u8],
    ) -> Result<String, AtRestError> {
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| AtRestError::UnknownKey(key_id.to_owned()))?;
        if data.len() < NONCE + 16 {
            return Err(AtRestError::Malformed("ciphertext too short"));
        }
        let aad = aad(id, column);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&data[..NONCE]),
                Payload {
                    msg: &data[NONCE..],
                    aad: &aad,
                },
            )
            .map_err(|_| AtRestError::Unauthentic)?;
        String::from_utf8(plain).map_err(|_| AtRestError::Malformed("not UTF-8"))
    }

    fn encrypt(
        &self,
        key_id: &str,
        id: &MessageId,
        column: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, AtRestError> {
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| AtRestError::UnknownKey(key_id.to_owned()))?;
        // A random 96-bit nonce from the thread's CSPRNG (ChaCha, seeded and reseeded from the
        // OS): a system call per nonce was ~2 % of the main server's CPU at full load.
        let nonce = Aes256Gcm::generate_nonce(&mut rand::thread_rng());
        let aad = aad(id, column);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| AtRestError::Encrypt)?;
        let mut out = Vec::with_capacity(NONCE + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }
}

fn aad(id: &MessageId, column: &str) -> Vec<u8> {
    format!("msgrelay:v1:{id}:{column}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_keys() -> (std::path::PathBuf, AtRestKeys) {
        let dir = std::env::temp_dir().join(format!("msgrelay-ar-{}", uuid_like()));
        let path = dir.join("at-rest.json");
        assert!(AtRestKeys::create_if_missing(&path).unwrap());
        let keys = AtRestKeys::load(&path).unwrap();
        (path, keys)
    }

    fn uuid_like() -> String {
        MessageId::new().to_string()
    }

    #[test]
    fn round_trip_and_no_swapping() {
        let (path, keys) = temp_keys();
        let id = MessageId::new();
        let enc = keys
            .encrypt_message(&id, "+15551234567", "hello world")
            .unwrap();
        assert_eq!(
            keys.decrypt(&enc.key_id, &id, "encrypted_body", &enc.encrypted_body)
                .unwrap(),
            "hello world"
        );
        assert_eq!(
            keys.decrypt(&enc.key_id, &id, "encrypted_sender", &enc.encrypted_sender)
                .unwrap(),
            "+15551234567"
        );
        // Swapped column or row fails authentication.
        assert!(keys
            .decrypt(&enc.key_id, &id, "encrypted_sender", &enc.encrypted_body)
            .is_err());
        assert!(keys
            .decrypt(
                &enc.key_id,
                &MessageId::new(),
                "encrypted_body",
                &enc.encrypted_body
            )
            .is_err());
        assert_eq!(enc.sender_hash, keys.sender_hash("+15551234567"));
        assert_ne!(enc.sender_hash, keys.sender_hash("+15551234568"));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn rotation_keeps_old_rows_readable_and_hash_stable() {
        let (path, keys) = temp_keys();
        let id = MessageId::new();
        let old = keys.encrypt_message(&id, "+15551234567", "before").unwrap();
        assert_eq!(AtRestKeys::rotate(&path).unwrap(), "k2");
        let keys2 = AtRestKeys::load(&path).unwrap();
        assert_eq!(keys2.current_key_id(), "k2");
        assert_eq!(
            keys2
                .decrypt(&old.key_id, &id, "encrypted_body", &old.encrypted_body)
                .unwrap(),
            "before"
        );
        assert_eq!(keys2.sender_hash("+15551234567"), old.sender_hash);
        assert!(!AtRestKeys::create_if_missing(&path).unwrap());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
