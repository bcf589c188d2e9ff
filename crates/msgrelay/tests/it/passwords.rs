//! Passwords given to `msgrelay admin user create`: piped on stdin (scripts) the first line is
//! read; typed at a terminal they are read with echo off, so they never appear on the screen. The
//! terminal is a real pseudo-terminal (util-linux `script`), whose default is to echo input.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{command, run_with_stdin, TestRelay, BIN, DEADLINE};

/// Blocks until `ready` holds, panicking with `what` after `DEADLINE`.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The terminal (`/dev/pts/N`) of the process `script` started.
fn terminal_of_child(script_pid: u32) -> String {
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": the fields after the last ')'.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1));
        if ppid == Some(script_pid.to_string().as_str()) {
            if let Ok(tty) = std::fs::read_link(entry.path().join("fd/0")) {
                return tty.to_string_lossy().into_owned();
            }
        }
    }
    panic!("no child of script {script_pid} with a terminal");
}

/// Runs `cmdline` on a pseudo-terminal, types `secret` once the prompt is shown and the program
/// has turned echo off, and returns whether it succeeded and everything the terminal showed.
fn type_at_a_terminal(cmdline: &str, secret: &str) -> (bool, String) {
    let mut child = command("script")
        .args(["-q", "-e", "-c", cmdline, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script (util-linux)");
    let shown = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let shown = shown.clone();
        let mut out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = || String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    wait_until("the password prompt", || text().contains("not shown"));
    let tty = terminal_of_child(child.id());
    // The prompt is written before echo goes off: type only once the terminal says it is off.
    wait_until("echo off on the terminal", || {
        let out = command("stty").args(["-a", "-F", &tty]).output();
        out.is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split([' ', ';', '\n'])
                .any(|w| w == "-echo")
        })
    });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{secret}\n").as_bytes())
        .expect("type the password");
    let status = child.wait().expect("wait for script");
    drop(stdin);
    reader.join().expect("reader");
    (status.success(), text())
}

#[tokio::test]
async fn a_password_typed_at_a_terminal_is_not_echoed() {
    let relay = TestRelay::up(&[]).await;
    let secret = format!("typed-{}", uuid::Uuid::new_v4());
    let cmdline = format!(
        "'{BIN}' admin user create --username typist --role user --data-dir '{}'",
        relay.data_dir().display()
    );
    let (ok, shown) = {
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || type_at_a_terminal(&cmdline, &secret))
            .await
            .expect("join")
    };
    assert!(ok, "admin user create on a terminal failed:\n{shown}");
    assert!(shown.contains("password (not shown"), "no prompt:\n{shown}");
    assert!(
        !shown.contains(&secret),
        "the password was echoed:\n{shown}"
    );
    relay.portal_login_with("typist", &secret).await;
}

#[tokio::test]
async fn a_password_piped_on_stdin_is_read_without_a_prompt() {
    let relay = TestRelay::up(&[]).await;
    let secret = format!("piped-{}", uuid::Uuid::new_v4());
    let out = run_with_stdin(
        relay.cli(&[
            "admin",
            "user",
            "create",
            "--username",
            "scripted",
            "--role",
            "user",
        ]),
        format!("{secret}\n"),
    )
    .await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        !stderr.contains("not shown") && !stdout.contains(&secret) && !stderr.contains(&secret),
        "{stdout}{stderr}"
    );
    relay.portal_login_with("scripted", &secret).await;
}
