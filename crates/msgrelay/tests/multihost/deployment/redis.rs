//! The queue's Redis on the simulated hosts: one server, a primary and a replica watched by three
//! Sentinels, or a Redis Cluster of three primaries and three replicas; failing its primary and
//! bringing the failed server back, and reading how much the queue still holds.

use std::time::{Duration, Instant};

use super::{s, Deployment};
use crate::procs::{run_on, wait_for, wait_for_explained, Proc};

/// How the queue's Redis is deployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueHa {
    /// One Redis host (AOF).
    Single,
    /// A primary (redis1) and a replica (redis2), a Sentinel on each of redis1..redis3; the
    /// proxies answer 202 after `min_replicas_ack` replicas confirmed the entry.
    Sentinel { min_replicas_ack: u32 },
    /// A Redis Cluster, one node per host: primaries redis1..redis3, replicas redis4..redis6
    /// (`redis-cli --cluster create --cluster-replicas 1`), the queue in `CLUSTER_PARTITIONS`
    /// partitions.
    Cluster { min_replicas_ack: u32 },
}

/// The Sentinels' name for the queue's primary.
const MASTER: &str = "relayq";
/// Partitions of the queue on the cluster: two per primary.
const CLUSTER_PARTITIONS: u32 = 6;
const PORT: &str = "6379";

impl QueueHa {
    /// How many Redis hosts the deployment has (redis1..redisN).
    pub fn redis_hosts(self) -> usize {
        match self {
            QueueHa::Single => 1,
            QueueHa::Sentinel { .. } => 3,
            QueueHa::Cluster { .. } => 6,
        }
    }

    /// `queue.min_replicas_ack` for every role.
    pub fn min_replicas_ack(self) -> u32 {
        match self {
            QueueHa::Single => 0,
            QueueHa::Sentinel { min_replicas_ack } | QueueHa::Cluster { min_replicas_ack } => {
                min_replicas_ack
            }
        }
    }

    /// `queue.partitions` for every role.
    pub fn partitions(self) -> u32 {
        match self {
            QueueHa::Cluster { .. } => CLUSTER_PARTITIONS,
            _ => 1,
        }
    }
}

/// A failover of the queue's primary, as observed from the client host.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The host whose redis-server was killed.
    pub old: String,
    /// Its replica, now primary.
    pub new: String,
    /// From the kill until the replica served as primary (and, with Sentinel, was named so).
    pub secs: f64,
}

impl Deployment {
    fn redis_hosts(&self) -> Vec<String> {
        (1..=self.shape.queue.redis_hosts())
            .map(|i| format!("redis{i}"))
            .collect()
    }

    /// Starts the queue's Redis servers (and Sentinels, or the cluster); the `queue.redis_url`.
    pub(super) fn start_queue_redis(&mut self) -> String {
        let ip = |d: &Deployment, h: &str| d.host(h).ip.to_string();
        match self.shape.queue {
            QueueHa::Single => {
                self.start_redis("redis1", None);
                format!("redis://{}:{PORT}/0", ip(self, "redis1"))
            }
            QueueHa::Sentinel { .. } => {
                self.start_redis("redis1", None);
                let primary = ip(self, "redis1");
                self.start_redis("redis2", Some(&primary));
                self.wait_replicas_in_sync(&["redis1".to_owned(), "redis2".to_owned()]);
                for h in ["redis1", "redis2", "redis3"] {
                    self.start_sentinel(h);
                }
                format!(
                    "redis+sentinel://{}:26379,{}:26379,{}:26379/{MASTER}/0",
                    ip(self, "redis1"),
                    ip(self, "redis2"),
                    ip(self, "redis3")
                )
            }
            QueueHa::Cluster { .. } => {
                let hosts = self.redis_hosts();
                for h in &hosts {
                    self.start_redis(h, None);
                }
                self.create_cluster(&hosts);
                let seeds: Vec<String> = hosts[..3]
                    .iter()
                    .map(|h| format!("{}:{PORT}", ip(self, h)))
                    .collect();
                format!("redis+cluster://{}", seeds.join(","))
            }
        }
    }

    fn redis_args(&self, host: &str, replica_of: Option<&str>) -> Vec<String> {
        let data = self.path(host);
        std::fs::create_dir_all(&data).expect("redis dir");
        let mut args: Vec<String> = [
            "--port",
            PORT,
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--dir",
            &data.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if let Some(primary) = replica_of {
            args.extend([s("--replicaof"), primary.to_owned(), s(PORT)]);
        }
        if let QueueHa::Cluster { .. } = self.shape.queue {
            // nodes.conf in the host's own dir: a restarted node rejoins as what the cluster
            // made of it (a replica of the node promoted in its place).
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ]
                .map(s),
            );
        }
        args
    }

    /// Starts `redis-server` on `host` (a replica of `replica_of` when given).
    fn start_redis(&mut self, host: &str, replica_of: Option<&str>) {
        let args = self.redis_args(host, replica_of);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let h = self.host(host).clone();
        let mut p = Proc::start(host, &h, "redis-server", &args, &[], self.dir.path());
        p.wait_for_log("Ready to accept connections", Duration::from_secs(30));
        self.procs.insert(host.to_owned(), p);
    }

    /// Starts a Sentinel on `host` watching the primary on redis1 (quorum 2 of 3).
    fn start_sentinel(&mut self, host: &str) {
        let conf = self.path(&format!("sentinel-{host}.conf"));
        let primary = self.host("redis1").ip;
        std::fs::write(
            &conf,
            format!(
                "port 26379\nbind 0.0.0.0\nprotected-mode no\ndir {}\n\
                 sentinel monitor {MASTER} {primary} {PORT} 2\n\
                 sentinel down-after-milliseconds {MASTER} 2000\n\
                 sentinel failover-timeout {MASTER} 10000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                self.dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        let h = self.host(host).clone();
        let name = format!("sentinel-{host}");
        let conf = conf.display().to_string();
        let mut p = Proc::start(
            &name,
            &h,
            "redis-server",
            &[&conf, "--sentinel"],
            &[],
            self.dir.path(),
        );
        p.wait_for_log("+monitor master", Duration::from_secs(30));
        self.procs.insert(name, p);
    }

    /// `redis-cli --cluster create` over `hosts` (the first three become primaries), then waits
    /// until every node reports `cluster_state:ok`.
    fn create_cluster(&self, hosts: &[String]) {
        let mut args: Vec<String> = vec![s("--cluster"), s("create")];
        args.extend(hosts.iter().map(|h| format!("{}:{PORT}", self.host(h).ip)));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(s));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = run_on(self.host("client"), "redis-cli", &args, &[]);
        assert!(ok, "redis-cli --cluster create failed:\n{out}");
        wait_for("the cluster to be ok", Duration::from_secs(60), || {
            hosts
                .iter()
                .all(|h| {
                    self.redis_cli(h, &["CLUSTER", "INFO"])
                        .is_some_and(|i| i.contains("cluster_state:ok"))
                })
                .then_some(())
        });
        self.wait_replicas_in_sync(hosts);
    }

    /// Waits until every replica among `hosts` has its link to its primary up. A replica that
    /// never synchronised cannot take over (a cluster replica's data is then too old for
    /// `cluster-replica-validity-factor`), so no load starts before.
    fn wait_replicas_in_sync(&self, hosts: &[String]) {
        wait_for(
            "every replica to be in sync with its primary",
            Duration::from_secs(60),
            || {
                hosts
                    .iter()
                    .all(|h| {
                        self.redis_cli(h, &["INFO", "replication"])
                            .is_some_and(|i| {
                                i.contains("role:master") || i.contains("master_link_status:up")
                            })
                    })
                    .then_some(())
            },
        );
    }

    /// `redis-cli` from the client host against the Redis server on `host`: the reply, or `None`
    /// when it cannot be reached.
    fn redis_cli(&self, host: &str, args: &[&str]) -> Option<String> {
        let ip = self.host(host).ip.to_string();
        let mut all = vec!["-h", ip.as_str(), "-p", PORT];
        all.extend(args);
        let (ok, out) = run_on(self.host("client"), "redis-cli", &all, &[]);
        // redis-cli prints connection errors and exits 0 in some versions: judge by the text.
        (ok && !out.contains("Could not connect") && !out.starts_with("ERR"))
            .then(|| out.trim().to_owned())
    }

    /// `ROLE` of the server on `host`: ("master", "") or ("slave", its primary's address).
    fn role(&self, host: &str) -> Option<(String, String)> {
        let out = self.redis_cli(host, &["ROLE"])?;
        let mut lines = out.lines().map(str::trim);
        let role = lines.next()?.to_owned();
        let primary = lines.next().unwrap_or_default().to_owned();
        Some((role, primary))
    }

    /// The reachable Redis hosts that are primaries.
    fn primaries(&self) -> Vec<String> {
        self.redis_hosts()
            .into_iter()
            .filter(|h| self.role(h).is_some_and(|(r, _)| r == "master"))
            .collect()
    }

    /// The host that the Sentinels name as primary.
    fn sentinel_primary(&self) -> Option<String> {
        ["redis1", "redis2", "redis3"].iter().find_map(|sentinel| {
            let ip = self.host(sentinel).ip.to_string();
            let (ok, out) = run_on(
                self.host("client"),
                "redis-cli",
                &[
                    "-h",
                    &ip,
                    "-p",
                    "26379",
                    "SENTINEL",
                    "get-master-addr-by-name",
                    MASTER,
                ],
                &[],
            );
            let addr = out.lines().next().filter(|_| ok)?.trim().to_owned();
            self.hosts
                .iter()
                .find_map(|(name, h)| (h.ip.to_string() == addr).then(|| name.clone()))
        })
    }

    /// `kill -9` of the redis-server of a primary (the one the Sentinels name, or on the
    /// cluster redis1's shard's current primary) and waits until its replica took over.
    pub fn fail_queue_primary(&mut self) -> Failover {
        let old = match self.shape.queue {
            QueueHa::Single => panic!("a single Redis has no replica to fail over to"),
            QueueHa::Sentinel { .. } => self.sentinel_primary().expect("a Sentinel names one"),
            QueueHa::Cluster { .. } => self.primaries().into_iter().next().expect("a primary"),
        };
        let old_ip = self.host(&old).ip.to_string();
        let new = self
            .redis_hosts()
            .into_iter()
            .find(|h| {
                self.role(h)
                    .is_some_and(|(r, p)| r == "slave" && p == old_ip)
            })
            .unwrap_or_else(|| panic!("{old} has a replica"));
        self.procs.get_mut(&old).expect("primary runs").kill9();
        let started = Instant::now();
        let sentinel = matches!(self.shape.queue, QueueHa::Sentinel { .. });
        let show = |args: &[&str]| self.redis_cli(&new, args).unwrap_or_default();
        wait_for_explained(
            &format!("{new} to take over from {old}"),
            Duration::from_secs(90),
            || {
                let promoted = self.role(&new).is_some_and(|(r, _)| r == "master");
                let named = if sentinel {
                    self.sentinel_primary().as_deref() == Some(new.as_str())
                } else {
                    self.redis_cli(&new, &["CLUSTER", "INFO"])
                        .is_some_and(|i| i.contains("cluster_state:ok"))
                };
                (promoted && named).then_some(())
            },
            || {
                format!(
                    "ROLE: {}\nCLUSTER INFO: {}\nCLUSTER NODES: {}\nINFO replication: {}",
                    show(&["ROLE"]),
                    show(&["CLUSTER", "INFO"]),
                    show(&["CLUSTER", "NODES"]),
                    show(&["INFO", "replication"])
                )
            },
        );
        Failover {
            old,
            new,
            secs: started.elapsed().as_secs_f64(),
        }
    }

    /// Starts the failed server again as a replica of the one that took over (with Sentinel
    /// by `--replicaof`; a cluster node learns it from the cluster), so that
    /// `min_replicas_ack = 1` can be met again; waits until it replicates.
    pub fn restart_failed_primary(&mut self, f: &Failover) {
        let new_ip = self.host(&f.new).ip.to_string();
        let replica_of =
            matches!(self.shape.queue, QueueHa::Sentinel { .. }).then_some(new_ip.clone());
        self.start_redis(&f.old, replica_of.as_deref());
        wait_for(
            "the failed server to replicate the new primary",
            Duration::from_secs(60),
            || {
                self.role(&f.old)
                    .is_some_and(|(r, p)| r == "slave" && p == new_ip)
                    .then_some(())
            },
        );
    }

    /// Entries still in the queue (ready, leased or awaiting a retry), over every partition on
    /// every primary; `None` while a primary is missing (mid-failover: nothing can be said).
    fn queued(&self) -> Option<i64> {
        let pattern = format!("{}:*", self.prefix);
        let primaries = self.primaries();
        let expected = match self.shape.queue {
            QueueHa::Cluster { .. } => 3,
            _ => 1,
        };
        if primaries.len() < expected {
            return None;
        }
        let mut total = 0;
        for h in primaries {
            let keys = self.redis_cli(&h, &["--scan", "--pattern", &pattern])?;
            for key in keys.lines().map(str::trim) {
                let cmd = if key.ends_with(":stream") {
                    "XLEN"
                } else if key.ends_with(":delayed") {
                    "ZCARD"
                } else {
                    continue;
                };
                total += self.redis_cli(&h, &[cmd, key])?.parse::<i64>().ok()?;
            }
        }
        Some(total)
    }

    /// Waits until the queue holds nothing; the seconds that took.
    pub fn wait_for_empty_queue(&self, limit: Duration) -> f64 {
        let started = Instant::now();
        wait_for("the queue to drain", limit, || {
            (self.queued() == Some(0)).then_some(())
        });
        started.elapsed().as_secs_f64()
    }
}
