//! One `msgrelay` process, its output in a file outside the data directory; SIGKILLed on Drop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use super::{signal, wait_for, DEADLINE, POLL};

/// One running `msgrelay` process; its stdout+stderr go to a file outside the data directory.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
    ready: HashMap<String, String>,
}

impl Proc {
    /// Spawns `cmd` and waits for its `msgrelay ready:` line.
    pub async fn start(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("create log file");
        let child = cmd
            .stdout(file.try_clone().expect("dup log fd"))
            .stderr(file)
            .spawn()
            .expect("spawn msgrelay");
        let mut p = Proc {
            name: name.to_owned(),
            child,
            log,
            ready: HashMap::new(),
        };
        let end = Instant::now() + DEADLINE;
        loop {
            let text = p.output();
            if let Some(line) = text
                .lines()
                .find_map(|l| l.strip_prefix("msgrelay ready: "))
            {
                p.ready = line
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{name} exited with {status} before it was ready:\n{text}");
            }
            assert!(
                Instant::now() < end,
                "{name} not ready within {DEADLINE:?}:\n{text}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the ready line names an address for `key`.
    pub fn serves(&self, key: &str) -> bool {
        self.ready.contains_key(key)
    }

    /// An address of the ready line (`proxy`, `server`, `portal`, `ops`).
    pub fn addr(&self, key: &str) -> SocketAddr {
        let url = self
            .ready
            .get(key)
            .unwrap_or_else(|| panic!("{} printed no {key}= address", self.name));
        let hostport = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
        hostport
            .parse()
            .unwrap_or_else(|_| panic!("bad address {url}"))
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let name = self.name.clone();
        let child = &mut self.child;
        wait_for(&format!("{name} to exit"), deadline, || {
            let s = child.try_wait().expect("try_wait");
            async move { s }
        })
        .await
    }

    /// SIGTERM, then waits for a clean exit (status 0).
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM:\n{}",
            self.name,
            self.output()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A SIGSTOPped process dies of SIGKILL too.
            self.kill9();
        }
    }
}
