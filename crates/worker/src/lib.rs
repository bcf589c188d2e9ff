//! The worker role: `worker.concurrency` tasks each lease a batch of due messages, hand it to the
//! main server (`/internal/messages/deliver`, mutual TLS) and acknowledge only what the server
//! confirmed stored. Failures leave messages for a fixed-interval retry; a crashed worker's leases
//! expire and another worker takes them. Delivery is idempotent on the message id, so the
//! at-least-once hand-over stores every message exactly once.
//!
//! The tasks lease one at a time, and while the queue holds less than a batch the process's
//! leases are spaced 10 ms apart, so that messages arriving one by one still travel in batches
//! (`pacer`).
//!
//! With several main servers (`worker.main_server_urls`) each batch goes to the next healthy one
//! in turn; a batch whose server fails goes at once to the next, as long as its lease still has
//! room for a whole delivery timeout (any server may take any batch: delivery is idempotent).

use std::sync::Arc;
use std::time::{Duration, Instant};

use msgrelay_core::deliver_batch;
use msgrelay_core::wire::{DeliverOutcome, DeliverResponse, DeliverResult, REJECTED_DEAD_LETTER};
use msgrelay_core::{now_ms, Config, ServerList};
use msgrelay_ops::Metrics;
use msgrelay_queue::{LeaseToken, Leased, Queue};
use msgrelay_tls::Pki;
use tokio_util::sync::CancellationToken;

use crate::pacer::LeasePacer;

mod pacer;
#[cfg(test)]
mod tests;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("PKI: {0}")]
    Pki(#[from] msgrelay_tls::PkiError),
}

/// Running delivery tasks.
pub struct Worker {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct Deliverer {
    queue: Queue,
    client: reqwest::Client,
    servers: Arc<ServerList>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    lease: Duration,
    retry: Duration,
    max_attempts: u32,
    batch: usize,
    /// Shared by the process's deliverers: spaces their leases while batches are partial.
    pacer: Arc<LeasePacer>,
}

impl Worker {
    /// Starts the delivery tasks on `queue` (the caller connects it and registers its readiness
    /// check and depth sampler); stops them (after the batch in hand) on `shutdown`.
    pub async fn start(
        cfg: Arc<Config>,
        queue: Queue,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, WorkerError> {
        let w = &cfg.worker;
        let pki = Pki::new(cfg.path("pki"));
        let client = msgrelay_tls::service_client(
            &pki,
            "worker",
            Duration::from_secs(w.delivery_timeout_secs),
        )?;
        let d = Deliverer {
            queue: queue.clone(),
            client,
            servers: Arc::new(ServerList::new(&w.main_servers())),
            timeout: Duration::from_secs(w.delivery_timeout_secs),
            metrics: metrics.clone(),
            lease: Duration::from_secs(w.lease_secs),
            retry: Duration::from_secs(w.retry_interval_secs),
            max_attempts: w.max_attempts,
            batch: w.batch_size,
            pacer: Arc::new(LeasePacer::new(pacer::PARTIAL_LEASE_SPACING)),
        };
        let name = consumer_base(&cfg);
        let tasks = (0..w.concurrency)
            .map(|i| {
                let d = d.clone();
                let consumer = format!("{name}-{i}");
                tokio::spawn(d.run(consumer, shutdown.clone()))
            })
            .collect();
        tracing::info!(
            concurrency = w.concurrency,
            batch = w.batch_size,
            main_servers = w.main_servers().len(),
            "worker started"
        );
        Ok(Self { tasks })
    }

    /// Waits until every task has stopped.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Pairs each leased message with the main server's answer for it: the server answers in batch
/// order, so the n-th result belongs to the n-th message when their ids agree. Matching by
/// position, not by id, keeps two queue entries that claim the same id (a forged copy next to
/// the genuine message) apart: each gets its own answer, and its own ack or dead letter. A result
/// out of place is matched by id to a message not answered yet; a message without an answer is
/// retried.
fn answers<'a>(
    leased: &'a [Leased],
    response: &'a DeliverResponse,
) -> Vec<(usize, &'a Leased, &'a DeliverResult)> {
    let mut taken = vec![false; leased.len()];
    let mut out = Vec::with_capacity(response.results.len());
    for (n, r) in response.results.iter().enumerate() {
        let at = if leased.get(n).is_some_and(|l| l.id == r.id && !taken[n]) {
            Some(n)
        } else {
            (0..leased.len()).find(|&i| !taken[i] && leased[i].id == r.id)
        };
        if let Some(i) = at {
            taken[i] = true;
            out.push((i, &leased[i], r));
        }
    }
    out
}

/// The stable part of this process's consumer names: `worker.name`, else `<hostname>-<ops port>`
/// (unique per host, because each process binds its own ops port); with an ephemeral ops port
/// (tests) the process id stands in for it.
fn consumer_base(cfg: &Config) -> String {
    if !cfg.worker.name.is_empty() {
        return cfg.worker.name.clone();
    }
    let port = cfg
        .ops
        .listen
        .rsplit(':')
        .next()
        .filter(|p| *p != "0")
        .map(str::to_owned);
    format!(
        "{}-{}",
        msgrelay_ops::hostname().unwrap_or_else(|| "worker".to_owned()),
        port.unwrap_or_else(|| format!("pid{}", std::process::id()))
    )
}

/// The first wait after an empty lease, and the longest (see `Deliverer::run`).
const IDLE_WAIT_MIN: Duration = Duration::from_millis(10);
const IDLE_WAIT_MAX: Duration = Duration::from_millis(500);

/// The next wait after another empty lease: doubled, at most `IDLE_WAIT_MAX`.
fn next_idle_wait(current: Duration) -> Duration {
    (current * 2).min(IDLE_WAIT_MAX)
}

impl Deliverer {
    async fn run(self, consumer: String, shutdown: CancellationToken) {
        // How long to wait for work after an empty lease, unless an enqueue wakes the task first
        // (on Redis Cluster, and for retries coming due, nothing does, so the queue is also
        // polled): quickly while messages keep coming (a fixed 500 ms wait put ~300 ms between
        // acceptance and storage at 1,000 msgs/s), backing off to IDLE_WAIT_MAX while the queue
        // stays empty, so an idle task costs ~2 leases a second.
        let mut idle_wait = IDLE_WAIT_MIN;
        while !shutdown.is_cancelled() {
            let turn =
                tokio::select! { _ = shutdown.cancelled() => break, t = self.pacer.turn() => t };
            let leased = match self.queue.lease(&consumer, self.batch, self.lease).await {
                Ok(l) => {
                    turn.leased(l.len(), self.batch);
                    l
                }
                Err(e) => {
                    drop(turn);
                    tracing::warn!(error = %e, "cannot lease from the queue; retrying");
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                    continue;
                }
            };
            if leased.is_empty() {
                tokio::select! { _ = shutdown.cancelled() => break, _ = self.queue.wait_for_work(idle_wait) => {} }
                idle_wait = next_idle_wait(idle_wait);
                continue;
            }
            idle_wait = IDLE_WAIT_MIN;
            self.deliver(leased).await;
        }
    }

    async fn deliver(&self, leased: Vec<Leased>) {
        self.metrics.delivery_attempts.inc_by(leased.len() as u64);
        self.metrics.delivery_batches.inc();
        let body = deliver_batch::encode(leased.iter().map(|l| {
            (
                l.id,
                &l.client_id,
                l.accepted_at_ms,
                l.attempts,
                l.payload.as_slice(),
            )
        }));
        let response = match self.post(body).await {
            Ok(r) => r,
            Err((reason, detail)) => {
                tracing::warn!(count = leased.len(), reason, error = %detail, "delivery failed; will retry");
                self.retry_all(&leased, reason).await;
                return;
            }
        };
        let (mut stored, mut rejected, mut missing): (Vec<LeaseToken>, Vec<&Leased>, Vec<Leased>) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut later: Vec<Leased> = Vec::new();
        let mut answered = vec![false; leased.len()];
        let now = now_ms();
        for (i, l, r) in answers(&leased, &response) {
            answered[i] = true;
            match r.outcome {
                DeliverOutcome::Stored => {
                    stored.push(l.token.clone());
                    self.metrics
                        .end_to_end_latency
                        .observe((now - l.accepted_at_ms).max(0) as f64 / 1000.0);
                }
                DeliverOutcome::Rejected => {
                    tracing::error!(message_id = %l.id, reason = r.reason.as_deref().unwrap_or(""), "main server rejected the message; moved to failed");
                    rejected.push(l);
                }
                DeliverOutcome::Retry => {
                    tracing::warn!(message_id = %l.id, reason = r.reason.as_deref().unwrap_or(""), "main server cannot open the message yet; will retry");
                    later.push((*l).clone());
                }
            }
        }
        missing.extend(
            leased
                .iter()
                .zip(&answered)
                .filter(|(_, answered)| !**answered)
                .map(|(l, _)| l.clone()),
        );
        match self.queue.ack(&stored).await {
            Ok(n) => {
                self.metrics.delivered.inc_by(n);
                tracing::debug!(count = n, "delivered");
            }
            Err(e) => {
                tracing::warn!(error = %e, "ack failed; the lease will expire and the (idempotent) delivery repeat")
            }
        }
        for l in rejected {
            self.metrics.dead_lettered.inc();
            self.metrics.dead_lettered_unopened.inc();
            if let Err(e) = self
                .queue
                .dead_letter(std::slice::from_ref(&l.token), REJECTED_DEAD_LETTER)
                .await
            {
                tracing::warn!(error = %e, "dead-letter failed");
            }
        }
        if !missing.is_empty() {
            self.retry_all(&missing, "incomplete_response").await;
        }
        if !later.is_empty() {
            self.retry_all(&later, "unknown_sealing_key").await;
        }
    }

    /// Hands the batch to the healthy servers in turn until one answers, while the lease has room
    /// for another attempt; the last failure when none did.
    async fn post(&self, body: Vec<u8>) -> Result<DeliverResponse, (&'static str, String)> {
        let started = Instant::now();
        let mut last = ("unreachable", "no main server tried".to_owned());
        for (n, i) in self.servers.order().into_iter().enumerate() {
            if n > 0 && started.elapsed() + self.timeout >= self.lease {
                tracing::warn!(
                    "no time left in the lease for another main server; the batch will be retried"
                );
                break;
            }
            let url = self.servers.url(i);
            match self.post_to(url, body.clone()).await {
                Ok(r) => {
                    self.servers.succeeded(i);
                    return Ok(r);
                }
                Err((reason, detail)) => {
                    self.servers.failed(i);
                    tracing::warn!(server = url, reason, error = %detail, "main server failed; trying the next one");
                    last = (reason, detail);
                }
            }
        }
        Err(last)
    }

    async fn post_to(
        &self,
        base: &str,
        body: Vec<u8>,
    ) -> Result<DeliverResponse, (&'static str, String)> {
        let resp = self
            .client
            .post(format!("{base}/internal/messages/deliver"))
            .header(reqwest::header::CONTENT_TYPE, deliver_batch::CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let reason = if e.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                };
                (reason, e.to_string())
            })?;
        if !resp.status().is_success() {
            let status = resp.status();
            // Read, not dropped, so that the connection survives a server that refuses for a
            // while (see `discard`).
            msgrelay_tls::client::discard(resp).await;
            return Err(("server_error", format!("main server answered {status}")));
        }
        resp.json::<DeliverResponse>()
            .await
            .map_err(|e| ("bad_response", e.to_string()))
    }

    async fn retry_all(&self, leased: &[Leased], reason: &'static str) {
        self.metrics.delivery_failed(reason);
        let exhausted = leased
            .iter()
            .filter(|l| self.max_attempts > 0 && l.attempts >= self.max_attempts)
            .count();
        if exhausted > 0 {
            self.metrics.dead_lettered.inc_by(exhausted as u64);
            tracing::error!(
                count = exhausted,
                max_attempts = self.max_attempts,
                "messages exceeded worker.max_attempts; moved to failed"
            );
        }
        let tokens: Vec<LeaseToken> = leased.iter().map(|l| l.token.clone()).collect();
        if let Err(e) = self
            .queue
            .retry_later(&tokens, self.retry, self.max_attempts, reason)
            .await
        {
            tracing::warn!(error = %e, "cannot schedule the retry; the lease will expire and bring the messages back");
        }
    }
}
