//! TLS to MySQL/MariaDB: `database.url` carries `ssl-mode` and `ssl-ca`, the main server verifies
//! the database's certificate (`VERIFY_CA`: signed by that CA; `VERIFY_IDENTITY`: and issued for
//! the host in the URL), and an account that requires TLS refuses a plain connection.

use std::path::Path;

use crate::support::mariadb::MariaDb;
use crate::support::relay::{command, Role};
use crate::support::serial;

/// The settings of a main server on `data` with the store at `url` (SQLite queue, loopback ports).
fn env(data: &Path, url: &str) -> Vec<(String, String)> {
    [
        ("DATA_DIR", data.display().to_string()),
        ("DATABASE__URL", url.to_owned()),
        ("SERVER__LISTEN", "127.0.0.1:0".into()),
        ("PORTAL__LISTEN", "127.0.0.1:0".into()),
        ("OPS__LISTEN", "127.0.0.1:0".into()),
        ("LOG__DIR", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("MSGRELAY_{k}"), v))
    .collect()
}

/// Runs `msgrelay <args>` to completion: (success, stdout + stderr).
fn run(args: &[&str], env: &[(String, String)]) -> (bool, String) {
    let out = command(args, env).output().expect("run msgrelay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_main_server_verifies_mariadb_over_tls_and_a_tls_only_account_refuses_plain_connections() {
    let _serial = serial();
    // The database's certificate: issued for `localhost` only (no IP address), by a CA of its own.
    let certs = tempfile::tempdir().expect("temp dir");
    let pki = msgrelay_tls::Pki::new(certs.path().join("db-pki"));
    pki.init(&["localhost".to_owned()]).expect("database PKI");
    let (crt, key) = pki.proxy_files("localhost");
    let ca = pki.path("internal-ca.crt");
    let other_ca = pki.path("client-ca.crt");
    let db = MariaDb::start(&[
        &format!("--ssl-cert={}", crt.display()),
        &format!("--ssl-key={}", key.display()),
        &format!("--ssl-ca={}", ca.display()),
    ]);
    db.create_database("msgrelay");
    db.query(
        "",
        "CREATE USER 'relay'@'%' IDENTIFIED BY 'tls-only' REQUIRE SSL; \
         GRANT ALL ON msgrelay.* TO 'relay'@'%'",
    );
    let url = |host: &str, params: &str| {
        format!(
            "mysql://relay:tls-only@{host}:{}/msgrelay?{params}",
            db.port
        )
    };
    let verify = |mode: &str, ca: &Path| format!("ssl-mode={mode}&ssl-ca={}", ca.display());

    let data = tempfile::tempdir().expect("temp dir");
    let identity = url("localhost", &verify("VERIFY_IDENTITY", &ca));
    let (ok, out) = run(&["init", "--demo"], &env(data.path(), &identity));
    assert!(ok, "msgrelay init over VERIFY_IDENTITY:\n{out}");
    let mut server = Role::spawn(
        "server-verify-identity",
        &["server"],
        &env(data.path(), &identity),
        data.path(),
    )
    .unwrap_or_else(|e| panic!("the main server on VERIFY_IDENTITY: {e}"));
    let report = server.ready_report();
    assert_eq!(report["checks"]["database"], "ok", "{report}");
    server.kill9();
    // (sqlx 0.8.6 with rustls 0.23 checks the name under VERIFY_CA too: rustls now reports a
    // wrong name as `NotValidForNameContext`, which sqlx's name-ignoring verifier does not catch.)
    let ca_only = url("localhost", &verify("VERIFY_CA", &ca));
    let server = Role::spawn(
        "server-verify-ca",
        &["server"],
        &env(data.path(), &ca_only),
        data.path(),
    )
    .unwrap_or_else(|e| panic!("the main server on VERIFY_CA: {e}"));
    drop(server);

    // Refused: a plain connection (the account requires TLS), a certificate of another CA, and a
    // name the certificate was not issued for.
    let refused = [
        ("a plain connection", url("localhost", "ssl-mode=DISABLED")),
        (
            "a certificate not signed by ssl-ca",
            url("localhost", &verify("VERIFY_CA", &other_ca)),
        ),
        (
            "a certificate for another name",
            url("127.0.0.1", &verify("VERIFY_IDENTITY", &ca)),
        ),
    ];
    for (what, url) in &refused {
        let (ok, out) = run(&["db", "migrate"], &env(data.path(), url));
        assert!(!ok, "{what} was accepted:\n{out}");
        assert!(
            out.contains("database") && !out.contains("tls-only"),
            "{what}: the refusal names the database and never the password:\n{out}"
        );
    }
    let (what, plain) = &refused[0];
    match Role::spawn(
        "server-plain",
        &["server"],
        &env(data.path(), plain),
        data.path(),
    ) {
        Ok(_) => panic!("the main server started over {what}"),
        Err(out) => assert!(!out.contains("tls-only"), "{out}"),
    }
}
