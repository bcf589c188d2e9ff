//! The login limiter: failed logins are counted per (username, client address) and per client
//! address, in fixed windows, in an LRU map of bounded size.
//!
//! - Bounded memory: at most `capacity` entries of a few dozen bytes; a username is kept only
//!   as a 16-byte hash, so a megabyte-long name costs what a short one does. When full, the
//!   least recently used entry is forgotten.
//! - Atomic check-and-reserve: [`LoginLimiter::reserve`] checks and counts an attempt under one
//!   lock *before* the password is verified, so parallel guesses cannot all pass the check.
//!   A successful login gives its reservation back; a failed or abandoned one keeps it.
//! - No lock-out from everywhere: a username is limited per client address, so an attacker
//!   who exhausts `admin`'s allowance from his addresses does not stop `admin` logging in from
//!   another. IPv6 addresses count per /64, the block one host usually holds.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashlink::LruCache;
use sha2::{Digest, Sha256};

/// Limits of the login limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed logins allowed for one username from one address within `window`.
    pub per_user: u32,
    /// Failed logins allowed from one address (all usernames) within `window`.
    pub per_ip: u32,
    /// Length of a counting window; a refusal lasts until its window ends.
    pub window: Duration,
    /// Most (username, address) and address entries remembered at once.
    pub capacity: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_user: 5,
            per_ip: 100,
            window: Duration::from_secs(15 * 60),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip([u8; 16]),
    UserAtIp([u8; 16]),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u32,
    started: Instant,
}

/// An attempt was refused; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
    /// Which limit refused it: `user` (this username from this address) or `ip`.
    pub limit: &'static str,
}

impl Refused {
    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// A shared, bounded login limiter; cheap to clone.
#[derive(Clone)]
pub struct LoginLimiter {
    limits: LoginLimits,
    map: Arc<Mutex<LruCache<Key, Window>>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("limits", &self.limits)
            .field("entries", &self.len())
            .finish()
    }
}

/// One counted attempt. Call [`Reservation::succeeded`] after a good password; dropping it
/// otherwise leaves the attempt counted as a failure.
#[must_use = "call succeeded() after a successful login, or drop it to count a failure"]
pub struct Reservation {
    limiter: LoginLimiter,
    user: Key,
    ip: Key,
}

impl Reservation {
    /// The login succeeded: this attempt no longer counts, and the username's failures from
    /// this address are forgotten.
    pub fn succeeded(self) {
        let mut map = self.limiter.lock();
        map.remove(&self.user);
        if let Some(w) = map.get_mut(&self.ip) {
            w.count = w.count.saturating_sub(1);
        }
    }
}

fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                o
            }
        },
    }
}

fn user_key(username: &str, ip: &[u8; 16]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(ip);
    h.update(username.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.finalize()[..16]);
    k
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        let capacity = limits.capacity.max(2);
        Self {
            limits: LoginLimits { capacity, ..limits },
            map: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    /// Entries held now (at most `capacity`).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Window>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a login attempt of `username` from `ip`, or refuses it when either limit is
    /// reached. Check and count happen under one lock.
    pub fn reserve(&self, username: &str, ip: IpAddr) -> Result<Reservation, Refused> {
        self.reserve_at(username, ip, Instant::now())
    }

    fn reserve_at(&self, username: &str, ip: IpAddr, now: Instant) -> Result<Reservation, Refused> {
        let ipk = ip_key(ip);
        let (user, ipk) = (Key::UserAtIp(user_key(username, &ipk)), Key::Ip(ipk));
        let window = self.limits.window;
        let mut map = self.lock();
        let live = |w: Option<&Window>| {
            w.copied()
                .filter(|w| now.duration_since(w.started) < window)
        };
        for (key, limit, name) in [
            (user, self.limits.per_user, "user"),
            (ipk, self.limits.per_ip, "ip"),
        ] {
            if let Some(w) = live(map.get(&key)) {
                if w.count >= limit {
                    return Err(Refused {
                        retry_after: window - now.duration_since(w.started),
                        limit: name,
                    });
                }
            }
        }
        for key in [user, ipk] {
            let next = match live(map.get(&key)) {
                Some(w) => Window {
                    count: w.count + 1,
                    ..w
                },
                None => Window {
                    count: 1,
                    started: now,
                },
            };
            map.insert(key, next);
        }
        drop(map);
        Ok(Reservation {
            limiter: self.clone(),
            user,
            ip: ipk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_user: u32, per_ip: u32, capacity: usize) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_user,
            per_ip,
            window: Duration::from_secs(60),
            capacity,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn failures_per_user_and_address_are_limited() {
        let l = limiter(3, 100, 1000);
        for _ in 0..3 {
            drop(l.reserve("admin", A).unwrap());
        }
        let refused = l.reserve("admin", A).err().expect("fourth attempt refused");
        assert_eq!(refused.limit, "user");
        assert!((59..=60).contains(&refused.retry_after_secs()));
        // Not locked out from everywhere: another address, another user.
        l.reserve("admin", B).unwrap().succeeded();
        drop(l.reserve("alice", A).unwrap());
    }

    #[test]
    fn success_gives_the_attempt_back() {
        let l = limiter(2, 3, 1000);
        drop(l.reserve("alice", A).unwrap());
        l.reserve("alice", A).unwrap().succeeded();
        // The failures of alice from A are forgotten; the address keeps one.
        drop(l.reserve("alice", A).unwrap());
        drop(l.reserve("alice", A).unwrap());
        assert_eq!(l.reserve("bob", A).err().map(|r| r.limit), Some("ip"));
    }

    #[test]
    fn one_address_cannot_spray_usernames() {
        let l = limiter(5, 10, 1000);
        for i in 0..10 {
            drop(l.reserve(&format!("user{i}"), A).unwrap());
        }
        assert_eq!(l.reserve("user99", A).err().map(|r| r.limit), Some("ip"));
        drop(l.reserve("user99", B).unwrap());
    }

    #[test]
    fn windows_end() {
        let l = limiter(1, 100, 1000);
        let t0 = Instant::now();
        drop(l.reserve_at("admin", A, t0).unwrap());
        assert!(l
            .reserve_at("admin", A, t0 + Duration::from_secs(59))
            .is_err());
        drop(
            l.reserve_at("admin", A, t0 + Duration::from_secs(60))
                .unwrap(),
        );
    }

    #[test]
    fn memory_is_bounded_whatever_the_usernames() {
        let l = limiter(5, u32::MAX, 1000);
        let long = "x".repeat(1 << 16);
        for i in 0..3000 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + (i % 300)));
            drop(l.reserve(&format!("{long}{i}"), ip).unwrap());
        }
        assert_eq!(l.len(), 1000);
    }

    #[test]
    fn parallel_guesses_cannot_all_pass() {
        let l = limiter(5, 1000, 1000);
        let passed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        if let Ok(r) = l.reserve("admin", A) {
                            passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            drop(r);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), 5);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = limiter(1, 100, 1000);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        drop(l.reserve("admin", a).unwrap());
        assert!(l.reserve("admin", b).is_err());
        drop(l.reserve("admin", c).unwrap());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        drop(l.reserve("bob", A).unwrap());
        assert!(l.reserve("bob", mapped).is_err());
    }
}
