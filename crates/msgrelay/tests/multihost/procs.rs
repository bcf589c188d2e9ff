//! Processes on the simulated hosts: started with `ip netns exec`, output to a log file, killed
//! (SIGKILL) on Drop. `ip netns exec` execs the program, so the child's pid is the program's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::Host;

/// The binary under test: `MSGRELAY_MULTIHOST_BIN` (a release build, for the throughput
/// measurement), else the one cargo built with this suite.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MSGRELAY_MULTIHOST_BIN")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_msgrelay").to_owned())
    })
}

/// `ip netns exec <host> <program> <args>` with a clean `MSGRELAY_*` environment plus `env`.
pub fn command_on(host: &Host, program: &str, args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", host.ns.as_str(), program])
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MSGRELAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NO_COLOR", "1")
        .env("HOSTNAME", &host.name)
        .stdin(Stdio::null());
    cmd
}

/// Runs a command on a host to completion: (success, stdout + stderr).
pub fn run_on(
    host: &Host,
    program: &str,
    args: &[&str],
    env: &[(String, String)],
) -> (bool, String) {
    let out = command_on(host, program, args, env)
        .output()
        .unwrap_or_else(|e| panic!("run {program} on {}: {e}", host.name));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A long-running process on a host.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args` on `host`, output to `<log_dir>/<name>.log`.
    pub fn start(
        name: &str,
        host: &Host,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command_on(host, program, args, env)
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// Waits until the log holds `needle` (a msgrelay role's ready line, a server's banner).
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log();
            if text.contains(needle) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "{} exited with {status} before it was ready:\n{}",
                        self.name,
                        tail(&text)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {limit:?}:\n{}",
                self.name,
                tail(&text)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for it to exit by itself: (success, output).
    pub fn wait(&mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("started");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return (status.success(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}:\n{}",
                self.name,
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last 30 lines of a log, for assertion messages.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Polls `check` every 200 ms until it returns `Some`, panicking with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_for_explained(what, limit, check, String::new)
}

/// [`wait_for`], whose panic also carries `explain()`: the state that shows why it never happened.
pub fn wait_for_explained<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                explain()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts that a program the suite needs is installed, naming the Debian package otherwise.
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
        || Path::new(program).is_file();
    assert!(
        found,
        "`{program}` not found: install it with `apt-get install {package}`"
    );
}
