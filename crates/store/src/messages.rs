//! Message writes: register (queued), deliver (upsert to delivered), fail, retry, purge.

use crate::dialect::{placeholders, value_rows};
use crate::{retry_deadlocks, Store, StoreError, CHUNK};
use msgrelay_core::{now_ms, ClientId, MessageId, MessageStatus};
use sqlx::{Any, AnyConnection, Transaction};
use std::collections::BTreeMap;
use std::fmt;

/// A message the proxy has queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredMessage {
    pub id: MessageId,
    pub client_id: ClientId,
    pub created_at_ms: i64,
    pub queued_at_ms: i64,
}

/// A message a worker has handed over, already encrypted for storage. `Debug` hides the ciphertexts.
#[derive(Clone, PartialEq, Eq)]
pub struct DeliveredMessage {
    pub id: MessageId,
    pub client_id: ClientId,
    pub encrypted_body: Vec<u8>,
    pub encrypted_sender: Vec<u8>,
    /// Keyed HMAC-SHA256 of the sender number, hex.
    pub sender_hash: String,
    pub key_id: String,
    pub created_at_ms: i64,
    pub queued_at_ms: i64,
    pub delivered_at_ms: i64,
    pub attempt_count: u32,
}

impl fmt::Debug for DeliveredMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredMessage")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field(
                "encrypted_body",
                &format_args!("*** ({} bytes)", self.encrypted_body.len()),
            )
            .field("encrypted_sender", &format_args!("***"))
            .field("key_id", &self.key_id)
            .field("delivered_at_ms", &self.delivered_at_ms)
            .field("attempt_count", &self.attempt_count)
            .finish_non_exhaustive()
    }
}

const INSERT_QUEUED: &str =
    "messages (id, client_id, status, created_at, queued_at, attempt_count, updated_at)";
const INSERT_DELIVERED: &str = "INSERT INTO messages (id, client_id, encrypted_body, encrypted_sender, \
     sender_number_hashed, key_id, status, created_at, queued_at, delivered_at, attempt_count, updated_at) VALUES ";

// `+status` (a no-op on the value) keeps SQLite from answering `status = ? AND id IN (…)` through
// the `(status, created_at)` index: with 100 bound ids and no statistics its planner preferred that
// index and scanned every delivered row, 0.3 s per 100-row chunk once the table held ~500,000
// rows, which throttled embedded delivery to ~500 messages a second. The primary key finds each id.

/// Moves `n` ids from one status (third bind) to another (first bind), stamping `updated_at`.
pub(crate) fn move_status_sql(n: usize) -> String {
    format!(
        "UPDATE messages SET status = ?, updated_at = ? WHERE +status = ? AND id IN ({})",
        placeholders(n)
    )
}

impl Store {
    /// Inserts messages as `queued` unless they exist; never changes an existing row, so a late
    /// register cannot move a delivered message back. One transaction. Returns rows inserted.
    pub async fn register_messages(&self, items: &[RegisteredMessage]) -> Result<u64, StoreError> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut sorted: Vec<&RegisteredMessage> = items.iter().collect();
        sorted.sort_by_key(|m| m.id); // one lock order for all writers
        retry_deadlocks(|| self.register_once(&sorted)).await
    }

    async fn register_once(&self, sorted: &[&RegisteredMessage]) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut inserted = 0;
        for chunk in sorted.chunks(CHUNK) {
            inserted += self.insert_queued(&mut tx, chunk).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Upserts messages to `delivered` with their ciphertexts, in one transaction and one
    /// multi-row statement per chunk of at most 100 rows. A row already delivered keeps its
    /// ciphertexts and delivery time; attempt_count becomes the larger of old and new.
    ///
    /// It does not report how many rows were newly delivered: telling a new row from a queued
    /// one and from an already delivered one took a second, row-locking statement per chunk on
    /// MySQL (two row writes per message instead of one), and nothing used the figure.
    pub async fn deliver_messages(&self, items: &[DeliveredMessage]) -> Result<(), StoreError> {
        // De-duplicate by id (keeping the first, with the largest attempt count) and sort for lock order.
        let mut unique: BTreeMap<MessageId, (&DeliveredMessage, u32)> = BTreeMap::new();
        for m in items {
            let e = unique.entry(m.id).or_insert((m, m.attempt_count));
            e.1 = e.1.max(m.attempt_count);
        }
        let unique: Vec<(&DeliveredMessage, u32)> = unique.into_values().collect();
        if unique.is_empty() {
            return Ok(());
        }
        retry_deadlocks(|| self.deliver_once(&unique)).await
    }

    /// The upsert, chunk by chunk. On MySQL, `INSERT … ON DUPLICATE KEY UPDATE` write-locks an
    /// existing row before it reads it, so concurrent deliveries of the same ids (sorted, one
    /// lock order) serialise on the row instead of deadlocking; on SQLite, `BEGIN IMMEDIATE`
    /// holds the database's write lock. A batch of one chunk is one statement, atomic on its own
    /// (and on SQLite it takes the write lock when it starts): it runs without `BEGIN` and
    /// `COMMIT`, two round trips fewer per delivery (issue 14).
    async fn deliver_once(&self, unique: &[(&DeliveredMessage, u32)]) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        if unique.len() <= CHUNK {
            let mut conn = self.pool.acquire().await?;
            return self.upsert_delivered(&mut conn, unique, now).await;
        }
        let mut tx = self.begin_write().await?;
        for chunk in unique.chunks(CHUNK) {
            self.upsert_delivered(&mut tx, chunk, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One `INSERT … ON CONFLICT/DUPLICATE KEY UPDATE` of up to [`CHUNK`] delivered messages.
    async fn upsert_delivered(
        &self,
        conn: &mut AnyConnection,
        chunk: &[(&DeliveredMessage, u32)],
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "{INSERT_DELIVERED}{}{}",
            value_rows(chunk.len(), 12),
            self.dialect.deliver_conflict_clause()
        );
        let mut q = sqlx::query(&sql);
        for (m, attempts) in chunk {
            q = q
                .bind(m.id.to_string())
                .bind(m.client_id.as_str())
                .bind(m.encrypted_body.as_slice())
                .bind(m.encrypted_sender.as_slice())
                .bind(m.sender_hash.as_str())
                .bind(m.key_id.as_str())
                .bind(MessageStatus::Delivered.as_str())
                .bind(m.created_at_ms)
                .bind(m.queued_at_ms)
                .bind(m.delivered_at_ms)
                .bind(i64::from(*attempts))
                .bind(now);
        }
        q.execute(&mut *conn).await?;
        Ok(())
    }

    /// Moves `queued` messages to `failed` (others are left alone). Returns rows changed.
    pub async fn mark_failed(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        self.move_status(ids, MessageStatus::Queued, MessageStatus::Failed)
            .await
    }

    /// Moves `failed` messages back to `queued` (admin retry). Returns rows changed.
    pub async fn requeue_failed(&self, ids: &[MessageId]) -> Result<u64, StoreError> {
        self.move_status(ids, MessageStatus::Failed, MessageStatus::Queued)
            .await
    }

    /// Deletes delivered messages delivered before `before_ms` (retention). Returns rows deleted.
    pub async fn purge_delivered_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM messages WHERE status = 'delivered' AND delivered_at < ?")
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn move_status(
        &self,
        ids: &[MessageId],
        from: MessageStatus,
        to: MessageStatus,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut sorted = ids.to_vec();
        sorted.sort();
        sorted.dedup();
        retry_deadlocks(|| self.move_status_once(&sorted, from, to)).await
    }

    async fn move_status_once(
        &self,
        sorted: &[MessageId],
        from: MessageStatus,
        to: MessageStatus,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        for chunk in sorted.chunks(CHUNK) {
            let sql = move_status_sql(chunk.len());
            let mut q = sqlx::query(&sql)
                .bind(to.as_str())
                .bind(now)
                .bind(from.as_str());
            for id in chunk {
                q = q.bind(id.to_string());
            }
            changed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Inserts a chunk of messages as queued (no attempts yet) unless present; returns rows inserted.
    async fn insert_queued(
        &self,
        tx: &mut Transaction<'static, Any>,
        chunk: &[&RegisteredMessage],
    ) -> Result<u64, StoreError> {
        let sql = self
            .dialect
            .insert_if_absent(INSERT_QUEUED, &value_rows(chunk.len(), 7));
        let now = now_ms();
        let mut q = sqlx::query(&sql);
        for m in chunk {
            q = q
                .bind(m.id.to_string())
                .bind(m.client_id.as_str())
                .bind(MessageStatus::Queued.as_str())
                .bind(m.created_at_ms)
                .bind(m.queued_at_ms)
                .bind(0i64)
                .bind(now);
        }
        Ok(q.execute(&mut **tx).await?.rows_affected())
    }
}

#[cfg(test)]
mod plan_tests {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};

    /// SQLite's plan for `sql` with `n` text parameters, on the migrated schema.
    async fn plan(sql: &str, n: usize) -> String {
        let mut conn = SqliteConnectOptions::new()
            .in_memory(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../migrations/sqlite/0001_init.sql"))
            .execute(&mut conn)
            .await
            .unwrap();
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(&explain);
        for i in 0..n {
            q = q.bind(format!("id-{i}"));
        }
        q.fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn chunk_statements_find_ids_by_primary_key_not_by_scanning_a_status() {
        let sql = super::move_status_sql(crate::CHUNK);
        // Three binds before the ids: new status, time, old status.
        let p = plan(&sql, crate::CHUNK + 3).await;
        assert!(
            p.contains("sqlite_autoindex_messages_1") && !p.contains("status_created"),
            "{sql}: {p}"
        );
    }
}
