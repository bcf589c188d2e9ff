//! rustls server configurations (mutual TLS with SNI and CRLs, or server-auth only) and the
//! peer identity the accept loop (`accept.rs`) puts into every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::pki::{common_name_and_serial, fingerprint, load_certs_pem};
use crate::PkiError;

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

/// What the TLS layer learned about the peer; inserted into every request's extensions. Its
/// strings are shared, so the per-request copies are reference counts, not allocations.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// SHA-256 fingerprint of the client certificate (see [`fingerprint`]); `None` without mTLS.
    pub fingerprint: Option<Arc<str>>,
    /// Subject CN of the client certificate.
    pub common_name: Option<Arc<str>>,
    /// Serial of the client certificate, lowercase hex.
    pub serial_hex: Option<Arc<str>>,
    /// Server name the client asked for (SNI).
    pub sni: Option<Arc<str>>,
    /// TCP peer address.
    pub remote_addr: SocketAddr,
}

/// Extracts [`PeerInfo`] from a finished handshake.
pub(crate) fn peer_info(conn: &rustls::ServerConnection, remote_addr: SocketAddr) -> PeerInfo {
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    let (common_name, serial_hex) = leaf.map(|c| common_name_and_serial(c)).unwrap_or_default();
    PeerInfo {
        fingerprint: leaf.map(|c| fingerprint(c).into()),
        common_name: common_name.map(Into::into),
        serial_hex: serial_hex.map(Into::into),
        sni: conn.server_name().map(Into::into),
        remote_addr,
    }
}
