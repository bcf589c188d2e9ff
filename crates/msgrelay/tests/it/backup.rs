//! `msgrelay backup` / `restore` round trips on both backend pairs: the embedded one (SQLite store
//! and queue) and the production one (MariaDB store, Redis queue, on the servers named by
//! `MSGRELAY_TEST_MYSQL_URL` / `MSGRELAY_TEST_REDIS_URL`, a fresh database and key prefix per
//! relay). A running relay holds delivered messages and messages still queued because the main
//! server is stopped; it is backed up with the keys kept apart, wiped, restored onto fresh
//! targets and started: every message is readable in the portal and each queued one is delivered
//! exactly once.

use std::process::Output;

use sqlx::migrate::MigrateDatabase;

use crate::support::{free_port, metric, metrics, run, TestRelay, DEADLINE};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One relay's production backends: a database of its own and a key prefix of its own.
struct Production {
    redis_url: String,
    mysql_base: String,
    db: String,
    prefix: String,
}

impl Production {
    /// A fresh, empty database and an unused prefix; `None` when the servers are not there and
    /// the tests skip (`MSGRELAY_TEST_REQUIRE_EXTERNAL=1` in CI makes that a failure: the skip
    /// policy of `msgrelay-testkit`).
    async fn create() -> Option<Production> {
        let p = Production {
            redis_url: std::env::var("MSGRELAY_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into()),
            mysql_base: std::env::var("MSGRELAY_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
                .trim_end_matches('/')
                .to_owned(),
            db: format!("msgrelay_bk_{}", uuid_hex()),
            prefix: format!("it-bk-{}", uuid_hex()),
        };
        if !msgrelay_testkit::available(
            "Redis",
            msgrelay_testkit::tcp_reachable(&p.redis_url, 6379),
        ) {
            return None;
        }
        if let Err(e) = sqlx::MySql::create_database(&p.db_url()).await {
            msgrelay_testkit::skip("MySQL/MariaDB", format!("{}: {e}", p.mysql_base));
            return None;
        }
        Some(p)
    }

    fn db_url(&self) -> String {
        format!("{}/{}", self.mysql_base, self.db)
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("MSGRELAY_DATABASE__URL", self.db_url()),
            ("MSGRELAY_QUEUE__BACKEND", "redis".into()),
            ("MSGRELAY_QUEUE__REDIS_URL", self.redis_url.clone()),
            ("MSGRELAY_QUEUE__KEY_PREFIX", self.prefix.clone()),
            // The shared test server need not run with AOF.
            ("MSGRELAY_QUEUE__ALLOW_NON_DURABLE_REDIS", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }

    async fn own_keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut self.redis().await)
            .await
            .expect("KEYS")
    }

    /// Drops the database and deletes the prefix's keys.
    async fn wipe(&self) {
        sqlx::MySql::drop_database(&self.db_url())
            .await
            .expect("drop the test database");
        let keys = self.own_keys().await;
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut self.redis().await)
                .await
                .expect("DEL");
        }
    }
}

fn uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `msgrelay <args>` on `relay`'s data dir with its backend settings.
fn cli(relay: &TestRelay, args: &[&str]) -> std::process::Command {
    let mut cmd = relay.cli(args);
    cmd.envs(relay.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// Leases short enough that entries a worker held when the backup was taken come back quickly.
const SHORT_LEASE: &[(&str, &str)] = &[
    ("MSGRELAY_WORKER__LEASE_SECS", "3"),
    ("MSGRELAY_WORKER__DELIVERY_TIMEOUT_SECS", "2"),
    ("MSGRELAY_WORKER__RETRY_INTERVAL_SECS", "1"),
];

async fn round_trip(source: Option<&Production>, target: Option<&Production>) {
    // 1. A running system: 3 delivered messages, then 2 queued behind a stopped main server.
    let mut relay = TestRelay::empty();
    relay.env = source.map(Production::env).unwrap_or_default();
    let out = run(cli(&relay, &["init", "--demo"])).await;
    assert!(out.status.success(), "init: {}", text(&out));
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;
    relay.start_worker(SHORT_LEASE).await;
    let mut delivered = Vec::new();
    for i in 0..3 {
        delivered.push(
            relay
                .send_ok(&format!("delivered before the backup {i}"))
                .await,
        );
    }
    relay.wait_all_delivered(&delivered, DEADLINE).await;
    relay.server.as_mut().expect("server").stop().await;
    let mut queued = Vec::new();
    for i in 0..2 {
        queued.push(relay.send_ok(&format!("queued at the backup {i}")).await);
    }

    // 2. Back it up while proxy and worker run, keys apart from the data.
    let dir = tempfile::Builder::new()
        .prefix("msgrelay-bk-")
        .tempdir()
        .unwrap();
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let out = run(cli(
        &relay,
        &[
            "backup",
            "--out",
            data.to_str().unwrap(),
            "--keys-out",
            keys.to_str().unwrap(),
        ],
    ))
    .await;
    assert!(out.status.success(), "backup: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning") && !stderr.contains('\r') && !stderr.contains("[00:"),
        "keys kept apart and no progress bar without a terminal: {stderr}"
    );
    let data_files = ["manifest.json"]
        .into_iter()
        .chain(match source {
            Some(_) => ["mysql.sql", "redis-keys.bin"],
            None => ["msgrelay.db", "queue.db"],
        })
        .collect::<Vec<_>>();
    for f in &data_files {
        assert!(data.join(f).is_file(), "{f} missing from --out");
    }
    for f in [
        "manifest.json",
        "keys/at-rest.json",
        "keys/sealing.key",
        "pki/client-ca.key",
        "clients/demo/client.crt",
        "bootstrap-credentials.txt",
    ] {
        assert!(keys.join(f).is_file(), "{f} missing from --keys-out");
    }
    assert!(!data.join("keys").exists(), "no key in --out");
    if source.is_some() {
        let dump = std::fs::read_to_string(data.join("mysql.sql")).unwrap();
        assert!(dump.contains("CREATE TABLE `messages`"), "a full dump");
        assert!(
            !dump.contains("CREATE DATABASE"),
            "restorable into another database"
        );
    }

    // 3. Wipe everything.
    relay.proxy.as_mut().expect("proxy").stop().await;
    relay.workers[0].stop().await;
    if let Some(p) = source {
        p.wipe().await;
    }
    let old_bundle = relay.read("clients/demo/client.crt");
    std::fs::remove_dir_all(relay.data_dir()).unwrap();
    drop(relay);

    // 4. Restore onto fresh targets. Without the keys directory it is refused.
    let mut restored = TestRelay::empty();
    restored.env = target.map(Production::env).unwrap_or_default();
    let ops = format!("127.0.0.1:{}", free_port());
    let restore = |relay: &TestRelay, with_keys: bool| {
        let mut cmd = cli(relay, &["restore", "--from", data.to_str().unwrap()]);
        if with_keys {
            cmd.args(["--keys-from", keys.to_str().unwrap()]);
        }
        cmd.env("MSGRELAY_OPS__LISTEN", &ops);
        cmd
    };
    let out = run(restore(&restored, false)).await;
    assert!(
        !out.status.success() && text(&out).contains("--keys-from"),
        "{}",
        text(&out)
    );
    assert!(!restored.data_dir().exists(), "nothing restored");
    let out = run(restore(&restored, true)).await;
    assert!(out.status.success(), "restore: {}", text(&out));
    assert_eq!(restored.read("clients/demo/client.crt"), old_bundle);

    // Onto a target that is not empty: refused, naming it.
    let out = run(restore(&restored, true)).await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("not empty") && said.contains(&restored.data_dir().display().to_string()),
        "{said}"
    );
    if let Some(t) = target {
        // A new data dir, but the database and the prefix are the restored ones.
        let mut again = TestRelay::empty();
        again.env = t.env();
        let said = text(&run(restore(&again, true)).await);
        assert!(
            said.contains(&format!("database `{}`", t.db)) && said.contains("tables"),
            "{said}"
        );
        again.env.push((
            "MSGRELAY_DATABASE__URL".into(),
            "sqlite://unused.db".to_owned(),
        ));
        let said = text(&run(restore(&again, true)).await);
        assert!(said.contains("MySQL/MariaDB store"), "{said}");
        assert!(!again.data_dir().exists(), "nothing restored");
    }

    // 5. Start: every message readable, every queued one delivered exactly once.
    restored.start_up(SHORT_LEASE).await;
    let all: Vec<String> = delivered.iter().chain(&queued).cloned().collect();
    let details = restored.wait_all_delivered(&all, DEADLINE).await;
    for (d, i) in details[..3].iter().zip(0..) {
        assert_eq!(
            d["message_body"],
            format!("delivered before the backup {i}"),
            "{d}"
        );
    }
    for (d, i) in details[3..].iter().zip(0..) {
        assert_eq!(
            d["message_body"],
            format!("queued at the backup {i}"),
            "{d}"
        );
    }
    let ops = restored.up.as_ref().expect("up").addr("ops");
    let n = metric(&metrics(ops).await, "msgrelay_messages_delivered_total");
    assert_eq!(n, 2.0, "the two queued messages, each once");
    let admin = restored.portal_login("admin").await;
    let list = restored.list_messages(&admin, "").await;
    assert_eq!(list["total"], 5, "{list}");
    if let Some(t) = target {
        restored.up.as_mut().expect("up").stop().await;
        t.wipe().await;
    }
}

#[tokio::test]
async fn embedded_backup_restores_onto_a_fresh_data_dir_and_delivers_the_queue_once() {
    round_trip(None, None).await;
}

#[tokio::test]
async fn mariadb_and_redis_backup_restores_onto_a_fresh_database_and_prefix() {
    let Some(source) = Production::create().await else {
        return;
    };
    let Some(target) = Production::create().await else {
        source.wipe().await;
        return;
    };
    round_trip(Some(&source), Some(&target)).await;
    // The source was wiped in the test; nothing of it may remain.
    assert!(source.own_keys().await.is_empty());
}
