//! The Redis queue's credentials, TLS and high availability, each against private `redis-server`
//! processes started here (free ports, a temp dir, killed at the end): wrong credentials stop
//! start-up naming the key, a server whose certificate the CA file does not vouch for is refused,
//! replica acknowledgement (`WAIT`) turns into `Unavailable` and a safe retry, and a Sentinel
//! failover (kill -9 of the primary mid-stream) loses nothing that was acknowledged.
//! Without `redis-server` the tests are skipped with a notice, or fail under
//! `MSGRELAY_TEST_REQUIRE_EXTERNAL=1` (the skip policy of `msgrelay-testkit`).

mod support;

use msgrelay_core::config::{QueueBackend, QueueConfig};
use msgrelay_core::{now_ms, ClientId, MessageId};
use msgrelay_queue::{EnqueueOutcome, Idempotency, LeaseToken, NewMessage, Queue, QueueError};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `redis-server` cannot be run (skip policy: `msgrelay-testkit`).
fn skip() -> bool {
    !msgrelay_testkit::available(
        "redis-server",
        msgrelay_testkit::command("redis-server", "--version"),
    )
}

fn cfg(url: String) -> QueueConfig {
    QueueConfig {
        backend: QueueBackend::Redis,
        redis_url: url,
        key_prefix: format!("msgrelay-ha-{}", uuid::Uuid::new_v4().simple()),
        ..QueueConfig::default()
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

fn idem(key: &str) -> Option<(ClientId, Idempotency)> {
    Some((
        client(),
        Idempotency {
            key: key.into(),
            request_hash: "hash".into(),
        },
    ))
}

#[tokio::test]
async fn wrong_or_missing_password_stops_start_up_naming_the_key_without_printing_it() {
    if skip() {
        return;
    }
    let prefix = "msgrelay-ha-acl";
    let acl = support::AclServer::start("the-right-pass-77", prefix);
    let dir = tempfile::tempdir().unwrap();
    let port = acl.server.port;
    for url in [
        format!("redis://msgrelay:wrong-pass-42@127.0.0.1:{port}/0"),
        format!("redis://:wrong-pass-42@127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}/0"),
    ] {
        let mut c = cfg(url.clone());
        c.key_prefix = prefix.into();
        match Queue::connect(&c, dir.path()).await {
            Err(QueueError::Config(msg)) => {
                assert!(msg.contains("queue.redis_url"), "{url}: {msg}");
                assert!(msg.contains("refused the credentials"), "{url}: {msg}");
                assert!(!msg.contains("wrong-pass-42"), "{url}: {msg}");
                assert!(!msg.contains("the-right-pass-77"), "{url}: {msg}");
            }
            Err(e) => panic!("{url}: wrong error: {e}"),
            Ok(_) => panic!("{url}: accepted"),
        }
    }
    // The right password works, and the relay's user cannot touch keys outside its prefix.
    let mut c = cfg(format!(
        "redis://msgrelay:the-right-pass-77@127.0.0.1:{port}/0"
    ));
    c.key_prefix = prefix.into();
    let q = Queue::connect(&c, dir.path()).await.unwrap();
    q.enqueue(message(1), None).await.unwrap();
    c.key_prefix = "someone-else".into();
    match Queue::connect(&c, dir.path()).await {
        Err(QueueError::Config(msg)) => {
            assert!(msg.contains("no permissions"), "{msg}");
            assert!(msg.contains("msgrelay-acl.conf"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("the ACL let the relay's user create keys outside its prefix"),
    }
}

#[tokio::test]
async fn a_tls_server_is_refused_unless_the_ca_file_vouches_for_it() {
    if skip() {
        return;
    }
    let tls = support::TlsServer::start();
    let other = tempfile::tempdir().unwrap();
    let foreign = support::make_certs(other.path());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rediss://localhost:{}/0", tls.server.port);

    let mut c = cfg(url.clone());
    c.allow_non_durable_redis = true;
    c.redis_ca_file = foreign.ca.clone();
    assert!(
        matches!(
            Queue::connect(&c, dir.path()).await,
            Err(QueueError::Unavailable(_))
        ),
        "a certificate from another CA was accepted"
    );
    // Without a CA file only the system's trust store counts, which does not know the test CA.
    c.redis_ca_file = Default::default();
    assert!(Queue::connect(&c, dir.path()).await.is_err());
    // Plain TCP to a TLS port does not work either.
    c.redis_url = format!("redis://localhost:{}/0", tls.server.port);
    assert!(Queue::connect(&c, dir.path()).await.is_err());
    // A relative CA file is read from the data directory.
    std::fs::copy(&tls.certs.ca, dir.path().join("redis-ca.pem")).unwrap();
    c.redis_url = url;
    c.redis_ca_file = "redis-ca.pem".into();
    let q = Queue::connect(&c, dir.path()).await.unwrap();
    q.enqueue(message(1), None).await.unwrap();
    assert_eq!(
        q.lease("w", 10, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        1
    );
    // A CA file that is not PEM stops start-up naming the key.
    std::fs::write(dir.path().join("redis-ca.pem"), "not a certificate").unwrap();
    match Queue::connect(&c, dir.path()).await {
        Err(QueueError::Config(msg)) => assert!(msg.contains("queue.redis_ca_file"), "{msg}"),
        other => panic!("wrong result: {:?}", other.err()),
    }
}

/// Without a replica to confirm, a `min_replicas_ack = 1` enqueue is `Unavailable` (the proxy's
/// 503); the entry is in the primary, and the client's retry with the same Idempotency-Key, once
/// the replica is back, gets the first id: one message, not two. A lease is refused the same way
/// while the replica is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_replication_is_unavailable_and_the_retry_is_safe() {
    if skip() {
        return;
    }
    let mut set = tokio::task::spawn_blocking(support::SentinelSet::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(format!("redis://127.0.0.1:{}/0", set.primary.port));
    c.min_replicas_ack = 1;
    c.replica_ack_timeout_ms = 200;
    let q = Queue::connect(&c, dir.path()).await.unwrap();
    let primary = set.primary.port;
    tokio::task::block_in_place(|| set.wait_replicas_online(primary, 1));
    // With the replica there, the enqueue is confirmed; on a busy box the confirmation can take
    // longer than the 200 ms allowed, and the retry with the same key finds the first entry.
    let first = message(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match q.enqueue(first.clone(), idem("k1")).await {
            Err(QueueError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(EnqueueOutcome::Enqueued) => break,
            Ok(EnqueueOutcome::Duplicate { id }) if id == first.id => break,
            other => panic!("a confirmed enqueue, not {other:?}"),
        }
    }

    set.replica.kill();
    let lost_ack = message(2);
    match q.enqueue(lost_ack.clone(), idem("k2")).await {
        Err(QueueError::Unavailable(msg)) => {
            assert!(msg.contains("queue.min_replicas_ack"), "{msg}")
        }
        other => panic!("no replica, yet: {other:?}"),
    }
    // Still unconfirmed: a retry is Unavailable again, never a second message.
    assert!(matches!(
        q.enqueue(message(2), idem("k2")).await,
        Err(QueueError::Unavailable(_))
    ));

    // Nor does a worker get an entry no replica confirmed: a failover could lose the entry with
    // its idempotency record after the delivery, and the client's retry would be stored twice.
    match q.lease("w", 10, Duration::from_secs(1)).await {
        Err(QueueError::Unavailable(msg)) => {
            assert!(msg.contains("queue.min_replicas_ack"), "{msg}")
        }
        other => panic!("leased without a replica: {other:?}"),
    }

    set.replica.restart();
    tokio::task::block_in_place(|| set.wait_replicas_online(primary, 1));
    // The client retries with the same key, as after any 503; a replica that is online but still
    // slow to confirm (a busy box) makes it retry once more, never yields a second message.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let retried = loop {
        match q.enqueue(message(2), idem("k2")).await {
            Err(QueueError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(retried, EnqueueOutcome::Duplicate { id: lost_ack.id });
    // The refused lease's entries come back together once idle for a lease (1 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut ids: Vec<MessageId> = Vec::new();
    while ids.is_empty() && std::time::Instant::now() < deadline {
        let leased = q.lease("w", 10, Duration::from_secs(1)).await.unwrap();
        ids = leased.iter().map(|l| l.id).collect();
        if ids.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    ids.sort();
    let mut want = vec![first.id, lost_ack.id];
    want.sort();
    assert_eq!(
        ids, want,
        "each entry handed out once, after its replica confirmed it"
    );
}

/// What a failover run saw.
struct Run {
    acknowledged: HashSet<MessageId>,
    delivered: HashMap<MessageId, usize>,
    acknowledged_after_kill: usize,
}

/// A client sending `total` messages one after another (each retried with its Idempotency-Key
/// until the queue answers), a worker leasing and acking, and a kill -9 of the primary after
/// `kill_after` acknowledgements. With replica acknowledgement the old primary is started again
/// once the sentinels have promoted the replica (they make it the new primary's replica), since
/// without a replica nothing can be confirmed.
/// The replicated set-up a failover test runs on.
enum Ha {
    Sentinel(Box<support::SentinelSet>),
    Cluster(support::Cluster),
}

impl Ha {
    fn url(&self) -> String {
        match self {
            Ha::Sentinel(s) => s.url(),
            Ha::Cluster(c) => c.url(),
        }
    }

    /// kill -9 of a primary, then waits until its replica serves in its place; with `restart`
    /// the old primary is started again (it rejoins as the new primary's replica).
    fn fail_over(&mut self, restart: bool) {
        let deadline = Instant::now() + Duration::from_secs(40);
        match self {
            Ha::Sentinel(set) => {
                let old = set.primary.port;
                set.primary.kill();
                let ports: Vec<u16> = set.sentinels.iter().map(|s| s.port).collect();
                loop {
                    assert!(Instant::now() < deadline, "the sentinels promoted nobody");
                    match named_primary(&ports, &set.master) {
                        Some(p) if p != old => {
                            assert_eq!(p, set.replica.port);
                            break;
                        }
                        _ => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
                if restart {
                    set.primary.restart();
                }
            }
            Ha::Cluster(c) => {
                let old = c.primaries()[0];
                c.node_mut(old).kill();
                loop {
                    assert!(Instant::now() < deadline, "no replica took over");
                    let p = c.primaries();
                    if p.len() == 3 && !p.contains(&old) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if restart {
                    c.node_mut(old).restart();
                }
            }
        }
    }
}

async fn failover_run(ha: Ha, min_replicas_ack: u32, total: usize, kill_after: usize) -> Run {
    let mut ha = ha;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(ha.url());
    c.min_replicas_ack = min_replicas_ack;
    if matches!(ha, Ha::Cluster(_)) {
        c.partitions = 3;
    }
    let producer_q = Queue::connect(&c, dir.path()).await.unwrap();
    let worker_q = Queue::connect(&c, dir.path()).await.unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(50);

    let producer = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..total {
                let key = format!("key-{n}");
                // As a client does: a new request (new id) per attempt, the same key throughout;
                // a duplicate answer names the attempt that got in.
                let id = loop {
                    assert!(Instant::now() < deadline, "the queue did not come back");
                    let m = message(n as u32);
                    match producer_q.enqueue(m.clone(), idem(&key)).await {
                        Ok(EnqueueOutcome::Enqueued) => break m.id,
                        Ok(EnqueueOutcome::Duplicate { id }) => break id,
                        Ok(other) => panic!("unexpected {other:?}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                acknowledged.push(id);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            acknowledged
        })
    };
    let delivered = Arc::new(Mutex::new(HashMap::<MessageId, usize>::new()));
    let worker = {
        let delivered = delivered.clone();
        tokio::spawn(async move {
            loop {
                if Instant::now() > deadline {
                    return;
                }
                match worker_q.lease("w1", 50, Duration::from_secs(2)).await {
                    Ok(batch) if !batch.is_empty() => {
                        let tokens: Vec<LeaseToken> =
                            batch.iter().map(|l| l.token.clone()).collect();
                        {
                            let mut d = delivered.lock().unwrap();
                            for l in &batch {
                                *d.entry(l.id).or_default() += 1;
                            }
                        }
                        let _ = worker_q.ack(&tokens).await;
                    }
                    Ok(_) => worker_q.wait_for_work(Duration::from_millis(50)).await,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    };

    while acked.load(Ordering::SeqCst) < kill_after {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_at_kill = acked.load(Ordering::SeqCst);
    // Without replica acknowledgement nothing needs a replica afterwards.
    let restart = min_replicas_ack > 0;
    let ha = tokio::task::spawn_blocking(move || {
        ha.fail_over(restart);
        ha
    })
    .await
    .unwrap();

    let acknowledged: HashSet<MessageId> = producer.await.unwrap().into_iter().collect();
    let acknowledged_after_kill = acknowledged.len().saturating_sub(acked_at_kill);
    // Let the worker drain what is there.
    while Instant::now() < deadline {
        let done = {
            let d = delivered.lock().unwrap();
            acknowledged.iter().all(|id| d.contains_key(id))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.abort();
    drop(ha);
    let delivered = delivered.lock().unwrap().clone();
    Run {
        acknowledged,
        delivered,
        acknowledged_after_kill,
    }
}

fn named_primary(sentinels: &[u16], master: &str) -> Option<u16> {
    for port in sentinels {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
            continue;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let addr: redis::RedisResult<Option<(String, String)>> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query(&mut con);
        if let Ok(Some((_, p))) = addr {
            return p.parse().ok();
        }
    }
    None
}

/// kill -9 of the primary mid-stream with `min_replicas_ack = 1`: the sentinels promote the
/// replica, the producer and the worker follow by themselves, and every message that was
/// acknowledged is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_with_replica_ack_loses_no_acknowledged_message() {
    if skip() {
        return;
    }
    let set = tokio::task::spawn_blocking(support::SentinelSet::start)
        .await
        .unwrap();
    let run = failover_run(Ha::Sentinel(Box::new(set)), 1, 400, 150).await;
    assert_no_loss(&run, "Sentinel, min_replicas_ack=1");
}

fn assert_no_loss(run: &Run, what: &str) {
    assert_eq!(run.acknowledged.len(), 400);
    assert!(
        run.acknowledged_after_kill > 0,
        "nothing was acknowledged after the failover"
    );
    let lost: Vec<_> = run
        .acknowledged
        .iter()
        .filter(|id| !run.delivered.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages were lost in the failover",
        lost.len()
    );
    let redelivered = run.delivered.values().filter(|n| **n > 1).count();
    eprintln!(
        "failover ({what}): {} acknowledged, 0 lost, {} delivered more than once (the server's upsert absorbs these)",
        run.acknowledged.len(),
        redelivered
    );
}

/// The same failover without replica acknowledgement: the queue continues on the new primary;
/// whatever the primary acknowledged but had not yet replicated is lost, and the test reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_without_replica_ack_continues_on_the_new_primary() {
    if skip() {
        return;
    }
    let set = tokio::task::spawn_blocking(support::SentinelSet::start)
        .await
        .unwrap();
    let run = failover_run(Ha::Sentinel(Box::new(set)), 0, 400, 150).await;
    assert_eq!(run.acknowledged.len(), 400);
    assert!(run.acknowledged_after_kill > 0);
    let lost = run
        .acknowledged
        .iter()
        .filter(|id| !run.delivered.contains_key(id))
        .count();
    eprintln!(
        "failover with min_replicas_ack=0: {} acknowledged, {lost} lost",
        run.acknowledged.len()
    );
}

/// kill -9 of a cluster primary mid-stream (3 primaries, 3 replicas, 3 partitions,
/// `min_replicas_ack = 1`): its replica takes over, the queue continues, nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_with_replica_ack_loses_no_acknowledged_message() {
    if skip() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(support::Cluster::start)
        .await
        .unwrap();
    let run = failover_run(Ha::Cluster(cluster), 1, 400, 150).await;
    assert_no_loss(&run, "Cluster, min_replicas_ack=1");
}

/// What an earlier version queued under the original key names (`<p>:stream`, `<p>:idem:…`) is
/// delivered after the upgrade, and its idempotency records still hold — with `partitions = 1`
/// (same names) and after switching to 3 partitions; entries of the 3 partitions are still
/// delivered after switching back.
#[tokio::test]
async fn entries_under_the_original_key_names_survive_the_upgrade_and_partition_changes() {
    let url = std::env::var("MSGRELAY_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if !msgrelay_testkit::available("Redis", msgrelay_testkit::tcp_reachable(&url, 6379)) {
        return;
    }
    let mut one = cfg(url.clone());
    one.allow_non_durable_redis = true;
    let p = one.key_prefix.clone();
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();
    // What the previous version left: a group, two entries, the record of the second one's key.
    let (old1, old2) = (MessageId::new(), MessageId::new());
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(format!("{p}:stream"))
        .arg(format!("{p}:workers"))
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await
        .unwrap();
    for id in [old1, old2] {
        let _: String = redis::cmd("XADD")
            .arg(format!("{p}:stream"))
            .arg("*")
            .arg("id")
            .arg(id.0.to_string())
            .arg("client")
            .arg("demo")
            .arg("payload")
            .arg(b"sealed".as_slice())
            .arg("acc")
            .arg(now_ms())
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(format!("{p}:idem:demo:old-key"))
        .arg(format!("{}|hash", old2.0))
        .arg("EX")
        .arg(3600)
        .query_async(&mut con)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let q1 = Queue::connect(&one, dir.path()).await.unwrap();
    assert_eq!(q1.stats().await.unwrap().ready, 2);
    assert_eq!(
        q1.enqueue(message(9), idem("old-key")).await.unwrap(),
        EnqueueOutcome::Duplicate { id: old2 }
    );

    let mut three = one.clone();
    three.partitions = 3;
    let q3 = Queue::connect(&three, dir.path()).await.unwrap();
    assert_eq!(
        q3.enqueue(message(9), idem("old-key")).await.unwrap(),
        EnqueueOutcome::Duplicate { id: old2 },
        "a record under the original names still holds after the switch to 3 partitions"
    );
    let mut new_ids = HashSet::new();
    for n in 0..6 {
        let m = message(n);
        new_ids.insert(m.id);
        let key = format!("new-{n}");
        q3.enqueue(m, if n % 2 == 0 { idem(&key) } else { None })
            .await
            .unwrap();
    }
    assert_eq!(q3.depth().await.unwrap(), 8);
    let leased = q3.lease("w", 100, Duration::from_secs(30)).await.unwrap();
    let got: HashSet<MessageId> = leased.iter().map(|l| l.id).collect();
    let mut want = new_ids.clone();
    want.extend([old1, old2]);
    assert_eq!(
        got, want,
        "the partitioned queue delivers the old entries too"
    );
    let tokens: Vec<LeaseToken> = leased.iter().map(|l| l.token.clone()).collect();
    assert_eq!(q3.ack(&tokens).await.unwrap(), 8);

    // Back to one partition: what the 3 partitions hold is still delivered.
    let later: Vec<NewMessage> = (0..3).map(message).collect();
    for m in &later {
        q3.enqueue(m.clone(), None).await.unwrap();
    }
    let q1 = Queue::connect(&one, dir.path()).await.unwrap();
    let leased = q1.lease("w", 100, Duration::from_secs(30)).await.unwrap();
    let got: HashSet<MessageId> = leased.iter().map(|l| l.id).collect();
    assert_eq!(got, later.iter().map(|m| m.id).collect::<HashSet<_>>());

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*"))
        .query_async(&mut con)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut con)
            .await
            .unwrap();
    }
}
