//! Operations and HTTP plumbing shared by every role: Prometheus metrics (`metrics`), the plain-HTTP
//! loopback ops listener with /health, /ready and /metrics (`listener`), and logging set-up
//! (`telemetry`) and RFC 9457 problem responses (`problem`). Roles receive an `Arc<Metrics>`.

pub mod listener;
pub mod metrics;
pub mod problem;
pub mod telemetry;

pub use listener::{OpsHandle, OpsState};
pub use metrics::Metrics;
pub use problem::Problem;

use std::sync::Arc;

/// How a role runs its TLS listener `listener` (`proxy`, `internal`, `portal`): the `[http]`
/// limits, with connection events counted in `metrics` under that fixed name.
pub fn serve_options(
    cfg: &msgrelay_core::Config,
    listener: &'static str,
    metrics: &Arc<Metrics>,
) -> msgrelay_tls::ServeOptions {
    let m = metrics.clone();
    msgrelay_tls::ServeOptions {
        limits: msgrelay_tls::ListenerLimits::from(&cfg.http),
        events: Some(Arc::new(move |e: msgrelay_tls::ConnEvent| {
            m.connection_event(listener, e.as_str())
        })),
        revoked_serials: None,
    }
}

/// This machine's host name (`HOSTNAME`, `COMPUTERNAME` on Windows, else `/etc/hostname`).
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
}

/// The name this process reports in logs and as the `instance` label of its metrics:
/// `instance` from the configuration, else `<hostname>-<role>`. Characters outside
/// letters, digits, '-', '_' and '.' in the host name become '-'.
pub fn instance_name(cfg: &msgrelay_core::Config, role: &str) -> String {
    if !cfg.instance.is_empty() {
        return cfg.instance.clone();
    }
    let host: String = hostname()
        .unwrap_or_else(|| "msgrelay".to_owned())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!("{host}-{role}")
}
