//! Worker processes sharing one consumer group: exactly-once storage, and recovery from `kill -9`.

use std::time::Duration;

use crate::support::relay::{Stack, FAST_RETRY};
use crate::support::{serial, wait_for};

/// Lease 3 s > delivery timeout 2 s: a dead worker's entries come back quickly.
const SHORT_LEASE: &[(&str, &str)] = &[
    ("WORKER__LEASE_SECS", "3"),
    ("WORKER__DELIVERY_TIMEOUT_SECS", "2"),
    ("WORKER__RETRY_INTERVAL_SECS", "1"),
];

#[test]
fn three_worker_processes_store_10000_messages_exactly_once() {
    let _serial = serial();
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy();
    for _ in 0..3 {
        s.start_worker(FAST_RETRY);
    }
    let sent = s.bench(10_000, 32);
    assert_eq!(sent.errors, 0, "no request failed");
    assert_eq!(sent.accepted, 10_000);
    s.assert_all_delivered(sent.accepted, Duration::from_secs(150));
    for w in &s.workers {
        let n = w.metric("msgrelay_messages_delivered_total");
        assert!(
            n > 0.0,
            "{} delivered nothing: the three processes share the consumer group",
            w.name
        );
        eprintln!("{} delivered {n}", w.name);
    }
}

#[test]
fn kill_9_of_a_worker_mid_batch_loses_nothing() {
    let _serial = serial();
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy();
    let sent = s.bench(2_000, 32);
    assert_eq!(sent.errors, 0);

    // With the main server frozen, the worker's hand-over hangs: its batches stay leased (pending).
    s.server.as_ref().expect("server").pause(true);
    s.start_worker(SHORT_LEASE);
    wait_for(
        "the first worker to lease entries",
        Duration::from_secs(10),
        || (s.pending() > 0).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300)); // let all its tasks lease (well inside the 2 s timeout)
    s.workers[0].kill9();
    let orphaned = s.pending();
    assert!(orphaned > 0, "the killed worker left entries pending");
    s.server.as_ref().expect("server").pause(false);

    // A second worker process reclaims them once idle longer than the lease (XAUTOCLAIM).
    s.start_worker(SHORT_LEASE);
    let counts = s.assert_all_delivered(sent.accepted, Duration::from_secs(60));
    assert!(
        counts.retried >= orphaned as u64,
        "{orphaned} reclaimed entries were delivered on a second attempt (attempt_count 2): {counts:?}"
    );
}
