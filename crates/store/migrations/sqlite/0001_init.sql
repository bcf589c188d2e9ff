-- msgrelay store schema (SQLite). Timestamps are ms since the Unix epoch, booleans 0/1.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,               -- argon2id PHC string
    role          TEXT    NOT NULL CHECK (role IN ('user', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
);

CREATE TABLE clients (
    client_id        TEXT    PRIMARY KEY,
    cert_fingerprint TEXT,                        -- the current certificate (SHA-256 hex)
    domain           TEXT    NOT NULL,
    owner_user_id    INTEGER NOT NULL REFERENCES users (id),
    status           TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at       INTEGER NOT NULL
);
CREATE INDEX clients_owner ON clients (owner_user_id);

-- A renewed client has two valid certificates at once, hence a table of its own.
CREATE TABLE client_certificates (
    serial        TEXT    PRIMARY KEY,            -- lowercase hex
    fingerprint   TEXT    NOT NULL UNIQUE,        -- SHA-256 of the DER, lowercase hex
    client_id     TEXT    NOT NULL REFERENCES clients (client_id),
    not_after     INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX client_certificates_client ON client_certificates (client_id);

-- No foreign key on client_id: an accepted message is a fact that must be stored
-- whatever happened to the client registry in the meantime.
CREATE TABLE messages (
    id                   TEXT    PRIMARY KEY,     -- UUID text
    client_id            TEXT    NOT NULL,
    encrypted_body       BLOB,
    encrypted_sender     BLOB,
    sender_number_hashed TEXT,                    -- HMAC-SHA256 hex
    key_id               TEXT,
    status               TEXT    NOT NULL CHECK (status IN ('queued', 'delivered', 'failed')),
    created_at           INTEGER NOT NULL,
    queued_at            INTEGER NOT NULL,
    delivered_at         INTEGER,
    attempt_count        INTEGER NOT NULL DEFAULT 0,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX messages_client_created ON messages (client_id, created_at);
CREATE INDEX messages_status_created ON messages (status, created_at);
CREATE INDEX messages_sender ON messages (sender_number_hashed);

CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY,             -- SHA-256 hex of the cookie value
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ttl_ms       INTEGER NOT NULL                 -- idle timeout; expiry slides by this much
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,         -- SHA-256 hex of the raw token
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
