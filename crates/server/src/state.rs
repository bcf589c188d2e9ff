//! The server's shared state, cheap to clone.

use std::sync::Arc;

use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::Config;
use msgrelay_ops::Metrics;
use msgrelay_queue::QueueMonitor;
use msgrelay_sealing::{Opener, SealingKeyPair};
use msgrelay_store::Store;
use msgrelay_tls::Pki;

/// Key material of the main server (never leaves this process).
pub struct Keys {
    pub sealing: SealingKeyPair,
    pub opener: Opener,
    pub at_rest: AtRestKeys,
}

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub queue: QueueMonitor,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<Keys>,
    pub pki: Arc<Pki>,
    /// Messages this process stored lately: registrations of them need no database.
    pub(crate) recent: Arc<crate::recent::RecentlyStored>,
}
