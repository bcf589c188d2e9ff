//! `TestRelay`: one data directory and the role processes started on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use super::{msgrelay, run, Proc};

/// One data directory and the processes running on it.
pub struct TestRelay {
    pub up: Option<Proc>,
    pub server: Option<Proc>,
    /// `msgrelay portal`, the portal in its own process.
    pub portal: Option<Proc>,
    pub proxy: Option<Proc>,
    pub workers: Vec<Proc>,
    /// Extra `MSGRELAY_*` settings for every role started from now on.
    pub env: Vec<(String, String)>,
    proxy_addr: Option<SocketAddr>,
    server_addr: Option<SocketAddr>,
    portal_addr: Option<SocketAddr>,
    started: usize,
    // Last: the processes die before their directory goes.
    tmp: TempDir,
}

impl TestRelay {
    /// A temp dir whose data directory does not exist yet (`up` bootstraps it).
    pub fn empty() -> TestRelay {
        msgrelay_tls::install_crypto_provider();
        let tmp = tempfile::Builder::new()
            .prefix("msgrelay-it-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(tmp.path().join("out")).expect("out dir");
        TestRelay {
            up: None,
            server: None,
            portal: None,
            proxy: None,
            workers: Vec::new(),
            env: Vec::new(),
            proxy_addr: None,
            server_addr: None,
            portal_addr: None,
            started: 0,
            tmp,
        }
    }

    /// A fresh data directory initialised with `msgrelay init --demo`; nothing running yet.
    pub async fn init() -> TestRelay {
        let relay = Self::empty();
        let out = run(relay.cli(&["init", "--demo"])).await;
        assert!(
            out.status.success(),
            "msgrelay init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        relay
    }

    /// `init`, then `msgrelay up` with `env` (e.g. `[("MSGRELAY_WORKER__RETRY_INTERVAL_SECS", "1")]`).
    pub async fn up(env: &[(&str, &str)]) -> TestRelay {
        let mut r = Self::init().await;
        r.start_up(env).await;
        r
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// A path inside the data directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.data_dir().join(rel)
    }

    /// `msgrelay <args> --data-dir D` for a one-shot command (admin, certs, init).
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = msgrelay(args);
        cmd.arg("--data-dir").arg(self.data_dir());
        cmd
    }

    /// A role command: every listener on port 0, the main server where it listens, `self.env`, then `extra`.
    fn role_command(&self, role: &str, extra: &[(&str, &str)]) -> Command {
        let mut cmd = self.cli(&[role]);
        for key in ["PROXY", "SERVER", "PORTAL", "OPS"] {
            cmd.env(format!("MSGRELAY_{key}__LISTEN"), "127.0.0.1:0");
        }
        if let Some(addr) = self.server_addr {
            let url = format!("https://localhost:{}", addr.port());
            cmd.env("MSGRELAY_PROXY__MAIN_SERVER_URL", &url)
                .env("MSGRELAY_WORKER__MAIN_SERVER_URL", &url);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(extra.iter().copied());
        cmd
    }

    async fn spawn(&mut self, role: &str, extra: &[(&str, &str)]) -> Proc {
        self.started += 1;
        let name = format!("{role}-{}", self.started);
        let log = self.tmp.path().join("out").join(format!("{name}.log"));
        Proc::start(&name, self.role_command(role, extra), log).await
    }

    /// Starts `msgrelay up` (which bootstraps on a fresh directory).
    pub async fn start_up(&mut self, extra: &[(&str, &str)]) -> &mut Proc {
        let p = self.spawn("up", extra).await;
        self.proxy_addr = Some(p.addr("proxy"));
        self.server_addr = Some(p.addr("server"));
        self.portal_addr = Some(p.addr("portal"));
        self.up.insert(p)
    }

    /// Starts the main server (`extra` may pin `MSGRELAY_SERVER__LISTEN`).
    pub async fn start_server(&mut self, extra: &[(&str, &str)]) -> &mut Proc {
        let p = self.spawn("server", extra).await;
        self.server_addr = Some(p.addr("server"));
        if p.serves("portal") {
            self.portal_addr = Some(p.addr("portal"));
        }
        self.server.insert(p)
    }

    /// Starts the portal as its own process (`msgrelay portal`).
    pub async fn start_portal(&mut self, extra: &[(&str, &str)]) -> &mut Proc {
        let p = self.spawn("portal", extra).await;
        self.portal_addr = Some(p.addr("portal"));
        self.portal.insert(p)
    }

    /// Starts the proxy, pointed at the running main server.
    pub async fn start_proxy(&mut self, extra: &[(&str, &str)]) -> &mut Proc {
        let p = self.spawn("proxy", extra).await;
        self.proxy_addr = Some(p.addr("proxy"));
        self.proxy.insert(p)
    }

    /// Starts one more worker, pointed at the main server.
    pub async fn start_worker(&mut self, extra: &[(&str, &str)]) -> &mut Proc {
        let p = self.spawn("worker", extra).await;
        self.workers.push(p);
        self.workers.last_mut().expect("just pushed")
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr.expect("no proxy started")
    }

    pub fn server_addr(&self) -> SocketAddr {
        self.server_addr.expect("no main server started")
    }

    pub fn portal_addr(&self) -> SocketAddr {
        self.portal_addr.expect("no portal started")
    }

    /// The bytes of a file in the data directory.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
}

impl Drop for TestRelay {
    /// On a failing test, shows what the processes logged last (their directory is about to go).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for p in self
            .up
            .iter()
            .chain(&self.server)
            .chain(&self.portal)
            .chain(&self.proxy)
            .chain(&self.workers)
        {
            let output = p.output();
            let lines: Vec<&str> = output.lines().collect();
            eprintln!(
                "---- last output of {} ----\n{}",
                p.name,
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
    }
}
