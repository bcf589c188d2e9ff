//! One contract suite, run against both backends: `sqlite::*` (temp dir) and `redis::*` (the local server at
//! `MSGRELAY_TEST_REDIS_URL`, default redis://127.0.0.1:6379, unique key prefix per test, keys deleted after).
//! Without Redis (or `redis-server` for the cases that start their own) a case is skipped with a
//! notice, or fails under `MSGRELAY_TEST_REQUIRE_EXTERNAL=1` (the skip policy of `msgrelay-testkit`).

use futures::future::join_all;
use msgrelay_core::config::{QueueBackend, QueueConfig};
use msgrelay_core::{now_ms, ClientId, MessageId};
use msgrelay_queue::{
    EnqueueOutcome, Idempotency, LeaseToken, NewMessage, Queue, QueueError, QueueStats,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(10);

mod support;

/// A backend to run the contract against; `_servers` keeps private Redis processes alive.
struct Env {
    cfg: QueueConfig,
    dir: tempfile::TempDir,
    _servers: Option<Box<dyn std::any::Any + Send>>,
}

fn redis_url() -> String {
    std::env::var("MSGRELAY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared server at `MSGRELAY_TEST_REDIS_URL` is missing (skip policy: `msgrelay-testkit`).
fn no_shared_redis() -> bool {
    !msgrelay_testkit::available("Redis", msgrelay_testkit::tcp_reachable(&redis_url(), 6379))
}

/// `redis-server` cannot be run to start a test's own servers (ACL, TLS, Sentinel, Cluster).
fn no_redis_server() -> bool {
    !msgrelay_testkit::available(
        "redis-server",
        msgrelay_testkit::command("redis-server", "--version"),
    )
}

fn redis_cfg(url: String) -> QueueConfig {
    QueueConfig {
        backend: QueueBackend::Redis,
        redis_url: url,
        key_prefix: format!("msgrelay-test-{}", uuid::Uuid::new_v4().simple()),
        allow_non_durable_redis: true,
        ..QueueConfig::default()
    }
}

impl Env {
    async fn sqlite() -> Option<Env> {
        let cfg = QueueConfig {
            backend: QueueBackend::Sqlite,
            ..QueueConfig::default()
        };
        Some(Env {
            cfg,
            dir: tempfile::tempdir().unwrap(),
            _servers: None,
        })
    }

    /// The machine's Redis (unique key prefix, keys deleted after).
    async fn redis() -> Option<Env> {
        if no_shared_redis() {
            return None;
        }
        Some(Env {
            cfg: redis_cfg(redis_url()),
            dir: tempfile::tempdir().unwrap(),
            _servers: None,
        })
    }

    /// A private server whose default user is off: the relay logs in as the user that
    /// `deploy/redis/msgrelay-acl.conf` documents, with exactly those permissions.
    async fn redis_acl() -> Option<Env> {
        if no_redis_server() {
            return None;
        }
        let prefix = format!("msgrelay-test-{}", uuid::Uuid::new_v4().simple());
        let acl = support::AclServer::start("s3cret-acl-pass", &prefix);
        let mut cfg = redis_cfg(format!(
            "redis://msgrelay:s3cret-acl-pass@127.0.0.1:{}/0",
            acl.server.port
        ));
        cfg.key_prefix = prefix;
        // The documented ACL allows CONFIG GET: the durability check runs for real.
        cfg.allow_non_durable_redis = false;
        Some(Env {
            cfg,
            dir: tempfile::tempdir().unwrap(),
            _servers: Some(Box::new(acl)),
        })
    }

    /// A private server that speaks TLS only; its certificate chains to a CA made here.
    async fn redis_tls() -> Option<Env> {
        if no_redis_server() {
            return None;
        }
        let tls = support::TlsServer::start();
        let mut cfg = redis_cfg(format!("rediss://localhost:{}/0", tls.server.port));
        cfg.redis_ca_file = tls.certs.ca.clone();
        cfg.allow_non_durable_redis = false;
        Some(Env {
            cfg,
            dir: tempfile::tempdir().unwrap(),
            _servers: Some(Box::new(tls)),
        })
    }

    /// A 3-primary Redis Cluster (3 replicas), the queue in 3 partitions, every 202 confirmed
    /// by the replicas.
    async fn redis_cluster() -> Option<Env> {
        if no_redis_server() {
            return None;
        }
        let cluster = tokio::task::spawn_blocking(support::Cluster::start)
            .await
            .unwrap();
        let mut cfg = redis_cfg(cluster.url());
        cfg.allow_non_durable_redis = false;
        cfg.partitions = 3;
        cfg.min_replicas_ack = 1;
        // The contract is about behaviour, not speed: a loaded CI box must not turn a slow
        // replica confirmation into a failure (the timeout path is tested in tests/ha.rs).
        cfg.replica_ack_timeout_ms = 30_000;
        Some(Env {
            cfg,
            dir: tempfile::tempdir().unwrap(),
            _servers: Some(Box::new(cluster)),
        })
    }

    /// One partition: leases come in enqueue order (several partitions interleave).
    fn ordered(&self) -> bool {
        self.cfg.partitions <= 1
    }

    /// 1 primary, 1 replica, 3 sentinels; every 202 waits for the replica (`min_replicas_ack = 1`).
    async fn redis_sentinel() -> Option<Env> {
        if no_redis_server() {
            return None;
        }
        let set = tokio::task::spawn_blocking(support::SentinelSet::start)
            .await
            .unwrap();
        let mut cfg = redis_cfg(set.url());
        cfg.allow_non_durable_redis = false;
        cfg.min_replicas_ack = 1;
        // The contract is about behaviour, not speed: a loaded CI box must not turn a slow
        // replica confirmation into a failure (the timeout path is tested in tests/ha.rs).
        cfg.replica_ack_timeout_ms = 30_000;
        Some(Env {
            cfg,
            dir: tempfile::tempdir().unwrap(),
            _servers: Some(Box::new(set)),
        })
    }

    async fn open(&self) -> Queue {
        Queue::connect(&self.cfg, self.dir.path())
            .await
            .expect("connect")
    }

    /// Deletes this test's keys from the shared server (private servers go with their temp dir).
    async fn cleanup(&self) {
        if self.cfg.backend != QueueBackend::Redis || self._servers.is_some() {
            return;
        }
        let client = ::redis::Client::open(self.cfg.redis_url.as_str()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{}:*", self.cfg.key_prefix))
            .query_async(&mut con)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = ::redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut con)
                .await
                .unwrap();
        }
    }
}

fn client() -> ClientId {
    ClientId::parse("demo").unwrap()
}

fn message(n: u32) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        client_id: client(),
        payload: n.to_be_bytes().to_vec(),
        accepted_at_ms: now_ms(),
    }
}

fn idem(key: &str, hash: &str) -> Option<(ClientId, Idempotency)> {
    Some((
        client(),
        Idempotency {
            key: key.into(),
            request_hash: hash.into(),
        },
    ))
}

fn tokens(leased: &[msgrelay_queue::Leased]) -> Vec<LeaseToken> {
    leased.iter().map(|l| l.token.clone()).collect()
}

/// Leases on `consumer` until something comes back or the deadline passes.
async fn lease_eventually(q: &Queue, consumer: &str, max: usize) -> Vec<msgrelay_queue::Leased> {
    let start = Instant::now();
    loop {
        let got = q.lease(consumer, max, LEASE).await.unwrap();
        if !got.is_empty() || start.elapsed() > DEADLINE {
            return got;
        }
        q.wait_for_work(Duration::from_millis(50)).await;
    }
}

fn stats(ready: u64, in_flight: u64, delayed: u64, failed: u64) -> QueueStats {
    QueueStats {
        ready,
        in_flight,
        delayed,
        failed,
    }
}

async fn enqueue_lease_ack(env: &Env) {
    let q = env.open().await;
    let msgs: Vec<_> = (0..3).map(message).collect();
    for m in &msgs {
        assert_eq!(
            q.enqueue(m.clone(), None).await.unwrap(),
            EnqueueOutcome::Enqueued
        );
    }
    assert_eq!(q.stats().await.unwrap(), stats(3, 0, 0, 0));
    let mut leased = q.lease("w1", 10, LEASE).await.unwrap();
    assert_eq!(leased.len(), 3);
    let mut msgs = msgs;
    if !env.ordered() {
        leased.sort_by_key(|l| l.id.0);
        msgs.sort_by_key(|m| m.id.0);
    }
    for (l, m) in leased.iter().zip(&msgs) {
        assert_eq!(
            (l.id, &l.client_id, &l.payload, l.accepted_at_ms, l.attempts),
            (m.id, &m.client_id, &m.payload, m.accepted_at_ms, 1)
        );
    }
    assert_eq!(q.stats().await.unwrap(), stats(0, 3, 0, 0));
    assert!(q.lease("w2", 10, LEASE).await.unwrap().is_empty());
    assert_eq!(q.ack(&tokens(&leased)).await.unwrap(), 3);
    assert_eq!(q.stats().await.unwrap(), stats(0, 0, 0, 0));
    assert!(q.lease("w1", 10, LEASE).await.unwrap().is_empty());
}

async fn idempotent_duplicate(env: &Env) {
    let q = env.open().await;
    let first = message(1);
    assert_eq!(
        q.enqueue(first.clone(), idem("k1", "h1")).await.unwrap(),
        EnqueueOutcome::Enqueued
    );
    let again = q.enqueue(message(1), idem("k1", "h1")).await.unwrap();
    assert_eq!(again, EnqueueOutcome::Duplicate { id: first.id });
    // Another client may use the same key.
    let other = NewMessage {
        client_id: ClientId::parse("other").unwrap(),
        ..message(2)
    };
    let other_idem = Some((
        other.client_id.clone(),
        Idempotency {
            key: "k1".into(),
            request_hash: "h1".into(),
        },
    ));
    assert_eq!(
        q.enqueue(other, other_idem).await.unwrap(),
        EnqueueOutcome::Enqueued
    );
    assert_eq!(q.stats().await.unwrap().ready, 2);
    let leased = q.lease("w", 10, LEASE).await.unwrap();
    assert_eq!(leased.iter().filter(|l| l.id == first.id).count(), 1);
    assert_eq!(leased.len(), 2);
}

async fn idempotency_conflict(env: &Env) {
    let q = env.open().await;
    let first = message(1);
    q.enqueue(first.clone(), idem("k", "h1")).await.unwrap();
    assert_eq!(
        q.enqueue(message(2), idem("k", "h2")).await.unwrap(),
        EnqueueOutcome::Conflict { id: first.id }
    );
    assert_eq!(q.stats().await.unwrap(), stats(1, 0, 0, 0));
}

async fn concurrent_consumers_get_disjoint_sets(env: &Env) {
    let q = env.open().await;
    // Concurrent enqueues exercise the group commit.
    let msgs: Vec<_> = (0..1000).map(message).collect();
    let all: HashSet<MessageId> = msgs.iter().map(|m| m.id).collect();
    let results = join_all(msgs.into_iter().map(|m| {
        let q = q.clone();
        async move { q.enqueue(m, None).await }
    }))
    .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(EnqueueOutcome::Enqueued))));

    let worker = |name: &'static str| {
        let env_cfg = env.cfg.clone();
        let dir = env.dir.path().to_owned();
        tokio::spawn(async move {
            // Separate connections, as separate worker processes would have.
            let q = Queue::connect(&env_cfg, &dir).await.unwrap();
            let mut got = Vec::new();
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                let batch = q.lease(name, 37, Duration::from_secs(30)).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                got.extend(batch.iter().map(|l| l.id));
                assert_eq!(q.ack(&tokens(&batch)).await.unwrap(), batch.len() as u64);
            }
            got
        })
    };
    let (a, b) = (worker("a"), worker("b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let sa: HashSet<_> = a.iter().copied().collect();
    let sb: HashSet<_> = b.iter().copied().collect();
    assert_eq!(sa.len(), a.len(), "consumer a got a message twice");
    assert_eq!(sb.len(), b.len(), "consumer b got a message twice");
    assert!(sa.is_disjoint(&sb), "both consumers held the same message");
    assert_eq!(sa.union(&sb).copied().collect::<HashSet<_>>(), all);
    assert_eq!(q.stats().await.unwrap(), stats(0, 0, 0, 0));
}

async fn expired_lease_returns_and_stale_token_is_refused(env: &Env) {
    let q = env.open().await;
    let m = message(7);
    q.enqueue(m.clone(), None).await.unwrap();
    let first = q.lease("crashed", 1, LEASE).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        q.lease("rescuer", 1, LEASE).await.unwrap().is_empty(),
        "leased twice"
    );
    let second = lease_eventually(&q, "rescuer", 1).await;
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].id, second[0].attempts), (m.id, 2));
    // The crashed worker comes back: its token no longer matches anything.
    assert_eq!(q.ack(&tokens(&first)).await.unwrap(), 0);
    q.retry_later(&tokens(&first), Duration::ZERO, 0, "stale")
        .await
        .unwrap();
    q.dead_letter(&tokens(&first), "stale").await.unwrap();
    assert_eq!(q.stats().await.unwrap(), stats(0, 1, 0, 0));
    assert_eq!(q.ack(&tokens(&second)).await.unwrap(), 1);
    assert_eq!(q.ack(&tokens(&second)).await.unwrap(), 0);
}

async fn retry_later_waits_for_retry_after(env: &Env) {
    let q = env.open().await;
    let m = message(1);
    q.enqueue(m.clone(), None).await.unwrap();
    let leased = q.lease("w", 1, Duration::from_secs(30)).await.unwrap();
    let released = Instant::now();
    q.retry_later(
        &tokens(&leased),
        Duration::from_secs(1),
        0,
        "main server down",
    )
    .await
    .unwrap();
    assert!(
        q.lease("w", 1, LEASE).await.unwrap().is_empty(),
        "due before retry_after"
    );
    assert_eq!(q.stats().await.unwrap(), stats(0, 0, 1, 0));
    let again = lease_eventually(&q, "w2", 1).await;
    assert!(
        released.elapsed() >= Duration::from_millis(900),
        "due after {:?}",
        released.elapsed()
    );
    assert_eq!(
        (again[0].id, again[0].attempts, &again[0].payload),
        (m.id, 2, &m.payload)
    );
}

async fn max_attempts_fail_and_admin_retry(env: &Env) {
    let q = env.open().await;
    let m = message(1);
    q.enqueue(m.clone(), None).await.unwrap();
    let l1 = q.lease("w", 1, LEASE).await.unwrap();
    q.retry_later(&tokens(&l1), Duration::ZERO, 2, "timeout")
        .await
        .unwrap();
    let l2 = lease_eventually(&q, "w", 1).await;
    assert_eq!(l2[0].attempts, 2);
    q.retry_later(&tokens(&l2), Duration::ZERO, 2, "timeout again")
        .await
        .unwrap();
    assert_eq!(q.stats().await.unwrap(), stats(0, 0, 0, 1));
    assert!(
        q.lease("w", 1, LEASE).await.unwrap().is_empty(),
        "a failed message was leased"
    );
    let failed = q.list_failed(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].id, &failed[0].client_id, failed[0].attempts),
        (m.id, &m.client_id, 2)
    );
    assert_eq!(failed[0].last_error, "timeout again");
    assert!(failed[0].failed_at_ms > 0);

    // Dead letter from a permanent refusal, then the admin re-queues everything.
    let d = message(2);
    q.enqueue(d.clone(), None).await.unwrap();
    let ld = q.lease("w", 1, LEASE).await.unwrap();
    q.dead_letter(&tokens(&ld), "rejected: unknown client")
        .await
        .unwrap();
    assert_eq!(q.stats().await.unwrap().failed, 2);

    assert_eq!(
        q.retry_failed(Some(&[m.id, MessageId::new()]))
            .await
            .unwrap(),
        1
    );
    let l3 = lease_eventually(&q, "w", 1).await;
    assert_eq!((l3[0].id, l3[0].attempts), (m.id, 3));
    assert_eq!(q.retry_failed(None).await.unwrap(), 1);
    assert_eq!(q.retry_failed(None).await.unwrap(), 0);
    let l4 = lease_eventually(&q, "w", 1).await;
    assert_eq!(
        (l4[0].id, l4[0].attempts, &l4[0].payload),
        (d.id, 2, &d.payload)
    );
    assert!(q.list_failed(10).await.unwrap().is_empty());
}

async fn survives_reopen(env: &Env) {
    let q = env.open().await;
    let msgs: Vec<_> = (0..5).map(message).collect();
    q.enqueue(msgs[0].clone(), idem("key", "hash"))
        .await
        .unwrap();
    for m in &msgs[1..] {
        q.enqueue(m.clone(), None).await.unwrap();
    }
    drop(q);
    let q = env.open().await;
    assert_eq!(q.stats().await.unwrap(), stats(5, 0, 0, 0));
    assert_eq!(
        q.enqueue(message(9), idem("key", "hash")).await.unwrap(),
        EnqueueOutcome::Duplicate { id: msgs[0].id }
    );
    let leased = q.lease("w", 10, LEASE).await.unwrap();
    let mut ids: Vec<_> = leased.iter().map(|l| l.id).collect();
    let mut want: Vec<_> = msgs.iter().map(|m| m.id).collect();
    if !env.ordered() {
        ids.sort_by_key(|i| i.0);
        want.sort_by_key(|i| i.0);
    }
    assert_eq!(ids, want);
    q.ping().await.unwrap();
    q.purge_expired_idempotency().await.unwrap();
}

async fn wait_for_work_wakes_on_enqueue(env: &Env) {
    let q = env.open().await;
    assert!(wait_while_enqueuing(q.clone(), &q).await < DEADLINE);
}

/// A worker waiting for work wakes when another process (a proxy: here another connection, with
/// its own in-process notifier) enqueues, long before its own wait ends.
async fn wait_for_work_wakes_on_another_processes_enqueue(env: &Env) {
    let (worker, proxy) = (env.open().await, env.open().await);
    assert!(wait_while_enqueuing(worker, &proxy).await < DEADLINE);
}

/// How long `waiter` waits for work (at most 30 s) while `enqueuer` enqueues every 20 ms, for
/// up to `DEADLINE` (the waiter may not be waiting yet when the first message lands).
async fn wait_while_enqueuing(waiter: Queue, enqueuer: &Queue) -> Duration {
    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        waiter.wait_for_work(Duration::from_secs(30)).await;
        start.elapsed()
    });
    let start = Instant::now();
    while !waiter.is_finished() && start.elapsed() < DEADLINE {
        enqueuer.enqueue(message(1), None).await.unwrap();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waiter.await.unwrap()
}

macro_rules! contract {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(env) = super::Env::$backend().await else { return };
                    super::$test(&env).await;
                    env.cleanup().await;
                }
            )*
        }
    };
}

/// `depth` (what `queue.max_depth` limits) counts every undelivered message whatever its state,
/// except dead letters, and drops as messages are acked.
async fn depth_counts_undelivered_but_not_failed(env: &Env) {
    let q = env.open().await;
    assert_eq!(q.depth().await.unwrap(), 0);
    for n in 0..4 {
        q.enqueue(message(n), None).await.unwrap();
    }
    assert_eq!(q.depth().await.unwrap(), 4);
    let leased = q.lease("w", 3, LEASE).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 4, "in flight still counts");
    q.retry_later(&tokens(&leased[..1]), Duration::from_secs(60), 0, "later")
        .await
        .unwrap();
    q.dead_letter(&tokens(&leased[1..2]), "bad").await.unwrap();
    assert_eq!(q.stats().await.unwrap(), stats(1, 1, 1, 1));
    assert_eq!(
        q.depth().await.unwrap(),
        3,
        "delayed counts, failed does not"
    );
    assert_eq!(q.ack(&tokens(&leased[2..])).await.unwrap(), 1);
    assert_eq!(q.depth().await.unwrap(), 2);
}

/// One ack call with tokens of two consumers, a stale one and one given twice removes exactly the
/// entries whose lease is still the token's, and counts each once.
async fn ack_of_a_mixed_batch_removes_only_live_leases(env: &Env) {
    let q = env.open().await;
    for n in 0..6 {
        q.enqueue(message(n), None).await.unwrap();
    }
    let a = q.lease("a", 3, Duration::from_secs(600)).await.unwrap();
    let b = q.lease("b", 3, Duration::from_secs(600)).await.unwrap();
    assert_eq!((a.len(), b.len()), (3, 3));
    // b's last lease goes back to the queue and is leased again: its old token is stale.
    q.retry_later(&tokens(&b[2..]), Duration::ZERO, 0, "later")
        .await
        .unwrap();
    let again = lease_eventually(&q, "c", 1).await;
    assert_eq!(again.len(), 1);

    let mut batch = tokens(&b);
    batch.extend(tokens(&a[..2]));
    batch.push(a[0].token.clone());
    assert_eq!(
        q.ack(&batch).await.unwrap(),
        4,
        "b[0..2] and a[0..2], each once"
    );
    assert_eq!(q.stats().await.unwrap(), stats(0, 2, 0, 0));
    let mut rest = tokens(&a[2..]);
    rest.extend(tokens(&again));
    assert_eq!(q.ack(&rest).await.unwrap(), 2);
    assert_eq!(q.stats().await.unwrap(), stats(0, 0, 0, 0));
    assert!(q.lease("d", 10, LEASE).await.unwrap().is_empty());
}

macro_rules! contract_suite {
    ($($backend:ident),*) => {
        $(
            contract!($backend:
                enqueue_lease_ack,
                idempotent_duplicate,
                idempotency_conflict,
                concurrent_consumers_get_disjoint_sets,
                expired_lease_returns_and_stale_token_is_refused,
                retry_later_waits_for_retry_after,
                max_attempts_fail_and_admin_retry,
                survives_reopen,
                wait_for_work_wakes_on_enqueue,
                depth_counts_undelivered_but_not_failed,
                ack_of_a_mixed_batch_removes_only_live_leases,
            );
        )*
    };
}

contract_suite!(
    sqlite,
    redis,
    redis_acl,
    redis_tls,
    redis_sentinel,
    redis_cluster
);

/// Across processes: Redis, except Cluster (see `redis_streams::watch`). Two embedded queues on
/// one file are not a deployment (`msgrelay up` runs the roles in one process).
mod across_processes {
    use super::{wait_for_work_wakes_on_another_processes_enqueue, Env};

    contract!(redis: wait_for_work_wakes_on_another_processes_enqueue);
    contract!(redis_acl: wait_for_work_wakes_on_another_processes_enqueue);
    contract!(redis_tls: wait_for_work_wakes_on_another_processes_enqueue);
    contract!(redis_sentinel: wait_for_work_wakes_on_another_processes_enqueue);
}

/// A server without AOF is refused unless the operator explicitly allows it; the error names the setting.
#[tokio::test]
async fn redis_refuses_non_durable_server() {
    let Some(mut env) = Env::redis().await else {
        return;
    };
    let client = ::redis::Client::open(env.cfg.redis_url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let aof: Vec<String> = ::redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut con)
        .await
        .unwrap();
    if aof.get(1).map(String::as_str) == Some("yes") {
        eprintln!("skipped: this Redis server has appendonly=yes");
        return;
    }
    env.cfg.allow_non_durable_redis = false;
    match Queue::connect(&env.cfg, env.dir.path()).await {
        Err(QueueError::NotDurable(msg)) => {
            assert!(msg.contains("appendonly"), "{msg}");
            assert!(msg.contains("allow_non_durable_redis"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a non-AOF Redis server was accepted"),
    }
    env.cleanup().await;
}

/// An unreachable Redis answers `Unavailable` quickly instead of hanging.
#[tokio::test]
async fn redis_unreachable_is_unavailable() {
    let cfg = QueueConfig {
        backend: QueueBackend::Redis,
        redis_url: "redis://127.0.0.1:1".into(),
        allow_non_durable_redis: true,
        ..QueueConfig::default()
    };
    let start = Instant::now();
    let r = Queue::connect(&cfg, std::path::Path::new(".")).await;
    assert!(
        matches!(r, Err(QueueError::Unavailable(_))),
        "{:?}",
        r.err()
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

/// A restarted worker with a stable consumer name takes back the entries it still held at once,
/// instead of waiting for their lease to expire; other consumers cannot take them meanwhile.
#[tokio::test]
async fn redis_restarted_consumer_takes_back_its_own_pending_first() {
    let Some(env) = Env::redis().await else {
        return;
    };
    let long = Duration::from_secs(600);
    let before = env.open().await;
    for n in 0..5 {
        before.enqueue(message(n), None).await.unwrap();
    }
    let held = before.lease("host-a-0", 10, long).await.unwrap();
    assert_eq!(held.len(), 5);
    drop(before); // the worker process dies with its leases

    let other = env.open().await;
    assert!(
        other.lease("host-b-0", 10, long).await.unwrap().is_empty(),
        "another consumer took live leases"
    );
    let restarted = env.open().await;
    let back = restarted.lease("host-a-0", 10, long).await.unwrap();
    assert_eq!(back.len(), 5, "own pending entries were not taken back");
    assert!(back.iter().all(|l| l.attempts == 2));
    // The dead process's tokens no longer match; the restarted worker's do.
    assert_eq!(restarted.ack(&tokens(&held)).await.unwrap(), 0);
    assert_eq!(restarted.ack(&tokens(&back)).await.unwrap(), 5);
    // Later leases by the same consumer read only new entries.
    assert!(restarted
        .lease("host-a-0", 10, long)
        .await
        .unwrap()
        .is_empty());
    env.cleanup().await;
}
