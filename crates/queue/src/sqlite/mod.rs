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
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;
/// Most rows of one `INSERT` statement (5 parameters each, far below SQLite's 32,766).
const MAX_INSERT_ROWS: usize = 256;
/// Up to this many waiting enqueues go in as one statement of exactly that many rows.
const EXACT_INSERT_ROWS: usize = 16;
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
        // No ping before each use: a SQLite connection has no peer that could have gone away,
        // and the ping is one more round trip to the connection's thread per transaction.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
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

/// Commits `batch` in one transaction, or as one autocommit statement when it takes only one
/// (a lone lease or ack, or up to [`EXACT_INSERT_ROWS`] enqueues without a key): every statement
/// is a round trip to the connection's thread, and at a steady rate those round trips, not the
/// fsync, were most of a `202`'s wait (issue 14). A single statement is atomic and durable on
/// its own, and it takes the write lock when it starts, as `BEGIN IMMEDIATE` does.
async fn commit_batch(pool: &SqlitePool, batch: &[Job]) -> Result<Vec<Outcome>, QueueError> {
    let now = now_ms();
    if statements(batch) == 1 {
        let mut conn = pool.acquire().await?;
        return run_batch(&mut conn, batch, now).await;
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let outcomes = run_batch(&mut tx, batch, now).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// How many statements [`run_batch`] executes for `batch` (a keyed enqueue counts as several).
fn statements(batch: &[Job]) -> usize {
    let mut plain = 0;
    let mut n = 0;
    for job in batch {
        match job {
            Job::Enqueue { idem: None, .. } => plain += 1,
            Job::Enqueue { idem: Some(_), .. } => n += 3,
            Job::Lease { .. } => n += 1,
            Job::Ack { tokens, .. } => n += nonce_groups(tokens).len(),
        }
    }
    n + chunk_sizes(plain).count()
}

/// The jobs of one batch, in job order except that enqueues without a key go first, together.
async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &[Job],
    now: i64,
) -> Result<Vec<Outcome>, QueueError> {
    let plain: Vec<&NewMessage> = batch
        .iter()
        .filter_map(|job| match job {
            Job::Enqueue {
                msg, idem: None, ..
            } => Some(msg),
            _ => None,
        })
        .collect();
    let mut fresh = insert_plain(conn, &plain, now).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = match job {
            Job::Enqueue {
                msg, idem: None, ..
            } => Outcome::Enqueue(if fresh.remove(&msg.id) {
                EnqueueOutcome::Enqueued
            } else {
                // The same message id again (a proxy retrying its own enqueue): already stored.
                EnqueueOutcome::Duplicate { id: msg.id }
            }),
            Job::Enqueue {
                msg,
                idem: Some(idem),
                ..
            } => Outcome::Enqueue(enqueue_one(conn, msg, idem, now).await?),
            Job::Lease {
                consumer,
                max,
                lease,
                ..
            } => Outcome::Lease(lease_one(conn, consumer, *max, *lease, now).await?),
            Job::Ack { tokens, .. } => Outcome::Ack(ack_all(conn, tokens).await?),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Inserts `msgs` in the statements [`chunk_sizes`] gives and returns the ids that were new.
async fn insert_plain(
    conn: &mut SqliteConnection,
    msgs: &[&NewMessage],
    now: i64,
) -> Result<HashSet<MessageId>, QueueError> {
    let mut fresh = HashSet::with_capacity(msgs.len());
    let mut rest = msgs;
    for size in chunk_sizes(msgs.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut q = sqlx::query(insert_messages_sql(size));
        for msg in chunk {
            q = q
                .bind(msg.id.0.to_string())
                .bind(msg.client_id.as_str())
                .bind(&msg.payload)
                .bind(msg.accepted_at_ms)
                .bind(now);
        }
        for row in q.fetch_all(&mut *conn).await? {
            fresh.insert(parse_id(row.try_get("id")?)?);
        }
    }
    Ok(fresh)
}

/// The rows of each insert statement for `n` waiting rows: all of them at once up to
/// [`EXACT_INSERT_ROWS`], beyond that the largest power of two that fits, at most
/// [`MAX_INSERT_ROWS`]. So at most 20 statement texts are ever prepared and cached.
fn chunk_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = match n {
            0 => return None,
            1..=EXACT_INSERT_ROWS => n,
            _ => (1usize << (usize::BITS - 1 - n.leading_zeros())).min(MAX_INSERT_ROWS),
        };
        n -= size;
        Some(size)
    })
}

/// The `INSERT … RETURNING id` of `rows` messages (a size [`chunk_sizes`] gives), built once.
fn insert_messages_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<(usize, String)>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        let powers = (EXACT_INSERT_ROWS.trailing_zeros() + 1..=MAX_INSERT_ROWS.trailing_zeros())
            .map(|exp| 1 << exp);
        (1..=EXACT_INSERT_ROWS)
            .chain(powers)
            .map(|n| (n, queries::insert_messages(n)))
            .collect()
    });
    all.iter()
        .find(|(n, _)| *n == rows)
        .map(|(_, sql)| sql.as_str())
        .expect("a size chunk_sizes gives")
}

/// The tokens grouped by lease: one lease's tokens share its nonce.
fn nonce_groups(tokens: &[(i64, String)]) -> Vec<(&str, Vec<i64>)> {
    let mut groups: Vec<(&str, Vec<i64>)> = Vec::new();
    for (seq, nonce) in tokens {
        match groups.iter_mut().find(|(n, _)| n == nonce) {
            Some((_, seqs)) => seqs.push(*seq),
            None => groups.push((nonce, vec![*seq])),
        }
    }
    groups
}

/// Deletes the acknowledged rows: one statement per lease.
async fn ack_all(conn: &mut SqliteConnection, tokens: &[(i64, String)]) -> Result<u64, QueueError> {
    let mut n = 0;
    for (nonce, seqs) in nonce_groups(tokens) {
        let seqs = serde_json::to_string(&seqs).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        n += sqlx::query(queries::ACK)
            .bind(nonce)
            .bind(seqs)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(n)
}

/// An enqueue with an idempotency key: its key is looked up and recorded in the same transaction.
async fn enqueue_one(
    conn: &mut SqliteConnection,
    msg: &NewMessage,
    (client, idem): &(ClientId, Idempotency),
    now: i64,
) -> Result<EnqueueOutcome, QueueError> {
    let fresh_after = now - millis(IDEMPOTENCY_TTL);
    let id = msg.id.0.to_string();
    let existing = sqlx::query(queries::IDEM_GET)
        .bind(client.as_str())
        .bind(&idem.key)
        .bind(fresh_after)
        .fetch_optional(&mut *conn)
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
    let inserted = sqlx::query(insert_messages_sql(1))
        .bind(&id)
        .bind(msg.client_id.as_str())
        .bind(&msg.payload)
        .bind(msg.accepted_at_ms)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    if inserted.is_none() {
        // The same message id again (a proxy retrying its own enqueue): already stored.
        return Ok(EnqueueOutcome::Duplicate { id: msg.id });
    }
    sqlx::query(queries::IDEM_PUT)
        .bind(client.as_str())
        .bind(&idem.key)
        .bind(&id)
        .bind(&idem.request_hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(EnqueueOutcome::Enqueued)
}

async fn lease_one(
    conn: &mut SqliteConnection,
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
        .fetch_all(&mut *conn)
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

    /// A queue at `path` inside a fresh temporary directory (kept alive by the returned guard).
    async fn open_in_temp_dir(path: &str) -> (tempfile::TempDir, SqliteQueue) {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join(path)).await.unwrap();
        (dir, q)
    }

    fn message(n: u8) -> NewMessage {
        NewMessage {
            id: MessageId::new(),
            client_id: ClientId::parse("demo").unwrap(),
            payload: vec![n; 3],
            accepted_at_ms: 1_000 + i64::from(n),
        }
    }

    fn enqueue(msg: &NewMessage, key: Option<&str>) -> Job {
        Job::Enqueue {
            msg: msg.clone(),
            idem: key.map(|k| {
                (
                    msg.client_id.clone(),
                    Idempotency {
                        key: k.into(),
                        request_hash: "h".into(),
                    },
                )
            }),
            reply: oneshot::channel().0,
        }
    }

    fn enqueue_outcomes(outcomes: &[Outcome]) -> Vec<EnqueueOutcome> {
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Enqueue(e) => *e,
                _ => panic!("not an enqueue outcome"),
            })
            .collect()
    }

    /// One group transaction answers every enqueue in it for itself, whether it went into a
    /// multi-row insert (no key) or on its own (with a key), and a repeated id is stored once.
    #[tokio::test]
    async fn a_batch_answers_each_enqueue_and_stores_a_repeated_id_once() {
        let (_dir, q) = open_in_temp_dir("queue.db").await;
        let (a, b, c) = (message(1), message(2), message(3));
        let batch = vec![
            enqueue(&a, None),
            enqueue(&b, Some("k")),
            enqueue(&a, None),
            enqueue(&c, None),
            enqueue(&c, Some("k")),
        ];
        let outcomes = commit_batch(&q.pool, &batch).await.unwrap();
        assert_eq!(
            enqueue_outcomes(&outcomes),
            vec![
                EnqueueOutcome::Enqueued,
                EnqueueOutcome::Enqueued,
                EnqueueOutcome::Duplicate { id: a.id },
                EnqueueOutcome::Enqueued,
                // The key is b's now, with the same request hash: b's id comes back.
                EnqueueOutcome::Duplicate { id: b.id },
            ]
        );
        let leased = q.lease("w", 10, Duration::from_secs(60)).await.unwrap();
        let mut got: Vec<_> = leased.iter().map(|l| (l.id, l.payload.clone())).collect();
        got.sort();
        let mut want = vec![(a.id, a.payload), (b.id, b.payload), (c.id, c.payload)];
        want.sort();
        assert_eq!(got, want);
    }

    /// A batch larger than one statement's rows goes in as several power-of-two chunks.
    #[tokio::test]
    async fn a_large_batch_is_inserted_whole_in_chunks() {
        let (_dir, q) = open_in_temp_dir("queue.db").await;
        let msgs: Vec<_> = (0..MAX_BATCH - 1).map(|n| message(n as u8)).collect();
        let batch: Vec<_> = msgs.iter().map(|m| enqueue(m, None)).collect();
        let outcomes = commit_batch(&q.pool, &batch).await.unwrap();
        assert!(enqueue_outcomes(&outcomes)
            .iter()
            .all(|o| *o == EnqueueOutcome::Enqueued));
        assert_eq!(q.depth().await.unwrap(), msgs.len() as u64);
        let leased = q
            .lease("w", MAX_BATCH, Duration::from_secs(60))
            .await
            .unwrap();
        let ids: Vec<_> = leased.iter().map(|l| l.id).collect();
        assert_eq!(
            ids,
            msgs.iter().map(|m| m.id).collect::<Vec<_>>(),
            "in order"
        );
    }

    #[test]
    fn inserts_take_every_small_batch_at_once_and_larger_ones_in_powers_of_two() {
        let sizes: Vec<_> = [1, 3, 16, 17, 31, 32, 100, 255, 256, 511]
            .iter()
            .map(|&n| chunk_sizes(n).next().unwrap())
            .collect();
        assert_eq!(sizes, [1, 3, 16, 16, 16, 32, 64, 128, 256, 256]);
        assert_eq!(chunk_sizes(100).collect::<Vec<_>>(), [64, 32, 4]);
        assert_eq!(chunk_sizes(0).count(), 0);
        for rows in (1..=16).chain([32, 64, 128, 256]) {
            let placeholders = insert_messages_sql(rows).matches("(?, ?, ?, ?, ?)").count();
            assert_eq!(placeholders, rows);
        }
    }

    /// Every pooled connection must run WAL with `synchronous=FULL`, or a 202 would not mean durable.
    #[tokio::test]
    async fn connections_are_wal_and_synchronous_full() {
        let (_dir, q) = open_in_temp_dir("sub/queue.db").await;
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
