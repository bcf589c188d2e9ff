//! Shared set-up: a temp PKI, a running `serve_tls`, clients that resolve our test domains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::routing::get;
use axum::{Extension, Router};
use msgrelay_tls::client::mtls_client_builder;
use msgrelay_tls::{load_certs_pem, load_crl, mtls_server_config, serve_tls, PeerInfo, Pki};
use rustls::ServerConfig;
use rustls_pki_types::CertificateRevocationListDer;
use tokio_util::sync::CancellationToken;

pub const DOMAINS: [&str; 3] = ["localhost", "a.test", "b.test"];
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestPki {
    _dir: tempfile::TempDir,
    pub pki: Pki,
}

impl TestPki {
    pub fn new() -> Self {
        msgrelay_tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.init(&DOMAINS.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .unwrap();
        TestPki { _dir: dir, pki }
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        self.pki.read(file).unwrap()
    }

    /// The client CA's current CRL, checked the way the proxy does.
    pub fn crl(&self) -> CertificateRevocationListDer<'static> {
        load_crl(
            &self.read("client-ca.crl"),
            &self.read("client-ca.crt"),
            Duration::ZERO,
        )
        .unwrap()
        .der
    }

    /// The proxy's server config: one cert per domain (first = default), client CA, current CRL.
    pub fn proxy_config(&self, domains: &[&str]) -> Arc<ServerConfig> {
        let certs: Vec<_> = domains
            .iter()
            .map(|d| {
                let (chain, key) = self.pki.load_identity(&format!("proxy-{d}")).unwrap();
                (d.to_string(), chain, key)
            })
            .collect();
        mtls_server_config(&certs, &self.read("client-ca.crt"), vec![self.crl()]).unwrap()
    }

    /// A client presenting `cert`/`key` that trusts the internal CA (as a client bundle does).
    pub fn client(&self, cert_pem: &[u8], key_pem: &[u8], addr: SocketAddr) -> reqwest::Client {
        let b =
            mtls_client_builder(&self.read("internal-ca.crt"), cert_pem, key_pem, TIMEOUT).unwrap();
        resolve_all(b, addr).build().unwrap()
    }

    pub fn der_of(&self, cert_pem: &[u8]) -> Vec<u8> {
        load_certs_pem(cert_pem).unwrap().remove(0).to_vec()
    }
}

/// Points every test domain at `addr` so the URL host (and thus SNI) can be chosen freely.
pub fn resolve_all(mut b: reqwest::ClientBuilder, addr: SocketAddr) -> reqwest::ClientBuilder {
    for d in DOMAINS {
        b = b.resolve(d, addr);
    }
    b
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Arc<ArcSwap<ServerConfig>>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

/// Body: `fingerprint|common_name|sni` as the server saw them.
async fn whoami(Extension(p): Extension<PeerInfo>) -> String {
    format!(
        "{}|{}|{}",
        p.fingerprint.unwrap_or_default(),
        p.common_name.unwrap_or_default(),
        p.sni.unwrap_or_default()
    )
}

pub async fn spawn(config: Arc<ServerConfig>) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(ArcSwap::new(config));
    let shutdown = CancellationToken::new();
    let router = Router::new().route("/whoami", get(whoami));
    let task = tokio::spawn(serve_tls(
        listener,
        config.clone(),
        router,
        shutdown.clone(),
        Default::default(),
    ));
    TestServer {
        addr,
        config,
        shutdown,
        task,
    }
}

/// GET https://<host>:<port>/whoami; Ok only for a 2xx answer, with its body.
pub async fn whoami_via(
    client: &reqwest::Client,
    host: &str,
    addr: SocketAddr,
) -> Result<(reqwest::Version, String), String> {
    let url = format!("https://{host}:{}/whoami", addr.port());
    let resp = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let version = resp.version();
    Ok((version, resp.text().await.map_err(|e| format!("{e:?}"))?))
}
