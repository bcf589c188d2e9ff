//! The ops listener: plain HTTP on a loopback address (checked by the config), for probes and scrapers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::Metrics;

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// An async readiness check: Ok, or a reason safe to show on /ready.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFut<Result<(), String>> + Send + Sync>;
/// An async warning for /ready: `Some(text)` is reported but does not make the process unready.
pub type ReadyWarning = Arc<dyn Fn() -> BoxFut<Option<String>> + Send + Sync>;
/// An async hook run before each scrape (e.g. sampling queue depth into gauges).
pub type Sampler = Arc<dyn Fn() -> BoxFut<()> + Send + Sync>;

/// What the ops listener serves; roles add their checks before it starts.
#[derive(Clone)]
pub struct OpsState {
    pub metrics: Arc<Metrics>,
    checks: Vec<(String, ReadyCheck)>,
    warnings: Vec<(String, ReadyWarning)>,
    samplers: Vec<Sampler>,
}

impl OpsState {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            checks: Vec::new(),
            warnings: Vec::new(),
            samplers: Vec::new(),
        }
    }

    /// Adds a named readiness check (e.g. "queue", "database", "crl").
    pub fn add_check<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name.to_owned(), Arc::new(move || Box::pin(f()))));
    }

    /// Adds a named warning (e.g. "crl": "crl expires in 5h"), listed under `warnings` on /ready
    /// while it returns `Some`; unlike a check it never makes /ready fail.
    pub fn add_warning<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.warnings
            .push((name.to_owned(), Arc::new(move || Box::pin(f()))));
    }

    /// Adds a hook run before every /metrics scrape.
    pub fn add_sampler<F, Fut>(&mut self, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.samplers.push(Arc::new(move || Box::pin(f())));
    }

    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/health",
                get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            )
            .route("/ready", get(ready))
            .route("/metrics", get(metrics))
            .with_state(self)
    }
}

async fn ready(State(s): State<OpsState>) -> Response {
    let mut all_ok = true;
    let mut report = serde_json::Map::new();
    for (name, check) in &s.checks {
        let result = tokio::time::timeout(std::time::Duration::from_secs(2), check()).await;
        let value = match result {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(why)) => {
                all_ok = false;
                why
            }
            Err(_) => {
                all_ok = false;
                "timed out after 2 s".to_owned()
            }
        };
        report.insert(name.clone(), value.into());
    }
    let mut warnings = serde_json::Map::new();
    for (name, warning) in &s.warnings {
        if let Ok(Some(text)) =
            tokio::time::timeout(std::time::Duration::from_secs(2), warning()).await
        {
            warnings.insert(name.clone(), text.into());
        }
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"ready": all_ok, "checks": report, "warnings": warnings})),
    )
        .into_response()
}

async fn metrics(State(s): State<OpsState>) -> Response {
    for sampler in &s.samplers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sampler()).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// A bound ops listener.
pub struct OpsHandle {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl OpsHandle {
    /// Binds `listen` and serves until `shutdown`.
    pub async fn start(
        listen: &str,
        state: OpsState,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let router = state.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Ok(Self { addr, task })
    }

    /// Waits for the listener to stop.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}
