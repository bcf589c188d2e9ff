//! The proxy role: terminates mutual TLS from clients, identifies them by certificate fingerprint,
//! validates, seals each message to the main server and enqueues it durably before answering 202.
//! Entry point: [`Proxy::start`]; `msgrelay proxy` and `msgrelay up` both call it.

mod backpressure;
mod register;
mod revocation;
mod routes;
mod trust;
mod upstream;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use msgrelay_core::Config;
use msgrelay_ops::{Metrics, OpsState};
use msgrelay_queue::Queue;
use msgrelay_sealing::{Sealer, SealingKeyPair};
use msgrelay_tls::Pki;
use tokio_util::sync::CancellationToken;

pub use revocation::Revocation;

/// Why the proxy could not start. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("PKI: {0}")]
    Pki(#[from] msgrelay_tls::PkiError),
    #[error("keys: {0}")]
    Sealing(#[from] msgrelay_sealing::SealError),
    #[error("cannot bind proxy.listen {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Upstream(String),
}

/// Everything a request handler needs (shared behind an `Arc` by the router).
pub(crate) struct AppState {
    pub cfg: Arc<Config>,
    pub queue: Queue,
    pub sealer: Arc<Sealer>,
    pub metrics: Arc<Metrics>,
    pub revocation: Arc<Revocation>,
    pub register: register::RegisterSender,
    pub backpressure: Arc<backpressure::Backpressure>,
}

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Connects to the main server, binds `proxy.listen` and serves until `shutdown`, enqueuing
    /// into `queue` (the caller connects it and registers its readiness check). Registers the
    /// revocation-data check on `ops`.
    pub async fn start(
        cfg: Arc<Config>,
        queue: Queue,
        metrics: Arc<Metrics>,
        ops: &mut OpsState,
        shutdown: CancellationToken,
    ) -> Result<Self, ProxyError> {
        let pki = Pki::new(cfg.path("pki"));
        let upstream = upstream::Upstream::new(&cfg, &pki)?;

        // Never generate a key here: a fresh key would not be trusted by the main server, and
        // every message sealed with it would wait in the queue. `msgrelay init` creates keys.
        let proxy_key = SealingKeyPair::load(&cfg.path("keys/proxy-sealing.key"))?;
        let (server_public, trusted) = upstream.sealing_key(&proxy_key.key_id()).await?;
        if trusted == Some(false) {
            return Err(ProxyError::Upstream(trust::not_trusted(
                &proxy_key.key_id(),
            )));
        }
        if trusted.is_none() {
            tracing::warn!(proxy_key_id = %proxy_key.key_id(), "cannot confirm that the main server trusts this proxy's sealing key; /ready reports it once known");
        }
        let sealer = Arc::new(Sealer::new(&proxy_key, &server_public)?);
        let sealing_trust = trust::SealingTrust::new(proxy_key.key_id(), trusted);
        sealing_trust.spawn(upstream.clone(), server_public, shutdown.clone());
        let t = sealing_trust.clone();
        ops.add_check("sealing_key", move || {
            let t = t.clone();
            async move { t.check() }
        });

        let revocation =
            Revocation::start(cfg.clone(), pki, upstream.clone(), shutdown.clone()).await?;
        let register = register::spawn(upstream, metrics.clone(), shutdown.clone());

        let r = revocation.clone();
        ops.add_check("revocation", move || {
            let r = r.clone();
            async move { r.check_fresh() }
        });

        let (r, m) = (revocation.clone(), metrics.clone());
        ops.add_sampler(move || {
            if let Some(left) = r.crl_seconds_left() {
                m.crl_seconds_until_next_update.set(left);
            }
            async {}
        });
        let r = revocation.clone();
        ops.add_warning("crl", move || {
            // Warn a day ahead, while /ready is still true; the "revocation" check fails after the grace.
            let warning = r.crl_seconds_left().filter(|left| *left < CRL_WARN_SECS).map(|left| match left {
                0.. => format!("crl expires in {}h; is the main server re-signing it?", left / 3600),
                _ => format!("crl passed its next update {} min ago; clients are refused once proxy.crl_grace_secs pass", -left / 60),
            });
            async move { warning }
        });

        let backpressure = backpressure::Backpressure::start(
            cfg.queue.max_depth,
            queue.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let bp = backpressure.clone();
        ops.add_check("backpressure", move || {
            let bp = bp.clone();
            async move { bp.check() }
        });

        let state = AppState {
            cfg: cfg.clone(),
            queue,
            sealer,
            metrics,
            revocation: revocation.clone(),
            register,
            backpressure,
        };
        let listener = tokio::net::TcpListener::bind(&cfg.proxy.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: cfg.proxy.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: cfg.proxy.listen.clone(),
            source,
        })?;
        let tls: Arc<ArcSwap<_>> = revocation.tls_config();
        let serve = msgrelay_ops::serve_options(&cfg, "proxy", &state.metrics);
        let router = routes::router(state);
        let task = tokio::spawn(msgrelay_tls::serve_tls(
            listener, tls, router, shutdown, serve,
        ));
        tracing::info!(%addr, domains = ?cfg.proxy.domains, "proxy listening");
        Ok(Self { addr, task })
    }

    /// Waits until the proxy has stopped (after `shutdown`).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// A CRL with less than this left is reported on /ready (the main server re-signs at half of 7 days).
const CRL_WARN_SECS: i64 = 24 * 3600;

/// How long the proxy waits for the queue before answering 503.
pub(crate) const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
