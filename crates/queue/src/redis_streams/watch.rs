//! Wakes this process's idle workers when another process (a proxy) adds to the queue.
//!
//! A worker that found the queue empty waits before it leases again, backing off to half a
//! second while the queue stays empty (worker crate). Another process's enqueue cannot touch this
//! process's `Notify`, so without this watch the first message after a quiet spell waited up to
//! that half second: at an even 1,000 msgs/s after a pause, ~0.7 % of messages took 100–300 ms
//! from acceptance to storage (docs/benchmarks.md, session 9).
//!
//! The watch holds one extra connection that blocks in `XREAD … BLOCK` on every partition's
//! stream and wakes one waiting worker when an entry arrives. It reads no entry: `$` asks only
//! for entries newer than the call, and leasing stays the consumer group's business. After a wake
//! it waits `REARM` before watching again, so a busy stream costs at most ~100 calls a second.
//! Entries that arrive in that gap do not wake anyone; the workers' own polling still finds them.
//!
//! Not on Redis Cluster: one `XREAD` cannot span the partitions' slots there, and workers poll as
//! before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use msgrelay_core::RedisUrl;
use redis::{RedisResult, Value};
use tokio::sync::Notify;

use super::link::{Con, LinkOptions};

/// How long one `XREAD` blocks: below the connection's response timeout (1.2 s on Sentinel), so a
/// quiet stream is never taken for a dead server.
const BLOCK: Duration = Duration::from_millis(1000);
/// After a wake, how long before the next `XREAD`.
const REARM: Duration = Duration::from_millis(10);
/// After a failed connection or call, how long before trying again.
const PAUSE: Duration = Duration::from_secs(1);

/// The streams to watch and how to reach them; started by the first worker that waits.
pub(crate) struct Watch {
    url: RedisUrl,
    opts: LinkOptions,
    streams: Vec<String>,
    started: AtomicBool,
}

impl Watch {
    pub(crate) fn new(url: RedisUrl, opts: LinkOptions, streams: Vec<String>) -> Self {
        Self {
            url,
            opts,
            streams,
            started: AtomicBool::new(false),
        }
    }

    /// Starts watching (once per queue) for `notify`; the watch ends soon after every holder of
    /// `notify` has dropped it.
    pub(crate) fn start(self: &Arc<Self>, notify: &Arc<Notify>) {
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().run(Arc::downgrade(notify)));
        }
    }

    async fn run(self: Arc<Self>, notify: Weak<Notify>) {
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.streams);
        for _ in &self.streams {
            xread.arg("$");
        }
        let con = loop {
            match Con::connect(&self.url, &self.opts).await {
                Ok(con) => break con,
                Err(e) => {
                    tracing::debug!(error = %e, "queue watch: cannot connect; workers poll meanwhile");
                    if notify.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(PAUSE).await;
                }
            }
        };
        let mut warned = false;
        loop {
            let r: RedisResult<Value> = xread.query_async(&mut con.handle()).await;
            let Some(waiters) = notify.upgrade() else {
                return;
            };
            match r {
                Ok(Value::Nil) => {}
                Ok(_) => {
                    waiters.notify_one();
                    drop(waiters);
                    tokio::time::sleep(REARM).await;
                }
                Err(e) => {
                    drop(waiters);
                    if e.code() == Some("NOPERM") && !warned {
                        warned = true;
                        tracing::warn!(error = %e, "queue watch: Redis refuses XREAD to this user; workers poll instead (allow +xread, see deploy/redis/msgrelay-acl.conf)");
                    } else {
                        tracing::debug!(error = %e, "queue watch: XREAD failed; workers poll meanwhile");
                    }
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
    }
}
