//! A bad configuration stops start-up with a message that names the key.

use std::process::Output;

use crate::support::{msgrelay, run};

fn assert_names(out: &Output, key: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started despite a bad `{key}`");
    assert!(
        stderr.contains(key),
        "the error does not name `{key}`: {stderr}"
    );
}

#[tokio::test]
async fn a_lease_not_longer_than_the_delivery_timeout_stops_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = msgrelay(&["worker", "--data-dir"]);
    cmd.arg(dir.path())
        .env("MSGRELAY_OPS__LISTEN", "127.0.0.1:0")
        .env("MSGRELAY_WORKER__LEASE_SECS", "5")
        .env("MSGRELAY_WORKER__DELIVERY_TIMEOUT_SECS", "10");
    assert_names(&run(cmd).await, "worker.lease_secs");
}

#[tokio::test]
async fn unknown_keys_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msgrelay.toml");
    std::fs::write(&file, "[worker]\nconcurrency = 2\nlease_sec = 90\n").unwrap();
    let data = dir.path().join("data");
    for role in ["worker", "up"] {
        let mut cmd = msgrelay(&[role, "--config"]);
        cmd.arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .env("MSGRELAY_OPS__LISTEN", "127.0.0.1:0");
        assert_names(&run(cmd).await, "worker.lease_sec");
    }
    assert!(
        !data.exists(),
        "`up` bootstrapped a data directory despite a bad configuration"
    );

    let mut cmd = msgrelay(&["worker", "--data-dir"]);
    cmd.arg(&data).env("MSGRELAY_WORKER__CONCURRENCY", "many");
    assert_names(&run(cmd).await, "worker.concurrency");
}

#[tokio::test]
async fn an_out_of_range_duration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, env, value) in [
        (
            "proxy.crl_grace_secs",
            "MSGRELAY_PROXY__CRL_GRACE_SECS",
            "18446744073709551615",
        ),
        (
            "http.idle_timeout_secs",
            "MSGRELAY_HTTP__IDLE_TIMEOUT_SECS",
            "0",
        ),
    ] {
        let mut cmd = msgrelay(&["proxy", "--data-dir"]);
        cmd.arg(dir.path())
            .env("MSGRELAY_OPS__LISTEN", "127.0.0.1:0")
            .env(env, value);
        let out = run(cmd).await;
        assert_names(&out, key);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{key}: a panic instead of an error"
        );
    }
}
