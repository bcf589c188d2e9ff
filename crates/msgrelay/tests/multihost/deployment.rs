//! One msgrelay deployment spread over simulated hosts: Redis, MariaDB, main servers, proxies and
//! workers each on their own namespace, every role the real `msgrelay` binary, plus a client host
//! that drives load with `msgrelay bench`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::{kill_all_in, Host, Net};

mod redis;
use crate::procs::{bin, require_program, run_on, tail, Proc};
pub use redis::QueueHa;

/// How many hosts of each role.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub servers: usize,
    pub proxies: usize,
    pub workers: usize,
    pub queue: QueueHa,
}

/// Processes first (killed), then the namespaces (deleted), then the files.
pub struct Deployment {
    procs: BTreeMap<String, Proc>,
    hosts: BTreeMap<String, Host>,
    /// Held for its Drop: deletes the namespaces once the processes are gone.
    _net: Net,
    dir: tempfile::TempDir,
    prefix: String,
    redis_url: String,
    db_url: String,
    shape: Shape,
}

const PROXY_PORT: u16 = 8443;
const PROXY_NAME: &str = "relay.test";
const SERVER_PORT: u16 = 9443;
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// What `msgrelay bench` reported.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub accepted: u64,
    pub errors: u64,
    pub secs: f64,
}

/// The end state: the accepted set against the `messages` table.
#[derive(Debug, Clone, Copy)]
pub struct Audit {
    /// Distinct ids the client got a 202 for.
    pub accepted: usize,
    /// Accepted ids not stored as delivered.
    pub lost: usize,
    /// Delivered rows whose message (its unique sender number) is stored more than once.
    pub duplicates: u64,
    /// Rows the client never got a 202 for (accepted, then the answer was lost).
    pub unacknowledged_rows: usize,
    pub delivered_rows: usize,
}

fn s(v: &str) -> String {
    v.to_owned()
}

impl Deployment {
    /// Builds the hosts and starts Redis, MariaDB and the roles. `Err` only when network
    /// namespaces cannot be created (the caller decides between skip and failure).
    pub fn start(shape: Shape) -> Result<Deployment, String> {
        for (p, pkg) in [
            ("redis-server", "redis-server"),
            ("redis-cli", "redis-tools"),
            (MARIADBD, "mariadb-server"),
            ("mariadb-install-db", "mariadb-server"),
            ("mariadb", "mariadb-client"),
        ] {
            require_program(p, pkg);
        }
        let mut net = Net::new()?;
        let mut hosts = BTreeMap::new();
        let mut add = |net: &mut Net, name: String, octet: u8| {
            let h = net.add_host(&name, octet);
            hosts.insert(name, h);
        };
        for i in 1..=shape.queue.redis_hosts() {
            add(&mut net, format!("redis{i}"), 10 + i as u8);
        }
        add(&mut net, s("db"), 20);
        for i in 1..=shape.servers {
            add(&mut net, format!("main{i}"), 20 + i as u8);
        }
        for i in 1..=shape.proxies {
            add(&mut net, format!("proxy{i}"), 30 + i as u8);
        }
        for i in 1..=shape.workers {
            add(&mut net, format!("worker{i}"), 40 + i as u8);
        }
        add(&mut net, s("client"), 50);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut d = Deployment {
            procs: BTreeMap::new(),
            redis_url: String::new(),
            db_url: format!("mysql://root@{}:3306/msgrelay", hosts["db"].ip),
            hosts,
            _net: net,
            dir,
            prefix: format!("mh-{}", uuid::Uuid::new_v4().simple()),
            shape,
        };
        d.redis_url = d.start_queue_redis();
        d.start_mariadb();
        d.init_data_dir();
        for i in 1..=shape.servers {
            d.start_role(&format!("main{i}"), "server");
        }
        for i in 1..=shape.proxies {
            d.start_role(&format!("proxy{i}"), "proxy");
        }
        for i in 1..=shape.workers {
            d.start_role(&format!("worker{i}"), "worker");
        }
        Ok(d)
    }

    pub fn host(&self, name: &str) -> &Host {
        &self.hosts[name]
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_mariadb(&mut self) {
        let host = self.host("db").clone();
        let data = self.path("db-data");
        let (ok, out) = run_on(
            &host,
            "mariadb-install-db",
            &[
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            &[],
        );
        assert!(ok, "mariadb-install-db failed:\n{out}");
        let args = [
            s("--no-defaults"),
            format!("--datadir={}", data.display()),
            format!("--socket={}", self.path("mysqld.sock").display()),
            format!("--pid-file={}", self.path("mysqld.pid").display()),
            s("--port=3306"),
            s("--bind-address=0.0.0.0"),
            s("--skip-name-resolve"),
            s("--user=root"),
            s("--innodb-buffer-pool-size=128M"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut p = Proc::start("db", &host, MARIADBD, &args, &[], self.dir.path());
        p.wait_for_log("ready for connections", Duration::from_secs(60));
        self.procs.insert(s("db"), p);
        self.sql(
            "CREATE DATABASE msgrelay CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; \
             CREATE USER 'root'@'10.77.0.%'; \
             GRANT ALL ON *.* TO 'root'@'10.77.0.%' WITH GRANT OPTION;",
        );
    }

    /// Runs SQL on the database host (batch mode, no headers); tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let (ok, out) = run_on(
            self.host("db"),
            "mariadb",
            &[
                "--no-defaults",
                "--protocol=TCP",
                "-h127.0.0.1",
                "-P3306",
                "-uroot",
                "--connect-timeout=5",
                "-N",
                "-B",
                "-e",
                sql,
            ],
            &[],
        );
        assert!(ok, "SQL failed: {sql}\n{out}");
        out.trim().to_owned()
    }

    fn server_urls(&self) -> String {
        let urls: Vec<String> = (1..=self.shape.servers)
            .map(|i| {
                format!(
                    "\"https://{}:{SERVER_PORT}\"",
                    self.host(&format!("main{i}")).ip
                )
            })
            .collect();
        format!("[{}]", urls.join(","))
    }

    /// The configuration every role shares, for a process whose data dir is `data`.
    fn env(&self, data: &Path) -> Vec<(String, String)> {
        let servers = self.server_urls();
        [
            ("DATA_DIR", data.display().to_string()),
            ("QUEUE__BACKEND", s("redis")),
            ("QUEUE__REDIS_URL", self.redis_url.clone()),
            ("QUEUE__KEY_PREFIX", self.prefix.clone()),
            ("DATABASE__URL", self.db_url.clone()),
            // One name for every proxy, as behind a load balancer or DNS round-robin.
            ("PROXY__DOMAINS", format!("[\"{PROXY_NAME}\"]")),
            ("PROXY__MAIN_SERVER_URLS", servers.clone()),
            ("WORKER__MAIN_SERVER_URLS", servers),
            // A dead worker host's leases come back after 10 s; failed batches retry after 1 s.
            ("WORKER__LEASE_SECS", s("10")),
            ("WORKER__DELIVERY_TIMEOUT_SECS", s("5")),
            ("WORKER__RETRY_INTERVAL_SECS", s("1")),
            ("PORTAL__LISTEN", s("127.0.0.1:9444")),
            ("OPS__LISTEN", s("127.0.0.1:9100")),
            ("LOG__DIR", String::new()),
            (
                "QUEUE__MIN_REPLICAS_ACK",
                self.shape.queue.min_replicas_ack().to_string(),
            ),
            (
                "QUEUE__PARTITIONS",
                self.shape.queue.partitions().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (format!("MSGRELAY_{k}"), v))
        .collect()
    }

    /// `msgrelay init --demo` once (users and clients in MariaDB, keys and PKI on disk), then the
    /// main server certificate for every main server's address.
    fn init_data_dir(&mut self) {
        let base = self.path("base");
        let host = self.host("main1").clone();
        let env = self.env(&base);
        let (ok, out) = run_on(&host, bin(), &["init", "--demo"], &env);
        assert!(ok, "msgrelay init failed:\n{out}");
        let mut args = vec![s("certs"), s("issue-main-server")];
        for i in 1..=self.shape.servers {
            args.push(s("--name"));
            args.push(self.host(&format!("main{i}")).ip.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = run_on(&host, bin(), &args, &env);
        assert!(ok, "msgrelay certs issue-main-server failed:\n{out}");
    }

    /// Each host gets its own copy of the data dir, as if copied there by an operator.
    fn host_data_dir(&self, host: &str) -> PathBuf {
        let dir = self.path(&format!("{host}-data"));
        if !dir.exists() {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(self.path("base"))
                .arg(&dir)
                .status()
                .expect("cp");
            assert!(status.success(), "copying the data dir for {host}");
        }
        dir
    }

    /// Starts `msgrelay <role>` on `host` and waits for its ready line.
    pub fn start_role(&mut self, host: &str, role: &str) {
        let h = self.host(host).clone();
        let data = self.host_data_dir(host);
        let mut env = self.env(&data);
        let listen = match role {
            "server" => Some(("SERVER__LISTEN", format!("{}:{SERVER_PORT}", h.ip))),
            "proxy" => Some(("PROXY__LISTEN", format!("{}:{PROXY_PORT}", h.ip))),
            _ => None,
        };
        if let Some((k, v)) = listen {
            env.push((format!("MSGRELAY_{k}"), v));
        }
        let mut p = Proc::start(host, &h, bin(), &[role], &env, self.dir.path());
        p.wait_for_log("msgrelay ready:", Duration::from_secs(90));
        self.procs.insert(host.to_owned(), p);
    }

    /// `kill -9` of everything on a host (the host fails); returns how many processes died.
    pub fn kill_host(&mut self, host: &str) -> usize {
        let n = kill_all_in(&self.host(host).ns);
        if let Some(p) = self.procs.get_mut(host) {
            p.kill9();
        }
        n
    }

    /// Starts `msgrelay bench` on the client host: `count` messages spread over every proxy,
    /// retried on the next proxy with the same Idempotency-Key, the id of every 202 recorded.
    pub fn start_load(&mut self, count: u64, concurrency: usize) {
        let client = self.host("client").clone();
        let bundle = self.path("base").join("clients/demo");
        let mut args: Vec<String> = vec![
            s("bench"),
            s("--count"),
            count.to_string(),
            s("--concurrency"),
            concurrency.to_string(),
            s("--retries"),
            s("40"),
            s("--accepted-ids"),
            self.path("accepted.txt").display().to_string(),
            s("--cert"),
            bundle.join("client.crt").display().to_string(),
            s("--key"),
            bundle.join("client.key").display().to_string(),
            s("--ca"),
            bundle.join("ca.crt").display().to_string(),
        ];
        args.push(s("--url"));
        args.push(format!("https://{PROXY_NAME}:{PROXY_PORT}"));
        for i in 1..=self.shape.proxies {
            args.push(s("--address"));
            args.push(self.host(&format!("proxy{i}")).ip.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = Proc::start("bench", &client, bin(), &args, &[], self.dir.path());
        self.procs.insert(s("bench"), p);
    }

    /// Rows in `messages` (registered or delivered).
    pub fn rows(&self) -> u64 {
        self.sql("SELECT COUNT(*) FROM msgrelay.messages")
            .parse()
            .unwrap_or(0)
    }

    /// Waits for the load to finish and parses its summary.
    pub fn finish_load(&mut self, limit: Duration) -> Sent {
        let bench = self.procs.get_mut("bench").expect("load started");
        let (ok, text) = bench.wait(limit);
        assert!(ok, "bench failed:\n{}", tail(&text));
        let line = text
            .lines()
            .find(|l| l.starts_with("sent:"))
            .unwrap_or_else(|| panic!("no summary in bench output:\n{}", tail(&text)));
        let nums: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.trim_end_matches(',').parse().ok())
            .collect();
        for l in text.lines().filter(|l| {
            ["sent:", "errors:", "retried:", "accepted:", "latency:"]
                .iter()
                .any(|p| l.starts_with(p))
        }) {
            eprintln!("  bench {l}");
        }
        Sent {
            accepted: nums[0] as u64,
            errors: nums[1] as u64,
            secs: nums[2],
        }
    }

    /// Compares the ids the client got a 202 for with the `messages` table.
    pub fn audit(&self) -> Audit {
        let text = std::fs::read_to_string(self.path("accepted.txt")).expect("accepted ids");
        let accepted: HashSet<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let rows = self.sql("SELECT id, status FROM msgrelay.messages");
        let mut delivered = HashSet::new();
        let mut all = HashSet::new();
        for line in rows.lines() {
            let mut f = line.split('\t');
            let (Some(id), Some(status)) = (f.next(), f.next()) else {
                continue;
            };
            all.insert(id.to_owned());
            if status == "delivered" {
                delivered.insert(id.to_owned());
            }
        }
        let lost = accepted
            .iter()
            .filter(|id| !delivered.contains(**id))
            .count();
        let unacknowledged_rows = all
            .iter()
            .filter(|id| !accepted.contains(id.as_str()))
            .count();
        // Every message carries its own sender number (bench: +1555<n>), so two delivered rows
        // with one sender hash are one message stored twice.
        let dup = self.sql(
            "SELECT COUNT(*) - COUNT(DISTINCT sender_number_hashed) FROM msgrelay.messages \
             WHERE status = 'delivered'",
        );
        Audit {
            accepted: accepted.len(),
            lost,
            duplicates: dup.parse().unwrap_or(u64::MAX),
            unacknowledged_rows,
            delivered_rows: delivered.len(),
        }
    }

    /// MariaDB's bytes (data + indexes) per row of `messages`, after fresh statistics.
    pub fn db_bytes_per_row(&self) -> f64 {
        self.sql("ANALYZE TABLE msgrelay.messages");
        let out = self.sql(
            "SELECT data_length + index_length, table_rows FROM information_schema.tables \
             WHERE table_schema = 'msgrelay' AND table_name = 'messages'",
        );
        let n: Vec<f64> = out
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        match n.as_slice() {
            [bytes, rows] if *rows > 0.0 => bytes / rows,
            _ => 0.0,
        }
    }

    /// The log of a process, for assertion messages.
    pub fn log_of(&self, name: &str) -> String {
        self.procs
            .get(name)
            .map(|p| tail(&p.log()))
            .unwrap_or_default()
    }

    /// Whether a process still runs.
    pub fn running(&mut self, name: &str) -> bool {
        self.procs.get_mut(name).is_some_and(Proc::running)
    }
}
