//! Operations commands against the real binary: `keys rotate`, `doctor`, `backup` and `restore`.

use std::time::Duration;

use crate::support::{free_port, run, TestRelay, DEADLINE};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `key_id` column of a stored message, read from the relay's SQLite store.
async fn stored_key_id(relay: &TestRelay, id: &str) -> String {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(relay.path("msgrelay.db"))
        .read_only(true);
    let mut conn = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("open msgrelay.db read-only");
    sqlx::query_scalar("SELECT key_id FROM messages WHERE id = ?")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .expect("key_id of the message")
}

#[tokio::test]
async fn keys_rotate_keeps_old_messages_readable_and_encrypts_new_ones_with_the_new_key() {
    let mut relay = TestRelay::up(&[]).await;
    let before = relay.send_ok("sealed with the first key").await;
    relay.wait_delivered(&before, DEADLINE).await;

    let out = run(relay.cli(&["keys", "rotate"])).await;
    assert!(out.status.success(), "keys rotate: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("new at-rest key: k2"), "{text}");
    assert!(text.contains("restart `msgrelay server`"), "{text}");
    let key_file = String::from_utf8(relay.read("keys/at-rest.json")).unwrap();
    let secrets: serde_json::Value = serde_json::from_str(&key_file).unwrap();
    for (_, key) in secrets["keys"].as_object().unwrap() {
        assert!(
            !text.contains(key.as_str().unwrap()),
            "key material printed"
        );
    }

    relay.up.as_mut().unwrap().stop().await;
    relay.start_up(&[]).await;
    let after = relay.send_ok("sealed with the second key").await;
    relay.wait_delivered(&after, DEADLINE).await;

    let admin = relay.portal_login("admin").await;
    for (id, body) in [
        (&before, "sealed with the first key"),
        (&after, "sealed with the second key"),
    ] {
        let (status, json) = relay.get_message(&admin, id).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{json}");
        assert_eq!(json["message_body"], body, "{json}");
    }
    assert_eq!(stored_key_id(&relay, &before).await, "k1");
    assert_eq!(stored_key_id(&relay, &after).await, "k2");
}

#[tokio::test]
async fn doctor_passes_on_a_fresh_init_and_fails_naming_a_missing_key_file() {
    let relay = TestRelay::init().await;
    let out = run(relay.cli(&["doctor"])).await;
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "doctor on a fresh init:\n{text}{}",
        stderr(&out)
    );
    // A table: the header, one row per check, the summary line.
    let mut lines = text.lines().filter(|l| !l.starts_with("doctor:"));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["STATUS", "CHECK", "DETAIL"], "{text}");
    let lines: Vec<&str> = lines.collect();
    assert!(lines.len() > 10, "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .starts_with("doctor: "),
        "{text}"
    );
    for line in &lines {
        assert!(line.starts_with("OK "), "not OK: {line}\n{text}");
    }
    assert!(
        text.contains("keys/at-rest.json") && text.contains("database") && text.contains("CRL"),
        "{text}"
    );

    std::fs::remove_file(relay.path("keys/sealing.key")).unwrap();
    let out = run(relay.cli(&["doctor"])).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let fail = text
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("no FAIL line:\n{text}"));
    assert!(
        fail.contains(&relay.path("keys/sealing.key").display().to_string()),
        "{fail}"
    );
}

/// `msgrelay restore` for `target`, with its ops port (the "is a relay running" probe) on `ops`.
fn restore_cmd(target: &TestRelay, from: &std::path::Path, ops: &str) -> std::process::Command {
    let mut cmd = target.cli(&["restore", "--from", from.to_str().expect("UTF-8 temp path")]);
    cmd.env("MSGRELAY_OPS__LISTEN", ops);
    cmd
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_backup_taken_while_up_runs_restores_into_a_new_data_dir_that_serves_the_same_messages() {
    let relay = TestRelay::up(&[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(relay.send_ok(&format!("backed up {i}")).await);
    }
    relay.wait_all_delivered(&ids, DEADLINE).await;

    let backups = tempfile::Builder::new()
        .prefix("msgrelay-backup-")
        .tempdir()
        .unwrap();
    let bk = backups.path().join("bk");
    let out = run(relay.cli(&["backup", "--out", bk.to_str().unwrap()])).await;
    assert!(out.status.success(), "backup: {}", stderr(&out));
    for f in [
        "manifest.json",
        "msgrelay.db",
        "queue.db",
        "keys/at-rest.json",
        "keys/sealing.key",
        "pki/client-ca.key",
        "clients/demo/client.crt",
        "bootstrap-credentials.txt",
    ] {
        assert!(bk.join(f).is_file(), "{f} missing from the backup");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&bk), 0o700);
        assert_eq!(mode(&bk.join("keys/at-rest.json")), 0o600);
        assert_eq!(mode(&bk.join("pki/client-ca.key")), 0o600);
    }

    // Refused while a relay runs on the target's configuration (its ops port answers).
    let ops = relay.up.as_ref().unwrap().addr("ops").to_string();
    let mut restored = TestRelay::empty();
    let out = run(restore_cmd(&restored, &bk, &ops)).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(
        !restored.data_dir().exists(),
        "nothing restored while a relay runs"
    );

    let free = format!("127.0.0.1:{}", free_port());
    let out = run(restore_cmd(&restored, &bk, &free)).await;
    assert!(out.status.success(), "restore: {}", stderr(&out));
    assert_eq!(
        restored.read("bootstrap-credentials.txt"),
        relay.read("bootstrap-credentials.txt")
    );

    // Never onto a data dir that is not empty.
    let out = run(restore_cmd(&restored, &bk, &free)).await;
    assert!(
        !out.status.success() && stderr(&out).contains("is not empty"),
        "{}",
        stderr(&out)
    );

    drop(relay);
    restored.start_up(&[]).await;
    let details = restored
        .wait_all_delivered(&ids, Duration::from_secs(10))
        .await;
    for (i, d) in details.iter().enumerate() {
        assert_eq!(d["message_body"], format!("backed up {i}"), "{d}");
    }
    // The restored bundle and keys still work end to end.
    let new = restored.send_ok("after the restore").await;
    restored.wait_delivered(&new, DEADLINE).await;
}

#[tokio::test]
async fn restore_refuses_a_tampered_backup_and_writes_nothing() {
    let relay = TestRelay::init().await;
    let backups = tempfile::Builder::new()
        .prefix("msgrelay-backup-")
        .tempdir()
        .unwrap();
    let bk = backups.path().join("bk");
    let out = run(relay.cli(&["backup", "--out", bk.to_str().unwrap()])).await;
    assert!(out.status.success(), "backup: {}", stderr(&out));

    let mut creds = std::fs::read(bk.join("bootstrap-credentials.txt")).unwrap();
    creds.extend_from_slice(b"intruder:admin:password\n");
    std::fs::write(bk.join("bootstrap-credentials.txt"), creds).unwrap();

    let target = TestRelay::empty();
    let free = format!("127.0.0.1:{}", free_port());
    let out = run(restore_cmd(&target, &bk, &free)).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bootstrap-credentials.txt") && err.contains("SHA-256"),
        "{err}"
    );
    assert!(
        !target.data_dir().exists(),
        "a refused restore must not create the data dir"
    );
}
