//! Who may send: the client registry (fingerprint → client, domain, status) and the client CA's
//! CRL, both fetched from the main server every `proxy.revocation_refresh_secs`, cached on disk,
//! and applied without a restart. A new CRL rebuilds the TLS configuration, swapped atomically
//! for the next handshake; the registry is also checked on every request, so revocation holds on
//! resumed sessions and already-open connections. A CRL past its next-update plus
//! `proxy.crl_grace_secs` makes the proxy fail closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use msgrelay_core::wire::{RegistryEntry, RegistryResponse};
use msgrelay_core::Config;
use msgrelay_tls::{load_crl, Pki};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::upstream::Upstream;
use crate::ProxyError;

type ServerCerts = Vec<(String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>;

struct CrlState {
    pem: Vec<u8>,
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
}

/// The proxy's live view of who may send.
pub struct Revocation {
    grace: Duration,
    client_ca_pem: Vec<u8>,
    server_certs: ServerCerts,
    upstream: Upstream,
    registry: ArcSwap<HashMap<String, RegistryEntry>>,
    crl: ArcSwap<Option<CrlState>>,
    tls: Arc<ArcSwap<ServerConfig>>,
}

impl Revocation {
    /// Loads the registry and CRL (main server, else cache, else the local PKI), builds the TLS
    /// configuration and starts the refresh task.
    pub(crate) async fn start(
        cfg: Arc<Config>,
        pki: Pki,
        upstream: Upstream,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ProxyError> {
        let client_ca_pem = pki.read("client-ca.crt")?;
        let mut server_certs = ServerCerts::new();
        for domain in &cfg.proxy.domains {
            let (crt, key) = pki.proxy_files(domain);
            let chain = msgrelay_tls::load_certs_pem(&read(&crt)?)?;
            let key = msgrelay_tls::load_key_pem(&read(&key)?)?;
            server_certs.push((domain.clone(), chain, key));
        }
        let initial = msgrelay_tls::mtls_server_config(&server_certs, &client_ca_pem, Vec::new())?;
        let this = Self {
            grace: Duration::from_secs(cfg.proxy.crl_grace_secs),
            client_ca_pem,
            server_certs,
            upstream,
            registry: ArcSwap::from_pointee(HashMap::new()),
            crl: ArcSwap::from_pointee(None),
            tls: Arc::new(ArcSwap::new(initial)),
        };

        if let Some(cached) = this
            .upstream
            .load_cache("registry.json")
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            this.set_registry(cached);
        }
        let mut candidates = Vec::new();
        if let Some(c) = this.upstream.load_cache("client-ca.crl") {
            candidates.push(c);
        }
        if let Ok(c) = pki.read("client-ca.crl") {
            candidates.push(c);
        }
        for pem in candidates {
            this.apply_crl(pem);
        }
        this.refresh().await;
        if this.crl.load().is_none() {
            tracing::error!(
                "no valid CRL for the client CA: refusing every client until one is available"
            );
        }

        let this = Arc::new(this);
        let period = Duration::from_secs(cfg.proxy.revocation_refresh_secs);
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match weak.upgrade() {
                    Some(r) => r.refresh().await,
                    None => break,
                }
            }
        });
        Ok(this)
    }

    /// The swappable TLS configuration the accept loop reads for each new connection.
    pub(crate) fn tls_config(&self) -> Arc<ArcSwap<ServerConfig>> {
        self.tls.clone()
    }

    /// The registry entry for a certificate fingerprint.
    pub(crate) fn lookup(&self, fingerprint: &str) -> Option<RegistryEntry> {
        self.registry.load().get(fingerprint).cloned()
    }

    /// Ok while the CRL is within its next-update plus grace.
    pub fn check_fresh(&self) -> Result<(), String> {
        match self.crl.load().as_ref() {
            None => Err("no valid CRL loaded".into()),
            Some(crl) => {
                let limit =
                    crl.next_update + chrono::Duration::from_std(self.grace).unwrap_or_default();
                if Utc::now() > limit {
                    Err(format!(
                        "CRL expired at {} (grace ended {limit})",
                        crl.next_update
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Seconds until the loaded CRL's next update (negative once past it); None without a CRL.
    pub fn crl_seconds_left(&self) -> Option<i64> {
        self.crl
            .load()
            .as_ref()
            .as_ref()
            .map(|c| (c.next_update - Utc::now()).num_seconds())
    }

    async fn refresh(&self) {
        match self.upstream.registry().await {
            Ok(reg) => {
                if let Ok(bytes) = serde_json::to_vec(&reg) {
                    self.upstream.store_cache("registry.json", &bytes);
                }
                self.set_registry(reg);
            }
            Err(e) => {
                tracing::warn!(error = %e, "client registry refresh failed; keeping the last one")
            }
        }
        match self.upstream.crl().await {
            Ok(pem) => {
                let unchanged = self
                    .crl
                    .load()
                    .as_ref()
                    .as_ref()
                    .is_some_and(|c| c.pem == pem);
                if !unchanged && self.apply_crl(pem.clone()) {
                    self.upstream.store_cache("client-ca.crl", &pem);
                }
            }
            Err(e) => tracing::warn!(error = %e, "CRL refresh failed; keeping the last one"),
        }
        if let Err(why) = self.check_fresh() {
            tracing::error!(reason = %why, "revocation data is stale: refusing clients (fail closed)");
        }
    }

    fn set_registry(&self, reg: RegistryResponse) {
        let map = reg
            .clients
            .into_iter()
            .map(|e| (e.fingerprint.to_ascii_lowercase(), e))
            .collect();
        self.registry.store(Arc::new(map));
    }

    /// Validates a CRL and, if it is newer than the current one, swaps the TLS config. Returns true if applied.
    fn apply_crl(&self, pem: Vec<u8>) -> bool {
        let loaded = match load_crl(&pem, &self.client_ca_pem, self.grace) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "refusing a CRL; keeping the last good one");
                return false;
            }
        };
        // Newer means signed later, not valid longer: `init` signs a 30-day CRL while revocations
        // are signed for 7 days, so comparing next-update times would ignore every revocation.
        if let Some(current) = self.crl.load().as_ref() {
            if current.this_update > loaded.this_update {
                return false;
            }
        }
        match msgrelay_tls::mtls_server_config(
            &self.server_certs,
            &self.client_ca_pem,
            vec![loaded.der],
        ) {
            Ok(config) => {
                self.tls.store(config);
                self.crl.store(Arc::new(Some(CrlState {
                    pem,
                    this_update: loaded.this_update,
                    next_update: loaded.next_update,
                })));
                tracing::info!(next_update = %loaded.next_update, revoked = loaded.revoked_serials.len(), "CRL applied");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot build the TLS configuration with the new CRL");
                false
            }
        }
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ProxyError> {
    std::fs::read(path).map_err(|e| {
        ProxyError::Upstream(format!("cannot read {}: {e} (run `msgrelay init --domain <name>` for each proxy.domains entry)", path.display()))
    })
}
