-- The embedded queue. One row per undelivered message; delivered rows are deleted.
-- status: 'ready' (queued, possibly leased or waiting for a retry) | 'failed' (dead letter, kept for the admin).
-- due_at_ms: when the row may next be leased. A lease moves it to the lease's expiry, so an
-- abandoned lease makes the row due again by itself and one index serves leasing.
-- lease_nonce: set while leased (NULL otherwise); a token must present it to ack or release.
CREATE TABLE IF NOT EXISTS queue_messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    client_id      TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    accepted_at_ms INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'failed')),
    due_at_ms      INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_nonce    TEXT,
    last_error     TEXT,
    failed_at_ms   INTEGER
);
-- lease_nonce is in the index so that `stats` (sampled on every /metrics scrape) is an index-only
-- scan instead of reading every payload.
DROP INDEX IF EXISTS queue_messages_due;
CREATE INDEX IF NOT EXISTS queue_messages_due_nonce ON queue_messages (status, due_at_ms, lease_nonce);

-- Client + idempotency key → message id, written in the enqueue's transaction; honoured 24 h.
CREATE TABLE IF NOT EXISTS queue_idempotency (
    client_id     TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (client_id, idem_key)
);
CREATE INDEX IF NOT EXISTS queue_idempotency_created ON queue_idempotency (created_at_ms);
