//! Per-test databases and shared fixtures.

use msgrelay_core::{now_ms, ClientId, MessageId, Role};
use msgrelay_store::{DeliveredMessage, RegisteredMessage, Store, User};
use sqlx::migrate::MigrateDatabase;
use std::future::Future;

/// Which backend a case runs against.
pub enum Backend {
    Sqlite,
    Mysql,
}

/// What a case gets: a connected store and the URL it was opened with.
pub struct Ctx {
    pub store: Store,
    pub url: String,
}

/// The store location a `database.url` setting names (absolute paths only here).
fn location(url: &str) -> msgrelay_core::DatabaseLocation {
    msgrelay_core::DatabaseLocation::from_setting(url, std::path::Path::new("/"))
}

/// Creates a fresh database, runs `case`, drops the database even if the case panicked.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    sqlx::any::install_default_drivers();
    let _dir; // keeps the SQLite temp dir alive
    let url = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("store.db").display()
            );
            _dir = Some(dir);
            url
        }
        Backend::Mysql => {
            _dir = None;
            let base = std::env::var("MSGRELAY_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into());
            let url = format!(
                "{}/msgrelay_test_{}",
                base.trim_end_matches('/'),
                uuid::Uuid::new_v4().simple()
            );
            if let Err(e) = sqlx::Any::create_database(&url).await {
                msgrelay_testkit::skip("MySQL/MariaDB", format!("{base}: {e}"));
                return;
            }
            url
        }
    };
    let store = Store::connect(&location(&url), 4).await;
    let outcome = match store {
        Ok(store) => {
            let handle = tokio::spawn(case(Ctx {
                store: store.clone(),
                url: url.clone(),
            }));
            let outcome = handle.await;
            store.close().await;
            outcome.map_err(|e| e.into_panic())
        }
        Err(e) => Err(Box::new(format!("connect failed: {e}")) as Box<dyn std::any::Any + Send>),
    };
    if matches!(backend, Backend::Mysql) {
        if let Err(e) = sqlx::Any::drop_database(&url).await {
            eprintln!("could not drop {url}: {e}");
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Ctx {
    /// Runs one statement on a connection of its own (to set up states the API cannot make).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("connect");
        sqlx::Executor::execute(&mut conn, sql)
            .await
            .expect("execute");
        conn.close().await.ok();
    }
}

/// Connecting again to a migrated database applies nothing and works.
pub async fn reconnect_is_idempotent(ctx: Ctx) {
    ctx.store.ping().await.unwrap();
    if let Some(rest) = ctx.url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap();
        assert!(
            std::path::Path::new(&format!("{path}-wal")).exists(),
            "SQLite runs in WAL mode"
        );
    }
    let again = Store::connect(&location(&ctx.url), 2).await.unwrap();
    again.migrate().await.unwrap();
    again.ping().await.unwrap();
    again.close().await;
}

pub const PASSWORD: &str = "correct horse battery";

pub async fn user(store: &Store, name: &str, role: Role) -> User {
    store.create_user(name, PASSWORD, role).await.unwrap()
}

pub fn cid(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

pub fn registered(id: MessageId, client: &str, created_at_ms: i64) -> RegisteredMessage {
    RegisteredMessage {
        id,
        client_id: cid(client),
        created_at_ms,
        queued_at_ms: created_at_ms + 1,
    }
}

/// A delivered message whose ciphertexts include NUL and high bytes (binary safety).
pub fn delivered(
    id: MessageId,
    client: &str,
    created_at_ms: i64,
    sender_hash: &str,
) -> DeliveredMessage {
    DeliveredMessage {
        id,
        client_id: cid(client),
        encrypted_body: vec![0, 159, 255, b'\'', b'"', 0, 1, 2],
        encrypted_sender: vec![0xfe, 0, 0x27],
        sender_hash: sender_hash.to_owned(),
        key_id: "k1".into(),
        created_at_ms,
        queued_at_ms: created_at_ms + 1,
        delivered_at_ms: now_ms(),
        attempt_count: 1,
    }
}

/// A sender hash as the server would compute it: 64 hex digits.
pub fn hash_of(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}
