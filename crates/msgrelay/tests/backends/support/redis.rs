//! A private `redis-server` (AOF on, fsync always by default) on a free port with a temp dir.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, kill_child, require_program, wait_for};

/// A redis-server process owned by one test; SIGKILLed on Drop, its dir removed.
pub struct RedisServer {
    dir: tempfile::TempDir,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// AOF on with `appendfsync always`, no RDB snapshots: every acknowledged write is on disk.
    pub fn durable() -> Self {
        Self::start(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// A server with these extra arguments (e.g. `--appendonly no`).
    pub fn start(extra: &[&str]) -> Self {
        require_program("redis-server", "redis-server");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // The port was free when picked; if someone took it meanwhile, pick another.
        for _ in 0..5 {
            let mut s = Self {
                dir: tempfile::tempdir().expect("temp dir"),
                port: free_port(),
                args: args.clone(),
                child: None,
            };
            if s.spawn() {
                return s;
            }
        }
        panic!("redis-server did not start (see the log in its temp dir)");
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the process on `self.port` and waits until it answers PING (AOF loaded); false if it exited.
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("redis log");
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        let mut child = cmd.spawn().expect("spawn redis-server");
        let port = self.port;
        let up = wait_for(
            "redis-server to answer PING",
            Duration::from_secs(20),
            || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                (cli(port, &["PING"]).as_deref() == Some("PONG")).then_some(true)
            },
        );
        if up {
            self.child = Some(child);
        } else {
            kill_child(&mut child);
        }
        up
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Crashes the server (SIGKILL): only what the AOF holds survives.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Starts it again on the same port and data dir; waits until the AOF is loaded.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}: {}",
            self.port,
            self.log_tail()
        );
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: a server that accepts but never answers.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id();
        super::signal(pid, if paused { "STOP" } else { "CONT" });
    }

    /// Runs `redis-cli` against this server; the reply's text, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args).unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// An integer reply (`XLEN`, first field of `XPENDING`...).
    pub fn int(&self, args: &[&str]) -> i64 {
        let out = self.cli(args);
        let first = out.lines().next().unwrap_or("");
        first
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("redis-cli {args:?}: not an integer: {out}"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
