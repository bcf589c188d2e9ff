//! The process's metrics. One struct for all roles, because `msgrelay up` runs them together.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

// Every label value is a `&'static str`: only strings written in our code can become a label, so
// no client input (a field name, a username, a header) can ever add a series or a line. The one
// exception is the process-wide `instance` label, from the validated configuration.

/// A `reason` label (validation field, delivery error class).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// A `state` label for queue depth (ready, in_flight, delayed, failed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    pub state: &'static str,
}

/// A TLS listener (`proxy`, `internal`, `portal`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Listener {
    pub listener: &'static str,
}

/// A connection event on a listener (`handshake_timeout`, `refused_per_ip_limit`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerEvent {
    pub listener: &'static str,
    pub event: &'static str,
}

/// Every metric msgrelay exports.
pub struct Metrics {
    registry: Registry,
    pub accepted: Counter,
    pub rejected: Family<Reason, Counter>,
    /// Sum of `rejected` over reasons, for the log summary (not exported).
    rejected_total: Counter,
    pub registered: Counter,
    /// Registrations the main server answered without the database: messages it had just stored.
    pub registrations_skipped: Counter,
    pub delivered: Counter,
    pub delivery_attempts: Counter,
    /// Batches a worker handed to the main server; `delivery_attempts / delivery_batches` is the
    /// mean batch size.
    pub delivery_batches: Counter,
    pub delivery_failures: Family<Reason, Counter>,
    /// Sum of `delivery_failures`, for the log summary (not exported).
    delivery_failures_total: Counter,
    pub dead_lettered: Counter,
    /// The part of `dead_lettered` the main server refused as unopened (unreadable, forged,
    /// re-attributed, replayed): kept in the queue as failed, never a row of any client.
    pub dead_lettered_unopened: Counter,
    /// Sealed payloads the main server did not store, by a fixed reason (see `payload_refused`).
    pub payloads_refused: Family<Reason, Counter>,
    pub queue_depth: Family<State, Gauge>,
    /// 1 while the proxy refuses messages because the queue is at `queue.max_depth`.
    pub queue_saturated: Gauge,
    pub ingest_latency: Histogram,
    pub end_to_end_latency: Histogram,
    pub logins: Family<Reason, Counter>,
    /// Usable client certificates expiring within 30 days (main server, sampled per scrape).
    pub certificates_expiring_30d: Gauge,
    /// Seconds until the proxy's CRL reaches its next-update time (negative once past it).
    pub crl_seconds_until_next_update: Gauge,
    /// Open connections per TLS listener (including those handshaking or lingering).
    pub connections_open: Family<Listener, Gauge>,
    /// Refusals, timeouts and failed handshakes per TLS listener.
    pub connection_events: Family<ListenerEvent, Counter>,
    /// Password hashes (argon2: login checks, new passwords) run since start (sampled per scrape).
    pub password_hashes: Counter,
    /// Password hashes running now.
    pub password_hashes_in_flight: Gauge,
    /// The most password hashes that ever ran at once (bounded by `portal.password_hash_concurrency`).
    pub password_hashes_peak: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Upper bounds of `end_to_end_latency_seconds`: fine below a second, where the accepted-to-stored
/// p99 of a healthy relay lies (100 ms has its own bucket), coarse up to 45 min (retries).
const END_TO_END_BUCKETS: [f64; 24] = [
    0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0, 2700.0,
];

impl Metrics {
    /// Metrics without an `instance` label (tests and tools).
    pub fn new() -> Self {
        Self::with_registry(Registry::with_prefix("msgrelay"))
    }

    /// Metrics whose every series carries `instance="<instance>"`, so that series of several
    /// hosts of one role stay apart once collected together.
    pub fn for_instance(instance: &str) -> Self {
        let label = (
            std::borrow::Cow::Borrowed("instance"),
            std::borrow::Cow::Owned(instance.to_owned()),
        );
        Self::with_registry(Registry::with_prefix_and_labels(
            "msgrelay",
            std::iter::once(label),
        ))
    }

    fn with_registry(mut registry: Registry) -> Self {
        let m = Self {
            accepted: Counter::default(),
            rejected: Family::default(),
            rejected_total: Counter::default(),
            registered: Counter::default(),
            registrations_skipped: Counter::default(),
            delivered: Counter::default(),
            delivery_attempts: Counter::default(),
            delivery_batches: Counter::default(),
            delivery_failures: Family::default(),
            delivery_failures_total: Counter::default(),
            dead_lettered: Counter::default(),
            dead_lettered_unopened: Counter::default(),
            payloads_refused: Family::default(),
            queue_depth: Family::default(),
            queue_saturated: Gauge::default(),
            // 0.5 ms .. ~16 s
            ingest_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            end_to_end_latency: Histogram::new(END_TO_END_BUCKETS),
            logins: Family::default(),
            certificates_expiring_30d: Gauge::default(),
            crl_seconds_until_next_update: Gauge::default(),
            connections_open: Family::default(),
            connection_events: Family::default(),
            password_hashes: Counter::default(),
            password_hashes_in_flight: Gauge::default(),
            password_hashes_peak: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "messages_accepted",
            "Messages accepted by the proxy (202, durable)",
            m.accepted.clone(),
        );
        registry.register(
            "messages_rejected",
            "Requests refused by the proxy, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "messages_registered",
            "Messages registered as queued at the main server",
            m.registered.clone(),
        );
        registry.register(
            "registrations_skipped",
            "Registrations the main server answered from memory: messages it had already stored",
            m.registrations_skipped.clone(),
        );
        registry.register(
            "messages_delivered",
            "Messages confirmed stored by the main server",
            m.delivered.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts by workers (per message)",
            m.delivery_attempts.clone(),
        );
        registry.register(
            "delivery_batches",
            "Batches handed to the main server by workers",
            m.delivery_batches.clone(),
        );
        registry.register(
            "delivery_failures",
            "Failed delivery attempts, by reason",
            m.delivery_failures.clone(),
        );
        registry.register(
            "messages_dead_lettered",
            "Messages moved to failed (max attempts or rejected)",
            m.dead_lettered.clone(),
        );
        registry.register(
            "messages_dead_lettered_unopened",
            "Dead letters the main server refused unopened (forged, unreadable, replayed); never stored as a message",
            m.dead_lettered_unopened.clone(),
        );
        registry.register(
            "payloads_refused",
            "Sealed payloads the main server did not store: unknown_key (retried), unauthentic, malformed, mismatch, too_old",
            m.payloads_refused.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages in the queue, by state",
            m.queue_depth.clone(),
        );
        registry.register(
            "queue_saturated",
            "1 while the proxy answers 503 because the queue holds queue.max_depth undelivered messages",
            m.queue_saturated.clone(),
        );
        registry.register(
            "ingest_latency_seconds",
            "Proxy request handling time for accepted messages",
            m.ingest_latency.clone(),
        );
        registry.register(
            "end_to_end_latency_seconds",
            "Time from acceptance at the proxy to confirmed storage",
            m.end_to_end_latency.clone(),
        );
        registry.register(
            "portal_logins",
            "Portal login attempts, by outcome",
            m.logins.clone(),
        );
        registry.register(
            "certificates_expiring_30d",
            "Client certificates neither revoked nor expired that expire within 30 days",
            m.certificates_expiring_30d.clone(),
        );
        registry.register(
            "crl_seconds_until_next_update",
            "Seconds until the proxy's client CRL reaches its next update (negative once past it)",
            m.crl_seconds_until_next_update.clone(),
        );
        registry.register(
            "connections_open",
            "Open connections per TLS listener",
            m.connections_open.clone(),
        );
        registry.register(
            "connection_events",
            "Connections refused at a cap, closed by a timeout or failing the handshake, per TLS listener",
            m.connection_events.clone(),
        );
        registry.register(
            "password_hashes",
            "Password hashes run (login checks and new passwords)",
            m.password_hashes.clone(),
        );
        registry.register(
            "password_hashes_in_flight",
            "Password hashes running now",
            m.password_hashes_in_flight.clone(),
        );
        registry.register(
            "password_hashes_peak",
            "The most password hashes that ran at once since start",
            m.password_hashes_peak.clone(),
        );
        Self { registry, ..m }
    }

    /// Brings the password-hash metrics up to the hashing gate's counters.
    pub fn set_password_hashes(&self, total: u64, in_flight: usize, peak: usize) {
        let seen = self.password_hashes.get();
        if total > seen {
            self.password_hashes.inc_by(total - seen);
        }
        self.password_hashes_in_flight.set(in_flight as i64);
        self.password_hashes_peak.set(peak as i64);
    }

    /// Counts a refused request.
    pub fn reject(&self, reason: &'static str) {
        self.rejected_total.inc();
        self.rejected.get_or_create(&Reason { reason }).inc();
    }

    /// Counts a failed delivery attempt.
    pub fn delivery_failed(&self, reason: &'static str) {
        self.delivery_failures_total.inc();
        self.delivery_failures
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// Records a connection event of a TLS listener: `opened`/`closed` move the open gauge,
    /// anything else is counted.
    pub fn connection_event(&self, listener: &'static str, event: &'static str) {
        match event {
            "opened" => {
                self.connections_open
                    .get_or_create(&Listener { listener })
                    .inc();
            }
            "closed" => {
                self.connections_open
                    .get_or_create(&Listener { listener })
                    .dec();
            }
            _ => {
                self.connection_events
                    .get_or_create(&ListenerEvent { listener, event })
                    .inc();
            }
        }
    }

    /// Counts a sealed payload the main server did not store; `reason` is one of a fixed set.
    pub fn payload_refused(&self, reason: &'static str) {
        self.payloads_refused
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// Sets the queue depth gauges.
    pub fn set_queue_depth(&self, ready: u64, in_flight: u64, delayed: u64, failed: u64) {
        for (state, v) in [
            ("ready", ready),
            ("in_flight", in_flight),
            ("delayed", delayed),
            ("failed", failed),
        ] {
            self.queue_depth
                .get_or_create(&State { state })
                .set(v as i64);
        }
    }

    /// Logs one INFO line per `every` with what this process accepted, delivered and refused
    /// since the last one (nothing when idle), until `shutdown`. The hot paths log per message
    /// only at debug: one line per message would cost more than the message at full load.
    pub fn spawn_summary(
        self: &std::sync::Arc<Self>,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let m = self.clone();
        tokio::spawn(async move {
            let mut last = m.summary_counts();
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! { _ = shutdown.cancelled() => break, _ = tick.tick() => {} }
                let now = m.summary_counts();
                let d = |i: usize| now[i].saturating_sub(last[i]);
                if now != last {
                    tracing::info!(
                        accepted = d(0),
                        refused = d(1),
                        delivered = d(2),
                        delivery_failures = d(3),
                        dead_lettered = d(4),
                        secs = every.as_secs(),
                        "summary"
                    );
                }
                last = now;
            }
        });
    }

    fn summary_counts(&self) -> [u64; 5] {
        [
            self.accepted.get(),
            self.rejected_total.get(),
            self.delivered.get(),
            self.delivery_failures_total.get(),
            self.dead_lettered.get(),
        ]
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_carries_the_instance_label() {
        let m = Metrics::for_instance("relay-7-worker");
        m.delivered.inc();
        m.delivery_failed("timeout");
        let text = m.encode();
        assert!(
            text.contains("msgrelay_messages_delivered_total{instance=\"relay-7-worker\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("instance=\"relay-7-worker\"") && text.contains("reason=\"timeout\""),
            "{text}"
        );
    }

    #[test]
    fn encodes_prefixed_counters_and_labels() {
        let m = Metrics::new();
        m.accepted.inc();
        m.reject("sender_number");
        m.set_queue_depth(3, 1, 0, 2);
        m.end_to_end_latency.observe(0.2);
        m.certificates_expiring_30d.set(2);
        m.crl_seconds_until_next_update.set(-30);
        m.set_password_hashes(5, 1, 2);
        m.set_password_hashes(7, 0, 2);
        m.queue_saturated.set(1);
        let text = m.encode();
        assert!(text.contains("msgrelay_password_hashes_total 7"), "{text}");
        assert!(text.contains("msgrelay_password_hashes_peak 2"), "{text}");
        assert!(
            text.contains("msgrelay_password_hashes_in_flight 0"),
            "{text}"
        );
        assert!(text.contains("msgrelay_queue_saturated 1"), "{text}");
        assert!(
            text.contains("msgrelay_certificates_expiring_30d 2"),
            "{text}"
        );
        assert!(
            text.contains("msgrelay_crl_seconds_until_next_update -30"),
            "{text}"
        );
        assert!(
            text.contains("msgrelay_messages_accepted_total 1"),
            "{text}"
        );
        assert!(text.contains("msgrelay_messages_rejected_total{reason=\"sender_number\"} 1"));
        assert!(text.contains("msgrelay_queue_depth{state=\"failed\"} 2"));
        assert!(text.contains("msgrelay_end_to_end_latency_seconds_count 1"));
    }
}
