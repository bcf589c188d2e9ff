//! Backpressure: once the queue holds `queue.max_depth` undelivered messages the proxy answers
//! `503` (problem type `saturated`, `Retry-After`) instead of enqueuing, `/ready` and a gauge say
//! so, and nothing it accepted before is lost or duplicated when delivery resumes.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use crate::support::relay::{command, Stack, FAST_RETRY};
use crate::support::{serial, wait_for};

const MAX_DEPTH: usize = 40;

/// What the proxy answered to one POST.
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<u64>,
    body: serde_json::Value,
}

fn post(rt: &tokio::runtime::Runtime, client: &reqwest::Client, url: &str, n: usize) -> Answer {
    rt.block_on(async {
        let msg = serde_json::json!({"sender_number": "+15551234567", "message_body": format!("backlog {n}")});
        let r = client.post(url).header("Idempotency-Key", format!("bp-{n}")).json(&msg).send().await.expect("the proxy answers");
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, content_type) = (r.status().as_u16(), header("content-type").unwrap_or_default());
        let retry_after = header("retry-after").and_then(|v| v.parse().ok());
        Answer { status, content_type, retry_after, body: r.json().await.unwrap_or_default() }
    })
}

#[test]
fn queue_at_max_depth_answers_503_saturated_then_every_accepted_message_is_delivered_once() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut s = Stack::new();
    s.start_server();
    s.start_proxy_with(&[("QUEUE__MAX_DEPTH", &MAX_DEPTH.to_string())]);
    s.start_worker(FAST_RETRY);
    s.server.as_mut().expect("server").kill9(); // deliveries fail: the backlog grows

    let (cert, key, ca) = s.demo_bundle();
    let read = |p: &std::path::Path| std::fs::read(p).expect("bundle file");
    let client = msgrelay_tls::mtls_client(
        &read(&ca),
        &read(&cert),
        &read(&key),
        Duration::from_secs(30),
    )
    .expect("client");
    let url = format!("{}/api/v1/messages", s.proxy_url());
    let mut accepted = HashSet::new();
    let mut saturated = 0;
    let mut first_refusal: Option<std::time::Instant> = None;
    for n in 0..100 * MAX_DEPTH {
        let a = post(&rt, &client, &url, n);
        match a.status {
            202 => assert!(
                accepted.insert(
                    a.body["id"]
                        .as_str()
                        .expect("202 carries the id")
                        .to_owned()
                ),
                "an id answered twice"
            ),
            503 => {
                assert_eq!(a.content_type, "application/problem+json");
                let kind = a.body["type"].as_str().unwrap_or_default();
                assert!(
                    kind.ends_with("/saturated"),
                    "the problem type says the relay is saturated: {}",
                    a.body
                );
                assert!(
                    a.retry_after.is_some_and(|s| s > 0),
                    "Retry-After in seconds"
                );
                saturated += 1;
                // Keep going across several depth reads, so the state seen below is the settled one.
                if first_refusal
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    > Duration::from_millis(1500)
                    && saturated >= 20
                {
                    break;
                }
            }
            other => panic!("unexpected answer {other}: {}", a.body),
        }
    }
    assert!(
        saturated >= 20,
        "the proxy refused messages once the queue was full ({} accepted)",
        accepted.len()
    );
    assert!(
        // Within a few: an enqueue that lands while the depth is being read counts twice until the next read.
        (MAX_DEPTH - 3..=MAX_DEPTH + 2).contains(&accepted.len()),
        "accepting stops at queue.max_depth = {MAX_DEPTH}: {} accepted",
        accepted.len()
    );
    assert_eq!(
        s.stream_len() as usize,
        accepted.len(),
        "exactly the messages answered 202 are queued"
    );

    let proxy = s.proxy.as_ref().expect("proxy");
    let report = proxy.ready_report();
    assert_eq!(
        report["ready"], false,
        "/ready reports the saturation: {report}"
    );
    assert!(
        report["checks"]["backpressure"]
            .as_str()
            .unwrap_or_default()
            .contains("saturated"),
        "{report}"
    );
    assert_eq!(proxy.metric("msgrelay_queue_saturated"), 1.0);

    // A client that honours Retry-After gets through once the backlog drains.
    let (c, k, a) = (
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string(),
    );
    let send = command(
        &[
            "send",
            "--url",
            &s.proxy_url(),
            "--cert",
            &c,
            "--key",
            &k,
            "--ca",
            &a,
            "--sender",
            "+15557654321",
            "--body",
            "after",
            "--retries",
            "30",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn msgrelay send");

    s.start_server(); // same port: the worker's retries reach it
    let out = send.wait_with_output().expect("send output");
    assert!(
        out.status.success(),
        "msgrelay send gave up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let late_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!accepted.contains(&late_id));
    accepted.insert(late_id);

    s.assert_all_delivered(accepted.len() as u64, Duration::from_secs(90));
    let stored: HashSet<String> =
        s.db.query("msgrelay", "SELECT id FROM messages")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    assert_eq!(
        stored, accepted,
        "the stored messages are exactly the accepted ones"
    );

    let proxy = s.proxy.as_ref().expect("proxy");
    wait_for(
        "the proxy to be ready again",
        Duration::from_secs(20),
        || (proxy.ready_report()["ready"] == true).then_some(()),
    );
    assert_eq!(proxy.metric("msgrelay_queue_saturated"), 0.0);
}
