//! What one listener allows a peer before it has proven anything: timeouts for every phase of a
//! connection and caps on open connections, in total and per client IP. An attacker without
//! credentials can only hold what these limits give him, for as long as they give it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Timeouts and caps of one TLS listener (see `[http]` in docs/interface.md §8).
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// From accept to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// From the handshake (or the end of the previous request) until a request's headers are
    /// complete. HTTP/1.1 enforces it in hyper (which needs its timer); HTTP/2 and the version
    /// detection by the connection watchdog.
    pub header_read_timeout: Duration,
    /// From the request's headers until its whole body has been read.
    pub body_read_timeout: Duration,
    /// From the request's headers until the response is ready (503 after it).
    pub request_timeout: Duration,
    /// A connection without a request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 PING period, and how long to wait for the answer before closing.
    pub h2_keepalive_interval: Duration,
    pub h2_keepalive_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    /// Open connections (including those still handshaking and lingering) in total and per IP.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// An unread request body is read and discarded up to this many bytes after an early answer,
    /// so the answer reaches the client instead of a reset.
    pub drain_max_bytes: u64,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            h2_keepalive_interval: Duration::from_secs(30),
            h2_keepalive_timeout: Duration::from_secs(10),
            h2_max_concurrent_streams: 100,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            drain_max_bytes: 1024 * 1024,
        }
    }
}

impl From<&msgrelay_core::config::HttpConfig> for ListenerLimits {
    fn from(h: &msgrelay_core::config::HttpConfig) -> Self {
        let secs = Duration::from_secs;
        Self {
            handshake_timeout: secs(h.tls_handshake_timeout_secs),
            header_read_timeout: secs(h.header_read_timeout_secs),
            body_read_timeout: secs(h.body_read_timeout_secs),
            request_timeout: secs(h.request_timeout_secs),
            idle_timeout: secs(h.idle_timeout_secs),
            h2_keepalive_interval: secs(h.h2_keepalive_interval_secs),
            h2_keepalive_timeout: secs(h.h2_keepalive_timeout_secs),
            h2_max_concurrent_streams: h.h2_max_concurrent_streams,
            max_connections: h.max_connections,
            max_connections_per_ip: h.max_connections_per_ip,
            drain_max_bytes: h.drain_max_bytes,
        }
    }
}

/// Something that happened to a connection, for metrics. The label values are fixed here, so no
/// client input can ever become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// A connection took a slot (accepted); `Closed` when it gives it back (after lingering).
    Opened,
    Closed,
    /// Refused at accept: the listener holds `max_connections`.
    RefusedTotal,
    /// Refused at accept: this IP holds `max_connections_per_ip`.
    RefusedPerIp,
    HandshakeTimeout,
    HandshakeFailed,
    /// Closed by the watchdog: no request (headers) within the header or idle timeout.
    IdleClosed,
    /// A request answered 503 because it ran past `request_timeout`.
    RequestTimeout,
}

impl ConnEvent {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Closed => "closed",
            Self::RefusedTotal => "refused_total_limit",
            Self::RefusedPerIp => "refused_per_ip_limit",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::IdleClosed => "idle_closed",
            Self::RequestTimeout => "request_timeout",
        }
    }
}

/// Receives [`ConnEvent`]s; the roles count them in their metrics.
pub type ConnEvents = Arc<dyn Fn(ConnEvent) + Send + Sync>;

/// The open-connection counters of one listener.
pub(crate) struct Slots {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    /// Only IPs that hold a connection have an entry, so the map is bounded by `max_total`.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    events: Option<ConnEvents>,
}

/// One open connection; dropping it frees the slot.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    pub(crate) fn new(limits: &ListenerLimits, events: Option<ConnEvents>) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            events,
        })
    }

    /// Takes a slot for a connection from `ip`, or says which cap is full.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, ConnEvent> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(ConnEvent::RefusedTotal);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(ConnEvent::RefusedPerIp);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &self.events {
            f(ConnEvent::Opened);
        }
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }

    /// Connections open right now.
    pub(crate) fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.slots.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.slots.total.fetch_sub(1, Ordering::Relaxed);
        drop(per_ip);
        if let Some(f) = &self.slots.events {
            f(ConnEvent::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_apply_in_total_and_per_ip_and_free_on_drop() {
        let limits = ListenerLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Default::default()
        };
        let slots = Slots::new(&limits, None);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = slots.acquire(a).unwrap();
        let _a2 = slots.acquire(a).unwrap();
        assert_eq!(slots.acquire(a).err(), Some(ConnEvent::RefusedPerIp));
        let _b1 = slots.acquire(b).unwrap();
        assert_eq!(slots.acquire(c).err(), Some(ConnEvent::RefusedTotal));
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _c1 = slots.acquire(c).unwrap();
        drop(_c1);
        assert!(
            !slots.per_ip.lock().unwrap().contains_key(&c),
            "an IP without connections keeps no entry"
        );
    }
}
