//! Stopping and starting again: queued messages survive a restart, SIGTERM stops `up` cleanly, and a
//! second `up` reuses every key, certificate and credential of the first.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::support::{files_under, TestRelay, DEADLINE};

#[tokio::test]
async fn queued_messages_survive_a_restart_and_sigterm_stops_up_cleanly() {
    let mut relay = TestRelay::init().await;
    // No worker: the messages stay queued.
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(relay.send_ok(&format!("queued across a restart {i}")).await);
    }
    relay.proxy.as_mut().unwrap().stop().await;
    relay.server.as_mut().unwrap().stop().await;
    assert_eq!(relay.queue_stats().await.ready, 5);

    relay.start_up(&[]).await;
    relay.wait_all_delivered(&ids, DEADLINE).await;

    let started = Instant::now();
    relay.up.as_mut().unwrap().stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "`up` took {:?} to stop after SIGTERM",
        started.elapsed()
    );
}

/// Content hash and modification time of every file the bootstrap creates.
fn snapshot(relay: &TestRelay) -> BTreeMap<String, (String, SystemTime)> {
    let mut files: Vec<_> = ["pki", "keys", "clients"]
        .iter()
        .flat_map(|d| files_under(&relay.path(d)))
        .collect();
    files.push(relay.path(msgrelay_admin::CREDENTIALS_FILE));
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
            let rel = p
                .strip_prefix(relay.data_dir())
                .unwrap()
                .display()
                .to_string();
            (rel, (hex_digest(&bytes), modified))
        })
        .collect()
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_second_up_reuses_keys_certificates_and_credentials() {
    let mut relay = TestRelay::empty();
    relay.start_up(&[]).await;
    let first = relay.send_ok("before the restart").await;
    relay.wait_delivered(&first, Duration::from_secs(10)).await;
    relay.up.as_mut().unwrap().stop().await;

    let before = snapshot(&relay);
    for expected in [
        "keys/sealing.key",
        "keys/at-rest.json",
        "pki/client-ca.key",
        "pki/internal-ca.key",
        "clients/demo/client.key",
    ] {
        assert!(
            before.contains_key(expected),
            "the first `up` did not create {expected}"
        );
    }
    #[cfg(unix)]
    for secret in [
        "keys/sealing.key",
        "keys/proxy-sealing.key",
        "keys/at-rest.json",
        "pki/client-ca.key",
        "pki/internal-ca.key",
        "clients/demo/client.key",
        msgrelay_admin::CREDENTIALS_FILE,
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(relay.path(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{secret} is readable by others: {mode:o}");
    }
    relay.start_up(&[]).await;
    let after = snapshot(&relay);
    assert_eq!(before, after, "the second `up` rewrote bootstrap files");

    // What was reused still works together: the old bundle sends, the old passwords log in,
    // the message stored before the restart still decrypts.
    let second = relay.send_ok("after the restart").await;
    relay.wait_delivered(&second, Duration::from_secs(10)).await;
    let demo = relay.portal_login("demo").await;
    let (status, json) = relay.get_message(&demo, &first).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["message_body"], "before the restart");
    relay.up.as_mut().unwrap().stop().await;
}
