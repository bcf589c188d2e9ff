//! Redis, MariaDB or the main server unavailable for a while: nothing accepted is lost, and
//! everything resumes by itself when the server returns.

use std::time::{Duration, Instant};

use crate::support::redis::RedisServer;
use crate::support::relay::{bench_result, Role, Stack};
use crate::support::{serial, wait_for};

const SHORT_LEASE: &[(&str, &str)] = &[
    ("WORKER__LEASE_SECS", "3"),
    ("WORKER__DELIVERY_TIMEOUT_SECS", "2"),
    ("WORKER__RETRY_INTERVAL_SECS", "1"),
];

#[test]
fn redis_crash_with_5000_queued_loses_nothing() {
    let _serial = serial();
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy();
    let sent = s.bench(5_000, 32);
    assert_eq!(sent.errors, 0);
    assert_eq!(
        s.stream_len(),
        sent.accepted as i64,
        "all queued, no worker running"
    );

    s.redis.kill(); // SIGKILL: only the AOF (fsync always) survives
    s.redis.restart();
    assert_eq!(
        s.stream_len(),
        sent.accepted as i64,
        "every acknowledged XADD was in the AOF"
    );

    s.start_worker(SHORT_LEASE);
    s.start_worker(SHORT_LEASE);
    s.assert_all_delivered(sent.accepted, Duration::from_secs(90));
}

#[test]
fn mariadb_down_during_delivery_then_all_delivered_with_retries_counted() {
    let _serial = serial();
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy();
    s.start_worker(SHORT_LEASE);
    s.start_worker(SHORT_LEASE);
    // A steady stream (about 12 s) so that deliveries are in progress when the database goes away.
    let bench = s.bench_spawn(3_000, 8, &["--rate", "250"]);
    wait_for("the first deliveries", Duration::from_secs(30), || {
        (s.counts().delivered >= 200).then_some(())
    });
    s.db.kill();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(15)); // the outage itself, not a synchronisation
    s.db.restart();
    eprintln!("MariaDB was down for {:.1} s", down.elapsed().as_secs_f64());

    let sent = bench_result(bench);
    assert_eq!(
        sent.errors, 0,
        "the proxy kept accepting while the database was down"
    );
    let counts = s.assert_all_delivered(sent.accepted, Duration::from_secs(90));
    assert!(
        counts.retried > 0,
        "deliveries during the outage were retried and attempt_count says so: {counts:?}"
    );
}

#[test]
fn main_server_down_then_backlog_drains() {
    let _serial = serial();
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy();
    s.start_worker(SHORT_LEASE);
    s.start_worker(SHORT_LEASE);
    s.server.as_mut().expect("server").kill9();

    let sent = s.bench(3_000, 32);
    assert_eq!(
        sent.errors, 0,
        "the proxy accepts while the main server is down"
    );
    wait_for(
        "failed deliveries to be scheduled for retry",
        Duration::from_secs(20),
        || {
            let w = &s.workers[0];
            (w.metric("msgrelay_delivery_failures_total") > 0.0
                || s.redis.int(&["ZCARD", &format!("{}:delayed", s.prefix)]) > 0)
                .then_some(())
        },
    );
    assert_eq!(s.counts().delivered, 0);

    s.start_server(); // same port: the workers keep their URL
    let back = Instant::now();
    // A generous deadline, not a speed check: how fast a backlog drains is measured by
    // `scripts/bench.sh --backlog` (docs/benchmarks.md), never asserted here.
    s.assert_all_delivered(sent.accepted, Duration::from_secs(240));
    let secs = back.elapsed().as_secs_f64();
    eprintln!(
        "backlog of {} drained in {secs:.1} s ({:.0} msgs/s)",
        sent.accepted,
        sent.accepted as f64 / secs
    );
}

/// What the proxy answered to one POST.
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    id: Option<String>,
    took: Duration,
}

/// Posts one message with the demo client, with an `Idempotency-Key` when given.
fn post(s: &Stack, rt: &tokio::runtime::Runtime, key: Option<&str>) -> Answer {
    let (cert, key_file, ca) = s.demo_bundle();
    let read = |p: &std::path::Path| std::fs::read(p).expect("bundle file");
    let client = msgrelay_tls::mtls_client(
        &read(&ca),
        &read(&cert),
        &read(&key_file),
        Duration::from_secs(30),
    )
    .expect("client");
    let url = format!(
        "https://localhost:{}/api/v1/messages",
        s.proxy.as_ref().expect("proxy").port("proxy")
    );
    rt.block_on(async {
        let started = Instant::now();
        let mut req = client
            .post(&url)
            .json(&serde_json::json!({"sender_number": "+15551234567", "message_body": "outage"}));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.expect("the proxy answers");
        let took = started.elapsed();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (status, content_type, retry_after) = (
            r.status().as_u16(),
            header("content-type").unwrap_or_default(),
            header("retry-after"),
        );
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        let id = body.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        Answer {
            status,
            content_type,
            retry_after,
            id,
            took,
        }
    })
}

fn assert_503(what: &str, a: &Answer) {
    assert_eq!(a.status, 503, "{what}: 503");
    assert_eq!(
        a.content_type, "application/problem+json",
        "{what}: problem+json"
    );
    assert!(
        a.retry_after
            .as_deref()
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{what}: Retry-After in seconds"
    );
    assert!(
        a.took <= Duration::from_secs(2),
        "{what}: answered within 2 s, took {:?}",
        a.took
    );
    eprintln!("{what}: 503 after {} ms", a.took.as_millis());
}

#[test]
fn proxy_answers_503_while_redis_is_down_and_202_when_it_is_back() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy();
    let mut ids = std::collections::HashSet::new();
    let mut accept =
        |a: Answer| (a.status == 202).then(|| ids.insert(a.id.expect("202 carries the id")));
    assert!(accept(post(&s, &rt, None)).is_some());

    // Frozen server (accepts, never answers): the write may still land once it thaws, so the 503
    // is ambiguous, as the problem's detail says: the client retries with the same Idempotency-Key.
    s.redis.pause(true);
    assert_503("Redis frozen", &post(&s, &rt, Some("frozen-1")));
    s.redis.pause(false);
    wait_for(
        "202 for the retried request after Redis thawed",
        Duration::from_secs(15),
        || accept(post(&s, &rt, Some("frozen-1"))),
    );

    // Server gone (connection refused): a 503 fast, and 202 again once it is back, same proxy process.
    s.redis.kill();
    assert_503("Redis down", &post(&s, &rt, None));
    assert_503("Redis still down", &post(&s, &rt, None));
    s.redis.restart();
    wait_for(
        "202 after Redis restarted, without restarting the proxy",
        Duration::from_secs(15),
        || accept(post(&s, &rt, None)),
    );

    assert_eq!(
        s.stream_len() as usize,
        ids.len(),
        "exactly the messages answered 202 are queued, each once"
    );
}

/// With `queue.min_replicas_ack = 1` the proxy answers 202 only once the replica has the entry:
/// with the replica down it answers 503 problem+json with Retry-After, and the client's retry with
/// the same Idempotency-Key, once the replica is back, gets a 202 — and the message is queued once.
#[test]
fn replicas_not_confirming_is_503_and_the_retry_is_stored_once() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut s = Stack::new();
    let primary = s.redis.port.to_string();
    let mut replica =
        RedisServer::start(&["--appendonly", "yes", "--replicaof", "127.0.0.1", &primary]);
    let replica_online = |s: &Stack| {
        wait_for("the replica online", Duration::from_secs(30), || {
            s.redis
                .cli(&["INFO", "replication"])
                .contains("state=online")
                .then_some(())
        })
    };
    replica_online(&s);
    s.start_server();
    s.start_proxy_with(&[
        ("QUEUE__MIN_REPLICAS_ACK", "1"),
        ("QUEUE__REPLICA_ACK_TIMEOUT_MS", "300"),
    ]);
    let first = post(&s, &rt, Some("replicated-1"));
    assert_eq!(first.status, 202, "the replica confirmed");

    replica.kill();
    assert_503("no replica", &post(&s, &rt, Some("replicated-2")));
    assert_503("still no replica", &post(&s, &rt, Some("replicated-2")));
    replica.restart();
    replica_online(&s);
    let retried = wait_for(
        "202 for the retried request once the replica is back",
        Duration::from_secs(15),
        || {
            let a = post(&s, &rt, Some("replicated-2"));
            (a.status == 202).then_some(a)
        },
    );
    assert_ne!(retried.id, first.id);
    assert_eq!(
        s.stream_len(),
        2,
        "the two 503 attempts and the 202 are one message"
    );
}

/// A wrong Redis password stops the proxy and the worker naming `queue.redis_url`, and neither the
/// wrong nor the right password appears in their output.
#[test]
fn wrong_redis_password_stops_start_up_naming_the_key_without_printing_it() {
    let _serial = serial();
    let s = Stack::new();
    let locked = RedisServer::durable();
    // Set after start: the helper's readiness check is an unauthenticated PING.
    locked.cli(&["CONFIG", "SET", "requirepass", "right-pass-5150"]);
    for url in [
        format!("redis://:wrong-pass-8086@127.0.0.1:{}/0", locked.port),
        format!("redis://127.0.0.1:{}/0", locked.port),
    ] {
        for role in ["proxy", "worker"] {
            let mut env = s.env();
            env.push(("MSGRELAY_QUEUE__REDIS_URL".into(), url.clone()));
            let out = match Role::spawn(role, &[role], &env, s.data_dir()) {
                Ok(_) => panic!("{role} started with {url}"),
                Err(out) => out,
            };
            assert!(out.contains("queue.redis_url"), "{role}:\n{out}");
            assert!(out.contains("refused the credentials"), "{role}:\n{out}");
            assert!(!out.contains("wrong-pass-8086"), "{role}:\n{out}");
            assert!(!out.contains("right-pass-5150"), "{role}:\n{out}");
        }
    }
}
