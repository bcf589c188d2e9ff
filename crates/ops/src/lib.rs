//! Operations plumbing shared by every role: Prometheus metrics (`metrics`), the plain-HTTP
//! loopback ops listener with /health, /ready and /metrics (`listener`), and logging set-up
//! (`telemetry`). Roles receive an `Arc<Metrics>` and register readiness checks.

pub mod listener;
pub mod metrics;
pub mod telemetry;

pub use listener::{OpsHandle, OpsState};
pub use metrics::Metrics;
