//! Spacing of one worker process's leases while the queue holds less than a batch.
//!
//! Every deliverer leases on its own, so at a low, even rate (1,000 msgs/s) four deliverers took
//! turns every ~2 ms and each batch carried 2–4 messages: the per-batch costs (a lease, a TLS
//! request, a transaction, an ack) then cost ~1 ms of CPU per message, and the CPU this took from
//! the box put ~2 % of messages behind half-second stalls (docs/benchmarks.md, sessions 8 and 9).
//! A wait per deliverer did not fix it, because the four waits interleave.
//!
//! The pacer takes the process's leases one at a time. After a lease that found less than a full
//! batch, the next lease (by any deliverer of the process) waits until `spacing` after it, so at
//! low rates a batch gathers what arrived during `spacing`. After a full batch the next lease goes
//! at once, so a backlog is leased by every deliverer back to back and delivered concurrently.
//! A message waits in the queue at most `spacing` longer than it would without the pacer.

use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

/// How long after a partial lease the process's next lease waits: at 1,000 msgs/s a batch
/// gathers ~10 messages, and a message waits at most 10 ms for its lease.
pub(crate) const PARTIAL_LEASE_SPACING: Duration = Duration::from_millis(10);

/// Takes a process's leases in turn (see the module's documentation).
pub(crate) struct LeasePacer {
    /// The earliest time of the next lease.
    next: Mutex<Instant>,
    spacing: Duration,
}

/// The right to lease now; report what the lease found with [`Turn::leased`]. The next turn
/// starts when this one is dropped.
pub(crate) struct Turn<'a> {
    next: MutexGuard<'a, Instant>,
    spacing: Duration,
}

impl LeasePacer {
    pub(crate) fn new(spacing: Duration) -> Self {
        Self {
            next: Mutex::new(Instant::now()),
            spacing,
        }
    }

    /// Waits for this process's next lease: for the leases before it (first come, first served),
    /// then until the spacing after a partial lease has passed.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        let next = self.next.lock().await;
        tokio::time::sleep_until(*next).await;
        Turn {
            next,
            spacing: self.spacing,
        }
    }
}

impl Turn<'_> {
    /// Records that the lease found `found` messages of at most `batch`: a partial (or empty)
    /// lease makes the next one wait the spacing; a full one lets it go at once.
    pub(crate) fn leased(mut self, found: usize, batch: usize) {
        let now = Instant::now();
        *self.next = if found < batch {
            now + self.spacing
        } else {
            now
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Four deliverers share a pacer, each leasing `found` messages per lease 25 times; answers
    /// the lease times in order, relative to the start. Time is paused: tokio advances it only
    /// while every task waits, so the times are exact and independent of the machine's speed.
    async fn lease_times(found: usize, batch: usize) -> Vec<Duration> {
        let pacer = Arc::new(LeasePacer::new(PARTIAL_LEASE_SPACING));
        let start = Instant::now();
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (pacer, times) = (pacer.clone(), times.clone());
                tokio::spawn(async move {
                    for _ in 0..25 {
                        let turn = pacer.turn().await;
                        times.lock().unwrap().push(start.elapsed());
                        turn.leased(found, batch);
                        // The delivery of what was leased, during which other deliverers lease.
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("deliverer");
        }
        let mut times = times.lock().unwrap().clone();
        times.sort();
        times
    }

    #[tokio::test(start_paused = true)]
    async fn partial_leases_of_all_deliverers_are_spaced_by_the_spacing() {
        let times = lease_times(7, 100).await;
        assert_eq!(times.len(), 100);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], PARTIAL_LEASE_SPACING, "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_leases_go_back_to_back_so_a_backlog_is_delivered_concurrently() {
        let times = lease_times(100, 100).await;
        assert_eq!(times.len(), 100);
        // Each deliverer leases again as soon as its 3 ms delivery ends, never waiting for
        // another: 25 rounds of 3 ms, four deliveries at a time.
        assert_eq!(times.last().copied(), Some(Duration::from_millis(24 * 3)));
        assert_eq!(times.iter().filter(|t| t.is_zero()).count(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_lease_also_spaces_the_next() {
        let pacer = LeasePacer::new(PARTIAL_LEASE_SPACING);
        let start = Instant::now();
        pacer.turn().await.leased(0, 100);
        pacer.turn().await.leased(100, 100);
        assert_eq!(start.elapsed(), PARTIAL_LEASE_SPACING);
        pacer.turn().await.leased(3, 100);
        assert_eq!(start.elapsed(), PARTIAL_LEASE_SPACING);
    }
}
