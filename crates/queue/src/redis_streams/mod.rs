//! Redis Streams queue (redis-rs `ConnectionManager`, reconnects by itself; every call times out after 1.5 s).
//! `link.rs` connects as `queue.redis_url` says: one server, the primary that Sentinel names
//! (followed after a failover) or a Redis Cluster; TLS and ACL credentials from the URL.
//!
//! The keys of one partition follow (`layout.rs`: on one server with one partition `<base>` is
//! `<prefix>`; otherwise partition i's keys share a hash tag, `<prefix>:{q<i>-<j>}`, so each
//! script touches one cluster slot). Keys under `<base>`:
//! - `:stream` — one entry per undelivered message (`id`, `client`, `payload`, `acc`); consumer group `<prefix>:workers`.
//! - `:idem:<client>:<key>` — `message_id|request_hash`, `EX 86400`, set by the same Lua script as the XADD.
//!
//! Enqueue (`enqueue_many.lua`, atomic): one writer task per process gathers concurrent enqueues
//! into one script call (up to `GROUP_MAX` messages, `IN_FLIGHT` calls at a time on the multiplexed
//! connection), so Redis runs one script and appends one AOF record per group instead of per message;
//! each message's idempotency record is still written in the same atomic step as its XADD.
//! - `:attempts` — hash message id → attempts made through the message's earlier stream entries, written
//!   when a lease is released (retry or dead letter). A lease reports that plus the entry's delivery count
//!   (XPENDING), so leasing writes nothing per message; ack deletes the record.
//! - `:delayed` — sorted set of stream entry ids awaiting a retry, score = due time (ms, Redis clock).
//! - `:failed` — hash message id → JSON {entry, client, attempts, error, at}; the entry stays in the stream.
//!
//! Lease (`lease.lua`, atomic): re-XADD due `:delayed` entries; on a consumer's first lease in this process,
//! take back its own pending entries (a restarted worker with a stable name); `XAUTOCLAIM` entries idle longer
//! than the lease (crashed workers); then `XREADGROUP >`. A token is (entry id, consumer, delivery count from
//! XPENDING); ack / release check all three, so a stale worker's token matches nothing once another
//! consumer (or a later lease) has claimed the entry. Workers must use the same lease duration, since
//! reclaiming is by idle time. Retry (`release.lua`): XACK and put the entry id in `:delayed`;
//! due entries are copied to a fresh entry at the next lease. Entries are XDELed only once delivered
//! or copied; the stream is never trimmed.
//! With `appendfsync always`, Redis fsyncs once per event-loop turn, for every call it ran in that turn.
//! With `queue.min_replicas_ack`, the writer (on a connection of its own) runs `WAIT` after each
//! group and answers `Unavailable` unless enough replicas confirmed.

use crate::{
    millis, parse_client, parse_id, EnqueueOutcome, FailedEntry, Idempotency, LeaseToken, Leased,
    NewMessage, QueueError, QueueStats, TokenRepr, IDEMPOTENCY_TTL,
};
use link::{Con, LinkOptions};
use msgrelay_core::config::QueueConfig;
use msgrelay_core::RedisUrl;
use msgrelay_core::{ClientId, MessageId};
use redis::{RedisResult, Script};
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

mod layout;
mod link;
pub mod snapshot;
mod watch;

use layout::{Layout, Part};
use watch::Watch;

/// Upper bound for any single Redis call, so callers never hang on a dead or frozen server. Below
/// 2 s so that the proxy's 503 (after TLS, parsing and sealing) reaches the client within 2 s.
const OP_TIMEOUT: Duration = Duration::from_millis(1500);
/// Ids re-queued per script call by `retry_failed(None)`.
const RETRY_CHUNK: usize = 500;
/// Most messages in one enqueue script call.
const GROUP_MAX: usize = 64;
/// Enqueue script calls outstanding at once; while they are, new enqueues gather into the next group.
const IN_FLIGHT: usize = 4;

type Reply = tokio::sync::oneshot::Sender<Result<EnqueueOutcome, QueueError>>;

/// One message waiting for the enqueue writer.
struct Job {
    msg: NewMessage,
    idem: Option<(ClientId, Idempotency)>,
    reply: Reply,
}

struct Scripts {
    enqueue_many: Script,
    lease: Script,
    ack: Script,
    release: Script,
    retry_failed: Script,
    stats: Script,
    depth: Script,
}

/// The deployment's keys: the partitions new messages go to, then those of earlier layouts that
/// workers still drain (see `layout.rs`).
struct Keys {
    /// Consumer group name (not a key), the same on every partition's stream.
    group: String,
    /// All partitions; `parts[..write]` are the configured layout's, in partition order.
    parts: Vec<Part>,
    write: usize,
    layout: Layout,
    /// Earlier layouts, whose idempotency records are still honoured.
    earlier: Vec<(Layout, Vec<Part>)>,
}

impl Keys {
    /// The partition (index into `parts`) of a new message.
    fn partition_of(&self, msg: &NewMessage, idem: Option<&(ClientId, Idempotency)>) -> usize {
        self.layout.partition_of(msg, idem)
    }
}

/// The Redis Streams queue; clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisQueue {
    con: Con,
    /// (consumer, partition) pairs that already leased in this process (a consumer's first lease
    /// of a partition takes back its own pending entries there).
    seen_consumers: Arc<std::sync::Mutex<std::collections::HashSet<(String, usize)>>>,
    /// Where the next lease starts, so every partition is served first in turn.
    next_part: Arc<std::sync::atomic::AtomicUsize>,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
    notify: Arc<Notify>,
    /// Wakes `notify` when another process enqueues (None on Cluster); see `watch`.
    watch: Option<Arc<Watch>>,
    writer: tokio::sync::mpsc::Sender<Job>,
    /// `queue.min_replicas_ack`: leases wait for it too (see `lease`).
    replicas: Option<ReplicaAck>,
}

/// What the enqueue writer task needs (not the `RedisQueue` itself: the writer must not keep its
/// own channel open, or it would never stop).
#[derive(Clone)]
struct Writer {
    /// Its own connection when replicas must confirm: `WAIT` blocks the connection it runs on.
    con: Con,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
    notify: Arc<Notify>,
    replicas: Option<ReplicaAck>,
}

/// `queue.min_replicas_ack` and `queue.replica_ack_timeout_ms`.
#[derive(Clone, Copy)]
struct ReplicaAck {
    count: u32,
    timeout: Duration,
}

#[derive(Deserialize)]
struct FailedRecord {
    client: String,
    attempts: u32,
    error: String,
    at: String,
}

async fn timed<T>(fut: impl Future<Output = RedisResult<T>>) -> Result<T, QueueError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(QueueError::Unavailable(format!(
            "redis: no answer within {} ms",
            OP_TIMEOUT.as_millis()
        ))),
    }
}

impl RedisQueue {
    /// Connects as `queue.redis_url` says (one server, Sentinel or Cluster), refuses a server
    /// without AOF or with an evicting policy (unless `queue.allow_non_durable_redis`), and creates
    /// the consumer group. `queue.redis_ca_file` is relative to `data_dir`.
    pub async fn connect(cfg: &QueueConfig, data_dir: &Path) -> Result<Self, QueueError> {
        let url = RedisUrl::parse(&cfg.redis_url)
            .map_err(|reason| QueueError::Config(format!("queue.redis_url: {reason}")))?;
        let ca_pem = if cfg.redis_ca_file.as_os_str().is_empty() {
            None
        } else {
            let path = if cfg.redis_ca_file.is_absolute() {
                cfg.redis_ca_file.clone()
            } else {
                data_dir.join(&cfg.redis_ca_file)
            };
            Some(read_ca(&path)?)
        };
        let opts = LinkOptions {
            ca_pem,
            // A Sentinel connection uses a shorter one (link.rs), so that it sees a silent
            // primary, and re-resolves, before the caller gives up.
            response_timeout: OP_TIMEOUT,
            connect_timeout: Duration::from_millis(1000),
        };
        let prefix = cfg.key_prefix.as_str();
        let mut con = Con::connect(&url, &opts).await?;
        check_durability(&mut con, cfg.allow_non_durable_redis)
            .await
            .map_err(acl_hint)?;
        let replicas = (cfg.min_replicas_ack > 0).then(|| ReplicaAck {
            count: cfg.min_replicas_ack,
            timeout: Duration::from_millis(cfg.replica_ack_timeout_ms),
        });
        let writer_con = match replicas {
            Some(_) => Con::connect(&url, &opts).await?,
            None => con.clone(),
        };

        let cluster = con.is_cluster();
        let layout = Layout::configured(cfg.partitions, cluster);
        let keys = load_layouts(&mut con, prefix, layout, cluster)
            .await
            .map_err(acl_hint)?;
        for part in &keys.parts[..keys.write] {
            create_group(&mut con, &part.stream, &keys.group).await?;
        }
        let scripts = Scripts {
            enqueue_many: Script::new(include_str!("enqueue_many.lua")),
            lease: Script::new(include_str!("lease.lua")),
            ack: Script::new(include_str!("ack.lua")),
            release: Script::new(include_str!("release.lua")),
            retry_failed: Script::new(include_str!("retry_failed.lua")),
            stats: Script::new(include_str!("stats.lua")),
            depth: Script::new(include_str!("depth.lua")),
        };
        let watch = (!cluster).then(|| {
            let streams = keys.parts.iter().map(|p| p.stream.clone()).collect();
            Arc::new(Watch::new(url.clone(), opts.clone(), streams))
        });
        let (keys, scripts, notify) = (Arc::new(keys), Arc::new(scripts), Arc::new(Notify::new()));
        let (writer, rx) = tokio::sync::mpsc::channel(4 * GROUP_MAX * IN_FLIGHT);
        let w = Writer {
            con: writer_con,
            keys: keys.clone(),
            scripts: scripts.clone(),
            notify: notify.clone(),
            replicas,
        };
        tokio::spawn(w.run(rx));
        Ok(Self {
            con,
            seen_consumers: Arc::default(),
            next_part: Arc::default(),
            keys,
            scripts,
            notify,
            watch,
            writer,
            replicas,
        })
    }

    /// What wakes a waiting worker: this process's enqueues and, once asked for (by the first
    /// wait, so only workers hold the extra connection), other processes' (see `watch`).
    pub(crate) fn notifier(&self) -> Arc<Notify> {
        if let Some(w) = &self.watch {
            w.start(&self.notify);
        }
        self.notify.clone()
    }

    /// See [`crate::Queue::enqueue`].
    pub async fn enqueue(
        &self,
        msg: NewMessage,
        idem: Option<(ClientId, Idempotency)>,
    ) -> Result<EnqueueOutcome, QueueError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let stopped = || QueueError::Unavailable("queue writer stopped".into());
        self.writer
            .send(Job { msg, idem, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// See [`crate::Queue::lease`]. Partitions are served in turn, each lease starting at the next
    /// one, so every worker takes from every partition and none starves.
    pub async fn lease(
        &self,
        consumer: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        let n = self.keys.parts.len();
        let start = self
            .next_part
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::new();
        for k in 0..n {
            if out.len() >= max {
                break;
            }
            let part = start.wrapping_add(k) % n;
            match self
                .lease_part(part, consumer, max - out.len(), lease)
                .await
            {
                Ok(got) => out.extend(got),
                // What was leased already is handed out; the rest waits for the next lease.
                Err(e) if !out.is_empty() => {
                    tracing::warn!(error = %e, "lease: a partition did not answer");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        // An entry is on the primary before its replicas have it, and the proxy's 202 waits for
        // them, but a lease does not: without this, a worker could deliver an entry that a
        // failover then loses together with its idempotency record, and the client's retry
        // (it never saw the 202) would be stored a second time. The lease is this connection's
        // latest write and replication keeps order, so once the replicas have the lease they have
        // every entry it names. Not confirmed → nothing is handed out; the leases expire and the
        // entries come back.
        if let (Some(replicas), false) = (self.replicas, out.is_empty()) {
            wait_for_replicas(&mut self.con.handle(), replicas).await?;
        }
        Ok(out)
    }

    async fn lease_part(
        &self,
        part: usize,
        consumer: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let own_first = self
            .seen_consumers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((consumer.to_owned(), part));
        let keys = &self.keys.parts[part];
        let mut inv = self.scripts.lease.prepare_invoke();
        inv.key(&keys.stream)
            .key(&keys.delayed)
            .key(&keys.attempts)
            .arg(&self.keys.group)
            .arg(consumer)
            .arg(max)
            .arg(millis(lease).max(1))
            .arg(if own_first { "1" } else { "0" });
        let mut con = self.con.handle();
        let rows: Vec<(String, Vec<Vec<u8>>, i64, i64)> = timed(inv.invoke_async(&mut con)).await?;
        rows.into_iter()
            .map(|(entry, fields, attempts, deliveries)| {
                let mut f: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
                let mut it = fields.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    f.insert(k, v);
                }
                let text = |name: &str| -> Result<String, QueueError> {
                    f.get(name.as_bytes())
                        .and_then(|v| std::str::from_utf8(v).ok().map(str::to_owned))
                        .ok_or_else(|| QueueError::Corrupt(format!("stream entry lacks '{name}'")))
                };
                let id = text("id")?;
                let accepted_at_ms = text("acc")?.parse().map_err(|_| {
                    QueueError::Corrupt("stream entry 'acc' is not a number".into())
                })?;
                Ok(Leased {
                    id: parse_id(&id)?,
                    client_id: parse_client(&text("client")?)?,
                    payload: f.remove(b"payload".as_slice()).unwrap_or_default(),
                    accepted_at_ms,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    token: LeaseToken(TokenRepr::Redis {
                        part,
                        entry,
                        consumer: consumer.to_owned(),
                        deliveries,
                        msg_id: id,
                    }),
                })
            })
            .collect()
    }

    /// The tokens of each partition (tokens of another backend are ignored).
    fn by_part<'t>(&self, tokens: &'t [LeaseToken]) -> Vec<(usize, Vec<&'t TokenRepr>)> {
        let mut map: std::collections::BTreeMap<usize, Vec<&TokenRepr>> = Default::default();
        for t in tokens {
            if let TokenRepr::Redis { part, .. } = &t.0 {
                if *part < self.keys.parts.len() {
                    map.entry(*part).or_default().push(&t.0);
                }
            }
        }
        map.into_iter().collect()
    }

    fn token_args(inv: &mut redis::ScriptInvocation<'_>, tokens: &[&TokenRepr]) {
        for t in tokens {
            if let TokenRepr::Redis {
                entry,
                consumer,
                deliveries,
                msg_id,
                ..
            } = t
            {
                inv.arg(entry).arg(consumer).arg(*deliveries).arg(msg_id);
            }
        }
    }

    /// See [`crate::Queue::ack`].
    pub async fn ack(&self, tokens: &[LeaseToken]) -> Result<u64, QueueError> {
        let mut n = 0;
        for (part, tokens) in self.by_part(tokens) {
            let keys = &self.keys.parts[part];
            let mut inv = self.scripts.ack.prepare_invoke();
            inv.key(&keys.stream)
                .key(&keys.attempts)
                .arg(&self.keys.group);
            Self::token_args(&mut inv, &tokens);
            let mut con = self.con.handle();
            let acked: u64 = timed(inv.invoke_async(&mut con)).await?;
            n += acked;
        }
        Ok(n)
    }

    async fn release(
        &self,
        tokens: &[LeaseToken],
        mode: &str,
        retry_ms: i64,
        max: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        for (part, tokens) in self.by_part(tokens) {
            let keys = &self.keys.parts[part];
            let mut inv = self.scripts.release.prepare_invoke();
            inv.key(&keys.stream)
                .key(&keys.delayed)
                .key(&keys.failed)
                .key(&keys.attempts)
                .arg(&self.keys.group)
                .arg(mode)
                .arg(retry_ms)
                .arg(max)
                .arg(error);
            Self::token_args(&mut inv, &tokens);
            let mut con = self.con.handle();
            let _released: u64 = timed(inv.invoke_async(&mut con)).await?;
        }
        Ok(())
    }

    /// See [`crate::Queue::retry_later`].
    pub async fn retry_later(
        &self,
        tokens: &[LeaseToken],
        retry_after: Duration,
        max_attempts: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        self.release(tokens, "retry", millis(retry_after), max_attempts, error)
            .await
    }

    /// See [`crate::Queue::dead_letter`].
    pub async fn dead_letter(&self, tokens: &[LeaseToken], reason: &str) -> Result<(), QueueError> {
        self.release(tokens, "dead", 0, 0, reason).await
    }

    /// See [`crate::Queue::stats`]: the sum over the partitions.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut total = QueueStats::default();
        for keys in &self.keys.parts {
            let mut inv = self.scripts.stats.prepare_invoke();
            inv.key(&keys.stream)
                .key(&keys.delayed)
                .key(&keys.failed)
                .arg(&self.keys.group);
            let mut con = self.con.handle();
            let (ready, in_flight, delayed, failed): (u64, u64, u64, u64) =
                timed(inv.invoke_async(&mut con)).await?;
            total.ready += ready;
            total.in_flight += in_flight;
            total.delayed += delayed;
            total.failed += failed;
        }
        Ok(total)
    }

    /// See [`crate::Queue::depth`]. Every undelivered message is one stream entry; failed ones stay
    /// in the stream too, so they are subtracted (one script per partition: O(1) each).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        for keys in &self.keys.parts {
            let mut inv = self.scripts.depth.prepare_invoke();
            inv.key(&keys.stream).key(&keys.failed);
            let mut con = self.con.handle();
            let n: u64 = timed(inv.invoke_async(&mut con)).await?;
            total += n;
        }
        Ok(total)
    }

    /// Scans one partition's failed hash: up to `limit` (id, record) pairs, or all when `None`.
    async fn scan_failed(
        &self,
        part: usize,
        limit: Option<usize>,
    ) -> Result<Vec<(String, String)>, QueueError> {
        let mut con = self.con.handle();
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, pairs): (u64, Vec<(String, String)>) = timed(
                redis::cmd("HSCAN")
                    .arg(&self.keys.parts[part].failed)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(RETRY_CHUNK)
                    .query_async(&mut con),
            )
            .await?;
            out.extend(pairs);
            cursor = next;
            if cursor == 0 || limit.is_some_and(|l| out.len() >= l) {
                return Ok(out);
            }
        }
    }

    /// See [`crate::Queue::list_failed`]. Takes the first `limit` of each partition found by HSCAN,
    /// sorted by failure time.
    pub async fn list_failed(&self, limit: usize) -> Result<Vec<FailedEntry>, QueueError> {
        let mut out = Vec::new();
        for part in 0..self.keys.parts.len() {
            for (id, rec) in self.scan_failed(part, Some(limit)).await? {
                let r: FailedRecord = serde_json::from_str(&rec).map_err(|_| {
                    QueueError::Corrupt("failed-entry record is not valid JSON".into())
                })?;
                out.push(FailedEntry {
                    id: parse_id(&id)?,
                    client_id: parse_client(&r.client)?,
                    attempts: r.attempts,
                    last_error: r.error,
                    failed_at_ms: r.at.parse().unwrap_or(0),
                });
            }
        }
        out.sort_by_key(|e| e.failed_at_ms);
        out.truncate(limit);
        Ok(out)
    }

    async fn requeue(&self, part: usize, ids: &[String]) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = &self.keys.parts[part];
        let mut inv = self.scripts.retry_failed.prepare_invoke();
        inv.key(&keys.stream).key(&keys.failed).arg(ids);
        let mut con = self.con.handle();
        timed(inv.invoke_async(&mut con)).await
    }

    /// See [`crate::Queue::retry_failed`]. A message id does not say its partition, so given ids
    /// are offered to every partition (each re-queues only those it holds).
    pub async fn retry_failed(&self, ids: Option<&[MessageId]>) -> Result<u64, QueueError> {
        let mut n = 0;
        for part in 0..self.keys.parts.len() {
            let ids: Vec<String> = match ids {
                Some(ids) => ids.iter().map(|i| i.0.to_string()).collect(),
                None => self
                    .scan_failed(part, None)
                    .await?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect(),
            };
            for chunk in ids.chunks(RETRY_CHUNK) {
                n += self.requeue(part, chunk).await?;
            }
        }
        if n > 0 {
            self.notify.notify_waiters();
        }
        Ok(n)
    }

    /// See [`crate::Queue::ping`].
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut con = self.con.handle();
        let _: String = timed(redis::cmd("PING").query_async(&mut con)).await?;
        Ok(())
    }

    /// Idempotency keys expire by themselves (`EX 86400`): nothing to purge.
    pub async fn purge_expired_idempotency(&self) -> Result<u64, QueueError> {
        Ok(0)
    }
}

impl Writer {
    /// Gathers waiting enqueues into groups and runs up to `IN_FLIGHT` group calls at once.
    async fn run(self, mut rx: tokio::sync::mpsc::Receiver<Job>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            // Whatever arrived while waiting for a slot joins this group.
            let mut group = vec![first];
            while group.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            // A caller that gave up (the proxy answered 503 after its timeout) must not have its
            // message enqueued behind its back.
            group.retain(|job| !job.reply.is_closed());
            if group.is_empty() {
                continue;
            }
            let w = self.clone();
            tokio::spawn(async move {
                w.commit(group).await;
                drop(slot);
            });
        }
    }

    /// One script call per partition: a script touches one partition's keys (one cluster slot).
    async fn commit(&self, group: Vec<Job>) {
        let mut by_part: std::collections::BTreeMap<usize, Vec<Job>> = Default::default();
        for job in group {
            let part = self.keys.partition_of(&job.msg, job.idem.as_ref());
            by_part.entry(part).or_default().push(job);
        }
        futures::future::join_all(
            by_part
                .into_iter()
                .map(|(part, jobs)| self.commit_part(part, jobs)),
        )
        .await;
    }

    async fn commit_part(&self, part: usize, jobs: Vec<Job>) {
        let mut con = self.con.handle();
        let mut replies: Vec<(Job, Result<EnqueueOutcome, QueueError>)> = Vec::new();
        let mut fresh = Vec::new();
        for job in jobs {
            match self.earlier_record(&mut con, &job).await {
                Ok(None) => fresh.push(job),
                Ok(Some(outcome)) => replies.push((job, Ok(outcome))),
                Err(e) => replies.push((job, Err(e))),
            }
        }
        if !fresh.is_empty() {
            match self.run_script(&mut con, part, &fresh).await {
                Ok(answers) if answers.len() == fresh.len() => {
                    for (job, (kind, id)) in fresh.into_iter().zip(answers) {
                        let outcome = match kind.as_str() {
                            "ok" => Ok(EnqueueOutcome::Enqueued),
                            "dup" => parse_id(&id).map(|id| EnqueueOutcome::Duplicate { id }),
                            "conflict" => parse_id(&id).map(|id| EnqueueOutcome::Conflict { id }),
                            _ => Err(QueueError::Corrupt(
                                "unexpected enqueue script reply".into(),
                            )),
                        };
                        replies.push((job, outcome));
                    }
                }
                other => {
                    let why = match other {
                        Err(e) => unavailable_text(e),
                        Ok(_) => "enqueue script answered a different number of results".into(),
                    };
                    for job in fresh {
                        replies.push((job, Err(QueueError::Unavailable(why.clone()))));
                    }
                }
            }
        }
        let stored = |o: &Result<EnqueueOutcome, QueueError>| {
            matches!(
                o,
                Ok(EnqueueOutcome::Enqueued | EnqueueOutcome::Duplicate { .. })
            )
        };
        if let Some(replicas) = self.replicas {
            // A duplicate counts too: its earlier entry may not have reached a replica yet (its
            // idempotency record was rewritten, so this WAIT covers that entry as well).
            if replies.iter().any(|(_, o)| stored(o)) {
                if let Err(e) = wait_for_replicas(&mut con, replicas).await {
                    let why = unavailable_text(e);
                    for (_, o) in replies.iter_mut().filter(|(_, o)| stored(o)) {
                        *o = Err(QueueError::Unavailable(why.clone()));
                    }
                }
            }
        }
        let enqueued = replies
            .iter()
            .any(|(_, o)| matches!(o, Ok(EnqueueOutcome::Enqueued)));
        for (job, outcome) in replies {
            let _ = job.reply.send(outcome);
        }
        if enqueued {
            self.notify.notify_waiters();
        }
    }

    /// The enqueue script on one partition for these messages.
    async fn run_script(
        &self,
        con: &mut Con,
        part: usize,
        jobs: &[Job],
    ) -> Result<Vec<(String, String)>, QueueError> {
        let keys = &self.keys.parts[part];
        let mut inv = self.scripts.enqueue_many.prepare_invoke();
        inv.key(&keys.stream);
        inv.arg(&self.keys.group)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .arg(if self.replicas.is_some() { "1" } else { "0" });
        let mut idem_keys = 1;
        for job in jobs {
            let key_index = match &job.idem {
                Some((client, i)) => {
                    inv.key(keys.idem_key(client, &i.key));
                    idem_keys += 1;
                    idem_keys
                }
                None => 0,
            };
            inv.arg(job.msg.id.0.to_string())
                .arg(job.msg.client_id.as_str())
                .arg(&job.msg.payload)
                .arg(job.msg.accepted_at_ms)
                .arg(
                    job.idem
                        .as_ref()
                        .map(|(_, i)| i.request_hash.as_str())
                        .unwrap_or(""),
                )
                .arg(key_index);
        }
        timed(inv.invoke_async(con)).await
    }

    /// The idempotency record of this request under an earlier layout (before `queue.partitions`
    /// changed), as the answer it implies. Rewritten unchanged when replicas must confirm, so the
    /// WAIT that follows covers the entry it names.
    async fn earlier_record(
        &self,
        con: &mut Con,
        job: &Job,
    ) -> Result<Option<EnqueueOutcome>, QueueError> {
        let Some((client, i)) = &job.idem else {
            return Ok(None);
        };
        for (layout, parts) in &self.keys.earlier {
            let key = parts[layout.idem_partition(client, &i.key)].idem_key(client, &i.key);
            let rec: Option<String> = timed(redis::cmd("GET").arg(&key).query_async(con)).await?;
            let Some(rec) = rec else { continue };
            let (earlier, hash) = rec.split_once('|').ok_or_else(|| {
                QueueError::Corrupt("idempotency record lacks its separator".into())
            })?;
            let id = parse_id(earlier)?;
            if hash != i.request_hash {
                return Ok(Some(EnqueueOutcome::Conflict { id }));
            }
            if self.replicas.is_some() {
                let _: () = timed(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&rec)
                        .arg("KEEPTTL")
                        .query_async(con),
                )
                .await?;
            }
            return Ok(Some(EnqueueOutcome::Duplicate { id }));
        }
        Ok(None)
    }
}

/// The text of an `Unavailable` without its "queue unavailable" prefix (it gets one again).
fn unavailable_text(e: QueueError) -> String {
    match e {
        QueueError::Unavailable(m) => m,
        other => other.to_string(),
    }
}

/// Creates the consumer group on a partition's stream (and the stream); an existing one is fine.
async fn create_group(con: &mut Con, stream: &str, group: &str) -> Result<(), QueueError> {
    let mut create = redis::cmd("XGROUP");
    create
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM");
    match tokio::time::timeout(OP_TIMEOUT, create.query_async::<()>(&mut con.handle())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
        Ok(Err(e)) => Err(acl_hint(e.into())),
        Err(_) => Err(QueueError::Unavailable(format!(
            "redis: no answer within {} ms",
            OP_TIMEOUT.as_millis()
        ))),
    }
}

/// Records this deployment's layout in `<prefix>:layouts` and returns the keys of it and of every
/// earlier layout. On one server the original single-partition names always count as an earlier
/// layout (versions before partitions did not record it).
async fn load_layouts(
    con: &mut Con,
    prefix: &str,
    layout: Layout,
    cluster: bool,
) -> Result<Keys, QueueError> {
    let set = format!("{prefix}:layouts");
    let mut c = con.handle();
    let _: i64 = timed(
        redis::cmd("SADD")
            .arg(&set)
            .arg(layout.name())
            .query_async(&mut c),
    )
    .await?;
    let mut names: Vec<String> =
        timed(redis::cmd("SMEMBERS").arg(&set).query_async(&mut c)).await?;
    if !cluster {
        names.push(Layout::Single.name());
    }
    names.sort();
    names.dedup();
    let mut parts = layout.parts(prefix);
    let write = parts.len();
    let mut earlier = Vec::new();
    for name in names {
        let Some(l) = Layout::parse(&name) else {
            tracing::warn!(layout = %name, "redis: unknown queue layout recorded; ignored");
            continue;
        };
        // The single layout's keys share no slot: they cannot exist on a cluster.
        if l == layout || (cluster && l == Layout::Single) {
            continue;
        }
        let lp = l.parts(prefix);
        for p in &lp {
            if !parts.iter().any(|q| q.stream == p.stream) {
                parts.push(p.clone());
            }
        }
        earlier.push((l, lp));
    }
    Ok(Keys {
        group: format!("{prefix}:workers"),
        parts,
        write,
        layout,
        earlier,
    })
}

/// `WAIT n timeout` on the connection that just wrote: the replicas that have every write this
/// connection made so far. Fewer than `n` → `Unavailable` (the proxy answers 503; the entry is in
/// the queue and a retry with the same Idempotency-Key gets the same id).
async fn wait_for_replicas(con: &mut Con, replicas: ReplicaAck) -> Result<(), QueueError> {
    let timeout_ms = millis(replicas.timeout);
    let confirmed: u64 = timed(
        redis::cmd("WAIT")
            .arg(replicas.count)
            .arg(timeout_ms)
            .query_async(con),
    )
    .await?;
    if confirmed >= u64::from(replicas.count) {
        Ok(())
    } else {
        Err(QueueError::Unavailable(format!(
            "redis: {confirmed} of {} replicas confirmed the write within {timeout_ms} ms (queue.min_replicas_ack)",
            replicas.count
        )))
    }
}

async fn config_get(con: &mut Con, name: &str) -> Result<String, QueueError> {
    let map: HashMap<String, String> =
        timed(redis::cmd("CONFIG").arg("GET").arg(name).query_async(con)).await?;
    Ok(map.get(name).cloned().unwrap_or_default())
}

/// Refuses a server that could lose accepted messages: no AOF, or an eviction policy that may evict them.
async fn check_durability(con: &mut Con, allow_non_durable: bool) -> Result<(), QueueError> {
    let appendonly = config_get(con, "appendonly").await?;
    let policy = config_get(con, "maxmemory-policy").await?;
    let mut problems = Vec::new();
    if appendonly != "yes" {
        problems.push(format!(
            "the Redis server has appendonly={appendonly}: set `appendonly yes` in redis.conf or queue.allow_non_durable_redis = true"
        ));
    }
    // Only noeviction: volatile-* policies evict keys with a TTL, and the idempotency records have
    // one, so a client's retry after an eviction would be enqueued as a second message.
    if policy != "noeviction" {
        problems.push(format!(
            "the Redis server has maxmemory-policy={policy}: set `maxmemory-policy noeviction` in redis.conf or queue.allow_non_durable_redis = true"
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let problem = problems.join("; ");
    if allow_non_durable {
        tracing::warn!(problem = %problem, "queue.allow_non_durable_redis is set: accepted messages can be lost");
        Ok(())
    } else {
        Err(QueueError::NotDurable(problem))
    }
}

/// Reads `queue.redis_ca_file`: PEM certificates, at least one.
fn read_ca(path: &Path) -> Result<Vec<u8>, QueueError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let pem = std::fs::read(path).map_err(|e| {
        QueueError::Config(format!(
            "queue.redis_ca_file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            QueueError::Config(format!(
                "queue.redis_ca_file: {} is not PEM certificates: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(QueueError::Config(format!(
            "queue.redis_ca_file: {} holds no certificate",
            path.display()
        )));
    }
    Ok(pem)
}

/// A start-up refusal by the server's ACL names the key and where the needed rules are.
fn acl_hint(e: QueueError) -> QueueError {
    match e {
        QueueError::Unavailable(msg) if msg.to_ascii_uppercase().contains("NOPERM") => {
            QueueError::Config(format!(
                "queue.redis_url: the Redis user may not do what the relay needs ({msg}); \
             grant the rules of deploy/redis/msgrelay-acl.conf for keys '<queue.key_prefix>:*'"
            ))
        }
        other => other,
    }
}
