//! The hand-over's outcomes against an in-process fake main server (plain HTTP on port 0; TLS is
//! the tls crate's business) and a real embedded queue: what the server confirms stored is acked,
//! what it rejects is dead-lettered, what it asks to retry or does not answer for comes back after
//! the retry interval, a failed request acks nothing, and with several servers a failed one hands
//! the batch to the next at once.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use msgrelay_core::deliver_batch::{self, BatchItem};
use msgrelay_core::wire::{DeliverOutcome, DeliverResponse, DeliverResult, REJECTED_DEAD_LETTER};
use msgrelay_core::{now_ms, ClientId, Config, MessageId, ServerList};
use msgrelay_ops::Metrics;
use msgrelay_queue::{NewMessage, Queue, QueueStats};

use super::Deliverer;

/// Retries are scheduled an hour out, so a retried message shows as `delayed`.
const RETRY: Duration = Duration::from_secs(3600);

type Answer = Result<DeliverResponse, axum::http::StatusCode>;

/// Serves `/internal/messages/deliver`, answering each decoded batch with `answer(batch)`.
async fn fake_server<F>(answer: F) -> String
where
    F: Fn(Vec<BatchItem>) -> Answer + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route(
        "/internal/messages/deliver",
        post(move |body: axum::body::Bytes| {
            let answer = answer.clone();
            async move {
                let items = deliver_batch::decode(&body)
                    .map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
                answer(items).map(Json)
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn queue(dir: &tempfile::TempDir) -> Queue {
    let mut cfg = Config::default().queue;
    cfg.sqlite_path = dir.path().join("queue.db");
    Queue::connect(&cfg, dir.path())
        .await
        .expect("embedded queue")
}

fn deliverer(queue: Queue, url: String) -> Deliverer {
    deliverer_to(queue, &[url])
}

/// A deliverer whose batches go to these main servers (base URLs) in turn.
fn deliverer_to(queue: Queue, urls: &[String]) -> Deliverer {
    Deliverer {
        queue,
        client: reqwest::Client::new(),
        servers: Arc::new(ServerList::new(urls)),
        timeout: Duration::from_secs(5),
        metrics: Arc::new(Metrics::new()),
        lease: Duration::from_secs(60),
        retry: RETRY,
        max_attempts: 10,
        batch: 10,
        pacer: Arc::new(super::LeasePacer::new(Duration::ZERO)),
    }
}

fn message(id: MessageId) -> NewMessage {
    NewMessage {
        id,
        client_id: ClientId::parse("shop").expect("client id"),
        payload: b"sealed".to_vec(),
        accepted_at_ms: now_ms(),
    }
}

async fn enqueue(queue: &Queue, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = MessageId::new();
        queue.enqueue(message(id), None).await.expect("enqueue");
        ids.push(id);
    }
    ids
}

fn result(id: MessageId, outcome: DeliverOutcome) -> DeliverResult {
    DeliverResult {
        id,
        outcome,
        reason: (outcome != DeliverOutcome::Stored).then(|| "test".to_owned()),
    }
}

/// Leases everything due and hands it to the fake server once.
async fn deliver_once(q: &Queue, d: &Deliverer) -> usize {
    let leased = q.lease("test-0", 10, d.lease).await.expect("lease");
    let n = leased.len();
    d.deliver(leased).await;
    n
}

fn stats(ready: u64, delayed: u64, failed: u64) -> QueueStats {
    QueueStats {
        ready,
        in_flight: 0,
        delayed,
        failed,
    }
}

#[tokio::test]
async fn stored_is_acked_rejected_is_dead_lettered_retry_and_unanswered_come_back_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = queue(&dir).await;
    let ids = enqueue(&q, 4).await;
    // ids[3] gets no answer at all.
    let (stored, rejected, retry) = (ids[0], ids[1], ids[2]);
    let url = fake_server(move |items| {
        assert_eq!(items.len(), 4, "one batch");
        Ok(DeliverResponse {
            results: vec![
                result(stored, DeliverOutcome::Stored),
                result(rejected, DeliverOutcome::Rejected),
                result(retry, DeliverOutcome::Retry),
                // An id the worker never sent is ignored, not acked.
                result(MessageId::new(), DeliverOutcome::Stored),
            ],
        })
    })
    .await;
    let d = deliverer(q.clone(), url);
    assert_eq!(deliver_once(&q, &d).await, 4);

    assert_eq!(q.stats().await.expect("stats"), stats(0, 2, 1));
    let failed = q.list_failed(10).await.expect("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, rejected);
    assert_eq!(failed[0].last_error, REJECTED_DEAD_LETTER);
    assert_eq!(d.metrics.delivered.get(), 1);
    assert_eq!(d.metrics.dead_lettered.get(), 1);
    assert_eq!(
        (
            d.metrics.delivery_attempts.get(),
            d.metrics.delivery_batches.get()
        ),
        (4, 1),
        "four attempts in one batch"
    );
    // Nothing else is due now: the retried and the unanswered message wait for the interval.
    q.retry_failed(None).await.expect("retry failed");
    let again = q.lease("test-0", 10, d.lease).await.expect("lease");
    assert_eq!(
        again.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![rejected],
        "only the put-back dead letter is due now"
    );
}

#[tokio::test]
async fn a_refused_request_retries_the_whole_batch_and_acks_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = queue(&dir).await;
    enqueue(&q, 2).await;
    let url = fake_server(|_| Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)).await;
    let d = deliverer(q.clone(), url);
    deliver_once(&q, &d).await;
    assert_eq!(q.stats().await.expect("stats"), stats(0, 2, 0));
    assert_eq!(d.metrics.delivered.get(), 0);
}

#[tokio::test]
async fn an_unreachable_server_retries_the_whole_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = queue(&dir).await;
    enqueue(&q, 3).await;
    // A port nobody listens on: bind, read the address, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let d = deliverer(q.clone(), url);
    deliver_once(&q, &d).await;
    assert_eq!(q.stats().await.expect("stats"), stats(0, 3, 0));
}

#[tokio::test]
async fn a_batch_refused_by_one_main_server_goes_to_the_next_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = queue(&dir).await;
    enqueue(&q, 3).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let refusing = fake_server(|_| Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)).await;
    let storing = fake_server(|items| {
        Ok(DeliverResponse {
            results: items
                .iter()
                .map(|m| result(m.id, DeliverOutcome::Stored))
                .collect(),
        })
    })
    .await;
    let d = deliverer_to(q.clone(), &[dead, refusing, storing]);
    // Whichever server the round-robin starts with, the batch reaches the storing one in the
    // same attempt: nothing waits for a retry.
    deliver_once(&q, &d).await;
    assert_eq!(q.stats().await.expect("stats"), stats(0, 0, 0));
}

#[tokio::test]
async fn an_empty_answer_acks_nothing_and_retries_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = queue(&dir).await;
    enqueue(&q, 2).await;
    let url = fake_server(|_| {
        Ok(DeliverResponse {
            results: Vec::new(),
        })
    })
    .await;
    let d = deliverer(q.clone(), url);
    deliver_once(&q, &d).await;
    assert_eq!(q.stats().await.expect("stats"), stats(0, 2, 0));
    assert!(q.list_failed(10).await.expect("failed").is_empty());
}

#[tokio::test]
async fn answers_in_a_different_order_are_matched_by_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = queue(&dir).await;
    let ids = enqueue(&q, 3).await;
    let (first, second, third) = (ids[0], ids[1], ids[2]);
    let url = fake_server(move |_| {
        Ok(DeliverResponse {
            results: vec![
                result(third, DeliverOutcome::Rejected),
                result(first, DeliverOutcome::Stored),
                result(second, DeliverOutcome::Stored),
            ],
        })
    })
    .await;
    let d = deliverer(q.clone(), url);
    deliver_once(&q, &d).await;
    assert_eq!(q.stats().await.expect("stats"), stats(0, 0, 1));
    let failed = q.list_failed(10).await.expect("failed");
    assert_eq!(failed.iter().map(|f| f.id).collect::<Vec<_>>(), vec![third]);
    assert_eq!(d.metrics.delivered.get(), 2);
}

#[test]
fn an_idle_worker_polls_quickly_at_first_then_backs_off_to_half_a_second() {
    let mut wait = super::IDLE_WAIT_MIN;
    let mut waits = vec![wait];
    for _ in 0..8 {
        wait = super::next_idle_wait(wait);
        waits.push(wait);
    }
    let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [10, 20, 40, 80, 160, 320, 500, 500, 500]);
}
