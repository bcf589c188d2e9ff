//! `spawn_proxy()`: a bootstrapped data directory (`init --demo`), the main server and the proxy
//! on port 0, the shared embedded queue, and an mTLS client holding the demo client's certificate.

use std::sync::Arc;
use std::time::Duration;

use msgrelay_admin::{init, InitOptions};
use msgrelay_core::Config;
use msgrelay_ops::{Metrics, OpsState};
use msgrelay_proxy::Proxy;
use msgrelay_queue::Queue;
use msgrelay_server::Server;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct TestProxy {
    pub queue: Queue,
    url: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    _server: Server,
    _proxy: Proxy,
    _dir: tempfile::TempDir,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_proxy() -> TestProxy {
    msgrelay_tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.proxy.listen = "127.0.0.1:0".into();
    cfg.ops.listen = "127.0.0.1:0".into();
    init(
        &cfg,
        &InitOptions {
            demo: true,
            ..InitOptions::default()
        },
    )
    .await
    .expect("init --demo");

    let metrics = Arc::new(Metrics::new());
    let mut ops = OpsState::new(metrics.clone());
    let shutdown = CancellationToken::new();
    let queue = Queue::connect(&cfg.queue, &cfg.data_dir)
        .await
        .expect("queue");
    let server = Server::start(
        Arc::new(cfg.clone()),
        queue.monitor(),
        metrics.clone(),
        &mut ops,
        shutdown.clone(),
    )
    .await
    .expect("server starts");
    cfg.proxy.main_server_url = format!("https://localhost:{}", server.internal_addr.port());
    let proxy = Proxy::start(
        Arc::new(cfg.clone()),
        queue.clone(),
        metrics,
        &mut ops,
        shutdown.clone(),
    )
    .await
    .expect("proxy starts");

    let read = |p: &str| std::fs::read(cfg.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let client = msgrelay_tls::client::mtls_client_builder(
        &read("clients/demo/ca.crt"),
        &read("clients/demo/client.crt"),
        &read("clients/demo/client.key"),
        Duration::from_secs(10),
    )
    .expect("client identity")
    .resolve("localhost", proxy.addr)
    .build()
    .expect("client");
    let url = format!("https://localhost:{}/api/v1/messages", proxy.addr.port());
    TestProxy {
        queue,
        url,
        client,
        shutdown,
        _server: server,
        _proxy: proxy,
        _dir: dir,
    }
}

impl TestProxy {
    /// POSTs `body` (JSON) with an optional Idempotency-Key: `(status, JSON answer)`.
    pub async fn post(&self, body: Value, idempotency_key: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.post(&self.url).json(&body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.expect("request to the proxy");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
