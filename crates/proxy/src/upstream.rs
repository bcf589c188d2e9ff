//! The proxy's calls to the main server's internal API, with on-disk caches so that a proxy can
//! restart and keep accepting messages while the main server is down.

use std::path::PathBuf;
use std::time::Duration;

use msgrelay_core::wire::{RegisterRequest, RegistryResponse, SealingKeyResponse};
use msgrelay_core::Config;
use msgrelay_tls::Pki;

use crate::ProxyError;

/// mTLS client for the internal API plus the cache directory.
#[derive(Clone)]
pub(crate) struct Upstream {
    client: reqwest::Client,
    base: String,
    cache_dir: PathBuf,
}

impl Upstream {
    pub fn new(cfg: &Config, pki: &Pki) -> Result<Self, ProxyError> {
        let client = msgrelay_tls::service_client(pki, "proxy", Duration::from_secs(10))?;
        Ok(Self {
            client,
            base: cfg.proxy.main_server_url.trim_end_matches('/').to_owned(),
            cache_dir: cfg.path("cache"),
        })
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.cache_dir.join(name)
    }

    /// Writes a cache file atomically; failures are logged, never fatal.
    pub fn store_cache(&self, name: &str, contents: &[u8]) {
        let path = self.cache(name);
        let tmp = path.with_extension("tmp");
        let result = std::fs::create_dir_all(&self.cache_dir)
            .and_then(|_| std::fs::write(&tmp, contents))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot write cache file");
        }
    }

    pub fn load_cache(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.cache(name)).ok()
    }

    async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, String> {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{path} answered {}", resp.status()));
        }
        Ok(resp.bytes().await.map_err(|e| e.to_string())?.to_vec())
    }

    /// The main server's sealing public key (base64): fetched, else the cached copy.
    pub async fn sealing_key(&self) -> Result<String, ProxyError> {
        match self.get_bytes("/internal/sealing-key").await {
            Ok(bytes) => {
                let key: SealingKeyResponse = serde_json::from_slice(&bytes)
                    .map_err(|e| ProxyError::Upstream(format!("main server sent a malformed sealing key: {e}")))?;
                self.store_cache("server-sealing.pub", key.public_key.as_bytes());
                Ok(key.public_key)
            }
            Err(why) => {
                let cached = self.load_cache("server-sealing.pub").and_then(|b| String::from_utf8(b).ok());
                match cached {
                    Some(key) => {
                        tracing::warn!(error = %why, "main server unreachable; using the cached sealing key");
                        Ok(key)
                    }
                    None => Err(ProxyError::Upstream(format!(
                        "cannot fetch the main server's sealing key from {} ({why}); start the main server first or check proxy.main_server_url",
                        self.base
                    ))),
                }
            }
        }
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
        let resp = self
            .client
            .post(format!("{}/internal/messages/register", self.base))
            .json(req)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("register answered {}", resp.status()))
        }
    }
}
