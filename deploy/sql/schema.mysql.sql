-- msgrelay store schema for MySQL 8 / MariaDB 10.6+, as plain DDL for DBAs who create the
-- tables themselves:  mysql -u root -p msgrelay < schema.mysql.sql
-- It is the same DDL as crates/store/migrations/mysql (the backends test suite checks that both
-- produce identical tables). msgrelay applies those migrations itself at start-up and with
-- `msgrelay db migrate`, recording them in `_sqlx_migrations`; on a database created from this
-- file it would try to create the tables again, so use one way or the other, not both.
-- Keep this file in step with every new migration.

CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(64)  NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role          VARCHAR(16)  NOT NULL,
    disabled      INT          NOT NULL DEFAULT 0,
    created_at    BIGINT       NOT NULL,
    last_login_at BIGINT       NULL,
    UNIQUE KEY users_username (username),
    CONSTRAINT users_role CHECK (role IN ('user', 'admin'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE clients (
    client_id        VARCHAR(64)  NOT NULL PRIMARY KEY,
    cert_fingerprint CHAR(64)     NULL,
    domain           VARCHAR(253) NOT NULL,
    owner_user_id    BIGINT       NOT NULL,
    status           VARCHAR(16)  NOT NULL DEFAULT 'active',
    created_at       BIGINT       NOT NULL,
    KEY clients_owner (owner_user_id),
    CONSTRAINT clients_owner_fk FOREIGN KEY (owner_user_id) REFERENCES users (id),
    CONSTRAINT clients_status CHECK (status IN ('active', 'disabled'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE client_certificates (
    serial        VARCHAR(64)  NOT NULL PRIMARY KEY,
    fingerprint   CHAR(64)     NOT NULL,
    client_id     VARCHAR(64)  NOT NULL,
    not_after     BIGINT       NOT NULL,
    revoked_at    BIGINT       NULL,
    revoke_reason VARCHAR(255) NULL,
    created_at    BIGINT       NOT NULL,
    UNIQUE KEY client_certificates_fingerprint (fingerprint),
    KEY client_certificates_client (client_id),
    CONSTRAINT client_certificates_client_fk FOREIGN KEY (client_id) REFERENCES clients (client_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- No foreign key on client_id: an accepted message is a fact that must be stored
-- whatever happened to the client registry in the meantime.
CREATE TABLE messages (
    id                   CHAR(36)    NOT NULL PRIMARY KEY,
    client_id            VARCHAR(64) NOT NULL,
    encrypted_body       MEDIUMBLOB  NULL,
    encrypted_sender     BLOB        NULL,
    sender_number_hashed CHAR(64)    NULL,
    key_id               VARCHAR(64) NULL,
    status               VARCHAR(16) NOT NULL,
    created_at           BIGINT      NOT NULL,
    queued_at            BIGINT      NOT NULL,
    delivered_at         BIGINT      NULL,
    attempt_count        INT         NOT NULL DEFAULT 0,
    updated_at           BIGINT      NOT NULL,
    KEY messages_client_created (client_id, created_at),
    KEY messages_status_created (status, created_at),
    KEY messages_sender (sender_number_hashed),
    CONSTRAINT messages_status CHECK (status IN ('queued', 'delivered', 'failed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE sessions (
    token_hash   CHAR(64)    NOT NULL PRIMARY KEY,
    user_id      BIGINT      NOT NULL,
    csrf_token   VARCHAR(64) NOT NULL,
    created_at   BIGINT      NOT NULL,
    expires_at   BIGINT      NOT NULL,
    last_seen_at BIGINT      NOT NULL,
    ttl_ms       BIGINT      NOT NULL,
    absolute_expires_at BIGINT NOT NULL DEFAULT 0,
    KEY sessions_user (user_id),
    KEY sessions_expires (expires_at),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE api_tokens (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name         VARCHAR(128) NOT NULL,
    token_hash   CHAR(64)     NOT NULL,
    user_id      BIGINT       NOT NULL,
    created_at   BIGINT       NOT NULL,
    last_used_at BIGINT       NULL,
    revoked_at   BIGINT       NULL,
    scope        VARCHAR(16)  NOT NULL DEFAULT 'read',
    expires_at   BIGINT       NOT NULL DEFAULT 0,
    UNIQUE KEY api_tokens_hash (token_hash),
    KEY api_tokens_user (user_id),
    CONSTRAINT api_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_scope CHECK (scope IN ('read', 'admin'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
