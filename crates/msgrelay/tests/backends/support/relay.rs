//! The msgrelay processes of one deployment (Redis queue + MariaDB store, one data dir) and the
//! checks the tests make on it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::mariadb::MariaDb;
use super::redis::RedisServer;
use super::{kill_child, signal, wait_for};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_msgrelay")
}

/// A `msgrelay` command with a clean `MSGRELAY_*` environment plus `env`.
pub fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("MSGRELAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// One msgrelay role process (`proxy`, `worker`, `server`); SIGKILLed on Drop.
pub struct Role {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    /// `key=url` pairs of the `msgrelay ready:` line (proxy, server, portal, ops, ...).
    ready: HashMap<String, String>,
}

impl Role {
    /// Starts `msgrelay <args>` with stdout+stderr to `<log_dir>/<name>.log` and waits for its ready line.
    pub fn spawn(
        name: &str,
        args: &[&str],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<Role, String> {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("role log");
        let mut child = command(args, env)
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .expect("spawn msgrelay");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("msgrelay ready: ")) {
                let ready = line["msgrelay ready: ".len()..]
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                return Ok(Role {
                    name: name.to_owned(),
                    child: Some(child),
                    log,
                    ready,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{name} exited with {status} before it was ready:\n{text}"
                ));
            }
            if Instant::now() > deadline {
                kill_child(&mut child);
                return Err(format!("{name} not ready within 60 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The port of a ready-line URL (`proxy`, `server`, `portal`, `ops`).
    pub fn port(&self, key: &str) -> u16 {
        let url = self
            .ready
            .get(key)
            .unwrap_or_else(|| panic!("{} printed no {key}= address", self.name));
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad address {url}"))
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process.
    pub fn pause(&self, paused: bool) {
        signal(self.pid(), if paused { "STOP" } else { "CONT" });
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The role's ops `/ready` body (JSON).
    pub fn ready_report(&self) -> serde_json::Value {
        let body = http_get(self.port("ops"), "/ready").unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// A counter or gauge from the role's ops `/metrics`, summed over its labels (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let body = http_get(self.port("ops"), "/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            // A frozen process must be thawed to die promptly.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
        }
        self.kill9();
    }
}

/// A minimal HTTP/1.0 GET against the loopback ops listener.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// What `msgrelay bench` reported.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    pub accepted: u64,
    pub errors: u64,
}

/// Row counts of the `messages` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub rows: u64,
    pub delivered: u64,
    pub retried: u64,
}

/// Worker settings used unless a test passes others: retries every second.
pub const FAST_RETRY: &[(&str, &str)] = &[("WORKER__RETRY_INTERVAL_SECS", "1")];

/// One deployment: private Redis (AOF always) and MariaDB, a data dir made by `msgrelay init --demo`,
/// and the role processes. Fields drop in order: processes first, then the servers.
pub struct Stack {
    pub workers: Vec<Role>,
    pub proxy: Option<Role>,
    pub server: Option<Role>,
    /// More main servers on the same store (`start_another_server`); proxies and workers started
    /// after one list every server in `main_server_urls`.
    pub more_servers: Vec<Role>,
    pub redis: RedisServer,
    pub db: MariaDb,
    pub prefix: String,
    db_url: String,
    server_port: Option<u16>,
    data: tempfile::TempDir,
}

impl Stack {
    /// Starts Redis and MariaDB, creates the database and runs `msgrelay init --demo` (users in MariaDB).
    pub fn new() -> Stack {
        let redis = RedisServer::durable();
        let db = MariaDb::start(&[]);
        let db_url = db.create_database("msgrelay");
        let data = tempfile::tempdir().expect("temp dir");
        let stack = Stack {
            workers: Vec::new(),
            proxy: None,
            server: None,
            more_servers: Vec::new(),
            redis,
            db,
            prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
            db_url,
            server_port: None,
            data,
        };
        let out = stack.run(&["init", "--demo"], &[]);
        assert!(out.0.success(), "msgrelay init failed:\n{}", out.1);
        stack
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The configuration every process of this deployment shares.
    pub fn env(&self) -> Vec<(String, String)> {
        let main = format!("https://localhost:{}", self.server_port.unwrap_or(9443));
        let mut env: Vec<(String, String)> = [
            ("DATA_DIR", self.data.path().display().to_string()),
            ("QUEUE__BACKEND", "redis".into()),
            ("QUEUE__REDIS_URL", self.redis.url()),
            ("QUEUE__KEY_PREFIX", self.prefix.clone()),
            ("DATABASE__URL", self.db_url.clone()),
            ("PROXY__LISTEN", "127.0.0.1:0".into()),
            ("PORTAL__LISTEN", "127.0.0.1:0".into()),
            ("OPS__LISTEN", "127.0.0.1:0".into()),
            ("LOG__DIR", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("MSGRELAY_{k}"), v))
        .collect();
        if self.more_servers.is_empty() {
            for role in ["PROXY", "WORKER"] {
                env.push((format!("MSGRELAY_{role}__MAIN_SERVER_URL"), main.clone()));
            }
        } else {
            let list: Vec<String> = std::iter::once(main)
                .chain(
                    self.more_servers
                        .iter()
                        .map(|r| format!("https://localhost:{}", r.port("server"))),
                )
                .map(|u| format!("\"{u}\""))
                .collect();
            let list = format!("[{}]", list.join(","));
            for role in ["PROXY", "WORKER"] {
                env.push((format!("MSGRELAY_{role}__MAIN_SERVER_URLS"), list.clone()));
            }
        }
        let server_listen = match self.server_port {
            Some(p) => format!("127.0.0.1:{p}"),
            None => "127.0.0.1:0".into(),
        };
        env.push(("MSGRELAY_SERVER__LISTEN".into(), server_listen));
        env
    }

    fn env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| (format!("MSGRELAY_{k}"), v.to_string())),
        );
        env
    }

    /// Runs a msgrelay command to completion: (status, stdout + stderr).
    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> (ExitStatus, String) {
        let out = command(args, &self.env_with(extra))
            .output()
            .expect("run msgrelay");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    }

    /// Starts the main server; later starts reuse the first one's port (workers keep their URL).
    pub fn start_server(&mut self) {
        let role = Role::spawn("server", &["server"], &self.env(), self.data.path())
            .unwrap_or_else(|e| panic!("{e}"));
        self.server_port = Some(role.port("server"));
        self.server = Some(role);
    }

    /// Starts one more main server on its own port, sharing the store and keys.
    pub fn start_another_server(&mut self) {
        assert!(self.server_port.is_some(), "start the first server first");
        let name = format!("server{}", self.more_servers.len() + 2);
        let role = Role::spawn(
            &name,
            &["server"],
            &self.env_with(&[("SERVER__LISTEN", "127.0.0.1:0")]),
            self.data.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.more_servers.push(role);
    }

    pub fn start_proxy(&mut self) {
        self.start_proxy_with(&[]);
    }

    /// Starts the proxy with these `<SECTION>__<KEY>` settings.
    pub fn start_proxy_with(&mut self, settings: &[(&str, &str)]) {
        assert!(
            self.server_port.is_some(),
            "start the server first (the proxy fetches its sealing key)"
        );
        let role = Role::spawn(
            "proxy",
            &["proxy"],
            &self.env_with(settings),
            self.data.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.proxy = Some(role);
    }

    /// Starts one more worker process with these `<SECTION>__<KEY>` settings.
    pub fn start_worker(&mut self, settings: &[(&str, &str)]) {
        assert!(
            self.server_port.is_some(),
            "start the server first (workers need its address)"
        );
        let name = format!("worker{}", self.workers.len() + 1);
        let role = Role::spawn(
            &name,
            &["worker"],
            &self.env_with(settings),
            self.data.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.workers.push(role);
    }

    pub fn proxy_url(&self) -> String {
        format!(
            "https://localhost:{}",
            self.proxy.as_ref().expect("proxy running").port("proxy")
        )
    }

    /// The demo client's certificate, key and CA.
    pub fn demo_bundle(&self) -> (PathBuf, PathBuf, PathBuf) {
        let b = self.data.path().join("clients/demo");
        (b.join("client.crt"), b.join("client.key"), b.join("ca.crt"))
    }

    /// Starts `msgrelay bench` against the proxy in the background.
    pub fn bench_spawn(&self, count: u64, concurrency: usize, extra: &[&str]) -> Child {
        let (cert, key, ca) = self.demo_bundle();
        let (count, concurrency) = (count.to_string(), concurrency.to_string());
        let url = self.proxy_url();
        let mut args = vec![
            "bench",
            "--url",
            &url,
            "--count",
            &count,
            "--concurrency",
            &concurrency,
        ];
        let paths = [
            cert.display().to_string(),
            key.display().to_string(),
            ca.display().to_string(),
        ];
        args.extend(["--cert", &paths[0], "--key", &paths[1], "--ca", &paths[2]]);
        args.extend(extra);
        command(&args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bench")
    }

    /// Sends `count` messages with `msgrelay bench` and returns what it reported.
    pub fn bench(&self, count: u64, concurrency: usize) -> BenchResult {
        bench_result(self.bench_spawn(count, concurrency, &[]))
    }

    /// Row counts in `messages`.
    pub fn counts(&self) -> Counts {
        self.try_counts()
            .unwrap_or_else(|e| panic!("counting messages: {e}"))
    }

    fn try_counts(&self) -> Result<Counts, String> {
        let out = self.db.try_query(
            "msgrelay",
            "SELECT COUNT(*), COALESCE(SUM(status = 'delivered'), 0), COALESCE(SUM(attempt_count > 1), 0) FROM messages",
        )?;
        let n: Vec<u64> = out
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        Ok(Counts {
            rows: n[0],
            delivered: n[1],
            retried: n[2],
        })
    }

    /// Entries still in the Redis stream (undelivered, in flight, delayed or failed).
    pub fn stream_len(&self) -> i64 {
        self.redis
            .int(&["XLEN", &format!("{}:stream", self.prefix)])
    }

    /// Entries read by a consumer and not yet acknowledged.
    pub fn pending(&self) -> i64 {
        self.redis.int(&[
            "XPENDING",
            &format!("{}:stream", self.prefix),
            &format!("{}:workers", self.prefix),
        ])
    }

    /// Waits until `expected` messages are delivered and the queue is empty, then checks that
    /// `messages` holds exactly them: one row per accepted message (the id is the primary key).
    pub fn assert_all_delivered(&self, expected: u64, limit: Duration) -> Counts {
        let started = Instant::now();
        let counts = wait_for(
            &format!("{expected} messages delivered and the queue empty"),
            limit,
            || {
                let c = self.try_counts().ok()?;
                (c.delivered >= expected && self.stream_len() == 0).then_some(c)
            },
        );
        assert_eq!(
            counts.rows, expected,
            "one row per accepted message, no more: {counts:?}"
        );
        assert_eq!(counts.delivered, expected, "{counts:?}");
        let failed = self
            .redis
            .int(&["HLEN", &format!("{}:failed", self.prefix)]);
        assert_eq!(failed, 0, "no message dead-lettered");
        eprintln!(
            "all {expected} delivered ({counts:?}) after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        counts
    }
}

/// Waits for a bench process and parses its summary (`sent: N accepted, E errors in ...`).
pub fn bench_result(child: Child) -> BenchResult {
    let out = child.wait_with_output().expect("bench output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("sent:"))
        .unwrap_or_else(|| panic!("no summary in bench output:\n{text}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    );
    BenchResult {
        accepted: nums[0],
        errors: nums[1],
    }
}
