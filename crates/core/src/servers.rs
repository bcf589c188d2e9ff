//! The main servers a proxy or worker talks to, with a health mark each. Every call walks the list
//! in round-robin order, healthy servers first, so load spreads over the healthy ones and a server
//! that just failed is tried only when no healthy one is left. Main servers are stateless in front
//! of the shared database, so any of them can take any call.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::now_ms;

/// How long a server that failed is tried only after the healthy ones.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// Base URLs (no trailing '/') and when each may count as healthy again.
#[derive(Debug)]
pub struct ServerList {
    urls: Vec<String>,
    down_until_ms: Vec<AtomicI64>,
    next: AtomicUsize,
}

impl ServerList {
    /// A list of base URLs (at least one; validated by the configuration).
    pub fn new(urls: &[String]) -> Self {
        assert!(!urls.is_empty(), "at least one main server");
        Self {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            down_until_ms: urls.iter().map(|_| AtomicI64::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The order to try the servers in for one call: round-robin over the healthy ones, then
    /// the ones marked down (earliest recovery first).
    pub fn order(&self) -> Vec<usize> {
        let n = self.urls.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = now_ms();
        let (mut healthy, mut down): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|k| (start + k) % n)
            .partition(|&i| self.down_until_ms[i].load(Ordering::Relaxed) <= now);
        down.sort_by_key(|&i| self.down_until_ms[i].load(Ordering::Relaxed));
        healthy.append(&mut down);
        healthy
    }

    /// The base URL of server `i` (as returned by [`ServerList::order`]).
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// Every base URL, for messages.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Server `i` failed a call: it goes to the back of the order for [`DOWN_FOR`].
    pub fn failed(&self, i: usize) {
        let until = now_ms() + DOWN_FOR.as_millis() as i64;
        self.down_until_ms[i].store(until, Ordering::Relaxed);
    }

    /// Server `i` answered: healthy again at once.
    pub fn succeeded(&self, i: usize) {
        self.down_until_ms[i].store(0, Ordering::Relaxed);
    }

    /// Whether server `i` is currently marked down.
    pub fn is_down(&self, i: usize) -> bool {
        self.down_until_ms[i].load(Ordering::Relaxed) > now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> ServerList {
        let urls: Vec<String> = (0..n).map(|i| format!("https://s{i}:9443/")).collect();
        ServerList::new(&urls)
    }

    #[test]
    fn calls_rotate_over_healthy_servers() {
        let l = list(3);
        assert_eq!(l.url(0), "https://s0:9443");
        let firsts: Vec<usize> = (0..6).map(|_| l.order()[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(l.order(), [0, 1, 2]);
    }

    #[test]
    fn a_failed_server_goes_last_until_it_answers() {
        let l = list(3);
        l.failed(1);
        assert!(l.is_down(1));
        for _ in 0..6 {
            let order = l.order();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1, "{order:?}");
        }
        l.failed(0);
        assert_eq!(l.order()[0], 2, "the only healthy server comes first");
        l.succeeded(1);
        assert!(!l.is_down(1));
        assert!(l.order()[..2].contains(&1));
    }

    #[test]
    fn one_server_is_always_tried() {
        let l = list(1);
        l.failed(0);
        assert_eq!(l.order(), [0]);
    }
}
