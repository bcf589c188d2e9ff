//! The durable message queue between the proxy and the workers: sealed payloads in, leased batches out.
//! One `Queue` enum chosen from configuration, an embedded SQLite backend and a Redis Streams backend;
//! both pass the same contract suite (`tests/contract.rs`), so the rest of the code never knows which runs.

mod monitor;
mod redis_streams;
mod sqlite;

pub use crate::monitor::QueueMonitor;
pub use crate::redis_streams::snapshot as redis_snapshot;
pub use crate::redis_streams::RedisQueue;
pub use crate::sqlite::SqliteQueue;

use msgrelay_core::config::{QueueBackend, QueueConfig};
use msgrelay_core::{ClientId, MessageId};
use std::path::Path;
use std::time::Duration;

/// How long an idempotency record (client + key → message id) is honoured.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A sealed message to enqueue; `payload` is opaque (already encrypted) bytes.
#[derive(Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub client_id: ClientId,
    pub payload: Vec<u8>,
    pub accepted_at_ms: i64,
}

impl std::fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMessage")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// A client's idempotency key and the hex SHA-256 of its canonical request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Durably stored as a new message.
    Enqueued,
    /// Same client, key and request hash within 24 h: nothing stored, this is the earlier id.
    Duplicate { id: MessageId },
    /// Same client and key but a different request hash: refused; the id the key belongs to.
    Conflict { id: MessageId },
}

/// A message leased to one consumer until its lease expires or it is acked / released.
#[derive(Clone)]
pub struct Leased {
    pub id: MessageId,
    pub client_id: ClientId,
    pub payload: Vec<u8>,
    pub accepted_at_ms: i64,
    /// Delivery attempts so far, this lease included.
    pub attempts: u32,
    pub token: LeaseToken,
}

impl std::fmt::Debug for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("attempts", &self.attempts)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Proof of one particular lease; a stale token (lease since taken by another consumer) matches nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseToken(pub(crate) TokenRepr);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenRepr {
    /// Row id plus the random nonce written by the lease.
    Sqlite { seq: i64, nonce: String },
    /// Stream entry id plus the owner and delivery count seen at lease time (XPENDING), and the message id.
    Redis {
        /// The partition (index into the queue's partitions) the entry is in.
        part: usize,
        entry: String,
        consumer: String,
        deliveries: i64,
        msg_id: String,
    },
}

/// Queue depth by state; `ready` includes retries and expired leases that are due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub failed: u64,
}

/// A dead-lettered message as the admin sees it (never the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: MessageId,
    pub client_id: ClientId,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at_ms: i64,
}

/// Queue failures; `Unavailable` is transient (the proxy answers 503), the others are not.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend cannot be reached or refused the operation; retry later.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// Start-up refusal: the backend would not keep accepted messages safe; names the setting.
    #[error("queue backend is not durable: {0}")]
    NotDurable(String),
    /// Stored data could not be decoded.
    #[error("queue data corrupt: {0}")]
    Corrupt(String),
    /// Invalid configuration (e.g. an unparsable Redis URL).
    #[error("queue configuration: {0}")]
    Config(String),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Unavailable(format!("sqlite: {e}"))
    }
}

impl From<::redis::RedisError> for QueueError {
    fn from(e: ::redis::RedisError) -> Self {
        QueueError::Unavailable(format!("redis: {e}"))
    }
}

/// The configured queue backend; cheap to clone (shared connections and writer task).
#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteQueue),
    Redis(RedisQueue),
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Queue::Sqlite(q) => q.$method($($arg),*).await,
            Queue::Redis(q) => q.$method($($arg),*).await,
        }
    };
}

impl Queue {
    /// Builds the configured backend (SQLite path relative to `data_dir`; Redis checked for AOF + noeviction).
    pub async fn connect(cfg: &QueueConfig, data_dir: &Path) -> Result<Queue, QueueError> {
        match cfg.backend {
            QueueBackend::Sqlite => {
                let path = if cfg.sqlite_path.is_absolute() {
                    cfg.sqlite_path.clone()
                } else {
                    data_dir.join(&cfg.sqlite_path)
                };
                Ok(Queue::Sqlite(SqliteQueue::open(&path).await?))
            }
            QueueBackend::Redis => Ok(Queue::Redis(RedisQueue::connect(cfg, data_dir).await?)),
        }
    }

    /// Stores the message (and the idempotency record, atomically with it); durable on `Ok`.
    pub async fn enqueue(
        &self,
        msg: NewMessage,
        idem: Option<(ClientId, Idempotency)>,
    ) -> Result<EnqueueOutcome, QueueError> {
        dispatch!(self.enqueue(msg, idem))
    }

    /// Waits up to `max_wait`, returning early when this process enqueued something or, on Redis
    /// (not Cluster), when any process did.
    pub async fn wait_for_work(&self, max_wait: Duration) {
        let notify = match self {
            Queue::Sqlite(q) => q.notifier(),
            Queue::Redis(q) => q.notifier(),
        };
        let _ = tokio::time::timeout(max_wait, notify.notified()).await;
    }

    /// Leases up to `max` due messages to `consumer` for `lease`; counts an attempt on each.
    pub async fn lease(
        &self,
        consumer: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        dispatch!(self.lease(consumer, max, lease))
    }

    /// Removes delivered messages whose lease is still held by these tokens; returns how many.
    pub async fn ack(&self, tokens: &[LeaseToken]) -> Result<u64, QueueError> {
        dispatch!(self.ack(tokens))
    }

    /// Releases the leases: due again after `retry_after`, or failed once `attempts >= max_attempts > 0`.
    pub async fn retry_later(
        &self,
        tokens: &[LeaseToken],
        retry_after: Duration,
        max_attempts: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        dispatch!(self.retry_later(tokens, retry_after, max_attempts, error))
    }

    /// Marks the leased messages failed (dead letter) with `reason`.
    pub async fn dead_letter(&self, tokens: &[LeaseToken], reason: &str) -> Result<(), QueueError> {
        dispatch!(self.dead_letter(tokens, reason))
    }

    /// Counts messages per state.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        dispatch!(self.stats())
    }

    /// Undelivered messages (ready, in flight, awaiting a retry; not failed): what `queue.max_depth`
    /// limits. Cheaper than `stats` (O(1) on Redis, an index-only count on SQLite).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        dispatch!(self.depth())
    }

    /// Up to `limit` failed messages (oldest failure first).
    pub async fn list_failed(&self, limit: usize) -> Result<Vec<FailedEntry>, QueueError> {
        dispatch!(self.list_failed(limit))
    }

    /// Admin "retry now": failed → ready (attempts kept); `None` = all failed. Returns the count.
    pub async fn retry_failed(&self, ids: Option<&[MessageId]>) -> Result<u64, QueueError> {
        dispatch!(self.retry_failed(ids))
    }

    /// Checks the backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        dispatch!(self.ping())
    }

    /// Deletes idempotency records older than 24 h; returns how many (Redis expires them itself: 0).
    pub async fn purge_expired_idempotency(&self) -> Result<u64, QueueError> {
        dispatch!(self.purge_expired_idempotency())
    }
}

/// Parses a stored message id.
pub(crate) fn parse_id(s: &str) -> Result<MessageId, QueueError> {
    MessageId::parse(s).map_err(|_| QueueError::Corrupt("stored message id is not a UUID".into()))
}

/// Parses a stored client id.
pub(crate) fn parse_client(s: &str) -> Result<ClientId, QueueError> {
    ClientId::parse(s).map_err(|_| QueueError::Corrupt("stored client id is invalid".into()))
}

/// Duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
