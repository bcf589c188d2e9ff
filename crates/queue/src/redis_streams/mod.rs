//! Redis Streams queue (redis-rs `ConnectionManager`, reconnects by itself; every call times out after 1.5 s).
//! `link.rs` connects as `queue.redis_url` says: one server, or the primary that Sentinel names
//! (followed after a failover); TLS and ACL credentials from the URL.
//!
//! Keys under `<prefix>`:
//! - `:stream` — one entry per undelivered message (`id`, `client`, `payload`, `acc`); consumer group `:workers`.
//! - `:idem:<client>:<key>` — `message_id|request_hash`, `EX 86400`, set by the same Lua script as the XADD.
//!
//! Enqueue (`enqueue_many.lua`, atomic): one writer task per process gathers concurrent enqueues
//! into one script call (up to `GROUP_MAX` messages, `IN_FLIGHT` calls at a time on the multiplexed
//! connection), so Redis runs one script and appends one AOF record per group instead of per message;
//! each message's idempotency record is still written in the same atomic step as its XADD.
//! - `:attempts` — hash message id → attempts, incremented atomically with each lease.
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
use msgrelay_core::{ClientId, MessageId};
use link::{Con, LinkOptions};
use msgrelay_core::config::QueueConfig;
use msgrelay_core::RedisUrl;
use redis::{RedisResult, Script};
use std::path::Path;
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

mod link;

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
}

struct Keys {
    prefix: String,
    stream: String,
    group: String,
    delayed: String,
    failed: String,
    attempts: String,
}

/// The Redis Streams queue; clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisQueue {
    con: Con,
    /// Consumers that already leased in this process (their first lease takes back their own pending entries).
    seen_consumers: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
    notify: Arc<Notify>,
    writer: tokio::sync::mpsc::Sender<Job>,
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
            // Shorter than `OP_TIMEOUT`, so the connection reports a silent server (and a
            // Sentinel connection re-resolves the primary) before the caller gives up.
            response_timeout: OP_TIMEOUT - Duration::from_millis(300),
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

        let keys = Keys {
            prefix: prefix.to_owned(),
            stream: format!("{prefix}:stream"),
            group: format!("{prefix}:workers"),
            delayed: format!("{prefix}:delayed"),
            failed: format!("{prefix}:failed"),
            attempts: format!("{prefix}:attempts"),
        };
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(&keys.stream)
            .arg(&keys.group)
            .arg("0")
            .arg("MKSTREAM");
        match tokio::time::timeout(OP_TIMEOUT, create.query_async::<()>(&mut con.handle())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.code() == Some("BUSYGROUP") => {}
            Ok(Err(e)) => return Err(acl_hint(e.into())),
            Err(_) => {
                return Err(QueueError::Unavailable(format!(
                    "redis: no answer within {} ms",
                    OP_TIMEOUT.as_millis()
                )))
            }
        }
        let scripts = Scripts {
            enqueue_many: Script::new(include_str!("enqueue_many.lua")),
            lease: Script::new(include_str!("lease.lua")),
            ack: Script::new(include_str!("ack.lua")),
            release: Script::new(include_str!("release.lua")),
            retry_failed: Script::new(include_str!("retry_failed.lua")),
            stats: Script::new(include_str!("stats.lua")),
        };
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
            keys,
            scripts,
            notify,
            writer,
        })
    }

    pub(crate) fn notifier(&self) -> Arc<Notify> {
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

    /// See [`crate::Queue::lease`].
    pub async fn lease(
        &self,
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
            .insert(consumer.to_owned());
        let mut inv = self.scripts.lease.prepare_invoke();
        inv.key(&self.keys.stream)
            .key(&self.keys.delayed)
            .key(&self.keys.attempts)
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
                        entry,
                        consumer: consumer.to_owned(),
                        deliveries,
                        msg_id: id,
                    }),
                })
            })
            .collect()
    }

    fn token_args<'a>(
        &self,
        inv: &mut redis::ScriptInvocation<'a>,
        tokens: &[LeaseToken],
    ) -> usize {
        let mut n = 0;
        for t in tokens {
            if let TokenRepr::Redis {
                entry,
                consumer,
                deliveries,
                msg_id,
            } = &t.0
            {
                inv.arg(entry).arg(consumer).arg(*deliveries).arg(msg_id);
                n += 1;
            }
        }
        n
    }

    /// See [`crate::Queue::ack`].
    pub async fn ack(&self, tokens: &[LeaseToken]) -> Result<u64, QueueError> {
        let mut inv = self.scripts.ack.prepare_invoke();
        inv.key(&self.keys.stream)
            .key(&self.keys.attempts)
            .arg(&self.keys.group);
        if self.token_args(&mut inv, tokens) == 0 {
            return Ok(0);
        }
        let mut con = self.con.handle();
        timed(inv.invoke_async(&mut con)).await
    }

    async fn release(
        &self,
        tokens: &[LeaseToken],
        mode: &str,
        retry_ms: i64,
        max: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        let mut inv = self.scripts.release.prepare_invoke();
        inv.key(&self.keys.stream)
            .key(&self.keys.delayed)
            .key(&self.keys.failed)
            .key(&self.keys.attempts)
            .arg(&self.keys.group)
            .arg(mode)
            .arg(retry_ms)
            .arg(max)
            .arg(error);
        if self.token_args(&mut inv, tokens) == 0 {
            return Ok(());
        }
        let mut con = self.con.handle();
        let _released: u64 = timed(inv.invoke_async(&mut con)).await?;
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

    /// See [`crate::Queue::stats`].
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut inv = self.scripts.stats.prepare_invoke();
        inv.key(&self.keys.stream)
            .key(&self.keys.delayed)
            .key(&self.keys.failed)
            .arg(&self.keys.group);
        let mut con = self.con.handle();
        let (ready, in_flight, delayed, failed): (u64, u64, u64, u64) =
            timed(inv.invoke_async(&mut con)).await?;
        Ok(QueueStats {
            ready,
            in_flight,
            delayed,
            failed,
        })
    }

    /// See [`crate::Queue::depth`]. Every undelivered message is one stream entry; failed ones stay
    /// in the stream too, so they are subtracted.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let mut con = self.con.handle();
        let (len, failed): (u64, u64) = timed(
            redis::pipe()
                .atomic()
                .cmd("XLEN")
                .arg(&self.keys.stream)
                .cmd("HLEN")
                .arg(&self.keys.failed)
                .query_async(&mut con),
        )
        .await?;
        Ok(len.saturating_sub(failed))
    }

    /// Scans the failed hash: up to `limit` (id, record) pairs, or all when `limit` is `None`.
    async fn scan_failed(&self, limit: Option<usize>) -> Result<Vec<(String, String)>, QueueError> {
        let mut con = self.con.handle();
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, pairs): (u64, Vec<(String, String)>) = timed(
                redis::cmd("HSCAN")
                    .arg(&self.keys.failed)
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

    /// See [`crate::Queue::list_failed`]. Takes the first `limit` found by HSCAN, sorted by failure time.
    pub async fn list_failed(&self, limit: usize) -> Result<Vec<FailedEntry>, QueueError> {
        let mut out = self
            .scan_failed(Some(limit))
            .await?
            .into_iter()
            .map(|(id, rec)| {
                let r: FailedRecord = serde_json::from_str(&rec).map_err(|_| {
                    QueueError::Corrupt("failed-entry record is not valid JSON".into())
                })?;
                Ok(FailedEntry {
                    id: parse_id(&id)?,
                    client_id: parse_client(&r.client)?,
                    attempts: r.attempts,
                    last_error: r.error,
                    failed_at_ms: r.at.parse().unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        out.sort_by_key(|e| e.failed_at_ms);
        out.truncate(limit);
        Ok(out)
    }

    async fn requeue(&self, ids: &[String]) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = self.scripts.retry_failed.prepare_invoke();
        inv.key(&self.keys.stream).key(&self.keys.failed).arg(ids);
        let mut con = self.con.handle();
        timed(inv.invoke_async(&mut con)).await
    }

    /// See [`crate::Queue::retry_failed`].
    pub async fn retry_failed(&self, ids: Option<&[MessageId]>) -> Result<u64, QueueError> {
        let ids: Vec<String> = match ids {
            Some(ids) => ids.iter().map(|i| i.0.to_string()).collect(),
            None => self
                .scan_failed(None)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        };
        let mut n = 0;
        for chunk in ids.chunks(RETRY_CHUNK) {
            n += self.requeue(chunk).await?;
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

    async fn commit(&self, group: Vec<Job>) {
        let mut inv = self.scripts.enqueue_many.prepare_invoke();
        inv.key(&self.keys.stream);
        inv.arg(&self.keys.group)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .arg(if self.replicas.is_some() { "1" } else { "0" });
        let mut idem_keys = 1;
        for job in &group {
            let key_index = match &job.idem {
                Some((client, i)) => {
                    inv.key(format!(
                        "{}:idem:{}:{}",
                        self.keys.prefix,
                        client.as_str(),
                        i.key
                    ));
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
        let mut con = self.con.handle();
        let mut answers: Result<Vec<(String, String)>, QueueError> =
            timed(inv.invoke_async(&mut con)).await;
        if let (Some(replicas), Ok(list)) = (self.replicas, &answers) {
            // A duplicate counts too: its earlier entry may not have reached a replica yet (the
            // script rewrote its idempotency record, so this WAIT covers that entry as well).
            if list.iter().any(|(kind, _)| kind == "ok" || kind == "dup") {
                if let Err(e) = wait_for_replicas(&mut con, replicas).await {
                    answers = Err(e);
                }
            }
        }
        match answers {
            Ok(answers) if answers.len() == group.len() => {
                let mut enqueued = false;
                for (job, (kind, id)) in group.into_iter().zip(answers) {
                    let outcome = match kind.as_str() {
                        "ok" => Ok(EnqueueOutcome::Enqueued),
                        "dup" => parse_id(&id).map(|id| EnqueueOutcome::Duplicate { id }),
                        "conflict" => parse_id(&id).map(|id| EnqueueOutcome::Conflict { id }),
                        _ => Err(QueueError::Corrupt(
                            "unexpected enqueue script reply".into(),
                        )),
                    };
                    enqueued |= matches!(outcome, Ok(EnqueueOutcome::Enqueued));
                    let _ = job.reply.send(outcome);
                }
                if enqueued {
                    self.notify.notify_waiters();
                }
            }
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "enqueue script answered a different number of results".into(),
                };
                for job in group {
                    let _ = job.reply.send(Err(QueueError::Unavailable(why.clone())));
                }
            }
        }
    }
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
async fn check_durability(
    con: &mut Con,
    allow_non_durable: bool,
) -> Result<(), QueueError> {
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
        QueueError::Unavailable(msg) if msg.contains("NOPERM") => QueueError::Config(format!(
            "queue.redis_url: the Redis user may not do what the relay needs ({msg}); \
             grant the rules of deploy/redis/msgrelay-acl.conf for keys '<queue.key_prefix>:*'"
        )),
        other => other,
    }
}
