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
