//! Embedded SQLite queue: one file (WAL, `synchronous=FULL`) shared by every process of a deployment.
//!
//! - One writer task per process owns the hot writes: it drains whatever enqueues, leases and acks
//!   are waiting into one `BEGIN IMMEDIATE` transaction (group commit: one fsync for all of them),
//!   and answers each caller after the commit. Callers queue in a channel instead of sleeping in
//!   SQLite's busy handler, which under load starved the workers' leases and acks behind the
//!   proxy's enqueues. Other processes sharing the file still take turns through `busy_timeout`.
//! - Lease: one `UPDATE … WHERE seq IN (SELECT … LIMIT n) RETURNING`, which SQLite runs as a single write
//!   transaction, so processes sharing the file never lease the same row. The lease sets a fresh nonce
//!   and moves `due_at_ms` to the lease expiry: an abandoned lease makes the row due again by itself.
//! - Ack / retry / dead letter match `seq` *and* nonce, so a stale worker's token changes nothing.

mod queries;

use crate::{
    millis, parse_client, parse_id, EnqueueOutcome, FailedEntry, Idempotency, LeaseToken, Leased,
    NewMessage, QueueError, QueueStats, TokenRepr, IDEMPOTENCY_TTL,
};
use msgrelay_core::{now_ms, ClientId, MessageId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// Most enqueues committed in one transaction.
const MAX_BATCH: usize = 512;
/// How often the writer task purges expired idempotency records on its own.
const PURGE_EVERY: Duration = Duration::from_secs(600);

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// A write the writer task performs in its next group transaction.
enum Job {
    Enqueue {
        msg: NewMessage,
        idem: Option<(ClientId, Idempotency)>,
        reply: Reply<EnqueueOutcome>,
    },
    Lease {
        consumer: String,
        max: usize,
        lease: Duration,
        reply: Reply<Vec<Leased>>,
    },
    Ack {
        tokens: Vec<(i64, String)>,
        reply: Reply<u64>,
    },
}

impl Job {
    fn fail(self, e: &QueueError) {
        let err = || QueueError::Unavailable(e.to_string());
        match self {
            Job::Enqueue { reply, .. } => drop(reply.send(Err(err()))),
            Job::Lease { reply, .. } => drop(reply.send(Err(err()))),
            Job::Ack { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

/// The embedded queue; clones share the pool and the writer task.
#[derive(Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    writer: mpsc::Sender<Job>,
    notify: Arc<Notify>,
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue file and its tables, and starts the writer task.
    pub async fn open(path: &Path) -> Result<Self, QueueError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                QueueError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::raw_sql(include_str!("schema.sql"))
            .execute(&pool)
            .await?;

        let (writer, rx) = mpsc::channel(4 * MAX_BATCH);
        let notify = Arc::new(Notify::new());
        tokio::spawn(writer_task(pool.clone(), rx, notify.clone()));
        Ok(Self {
            pool,
            writer,
            notify,
        })
    }

    pub(crate) fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(job(reply))
            .await
            .map_err(|_| QueueError::Unavailable("queue writer stopped".into()))?;
        rx.await
            .map_err(|_| QueueError::Unavailable("queue writer stopped".into()))?
    }

    /// See [`crate::Queue::enqueue`].
    pub async fn enqueue(
        &self,
        msg: NewMessage,
        idem: Option<(ClientId, Idempotency)>,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.submit(|reply| Job::Enqueue { msg, idem, reply }).await
    }

    /// See [`crate::Queue::lease`].
    pub async fn lease(
        &self,
        consumer: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.submit(|reply| Job::Lease {
            consumer: consumer.to_owned(),
            max,
            lease,
            reply,
        })
        .await
    }

    /// See [`crate::Queue::ack`].
    pub async fn ack(&self, tokens: &[LeaseToken]) -> Result<u64, QueueError> {
        let tokens: Vec<(i64, String)> = sqlite_tokens(tokens)
            .map(|(seq, nonce)| (seq, nonce.to_owned()))
            .collect();
        if tokens.is_empty() {
            return Ok(0);
        }
        self.submit(|reply| Job::Ack { tokens, reply }).await
    }

    /// See [`crate::Queue::retry_later`].
    pub async fn retry_later(
        &self,
        tokens: &[LeaseToken],
        retry_after: Duration,
        max_attempts: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (seq, nonce) in sqlite_tokens(tokens) {
            sqlx::query(queries::RETRY_LATER)
                .bind(i64::from(max_attempts))
                .bind(now)
                .bind(now.saturating_add(millis(retry_after)))
                .bind(error)
                .bind(seq)
                .bind(nonce)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// See [`crate::Queue::dead_letter`].
    pub async fn dead_letter(&self, tokens: &[LeaseToken], reason: &str) -> Result<(), QueueError> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (seq, nonce) in sqlite_tokens(tokens) {
            sqlx::query(queries::DEAD_LETTER)
                .bind(now)
                .bind(reason)
                .bind(seq)
                .bind(nonce)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// See [`crate::Queue::stats`].
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let r = sqlx::query(queries::STATS)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await?;
        let get = |c: &str| -> Result<u64, QueueError> {
            Ok(u64::try_from(r.try_get::<Option<i64>, _>(c)?.unwrap_or(0)).unwrap_or(0))
        };
        Ok(QueueStats {
            ready: get("ready")?,
            in_flight: get("in_flight")?,
            delayed: get("delayed")?,
            failed: get("failed")?,
        })
    }

    /// See [`crate::Queue::depth`].
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar(queries::DEPTH)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// See [`crate::Queue::list_failed`].
    pub async fn list_failed(&self, limit: usize) -> Result<Vec<FailedEntry>, QueueError> {
        let rows = sqlx::query(queries::LIST_FAILED)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FailedEntry {
                    id: parse_id(r.try_get("id")?)?,
                    client_id: parse_client(r.try_get("client_id")?)?,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    last_error: r
                        .try_get::<Option<String>, _>("last_error")?
                        .unwrap_or_default(),
                    failed_at_ms: r.try_get::<Option<i64>, _>("failed_at_ms")?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// See [`crate::Queue::retry_failed`].
    pub async fn retry_failed(&self, ids: Option<&[MessageId]>) -> Result<u64, QueueError> {
        let now = now_ms();
        match ids {
            None => Ok(sqlx::query(queries::RETRY_ALL_FAILED)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected()),
            Some(ids) => {
                let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut n = 0;
                for id in ids {
                    n += sqlx::query(queries::RETRY_ONE_FAILED)
                        .bind(now)
                        .bind(id.0.to_string())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(n)
            }
        }
    }

    /// See [`crate::Queue::ping`].
    pub async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// See [`crate::Queue::purge_expired_idempotency`].
    pub async fn purge_expired_idempotency(&self) -> Result<u64, QueueError> {
        purge(&self.pool).await
    }
}

async fn purge(pool: &SqlitePool) -> Result<u64, QueueError> {
    let cutoff = now_ms() - millis(IDEMPOTENCY_TTL);
    Ok(sqlx::query(queries::PURGE_IDEMPOTENCY)
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected())
}

fn sqlite_tokens(tokens: &[LeaseToken]) -> impl Iterator<Item = (i64, &str)> {
    tokens.iter().filter_map(|t| match &t.0 {
        TokenRepr::Sqlite { seq, nonce } => Some((*seq, nonce.as_str())),
        TokenRepr::Redis { .. } => None,
    })
}

/// Group commit: takes whatever is waiting (up to `MAX_BATCH` jobs) and commits it in one transaction.
async fn writer_task(pool: SqlitePool, mut rx: mpsc::Receiver<Job>, notify: Arc<Notify>) {
    let mut last_purge = Instant::now();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_batch(&pool, &batch).await {
            Ok(outcomes) => {
                let mut enqueued = false;
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    match (job, outcome) {
                        (Job::Enqueue { reply, .. }, Outcome::Enqueue(o)) => {
                            enqueued |= o == EnqueueOutcome::Enqueued;
                            let _ = reply.send(Ok(o));
                        }
                        (Job::Lease { reply, .. }, Outcome::Lease(l)) => drop(reply.send(Ok(l))),
                        (Job::Ack { reply, .. }, Outcome::Ack(n)) => drop(reply.send(Ok(n))),
                        (job, _) => {
                            job.fail(&QueueError::Corrupt("writer outcome mismatch".into()))
                        }
                    }
                }
                if enqueued {
                    notify.notify_waiters();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = batch.len(), "queue write batch failed");
                for job in batch {
                    job.fail(&e);
                }
            }
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            if let Err(e) = purge(&pool).await {
                tracing::warn!(error = %e, "idempotency purge failed");
            }
        }
    }
}

/// The result of one job, in job order.
enum Outcome {
    Enqueue(EnqueueOutcome),
    Lease(Vec<Leased>),
    Ack(u64),
}

async fn commit_batch(pool: &SqlitePool, batch: &[Job]) -> Result<Vec<Outcome>, QueueError> {
    let now = now_ms();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = match job {
            Job::Enqueue { msg, idem, .. } => {
                Outcome::Enqueue(enqueue_one(&mut tx, msg, idem.as_ref(), now).await?)
            }
            Job::Lease {
                consumer,
                max,
                lease,
                ..
            } => Outcome::Lease(lease_one(&mut tx, consumer, *max, *lease, now).await?),
            Job::Ack { tokens, .. } => {
                let mut n = 0;
                for (seq, nonce) in tokens {
                    n += sqlx::query(queries::ACK)
                        .bind(seq)
                        .bind(nonce)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                Outcome::Ack(n)
            }
        };
        outcomes.push(outcome);
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn enqueue_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    msg: &NewMessage,
    idem: Option<&(ClientId, Idempotency)>,
    now: i64,
) -> Result<EnqueueOutcome, QueueError> {
    let fresh_after = now - millis(IDEMPOTENCY_TTL);
    let id = msg.id.0.to_string();
    if let Some((client, idem)) = idem {
        let existing = sqlx::query(queries::IDEM_GET)
            .bind(client.as_str())
            .bind(&idem.key)
            .bind(fresh_after)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(r) = existing {
            let earlier = parse_id(r.try_get("message_id")?)?;
            let hash: String = r.try_get("request_hash")?;
            return Ok(if hash == idem.request_hash {
                EnqueueOutcome::Duplicate { id: earlier }
            } else {
                EnqueueOutcome::Conflict { id: earlier }
            });
        }
    }
    let inserted = sqlx::query(queries::INSERT_MESSAGE)
        .bind(&id)
        .bind(msg.client_id.as_str())
        .bind(&msg.payload)
        .bind(msg.accepted_at_ms)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if inserted == 0 {
        // The same message id again (a proxy retrying its own enqueue): already stored.
        return Ok(EnqueueOutcome::Duplicate { id: msg.id });
    }
    if let Some((client, idem)) = idem {
        sqlx::query(queries::IDEM_PUT)
            .bind(client.as_str())
            .bind(&idem.key)
            .bind(&id)
            .bind(&idem.request_hash)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(EnqueueOutcome::Enqueued)
}

async fn lease_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    consumer: &str,
    max: usize,
    lease: Duration,
    now: i64,
) -> Result<Vec<Leased>, QueueError> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let rows = sqlx::query(queries::LEASE)
        .bind(consumer)
        .bind(now.saturating_add(millis(lease)))
        .bind(&nonce)
        .bind(now)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&mut **tx)
        .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            let seq: i64 = r.try_get("seq")?;
            Ok(Leased {
                id: parse_id(r.try_get("id")?)?,
                client_id: parse_client(r.try_get("client_id")?)?,
                payload: r.try_get("payload")?,
                accepted_at_ms: r.try_get("accepted_at_ms")?,
                attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                token: LeaseToken(TokenRepr::Sqlite {
                    seq,
                    nonce: nonce.clone(),
                }),
            })
        })
        .collect::<Result<Vec<_>, QueueError>>()?;
    // RETURNING order is unspecified; hand out oldest first.
    out.sort_by_key(|l| match &l.token.0 {
        TokenRepr::Sqlite { seq, .. } => *seq,
        TokenRepr::Redis { .. } => 0,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pooled connection must run WAL with `synchronous=FULL`, or a 202 would not mean durable.
    #[tokio::test]
    async fn connections_are_wal_and_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("sub/queue.db"))
            .await
            .unwrap();
        let mut conns = Vec::new();
        for _ in 0..3 {
            let mut c = q.pool.acquire().await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *c)
                .await
                .unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *c)
                .await
                .unwrap();
            assert_eq!((mode.as_str(), sync), ("wal", 2));
            conns.push(c);
        }
    }
}
