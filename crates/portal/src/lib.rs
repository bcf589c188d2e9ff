//! The portal role: HTML pages for users and administrators (`pages`), the portal JSON API
//! (`api`) with its OpenAPI documents (`openapi`), over HTTPS on `portal.listen`.
//! Entry point: [`Portal::start`]; `msgrelay server` and `msgrelay up` start it next to the main server.

mod actions;
mod api;
mod http;
mod layout;
pub mod openapi;
mod pages;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::Config;
use msgrelay_ops::{Metrics, OpsState};
use msgrelay_queue::QueueMonitor;
use msgrelay_store::Store;
use msgrelay_tls::Pki;
use tokio_util::sync::CancellationToken;

pub use http::SESSION_COOKIE;
pub use state::PortalState;

/// Why the portal could not start. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("PKI: {0}")]
    Pki(#[from] msgrelay_tls::PkiError),
    #[error("database: {0}")]
    Store(#[from] msgrelay_store::StoreError),
    #[error("at-rest keys: {0}")]
    AtRest(#[from] msgrelay_at_rest::AtRestError),
    #[error("cannot bind portal.listen {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running portal listener.
pub struct Portal {
    pub addr: SocketAddr,
    pub state: PortalState,
    task: tokio::task::JoinHandle<()>,
}

impl Portal {
    /// Opens the store and the at-rest keys, binds `portal.listen` (HTTPS with the `portal`
    /// service certificate) and serves until `shutdown`.
    pub async fn start(
        cfg: Arc<Config>,
        queue: QueueMonitor,
        metrics: Arc<Metrics>,
        ops: &mut OpsState,
        shutdown: CancellationToken,
    ) -> Result<Self, PortalError> {
        let pki = Pki::new(cfg.path("pki"));
        let store = Store::connect(&cfg.database(), cfg.database.max_connections)
            .await?
            .with_password_hash_concurrency(cfg.portal.password_hash_concurrency);
        let at_rest = AtRestKeys::load(&cfg.path("keys/at-rest.json"))?;
        let state = PortalState {
            cfg: cfg.clone(),
            store: store.clone(),
            queue,
            metrics,
            at_rest: Arc::new(at_rest),
            pki: Arc::new(pki.clone()),
            login_limiter: msgrelay_auth::LoginLimiter::new(msgrelay_auth::LoginLimits {
                per_user: cfg.portal.login_max_failures_per_user,
                per_ip: cfg.portal.login_max_failures_per_ip,
                window: std::time::Duration::from_secs(cfg.portal.login_window_secs),
                capacity: cfg.portal.login_limiter_capacity,
            }),
        };
        let s = store.clone();
        ops.add_check("database", move || {
            let s = s.clone();
            async move { s.ping().await.map_err(|e| e.to_string()) }
        });
        let (s, m) = (store, state.metrics.clone());
        ops.add_sampler(move || {
            let h = s.password_hash_stats();
            m.set_password_hashes(h.total, h.in_flight, h.peak);
            std::future::ready(())
        });

        let tls = {
            let (chain, key) = pki.load_identity("portal")?;
            msgrelay_tls::tls_server_config(chain, key)?
        };
        let listen = cfg.portal.listen.clone();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| PortalError::Bind {
                addr: listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| PortalError::Bind {
            addr: listen,
            source,
        })?;
        let task = tokio::spawn(msgrelay_tls::serve_tls(
            listener,
            Arc::new(ArcSwap::new(tls)),
            router(state.clone()),
            shutdown,
            msgrelay_ops::serve_options(&cfg, "portal", &state.metrics),
        ));
        tracing::info!(portal_addr = %addr, "portal listening");
        Ok(Self { addr, state, task })
    }

    /// Waits until the listener has stopped.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Every route of the portal listener (pages, assets, docs, JSON API); security headers are
/// added here, once, to every response.
pub fn router(state: PortalState) -> Router {
    Router::new()
        .merge(pages::router(state.clone()))
        .merge(openapi::router(&state.cfg))
        .merge(api::router(state))
        .fallback(http::not_found)
        .layer(axum::middleware::map_response(http::security_headers))
}
