//! SQL of the embedded queue (schema in `schema.sql`).

/// ?1 owner, ?2 lease expiry, ?3 nonce, ?4 now, ?5 limit. One statement = one write transaction.
pub const LEASE: &str = "
UPDATE queue_messages
   SET lease_owner = ?1, due_at_ms = ?2, lease_nonce = ?3, attempts = attempts + 1
 WHERE seq IN (SELECT seq FROM queue_messages
                WHERE status = 'ready' AND due_at_ms <= ?4
                ORDER BY due_at_ms, seq LIMIT ?5)
RETURNING seq, id, client_id, payload, accepted_at_ms, attempts";

/// ?1 nonce, ?2 JSON array of the seqs leased with it.
pub const ACK: &str = "
DELETE FROM queue_messages
 WHERE lease_nonce = ?1 AND status = 'ready' AND seq IN (SELECT value FROM json_each(?2))";

/// ?1 max attempts (0 = unlimited), ?2 now, ?3 next due, ?4 error, ?5 seq, ?6 nonce.
pub const RETRY_LATER: &str = "
UPDATE queue_messages
   SET status       = CASE WHEN ?1 > 0 AND attempts >= ?1 THEN 'failed' ELSE 'ready' END,
       failed_at_ms = CASE WHEN ?1 > 0 AND attempts >= ?1 THEN ?2 ELSE NULL END,
       due_at_ms = ?3, lease_owner = NULL, lease_nonce = NULL, last_error = ?4
 WHERE seq = ?5 AND lease_nonce = ?6 AND status = 'ready'";

/// ?1 now, ?2 reason, ?3 seq, ?4 nonce.
pub const DEAD_LETTER: &str = "
UPDATE queue_messages
   SET status = 'failed', failed_at_ms = ?1, last_error = ?2, lease_owner = NULL, lease_nonce = NULL
 WHERE seq = ?3 AND lease_nonce = ?4 AND status = 'ready'";

/// ?1 now. Leased rows are due at their lease expiry, so "due" covers abandoned leases.
pub const STATS: &str = "
SELECT SUM(status = 'ready' AND due_at_ms <= ?1)                              AS ready,
       SUM(status = 'ready' AND due_at_ms >  ?1 AND lease_nonce IS NOT NULL)  AS in_flight,
       SUM(status = 'ready' AND due_at_ms >  ?1 AND lease_nonce IS NULL)      AS delayed,
       SUM(status = 'failed')                                                 AS failed
  FROM queue_messages";

/// Undelivered rows; an index-only count on `queue_messages_due_nonce`.
pub const DEPTH: &str = "SELECT COUNT(*) FROM queue_messages WHERE status = 'ready'";

/// ?1 limit.
pub const LIST_FAILED: &str = "
SELECT id, client_id, attempts, last_error, failed_at_ms FROM queue_messages
 WHERE status = 'failed' ORDER BY failed_at_ms, seq LIMIT ?1";

/// ?1 now.
pub const RETRY_ALL_FAILED: &str = "
UPDATE queue_messages SET status = 'ready', due_at_ms = ?1, failed_at_ms = NULL WHERE status = 'failed'";

/// ?1 now, ?2 message id.
pub const RETRY_ONE_FAILED: &str = "
UPDATE queue_messages SET status = 'ready', due_at_ms = ?1, failed_at_ms = NULL WHERE id = ?2 AND status = 'failed'";

/// ?1 client, ?2 key, ?3 oldest creation time still honoured.
pub const IDEM_GET: &str = "
SELECT message_id, request_hash FROM queue_idempotency
 WHERE client_id = ?1 AND idem_key = ?2 AND created_at_ms >= ?3";

/// ?1 client, ?2 key, ?3 message id, ?4 request hash, ?5 now. Replaces an expired record.
pub const IDEM_PUT: &str = "
INSERT OR REPLACE INTO queue_idempotency (client_id, idem_key, message_id, request_hash, created_at_ms)
VALUES (?1, ?2, ?3, ?4, ?5)";

/// `rows` messages of five parameters each (id, client, payload, accepted at, now = due);
/// returns the ids that were not there yet.
pub fn insert_messages(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?)"; rows].join(", ");
    format!(
        "INSERT INTO queue_messages (id, client_id, payload, accepted_at_ms, due_at_ms) \
         VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id"
    )
}

/// ?1 cutoff.
pub const PURGE_IDEMPOTENCY: &str = "DELETE FROM queue_idempotency WHERE created_at_ms < ?1";
