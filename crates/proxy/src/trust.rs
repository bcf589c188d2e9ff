//! Does the main server open what this proxy seals? Checked at start-up (a proxy whose key the
//! server does not trust refuses to start) and again periodically for `/ready`, so that a key
//! removed from the main server, or a server key that changed under the pin, shows up before
//! messages pile up as retries.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::upstream::Upstream;

const UNKNOWN: u8 = 0;
const TRUSTED: u8 = 1;
const NOT_TRUSTED: u8 = 2;
const KEY_CHANGED: u8 = 3;

/// How often the proxy asks the main server again.
const RECHECK: Duration = Duration::from_secs(30);

/// The last answer of the main server about this proxy's sealing key.
pub(crate) struct SealingTrust {
    state: AtomicU8,
    proxy_key_id: String,
}

impl SealingTrust {
    pub fn new(proxy_key_id: String, trusted: Option<bool>) -> Arc<Self> {
        let state = match trusted {
            None => UNKNOWN,
            Some(true) => TRUSTED,
            Some(false) => NOT_TRUSTED,
        };
        Arc::new(Self {
            state: AtomicU8::new(state),
            proxy_key_id,
        })
    }

    /// The readiness check: an error while the main server is known not to open our payloads.
    pub fn check(&self) -> Result<(), String> {
        match self.state.load(Ordering::Relaxed) {
            NOT_TRUSTED => Err(not_trusted(&self.proxy_key_id)),
            KEY_CHANGED => Err("the main server's sealing key changed since this proxy pinned it; restart the proxy (see its log)".into()),
            _ => Ok(()),
        }
    }

    /// Asks the main server every [`RECHECK`] until `shutdown`.
    pub fn spawn(
        self: &Arc<Self>,
        upstream: Upstream,
        server_public: String,
        shutdown: CancellationToken,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
            loop {
                tokio::select! { _ = shutdown.cancelled() => break, _ = tick.tick() => {} }
                let Ok(key) = upstream.fetch_sealing_key().await else {
                    continue;
                };
                let state = if key.public_key != server_public {
                    KEY_CHANGED
                } else if key.trusted_proxy_key_ids.contains(&this.proxy_key_id) {
                    TRUSTED
                } else {
                    NOT_TRUSTED
                };
                if this.state.swap(state, Ordering::Relaxed) != state && state != TRUSTED {
                    tracing::error!(proxy_key_id = %this.proxy_key_id, "{}", this.check().err().unwrap_or_default());
                }
            }
        });
    }
}

/// What the operator reads when the main server does not trust this proxy's key.
pub(crate) fn not_trusted(proxy_key_id: &str) -> String {
    format!(
        "the main server does not trust this proxy's sealing key {proxy_key_id} (keys/proxy-sealing.pub): its messages would never be stored; copy that file to the main server's keys/proxy-sealing.pub and restart the main server"
    )
}
