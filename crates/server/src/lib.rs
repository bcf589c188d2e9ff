//! The main server role: the internal API that proxies and workers call over mutual TLS
//! (`internal`), the client CRL upkeep, and the mirror of dead letters into the store.
//! Entry point: [`Server::start`]; `msgrelay server` and `msgrelay up` call it (and start the
//! portal, `msgrelay-portal`, next to it).

mod internal;
mod internal_trust;
mod recent;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::wire::REJECTED_DEAD_LETTER;
use msgrelay_core::Config;
use msgrelay_ops::{Metrics, OpsState};
use msgrelay_queue::QueueMonitor;
use msgrelay_sealing::{Opener, SealingKeyPair};
use msgrelay_store::Store;
use msgrelay_tls::Pki;
use tokio_util::sync::CancellationToken;

pub use state::AppState;

/// Why the main server could not start. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("PKI: {0}")]
    Pki(#[from] msgrelay_tls::PkiError),
    #[error("database: {0}")]
    Store(#[from] msgrelay_store::StoreError),
    #[error("sealing keys: {0}")]
    Sealing(#[from] msgrelay_sealing::SealError),
    #[error("at-rest keys: {0}")]
    AtRest(#[from] msgrelay_at_rest::AtRestError),
    #[error("cannot bind {key} {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: String,
        source: std::io::Error,
    },
}

/// A running main server (internal API).
pub struct Server {
    pub internal_addr: SocketAddr,
    pub state: AppState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Opens the store and keys, binds `server.listen` (mutual TLS, internal CA only) and serves
    /// until `shutdown`.
    pub async fn start(
        cfg: Arc<Config>,
        queue: QueueMonitor,
        metrics: Arc<Metrics>,
        ops: &mut OpsState,
        shutdown: CancellationToken,
    ) -> Result<Self, ServerError> {
        let pki = Pki::new(cfg.path("pki"));
        let store = Store::connect(&cfg.database(), cfg.database.max_connections).await?;
        let sealing = SealingKeyPair::load(&cfg.path("keys/sealing.key"))?;
        let proxy_pub = std::fs::read_to_string(cfg.path("keys/proxy-sealing.pub")).map_err(|e| {
            msgrelay_sealing::SealError::from(msgrelay_sealing::KeyFileError::invalid(
                &cfg.path("keys/proxy-sealing.pub"),
                format!("{e} (copy the proxy's keys/proxy-sealing.pub here, or run `msgrelay init`)"),
            ))
        })?;
        let opener = Opener::new(
            std::slice::from_ref(&sealing),
            &[proxy_pub.trim().to_owned()],
        )?;
        let at_rest = AtRestKeys::load(&cfg.path("keys/at-rest.json"))?;

        let state = AppState {
            cfg: cfg.clone(),
            store: store.clone(),
            queue: queue.clone(),
            metrics,
            keys: Arc::new(state::Keys {
                sealing,
                opener,
                at_rest,
            }),
            pki: Arc::new(pki.clone()),
            recent: Arc::new(recent::RecentlyStored::new(recent::CAPACITY)),
        };
        let s = store.clone();
        ops.add_check("database", move || {
            let s = s.clone();
            async move { s.ping().await.map_err(|e| e.to_string()) }
        });

        let (s, m) = (store.clone(), state.metrics.clone());
        ops.add_sampler(move || {
            let (s, m) = (s.clone(), m.clone());
            async move {
                if let Some(n) = certificates_expiring(&s).await {
                    m.certificates_expiring_30d.set(n as i64);
                }
            }
        });
        let s = store.clone();
        ops.add_warning("certificates", move || {
            let s = s.clone();
            async move {
                let n = certificates_expiring(&s).await.filter(|n| *n > 0)?;
                Some(format!("{n} certificate(s) expire within 30 days (`msgrelay certs list --expiring-within 30d`)"))
            }
        });

        // Re-sign a due CRL before the proxies first ask for it, then keep it fresh (`refresh_crl`).
        let certs = msgrelay_certs::CertAdmin::new(pki.clone(), store.clone());
        refresh_crl_once(&certs).await;

        let internal_trust = internal_trust::InternalTrust::load(pki.clone())?;
        let bind = |key: &'static str, addr: String| async move {
            let l = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|source| ServerError::Bind {
                    key,
                    addr: addr.clone(),
                    source,
                })?;
            let a = l
                .local_addr()
                .map_err(|source| ServerError::Bind { key, addr, source })?;
            Ok::<_, ServerError>((l, a))
        };
        let (internal_listener, internal_addr) =
            bind("server.listen", cfg.server.listen.clone()).await?;

        let tasks = vec![
            tokio::spawn(msgrelay_tls::serve_tls(
                internal_listener,
                internal_trust.config.clone(),
                internal::router(state.clone()),
                shutdown.clone(),
                msgrelay_tls::ServeOptions {
                    revoked_serials: Some(internal_trust.revoked.clone()),
                    ..msgrelay_ops::serve_options(&cfg, "internal", &state.metrics)
                },
            )),
            tokio::spawn(internal_trust.watch(
                Duration::from_secs(cfg.proxy.revocation_refresh_secs),
                shutdown.clone(),
            )),
            tokio::spawn(sync_failed(state.clone(), shutdown.clone())),
            tokio::spawn(refresh_crl(certs, shutdown.clone())),
        ];
        tracing::info!(%internal_addr, "main server listening");
        Ok(Self {
            internal_addr,
            state,
            tasks,
        })
    }

    /// Waits until every listener has stopped.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Client certificates neither revoked nor expired whose expiry is within 30 days; None if the
/// store cannot be read (the database readiness check reports that).
async fn certificates_expiring(store: &Store) -> Option<usize> {
    let now = msgrelay_core::now_ms();
    let horizon = now + 30 * 24 * 3600 * 1000;
    match store.list_certificates(None).await {
        Ok(certs) => Some(
            certs
                .iter()
                .filter(|c| c.revoked_at_ms.is_none() && (now..=horizon).contains(&c.not_after_ms))
                .count(),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list certificates for the expiry gauge");
            None
        }
    }
}

/// How often the main server checks whether the client CRL must be re-signed (it is re-signed once
/// half of its validity has passed, so a missed check or two never lets it expire).
const CRL_REFRESH: Duration = Duration::from_secs(600);

async fn refresh_crl_once(certs: &msgrelay_certs::CertAdmin) {
    match certs.refresh_crl_if_due().await {
        Ok(Some(info)) => {
            tracing::info!(next_update = %info.next_update, revoked = info.revoked, "client CRL re-signed")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot re-sign the client CRL; proxies fail closed once it expires")
        }
    }
}

/// Keeps the client CA's CRL from expiring while the server runs.
async fn refresh_crl(certs: msgrelay_certs::CertAdmin, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CRL_REFRESH, CRL_REFRESH);
    loop {
        tokio::select! { _ = shutdown.cancelled() => break, _ = tick.tick() => {} }
        refresh_crl_once(&certs).await;
    }
}

/// Mirrors dead letters of the queue into the store (`failed`), so the portal shows them. Only
/// rows that already exist change: a row is created by the proxy's authenticated registration or
/// by a delivery that opened, never from what a queue entry claims (whoever can write to the
/// queue could otherwise plant "failed messages" in any client's list). Dead letters that never
/// opened stay in the queue, counted in `queue_depth{state="failed"}`.
async fn sync_failed(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! { _ = shutdown.cancelled() => break, _ = tick.tick() => {} }
        let failed = match state.queue.list_failed(1000).await {
            // Refused payloads are not messages of the client they name: never give them a row.
            Ok(f) => f
                .into_iter()
                .filter(|f| f.last_error != REJECTED_DEAD_LETTER)
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list failed messages");
                continue;
            }
        };
        if failed.is_empty() {
            continue;
        }
        let ids: Vec<_> = failed.iter().map(|f| f.id).collect();
        match state.store.mark_failed(&ids).await {
            Ok(n) if n > 0 => tracing::warn!(
                count = n,
                "messages marked failed (see the admin maintenance page)"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot mark failed messages"),
        }
    }
}
