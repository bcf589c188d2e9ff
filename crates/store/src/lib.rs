//! The main server's database: users, clients, certificates, messages, sessions and API tokens.
//! One query code path over sqlx's `Any` driver serves SQLite and MySQL/MariaDB; the few dialect
//! differences live in `dialect.rs`. The store only ever sees ciphertexts, never message plaintext.

mod clients;
mod dialect;
mod error;
mod location;
mod maintenance;
mod message_list;
mod messages;
mod secrets;
mod sessions;
mod tokens;
mod users;

pub use clients::{Client, ClientCertificate, NewCertificate, RegistryRow};
pub use dialect::Dialect;
pub use error::StoreError;
pub use maintenance::TableStat;
pub use message_list::{MessageFilter, MessagePage, MessageRow};
pub use messages::{DeliveredMessage, RegisteredMessage};
pub use secrets::{PasswordGate, PasswordHashStats};
pub use sessions::{NewSession, DEFAULT_SESSION_ABSOLUTE};
pub use tokens::{
    ApiToken, CreatedToken, TokenAuth, TokenScope, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS,
};
pub use users::User;

use msgrelay_core::DatabaseLocation;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::time::Duration;

/// Rows per multi-row statement (bounded so MySQL packets and SQLite's variable limit stay small).
pub(crate) const CHUNK: usize = 100;

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    hashing: PasswordGate,
    /// SQLite only: the message writes of this process take turns here, in arrival order, instead
    /// of sleeping in SQLite's busy handler (1, 2, 5, ... 100 ms back-off) while another holds the
    /// database's single write lock.
    write_gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl Store {
    /// Connects, applies the schema migrations and checks durability settings.
    /// A SQLite location is a path (created if missing); a server one is `mysql://user:pass@host:3306/db`.
    pub async fn connect(
        location: &DatabaseLocation,
        max_connections: u32,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, options) = location::any_options(location)?;
        let setup = dialect.connection_setup();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            // A server connection can have been closed while idle, so it is pinged before use;
            // a SQLite one cannot, and the ping is a round trip to its thread per transaction.
            .test_before_acquire(dialect != Dialect::Sqlite)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    for stmt in setup {
                        conn.execute(*stmt).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let write_gate = (dialect == Dialect::Sqlite).then(Default::default);
        let store = Store {
            pool,
            dialect,
            hashing: PasswordGate::new(0),
            write_gate,
        };
        store.check_durability().await?;
        dialect.migrator().run(&store.pool).await?;
        tracing::info!(dialect = ?dialect, "store connected and migrated");
        Ok(store)
    }

    /// Applies pending migrations (also done by `connect`); for `msgrelay db migrate`.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.dialect.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Lets at most `limit` password hashes run at once (0: one per core, the default).
    pub fn with_password_hash_concurrency(mut self, limit: usize) -> Store {
        self.hashing = PasswordGate::new(limit);
        self
    }

    /// Counters of the password-hashing gate.
    pub fn password_hash_stats(&self) -> PasswordHashStats {
        self.hashing.stats()
    }

    /// Which dialect this store speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn check_durability(&self) -> Result<(), StoreError> {
        match self.dialect {
            Dialect::Sqlite => {
                // journal_mode is stored in the file; switching needs an exclusive lock that
                // busy_timeout cannot wait for, so only switch when not yet in WAL mode.
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&self.pool)
                    .await?;
                if !mode.eq_ignore_ascii_case("wal") {
                    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                        .fetch_one(&self.pool)
                        .await?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode");
                    }
                }
            }
            Dialect::Mysql => {
                let flush: i64 =
                    sqlx::query_scalar("SELECT CAST(@@innodb_flush_log_at_trx_commit AS SIGNED)")
                        .fetch_one(&self.pool)
                        .await?;
                // READ COMMITTED (see Dialect::connection_setup) cannot be logged statement-based.
                let binlog: (i64, String) = sqlx::query_as(
                    "SELECT CAST(@@log_bin AS SIGNED), CAST(@@binlog_format AS CHAR)",
                )
                .fetch_one(&self.pool)
                .await?;
                if binlog.0 == 1 && binlog.1.eq_ignore_ascii_case("STATEMENT") {
                    tracing::warn!(binlog_format = %binlog.1, "writes will fail: set binlog_format = ROW or MIXED");
                }
                if flush != 1 {
                    tracing::warn!(
                        innodb_flush_log_at_trx_commit = flush,
                        "MySQL may lose committed transactions on a crash; set innodb_flush_log_at_trx_commit = 1"
                    );
                }
            }
        }
        Ok(())
    }

    /// Waits for this process's turn to write (SQLite; nothing to wait for on MySQL). Hold the
    /// guard until the transaction is committed.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// Starts a transaction that is going to write (see `Dialect::begin_write`).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin_with(self.dialect.begin_write()).await?)
    }
}

/// Runs a write transaction again (up to 5 times, with a short random pause) when the database
/// aborted it as a deadlock victim (SQLSTATE 40001). InnoDB can pick a victim even when every
/// writer locks rows in the same order; the operations retried here are idempotent.
pub(crate) async fn retry_deadlocks<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u64;
    loop {
        match op().await {
            Err(StoreError::Database(e)) if attempt < 5 && is_deadlock(&e) => {
                attempt += 1;
                tracing::debug!(attempt, "transaction chosen as deadlock victim; retrying");
                let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 5..=25) * attempt;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001")
}

/// A decoding problem: the database holds a value this code cannot represent.
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into().into()))
}

/// Reads a non-negative integer column as u32 (attempt counts).
pub(crate) fn get_u32(row: &AnyRow, col: &str) -> Result<u32, StoreError> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| corrupt(format!("{col} out of range")))
}
