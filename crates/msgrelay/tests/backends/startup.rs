//! Start-up refusals (non-durable Redis), the MySQL durability warning, and `msgrelay db migrate`.

use std::path::PathBuf;

use crate::support::mariadb::MariaDb;
use crate::support::redis::RedisServer;
use crate::support::relay::{command, Role, Stack};
use crate::support::serial;

#[test]
fn non_durable_redis_is_refused_and_relaxed_mysql_durability_is_logged() {
    let _serial = serial();
    let mut s = Stack::new();
    s.db.query("", "SET GLOBAL innodb_flush_log_at_trx_commit = 2");
    s.start_server();
    let log = s.server.as_ref().expect("server").log();
    assert!(
        log.contains("innodb_flush_log_at_trx_commit"),
        "the server warns about flush_log_at_trx_commit=2:\n{log}"
    );
    s.db.query("", "SET GLOBAL innodb_flush_log_at_trx_commit = 1");

    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--appendonly", "no"],
            &["appendonly", "queue.allow_non_durable_redis"],
        ),
        (
            &["--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"],
            &["maxmemory-policy", "noeviction"],
        ),
        // volatile-* evicts keys with a TTL: the idempotency records, so a retried request would be enqueued twice.
        (
            &["--appendonly", "yes", "--maxmemory-policy", "volatile-lru"],
            &["maxmemory-policy", "noeviction"],
        ),
        (
            &["--appendonly", "yes", "--maxmemory-policy", "volatile-ttl"],
            &["maxmemory-policy", "noeviction"],
        ),
    ];
    for (args, words) in cases {
        let redis = RedisServer::start(args);
        for role in ["proxy", "worker"] {
            let mut env = s.env();
            env.push(("MSGRELAY_QUEUE__REDIS_URL".into(), redis.url()));
            let out = match Role::spawn(role, &[role], &env, s.data_dir()) {
                Ok(_) => panic!("{role} started on a Redis with {args:?}"),
                Err(out) => out,
            };
            assert!(
                out.contains("exited with exit status: 1"),
                "{role} exits non-zero with {args:?}:\n{out}"
            );
            for w in words {
                assert!(
                    out.contains(w),
                    "{role}'s refusal with {args:?} names `{w}`:\n{out}"
                );
            }
        }
    }

    // The explicit opt-out starts, with a warning.
    let redis = RedisServer::start(&["--appendonly", "no"]);
    let mut env = s.env();
    env.push(("MSGRELAY_QUEUE__REDIS_URL".into(), redis.url()));
    env.push((
        "MSGRELAY_QUEUE__ALLOW_NON_DURABLE_REDIS".into(),
        "true".into(),
    ));
    let proxy = Role::spawn("proxy-nondurable", &["proxy"], &env, s.data_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        proxy.log().contains("allow_non_durable_redis"),
        "a warning says messages can be lost:\n{}",
        proxy.log()
    );
}

fn schema_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sql/schema.mysql.sql")
}

/// `SHOW CREATE TABLE` of every table but sqlx's bookkeeping, by name.
fn tables(db: &MariaDb, name: &str) -> Vec<(String, String)> {
    let list = db.query(
        "",
        &format!("SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}' AND table_name <> '_sqlx_migrations' ORDER BY table_name"),
    );
    list.lines()
        .map(|t| {
            let create = db.query(name, &format!("SHOW CREATE TABLE `{t}`"));
            (
                t.to_owned(),
                create
                    .split_once('\t')
                    .map(|(_, c)| c.to_owned())
                    .unwrap_or(create),
            )
        })
        .collect()
}

#[test]
fn db_migrate_on_mariadb_matches_the_plain_ddl() {
    let _serial = serial();
    let db = MariaDb::start(&[]);
    let url = db.create_database("migrated");
    let dir = tempfile::tempdir().expect("temp dir");
    let env = vec![("MSGRELAY_DATABASE__URL".to_owned(), url)];
    let data = dir.path().display().to_string();
    for round in ["first", "second (idempotent)"] {
        let out = command(&["db", "migrate", "--data-dir", &data], &env)
            .output()
            .expect("run db migrate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("migrations applied"),
            "{round} db migrate:\n{text}"
        );
    }

    db.create_database("plain");
    db.source("plain", &schema_file());
    let (migrated, plain) = (tables(&db, "migrated"), tables(&db, "plain"));
    assert_eq!(
        migrated.len(),
        6,
        "users, clients, client_certificates, messages, sessions, api_tokens: {migrated:?}"
    );
    assert_eq!(
        migrated, plain,
        "deploy/sql/schema.mysql.sql creates exactly what the migrations create"
    );
}
