//! Several main servers on one store: workers and proxies list them all (`main_server_urls`),
//! spread their calls over them and fail over when one dies.

use std::time::Duration;

use crate::support::relay::{bench_result, Stack, FAST_RETRY};
use crate::support::{serial, wait_for};

#[test]
fn a_main_server_killed_mid_load_is_failed_over_and_nothing_is_lost() {
    let _serial = serial();
    let mut s = Stack::new();
    s.start_server();
    s.start_another_server();
    s.start_proxy();
    for _ in 0..2 {
        s.start_worker(FAST_RETRY);
    }
    let load = s.bench_spawn(6_000, 32, &[]);
    wait_for(
        "the first 1000 messages stored",
        Duration::from_secs(60),
        || (s.counts().rows >= 1_000).then_some(()),
    );
    // Both servers took batches (the workers' connections to each are open) before one dies.
    for server in [s.server.as_ref().expect("server"), &s.more_servers[0]] {
        assert!(
            server.metric("msgrelay_connections_open") > 0.0,
            "{} has connections from the workers and the proxy",
            server.name
        );
    }
    s.server.as_mut().expect("server").kill9();
    let sent = bench_result(load);
    assert_eq!(sent.errors, 0, "the proxy accepted throughout");
    // The first server stays dead: every message reaches the store through the second.
    s.assert_all_delivered(sent.accepted, Duration::from_secs(120));
    assert!(
        s.workers
            .iter()
            .any(|w| w.log().contains("main server failed; trying the next one")),
        "a worker logged the failover"
    );

    // A proxy started while the first listed server is dead fetches its keys and registry from
    // the second one and accepts.
    s.start_proxy();
    let more = s.bench(500, 8);
    assert_eq!(more.errors, 0);
    s.assert_all_delivered(sent.accepted + more.accepted, Duration::from_secs(60));
}
