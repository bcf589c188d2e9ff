//! Random tokens, token hashing and argon2id password hashing behind a gate that bounds how many
//! hashes run at once.

use crate::StoreError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bounds concurrent argon2 work. One hash holds ~19 MiB and a core for tens of milliseconds, so
/// a burst of logins must queue here rather than each take a blocking thread and its memory.
#[derive(Debug, Clone)]
pub struct PasswordGate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    permits: Arc<Semaphore>,
    limit: usize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicU64,
}

/// What the gate has seen: for the `password_hashes_*` metrics and the tests that check the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashStats {
    /// At most this many hashes run at once.
    pub limit: usize,
    /// Running now.
    pub in_flight: usize,
    /// The most that ever ran at once.
    pub peak: usize,
    /// Hashes and verifications run since start.
    pub total: u64,
}

/// Counts a running hash; dropped on the blocking thread when the hash is done, even if the
/// request that asked for it has gone.
struct Running {
    gate: Arc<GateInner>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordGate {
    /// A gate letting `limit` hashes run at once; 0 means one per CPU core.
    pub fn new(limit: usize) -> Self {
        let limit = if limit == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            limit
        };
        Self {
            inner: Arc::new(GateInner {
                permits: Arc::new(Semaphore::new(limit)),
                limit,
                in_flight: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                total: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> PasswordHashStats {
        let g = &self.inner;
        PasswordHashStats {
            limit: g.limit,
            in_flight: g.in_flight.load(Ordering::Acquire),
            peak: g.peak.load(Ordering::Acquire),
            total: g.total.load(Ordering::Acquire),
        }
    }

    /// Runs `work` on a blocking thread once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Internal("password gate closed".into()))?;
        let g = &self.inner;
        let now = g.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        g.peak.fetch_max(now, Ordering::AcqRel);
        g.total.fetch_add(1, Ordering::AcqRel);
        let running = Running {
            gate: g.clone(),
            _permit: permit,
        };
        tokio::task::spawn_blocking(move || {
            let _running = running;
            work()
        })
        .await
        .map_err(|e| StoreError::Internal(format!("password hashing task failed: {e}")))?
    }
}

/// `n` random bytes from the OS, base64url without padding.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 hex of a token: what the database stores instead of the token itself.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hashes a password with argon2id (default parameters) off the async threads.
pub(crate) async fn hash_password(
    gate: &PasswordGate,
    password: &str,
) -> Result<String, StoreError> {
    let password = password.to_owned();
    gate.run(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Internal(format!("password hashing failed: {e}")))
    })
    .await
}

/// Checks a password against a PHC string; `None` checks against a dummy hash so that an
/// unknown username costs the same time as a wrong password.
pub(crate) async fn verify_password(
    gate: &PasswordGate,
    password: &str,
    phc: Option<String>,
) -> Result<bool, StoreError> {
    let password = password.to_owned();
    gate.run(move || {
        let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
        let parsed = PasswordHash::new(&phc)
            .map_err(|_| StoreError::Internal("stored password hash is malformed".into()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"msgrelay-dummy-password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_hex() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert_eq!(token_hash("x").len(), 64);
    }

    #[tokio::test]
    async fn password_round_trip() {
        let gate = PasswordGate::new(0);
        let phc = hash_password(&gate, "correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            verify_password(&gate, "correct horse battery", Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password(&gate, "wrong", Some(phc)).await.unwrap());
        assert!(!verify_password(&gate, "wrong", None).await.unwrap());
        let stats = gate.stats();
        assert_eq!((stats.total, stats.in_flight), (4, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gate_bounds_concurrent_hashes() {
        let gate = PasswordGate::new(2);
        let phc = hash_password(&gate, "correct horse battery").await.unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (gate, phc) = (gate.clone(), phc.clone());
                tokio::spawn(async move { verify_password(&gate, "wrong", Some(phc)).await })
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap().unwrap());
        }
        let stats = gate.stats();
        assert_eq!(stats.limit, 2);
        assert_eq!(stats.total, 13);
        assert!((1..=2).contains(&stats.peak), "peak {}", stats.peak);
        assert_eq!(stats.in_flight, 0);
    }
}
