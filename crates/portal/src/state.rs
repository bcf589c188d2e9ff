//! The portal's shared state, cheap to clone.

use std::sync::Arc;

use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::Config;
use msgrelay_ops::Metrics;
use msgrelay_queue::QueueMonitor;
use msgrelay_store::Store;
use msgrelay_tls::Pki;

/// What every portal handler may use. The portal holds the at-rest keys (it shows decrypted
/// messages) but never the sealing keys: it opens nothing that a proxy sealed.
#[derive(Clone)]
pub struct PortalState {
    pub cfg: Arc<Config>,
    pub store: Store,
    /// Dashboard depth and "retry now" of failed messages.
    pub queue: QueueMonitor,
    pub metrics: Arc<Metrics>,
    pub at_rest: Arc<AtRestKeys>,
    /// Issuing and revoking client certificates (`msgrelay-certs`).
    pub pki: Arc<Pki>,
    /// Bounded failed-login limiter shared by the login page and the JSON login.
    pub login_limiter: msgrelay_auth::LoginLimiter,
}
