//! Whom the internal API trusts: service certificates of the internal CA that are not on the
//! internal CRL (`msgrelay certs revoke-service`). The CRL is re-read while running, so a revoked
//! proxy or worker certificate is refused without a restart: new handshakes through the swapped
//! TLS config, connections opened before the revocation by a per-request serial check.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use msgrelay_tls::{LoadedCrl, Pki, PkiError};
use rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

/// The internal listener's TLS config and revoked serials, kept current by [`InternalTrust::watch`].
pub(crate) struct InternalTrust {
    pki: Pki,
    pub config: Arc<ArcSwap<ServerConfig>>,
    pub revoked: Arc<ArcSwap<HashSet<String>>>,
    applied: Option<Vec<u8>>,
}

impl InternalTrust {
    pub(crate) fn load(pki: Pki) -> Result<Self, PkiError> {
        let crl = pki.internal_crl()?;
        let config = build_config(&pki, crl.as_ref())?;
        Ok(Self {
            config: Arc::new(ArcSwap::new(config)),
            revoked: Arc::new(ArcSwap::from_pointee(serials(crl.as_ref()))),
            applied: crl.map(|c| c.der.as_ref().to_vec()),
            pki,
        })
    }

    /// Re-reads the internal CRL every `period` and applies a changed one.
    pub(crate) async fn watch(mut self, period: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let crl = match self.pki.internal_crl() {
                Ok(crl) => crl,
                Err(e) => {
                    // Keep the list we have: it still refuses everything revoked so far.
                    tracing::error!(error = %e, "internal CRL unreadable; keeping the previous one");
                    continue;
                }
            };
            let der = crl.as_ref().map(|c| c.der.as_ref().to_vec());
            if der == self.applied {
                continue;
            }
            match build_config(&self.pki, crl.as_ref()) {
                Ok(config) => {
                    self.config.store(config);
                    let revoked = serials(crl.as_ref());
                    tracing::info!(revoked = revoked.len(), "internal CRL applied");
                    self.revoked.store(Arc::new(revoked));
                    self.applied = der;
                }
                Err(e) => {
                    tracing::error!(error = %e, "internal CRL not applied; keeping the previous one")
                }
            }
        }
    }
}

fn serials(crl: Option<&LoadedCrl>) -> HashSet<String> {
    crl.map(|c| c.revoked_serials.iter().cloned().collect())
        .unwrap_or_default()
}

fn build_config(pki: &Pki, crl: Option<&LoadedCrl>) -> Result<Arc<ServerConfig>, PkiError> {
    let (chain, key) = pki.load_identity("server")?;
    let roots = pki.read("internal-ca.crt")?;
    let crls = crl.map(|c| vec![c.der.clone()]).unwrap_or_default();
    msgrelay_tls::mtls_server_config(&[("server".to_owned(), chain, key)], &roots, crls)
}
