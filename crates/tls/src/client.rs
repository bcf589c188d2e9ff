//! reqwest clients over rustls (ring) that trust only our own CAs, with or without a client certificate.

use std::time::Duration;

use rustls::ClientConfig;

use crate::pki::{load_certs_pem, load_key_pem, with_path, Pki, INTERNAL_CA};
use crate::server::{provider, roots_from_pem};
use crate::PkiError;

/// Connecting is bounded separately so an unreachable host fails fast even with a long request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn builder(config: ClientConfig, timeout: Duration) -> reqwest::ClientBuilder {
    let mut config = config;
    // reqwest takes a preconfigured config as is, so ALPN must be set here for HTTP/2 to be negotiated.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        // Below the servers' default `http.idle_timeout_secs` (60): a pooled connection is dropped
        // here before the server closes it, instead of racing a request against the close.
        .pool_idle_timeout(Duration::from_secs(50))
}

fn base(
    ca_pem: &[u8],
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, PkiError> {
    let roots = roots_from_pem(ca_pem)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(roots))
}

/// A client builder for mutual TLS (trusts only `ca_pem`, presents cert + key), for callers
/// that need more settings (e.g. `resolve`) before building.
pub fn mtls_client_builder(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, PkiError> {
    let certs = load_certs_pem(cert_pem)?;
    let key = load_key_pem(key_pem)?;
    let config = base(ca_pem)?
        .with_client_auth_cert(certs, key)
        .map_err(|e| PkiError::Tls(format!("client certificate and key: {e}")))?;
    Ok(builder(config, timeout))
}

/// reqwest client for mutual TLS: trusts only `ca_pem`, presents cert + key; HTTP/2 allowed.
pub fn mtls_client(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    timeout: Duration,
) -> Result<reqwest::Client, PkiError> {
    build(mtls_client_builder(ca_pem, cert_pem, key_pem, timeout)?)
}

/// A client builder that trusts only `ca_pem` and presents no certificate.
pub fn tls_client_builder(
    ca_pem: &[u8],
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, PkiError> {
    Ok(builder(base(ca_pem)?.with_no_client_auth(), timeout))
}

/// Same as [`mtls_client`] without a client certificate (e.g. the portal API in tests).
pub fn tls_client(ca_pem: &[u8], timeout: Duration) -> Result<reqwest::Client, PkiError> {
    build(tls_client_builder(ca_pem, timeout)?)
}

/// Client for a service identity: trusts `internal-ca.crt`, presents `<name>.crt`/`<name>.key`
/// (e.g. `service_client(&pki, "worker", t)`).
pub fn service_client(
    pki: &Pki,
    name: &str,
    timeout: Duration,
) -> Result<reqwest::Client, PkiError> {
    let ca_file = format!("{INTERNAL_CA}.crt");
    let ca = pki.read(&ca_file)?;
    let cert = pki.read(&format!("{name}.crt"))?;
    let key = pki.read(&format!("{name}.key"))?;
    // Re-parse here only to attach file names to errors; the builder parses again.
    load_certs_pem(&ca).map_err(|e| with_path(e, &pki.path(&ca_file)))?;
    load_certs_pem(&cert).map_err(|e| with_path(e, &pki.path(&format!("{name}.crt"))))?;
    load_key_pem(&key).map_err(|e| with_path(e, &pki.path(&format!("{name}.key"))))?;
    mtls_client(&ca, &cert, &key, timeout)
}

fn build(b: reqwest::ClientBuilder) -> Result<reqwest::Client, PkiError> {
    b.build()
        .map_err(|e| PkiError::Tls(format!("building HTTP client: {e}")))
}

/// How much of an unwanted answer [`discard`] reads before it gives up and lets the stream reset.
const DISCARD_MAX_BYTES: usize = 64 * 1024;

/// Reads and drops the rest of an answer the caller has no use for (an error's problem+json, say),
/// up to 64 KiB. Dropping an HTTP/2 response before its body has arrived resets the stream, and
/// when the body's frames then arrive for the forgotten stream, the client's h2 counts one more
/// locally reset stream: after 1,024 in the connection's lifetime it closes the connection
/// (`too_many_internal_resets`), failing every request in flight on it. A client that drops
/// every error answer on a long-lived connection (a load generator meeting 503s, a worker
/// meeting a draining server) loses its connection about every thousand errors.
pub async fn discard(mut resp: reqwest::Response) {
    let mut seen = 0usize;
    while let Ok(Some(chunk)) = resp.chunk().await {
        seen += chunk.len();
        if seen > DISCARD_MAX_BYTES {
            break;
        }
    }
}
