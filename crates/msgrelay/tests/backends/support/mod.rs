//! Test support: private `redis-server` and `mariadbd` processes on free ports with temp data
//! dirs, the msgrelay role processes, and polling helpers. Everything is killed on Drop.

pub mod mariadb;
pub mod redis;
pub mod relay;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tests kill and restart servers and measure timings on a 2-core machine: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A port that was free a moment ago (servers that cannot bind port 0 need a number).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Polls `check` every 100 ms until it returns `Some`, panicking with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a signal (`KILL`, `TERM`, `STOP`, `CONT`) to a process.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Kills a child (SIGKILL) and reaps it; harmless when it already exited.
pub fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Asserts that a program this suite needs is installed, naming the Debian package otherwise.
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
        || std::path::Path::new(program).is_file();
    assert!(
        found,
        "`{program}` not found: install it with `apt-get install {package}`"
    );
}
