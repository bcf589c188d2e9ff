//! rustls server configurations (mutual TLS with SNI and CRLs, or server-auth only) and the
//! TLS accept loop that hands connections to an axum router.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::pki::{common_name, fingerprint, load_certs_pem};
use crate::PkiError;

/// A slow or silent peer must not hold a task and a socket forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The one crypto provider of the workspace; passing it explicitly keeps configs independent of
/// whatever process-wide default is (or is not) installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

fn tls_err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Tls(e.to_string())
}

/// Picks the server certificate by SNI: exact (case-insensitive) match, else the default.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .unwrap_or(&self.default);
        Some(chosen.clone())
    }
}

/// Trust store built from every certificate in a PEM document.
pub(crate) fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs_pem(pem)? {
        roots
            .add(cert)
            .map_err(|e| PkiError::malformed("trusted CA certificate", e))?;
    }
    Ok(roots)
}

/// mTLS server config: serves `certs` chosen by SNI (exact match on domain; no or unknown SNI →
/// the first entry), requires a client certificate chaining to `client_roots_pem`, checked
/// against `crls`. ALPN h2 + http/1.1.
///
/// Revocation: only the end-entity certificate is checked (our CAs sign leaves directly). With a
/// CRL from the client CA present every client certificate has a known status, so rustls'
/// default "unknown status is an error" only bites when the CRLs given do not belong to the
/// trusted CA — and then failing closed is what we want. With `crls` empty no revocation check
/// happens at all (the internal API, whose service certificates are never revoked by CRL).
/// The CRL's next-update is not enforced here: callers vet freshness with [`crate::pki::load_crl`]
/// (which has a grace period) and fail closed themselves.
pub fn mtls_server_config(
    certs: &[(String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)],
    client_roots_pem: &[u8],
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = provider();
    let mut keys = Vec::with_capacity(certs.len());
    for (domain, chain, key) in certs {
        let ck = CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .map_err(|e| PkiError::Tls(format!("server certificate for {domain}: {e}")))?;
        keys.push((domain.to_ascii_lowercase(), Arc::new(ck)));
    }
    let default = keys
        .first()
        .map(|(_, k)| k.clone())
        .ok_or_else(|| PkiError::Invalid {
            what: "server certificates",
            detail: "at least one is required".into(),
        })?;
    let resolver = SniResolver {
        by_name: keys.into_iter().collect(),
        default,
    };

    let roots = roots_from_pem(client_roots_pem)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .build()
        .map_err(tls_err)?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// Server-auth-only config (portal HTTPS). ALPN h2 + http/1.1.
pub fn tls_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// What the TLS layer learned about the peer; inserted into every request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// SHA-256 fingerprint of the client certificate (see [`fingerprint`]); `None` without mTLS.
    pub fingerprint: Option<String>,
    /// Subject CN of the client certificate.
    pub common_name: Option<String>,
    /// Server name the client asked for (SNI).
    pub sni: Option<String>,
    /// TCP peer address.
    pub remote_addr: SocketAddr,
}

/// Accept loop: each connection uses the config current at accept time (so a CRL swap applies to
/// new handshakes without restart), handshakes within 10 s, and serves `router` over HTTP/1.1 or
/// HTTP/2 with [`PeerInfo`] (and axum's `ConnectInfo<SocketAddr>`) in every request's extensions.
/// On `shutdown` it stops accepting and waits up to 10 s for open connections to finish.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: Arc<ArcSwap<ServerConfig>>,
    router: axum::Router,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (tcp, remote_addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = TlsAcceptor::from(config.load_full());
        let router = router.clone();
        let builder = builder.clone();
        // Taken before the handshake so shutdown also waits for connections still handshaking.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote_addr, "TLS handshake timed out");
                    return;
                }
            };
            let peer = peer_info(tls.get_ref().1, remote_addr);
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote_addr));
                    router.clone().oneshot(req)
                },
            );
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "open TLS connections did not finish within {DRAIN_TIMEOUT:?}; dropping them"
        );
    }
}

/// Extracts [`PeerInfo`] from a finished handshake.
fn peer_info(conn: &rustls::ServerConnection, remote_addr: SocketAddr) -> PeerInfo {
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    PeerInfo {
        fingerprint: leaf.map(|c| fingerprint(c)),
        common_name: leaf.and_then(|c| common_name(c)),
        sni: conn.server_name().map(str::to_owned),
        remote_addr,
    }
}
