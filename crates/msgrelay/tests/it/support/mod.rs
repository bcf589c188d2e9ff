//! Test support. `TestRelay` (relay.rs) is one data directory (own temp dir) and the `msgrelay`
//! processes running on it (process.rs), all listeners on 127.0.0.1:0, with typed clients for the
//! proxy, the portal API, the internal API and the queue file (clients.rs). Nothing here sleeps as
//! synchronisation: every wait polls a condition against a deadline.

mod clients;
#[allow(dead_code)] // the attack suite's portal helpers
mod portal;
mod process;
mod relay;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use clients::Session;
#[allow(unused_imports)]
pub use portal::{hidden_value, pct, rss_kib, Body, Resp};
pub use process::Proc;
pub use relay::TestRelay;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_msgrelay");
/// Generous upper bound for anything that should take a second or two.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(50);
/// The sender number of messages whose number does not matter.
pub const SENDER: &str = "+15551234567";

/// Polls `check` until it returns `Some`, panicking with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A command that inherits no `MSGRELAY_*` variable from the test's environment.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MSGRELAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `msgrelay <args>` with a clean environment.
pub fn msgrelay(args: &[&str]) -> Command {
    let mut cmd = command(BIN);
    cmd.args(args).env("NO_COLOR", "1");
    cmd
}

/// Runs a short command to completion (off the async runtime) and returns its output.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn command"))
        .await
        .expect("join")
}

/// Runs a short command with `input` on its standard input.
pub async fn run_with_stdin(mut cmd: Command, input: String) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn command");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join")
}

/// Sends `sig` (e.g. "TERM", "STOP", "CONT") to a process.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {sig} {pid} failed");
}

/// A free loopback port (for a role that must come back on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The Prometheus text of an ops listener.
pub async fn metrics(ops: SocketAddr) -> String {
    let resp = reqwest::Client::builder()
        .build()
        .expect("client")
        .get(format!("http://{ops}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(resp.status().is_success());
    let text = resp.text().await.expect("metrics text");
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.contains("{instance=\"")),
        "every series carries the process's instance label:\n{text}"
    );
    without_instance(&text)
}

/// The exposition with the process-wide `instance="..."` label taken out, so tests can name
/// series by their own labels (`name{reason="x"}`).
fn without_instance(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.split_once("{instance=\"") {
            Some((name, rest)) => {
                let after = rest.split_once('"').map_or("", |(_, a)| a);
                out.push_str(name);
                match after.strip_prefix(',') {
                    Some(more) => {
                        out.push('{');
                        out.push_str(more);
                    }
                    None => out.push_str(after.strip_prefix('}').unwrap_or(after)),
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The value of a counter/gauge sample with no label but the process's `instance`
/// (`name{instance="..."} value`), 0 when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix("{instance=\"") {
                Some(r) => r.split_once('"')?.1.strip_prefix('}')?,
                None => rest,
            };
            rest.strip_prefix(' ')?.trim().parse::<f64>().ok()
        })
        .next()
        .unwrap_or(0.0)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
