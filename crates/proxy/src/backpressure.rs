//! Backpressure: above `queue.max_depth` undelivered messages the proxy refuses new ones with
//! `503 saturated` instead of letting the backlog (Redis memory, SQLite disk) grow without bound.
//!
//! The depth is sampled from the queue every [`SAMPLE_EVERY`] (the queue is shared by every proxy
//! of a deployment, so only it knows the total), and this proxy's own enqueues since the last
//! sample are added, so one proxy under full load stops at the mark, not a sample period later.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use msgrelay_ops::Metrics;
use msgrelay_queue::Queue;
use tokio_util::sync::CancellationToken;

/// How often the queue depth is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The `Retry-After` of a saturated answer: long enough for workers to drain a batch or two.
pub(crate) const SATURATED_RETRY_AFTER_SECS: u64 = 5;

/// Shared saturation state: the last sampled depth plus local enqueues since.
pub(crate) struct Backpressure {
    max_depth: u64,
    sampled: AtomicU64,
    since_sample: AtomicU64,
    saturated: AtomicBool,
}

impl Backpressure {
    /// Starts sampling `queue` until `shutdown`; `max_depth` 0 disables the limit (still sampled, for /ready).
    pub(crate) fn start(
        max_depth: u64,
        queue: Queue,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let bp = Arc::new(Self {
            max_depth,
            sampled: AtomicU64::new(0),
            since_sample: AtomicU64::new(0),
            saturated: AtomicBool::new(false),
        });
        let b = bp.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! { _ = shutdown.cancelled() => break, _ = tick.tick() => {} }
                let before = b.since_sample.load(Ordering::Relaxed);
                // A failed read keeps the last value: a queue that cannot be read answers 503 anyway.
                if let Ok(depth) = queue.depth().await {
                    b.sampled.store(depth, Ordering::Relaxed);
                    // Enqueues during the read may be counted twice until the next sample: errs on the safe side.
                    b.since_sample.fetch_sub(before, Ordering::Relaxed);
                    let was = b.saturated.load(Ordering::Relaxed);
                    let now = b.refresh();
                    if now != was {
                        if now {
                            tracing::warn!(
                                depth,
                                max_depth = b.max_depth,
                                "queue at queue.max_depth: answering 503 until workers drain it"
                            );
                        } else {
                            tracing::info!(
                                depth,
                                max_depth = b.max_depth,
                                "queue below queue.max_depth again: accepting"
                            );
                        }
                    }
                    metrics.queue_saturated.set(i64::from(now));
                }
            }
        });
        bp
    }

    /// Recomputes and stores the saturation flag.
    fn refresh(&self) -> bool {
        let depth = self
            .sampled
            .load(Ordering::Relaxed)
            .saturating_add(self.since_sample.load(Ordering::Relaxed));
        let saturated = self.max_depth > 0 && depth >= self.max_depth;
        self.saturated.store(saturated, Ordering::Relaxed);
        saturated
    }

    /// Whether a new message must be refused now.
    pub(crate) fn saturated(&self) -> bool {
        self.saturated.load(Ordering::Relaxed)
    }

    /// Counts one message this proxy enqueued.
    pub(crate) fn enqueued(&self) {
        self.since_sample.fetch_add(1, Ordering::Relaxed);
        if self.max_depth > 0 {
            self.refresh();
        }
    }

    /// For /ready: why the proxy refuses messages, if it does.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.saturated() {
            let depth = self
                .sampled
                .load(Ordering::Relaxed)
                .saturating_add(self.since_sample.load(Ordering::Relaxed));
            Err(format!("saturated: {depth} undelivered messages, queue.max_depth is {}; answering 503 until workers drain it", self.max_depth))
        } else {
            Ok(())
        }
    }
}
