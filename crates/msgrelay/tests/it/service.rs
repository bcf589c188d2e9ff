//! `msgrelay service` exists on every platform; off Windows it points to the systemd units.

use crate::support::{msgrelay, run};

#[cfg(not(windows))]
#[tokio::test]
async fn service_on_linux_points_to_the_systemd_units_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = msgrelay(&["service", "install", "--role", "proxy", "--data-dir"]);
    cmd.arg(dir.path());
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deploy/linux") && stderr.contains("systemctl"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing may be created"
    );

    let help = run(msgrelay(&["service", "--help"])).await;
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for word in ["install", "uninstall", "start", "stop", "status", "systemd"] {
        assert!(text.contains(word), "`service --help` lacks {word}: {text}");
    }
}
