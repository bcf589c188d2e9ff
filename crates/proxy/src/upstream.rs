//! The proxy's calls to the main server's internal API, with on-disk caches so that a proxy can
//! restart and keep accepting messages while the main server is down. With several main servers
//! (`proxy.main_server_urls`) every call goes to the next healthy one and fails over to the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use msgrelay_core::wire::{RegisterRequest, RegistryResponse, SealingKeyResponse};
use msgrelay_core::{Config, ServerList};
use msgrelay_tls::Pki;

use crate::ProxyError;

/// Cache file holding the pinned sealing public key of the main server.
const SEALING_PIN: &str = "server-sealing.pub";

/// mTLS client for the internal API plus the cache directory.
#[derive(Clone)]
pub(crate) struct Upstream {
    client: reqwest::Client,
    servers: Arc<ServerList>,
    cache_dir: PathBuf,
}

impl Upstream {
    pub fn new(cfg: &Config, pki: &Pki) -> Result<Self, ProxyError> {
        let client = msgrelay_tls::service_client(pki, "proxy", Duration::from_secs(10))?;
        Ok(Self {
            client,
            servers: Arc::new(ServerList::new(&cfg.proxy.main_servers())),
            cache_dir: cfg.path("cache"),
        })
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.cache_dir.join(name)
    }

    /// Writes a cache file atomically and owner-only (the registry names every client);
    /// failures are logged, never fatal.
    pub fn store_cache(&self, name: &str, contents: &[u8]) {
        let path = self.cache(name);
        if let Err(e) = msgrelay_files::replace_private(&path, contents) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write cache file");
        }
    }

    pub fn load_cache(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.cache(name)).ok()
    }

    /// Sends one request to the healthy servers in turn until one answers with success; the
    /// failures (per server) when none did.
    async fn call(
        &self,
        path: &str,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let mut failures = Vec::new();
        for i in self.servers.order() {
            let base = self.servers.url(i);
            let outcome = match request(&format!("{base}{path}")).send().await {
                Ok(resp) if resp.status().is_success() => Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    msgrelay_tls::client::discard(resp).await;
                    Err(format!("{path} answered {status}"))
                }
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(resp) => {
                    self.servers.succeeded(i);
                    return Ok(resp);
                }
                Err(why) => {
                    self.servers.failed(i);
                    if self.servers.urls().len() > 1 {
                        tracing::warn!(server = base, error = %why, "main server failed; trying the next one");
                    }
                    failures.push(format!("{base}: {why}"));
                }
            }
        }
        Err(failures.join("; "))
    }

    async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, String> {
        let resp = self.call(path, |url| self.client.get(url)).await?;
        Ok(resp.bytes().await.map_err(|e| e.to_string())?.to_vec())
    }

    /// The main server's sealing public key (base64) and whether the server trusts `proxy_key_id`.
    ///
    /// The key is only ever taken from the internal API over mutual TLS (the server's certificate
    /// must chain to the internal CA) and is pinned: the first key seen is written to
    /// `cache/server-sealing.pub` (0600), and a different key later is refused until an operator
    /// removes that file. When the main server is unreachable the pinned copy is used and trust
    /// is unknown (`None`).
    pub async fn sealing_key(
        &self,
        proxy_key_id: &str,
    ) -> Result<(String, Option<bool>), ProxyError> {
        let pinned = self
            .load_cache(SEALING_PIN)
            .and_then(|b| String::from_utf8(b).ok())
            .map(|k| k.trim().to_owned());
        match self.fetch_sealing_key().await {
            Ok(key) => {
                match &pinned {
                    Some(pin) if *pin != key.public_key => {
                        return Err(ProxyError::Upstream(format!(
                            "the main server's sealing key {} differs from the pinned one in {}; if the server key was rotated on purpose, delete that file and restart",
                            key.key_id,
                            self.cache(SEALING_PIN).display()
                        )))
                    }
                    Some(_) => {}
                    None => self.store_cache(SEALING_PIN, key.public_key.as_bytes()),
                }
                let trusted = key.trusted_proxy_key_ids.iter().any(|id| id == proxy_key_id);
                Ok((key.public_key, Some(trusted)))
            }
            Err(why) => match pinned {
                Some(key) => {
                    tracing::warn!(error = %why, "main server unreachable; using the pinned sealing key");
                    Ok((key, None))
                }
                None => Err(ProxyError::Upstream(format!(
                    "cannot fetch the main server's sealing key ({why}); start a main server first or check proxy.main_server_url(s)"
                ))),
            },
        }
    }

    /// `GET /internal/sealing-key`, parsed.
    pub async fn fetch_sealing_key(&self) -> Result<SealingKeyResponse, String> {
        let bytes = self.get_bytes("/internal/sealing-key").await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("main server sent a malformed sealing key: {e}"))
    }

    /// The client registry, raw JSON (validated by the caller).
    pub async fn registry(&self) -> Result<RegistryResponse, String> {
        let bytes = self.get_bytes("/internal/clients").await?;
        serde_json::from_slice(&bytes).map_err(|e| format!("malformed registry: {e}"))
    }

    /// The client CA's current CRL (PEM).
    pub async fn crl(&self) -> Result<Vec<u8>, String> {
        self.get_bytes("/internal/crl").await
    }

    /// Registers accepted messages as queued.
    pub async fn register(&self, req: &RegisterRequest) -> Result<(), String> {
        self.call("/internal/messages/register", |url| {
            self.client.post(url).json(req)
        })
        .await
        .map(|_| ())
    }
}
