//! Private `redis-server` processes for the queue tests: free ports, one temp dir, every process
//! killed (SIGKILL) and reaped on drop. The machine's own Redis on 6379 is never touched.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to listen.
const START: Duration = Duration::from_secs(15);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `redis-server` (or sentinel) process.
pub struct Proc {
    child: Option<Child>,
    pub port: u16,
    pub name: String,
    args: Vec<String>,
    dir: PathBuf,
}

impl Proc {
    /// Starts `redis-server <args>` with its working files in `<dir>/<name>`; waits until it listens.
    /// `tls`: the port speaks TLS (readiness is then a TCP connect, not a PING).
    pub fn start(dir: &Path, name: &str, port: u16, args: Vec<String>, tls: bool) -> Proc {
        let mut p = Proc {
            child: None,
            port,
            name: name.to_owned(),
            args,
            dir: dir.to_owned(),
        };
        p.spawn(tls);
        p
    }

    fn spawn(&mut self, tls: bool) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_listening(self.port, tls, &self.log());
    }

    /// The process's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same process again (same port, files and arguments).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(false);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_listening(port: u16, tls: bool, log: &Path) {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            if tls {
                return;
            }
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            // Any answer (+PONG, -NOAUTH, -LOADING...) means the server runs its event loop.
            if s.write_all(b"PING\r\n").is_ok() {
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && !line.is_empty() {
                    return;
                }
            }
        }
        if start.elapsed() > START {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            panic!("redis-server on port {port} did not start; its log:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The arguments every data server gets: loopback only, AOF on (the queue checks it), no RDB.
pub fn server_args(dir: &Path, name: &str, port: u16) -> Vec<String> {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        data.to_str().unwrap(),
        "--logfile",
        dir.join(format!("{name}.log")).to_str().unwrap(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The one line of `deploy/redis/msgrelay-acl.conf` that defines the relay's user, with its
/// password and key pattern filled in.
pub fn documented_acl_user(password: &str, prefix: &str) -> String {
    let conf = include_str!("../../../../deploy/redis/msgrelay-acl.conf");
    let line = conf
        .lines()
        .find(|l| l.starts_with("user msgrelay "))
        .expect("deploy/redis/msgrelay-acl.conf defines `user msgrelay`");
    line.replace(
        ">CHANGE_ME_TO_A_LONG_RANDOM_PASSWORD",
        &format!(">{password}"),
    )
    .replace("~msgrelay:*", &format!("~{prefix}:*"))
}

/// One server whose only usable user is the documented relay user (the default user is off).
pub struct AclServer {
    pub dir: tempfile::TempDir,
    pub server: Proc,
}

impl AclServer {
    pub fn start(password: &str, prefix: &str) -> AclServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("acl.conf");
        std::fs::write(
            &conf,
            format!(
                "user default off\n{}\n",
                documented_acl_user(password, prefix)
            ),
        )
        .unwrap();
        let mut args = vec![conf.to_str().unwrap().to_owned()];
        args.extend(server_args(dir.path(), "acl", port));
        let server = Proc::start(dir.path(), "acl", port, args, false);
        AclServer { dir, server }
    }
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1, as PEM files in `dir`.
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "msgrelay test redis CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let srv_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).unwrap();
    let certs = TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("redis.pem"),
        key: dir.join("redis.key"),
    };
    std::fs::write(&certs.ca, ca_cert.pem()).unwrap();
    std::fs::write(&certs.cert, srv_cert.pem()).unwrap();
    std::fs::write(&certs.key, srv_key.serialize_pem()).unwrap();
    certs
}

/// The TLS arguments of a server: TLS on `tls_port`, the plain port closed, no client certificates.
pub fn tls_args(certs: &TestCerts, tls_port: u16) -> Vec<String> {
    [
        "--port",
        "0",
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        certs.cert.to_str().unwrap(),
        "--tls-key-file",
        certs.key.to_str().unwrap(),
        "--tls-ca-cert-file",
        certs.ca.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One server that speaks TLS only.
pub struct TlsServer {
    pub dir: tempfile::TempDir,
    pub certs: TestCerts,
    pub server: Proc,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certs(dir.path());
        let port = free_port();
        let mut args = server_args(dir.path(), "tls", port);
        // `--port 0` from tls_args comes last and wins over the plain port.
        args.extend(tls_args(&certs, port));
        let server = Proc::start(dir.path(), "tls", port, args, true);
        TlsServer { dir, certs, server }
    }
}

/// 1 primary, 1 replica and 3 sentinels (quorum 2, primary declared down after 1 s).
pub struct SentinelSet {
    pub dir: tempfile::TempDir,
    pub primary: Proc,
    pub replica: Proc,
    pub sentinels: Vec<Proc>,
    pub master: String,
}

impl SentinelSet {
    pub fn start() -> SentinelSet {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let master = "relayq".to_owned();
        let pp = free_port();
        let primary = Proc::start(d, "primary", pp, server_args(d, "primary", pp), false);
        let rp = free_port();
        let mut args = server_args(d, "replica", rp);
        args.extend(["--replicaof".into(), "127.0.0.1".into(), pp.to_string()]);
        let replica = Proc::start(d, "replica", rp, args, false);
        let sentinels = (0..3)
            .map(|i| {
                let port = free_port();
                let name = format!("sentinel{i}");
                let conf = d.join(format!("{name}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                         sentinel monitor {master} 127.0.0.1 {pp} 2\n\
                         sentinel down-after-milliseconds {master} 1000\n\
                         sentinel failover-timeout {master} 5000\n\
                         sentinel parallel-syncs {master} 1\n",
                        dir = d.display(),
                        log = d.join(format!("{name}.log")).display(),
                    ),
                )
                .unwrap();
                Proc::start(
                    d,
                    &name,
                    port,
                    vec![conf.to_str().unwrap().to_owned(), "--sentinel".into()],
                    false,
                )
            })
            .collect();
        let set = SentinelSet {
            dir,
            primary,
            replica,
            sentinels,
            master,
        };
        set.wait_replicas_online(set.primary.port, 1);
        set
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.master)
    }

    /// Waits until the server on `port` has `n` replicas in state online.
    pub fn wait_replicas_online(&self, port: u16, n: usize) {
        let start = Instant::now();
        loop {
            let info = info_replication(port).unwrap_or_default();
            let online = info
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .count();
            if info.contains("role:master") && online >= n {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("port {port}: {n} replica(s) not online; INFO replication:\n{info}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The primary the sentinels name now (port).
    pub fn named_primary(&self) -> Option<u16> {
        for s in &self.sentinels {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}", s.port)) else {
                continue;
            };
            let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
                continue;
            };
            let addr: redis::RedisResult<Option<(String, String)>> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query(&mut con);
            if let Ok(Some((_, port))) = addr {
                return port.parse().ok();
            }
        }
        None
    }
}

/// `INFO replication` of a plain server, or None when it does not answer.
pub fn info_replication(port: u16) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    redis::cmd("INFO").arg("replication").query(&mut con).ok()
}

/// A free port whose cluster-bus companion is chosen separately (`--cluster-port`).
fn two_free_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// A Redis Cluster of 3 primaries and 3 replicas (`redis-cli --cluster create … --cluster-replicas 1`).
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Proc>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nodes: Vec<Proc> = (0..6)
            .map(|i| {
                let (port, bus) = two_free_ports();
                let name = format!("node{i}");
                let mut args = server_args(d, &name, port);
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus.to_string(),
                        "--cluster-config-file",
                        &format!("nodes-{name}.conf"),
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .iter()
                    .map(|s| s.to_string()),
                );
                Proc::start(d, &name, port, args, false)
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (scripts/test.sh installs redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Cluster { dir, nodes };
        c.wait_ok();
        c
    }

    /// Waits until every running node reports `cluster_state:ok` and 3 primaries own slots.
    pub fn wait_ok(&self) {
        let start = Instant::now();
        loop {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                query::<String>(n.port, &["CLUSTER", "INFO"])
                    .is_some_and(|i| i.contains("cluster_state:ok"))
            });
            // Every replica has finished its sync (WAIT counts only those).
            let synced = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                query::<String>(n.port, &["INFO", "replication"]).is_some_and(|i| {
                    i.contains("role:master") || i.contains("master_link_status:up")
                })
            });
            if ok && synced && self.primaries().len() == 3 {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("the cluster did not become ok");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ports of the primaries that own slots, as the first live node sees the cluster.
    pub fn primaries(&self) -> Vec<u16> {
        let Some(node) = self.nodes.iter().find(|n| n.child.is_some()) else {
            return Vec::new();
        };
        let Some(slots) = query::<Vec<redis::Value>>(node.port, &["CLUSTER", "SLOTS"]) else {
            return Vec::new();
        };
        let mut ports: Vec<u16> = slots
            .iter()
            .filter_map(|range| match range {
                redis::Value::Array(v) => match v.get(2) {
                    Some(redis::Value::Array(m)) => match m.get(1) {
                        Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .take(3)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn node_mut(&mut self, port: u16) -> &mut Proc {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }
}

/// One command against a plain node, or None when it does not answer.
pub fn query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut con).ok()
}
