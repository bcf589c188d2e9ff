//! Logging set-up, done once per process: human-readable lines on stdout and JSON lines in a
//! daily-rotating file (`<dir>/msgrelay.log.YYYY-MM-DD`). Log fields are ids and counts only:
//! never bodies, numbers, keys, passwords or tokens.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Keep the guard alive until exit so file logs are flushed.
/// `RUST_LOG` overrides `level`. Calling it twice is harmless (the second call does nothing).
pub fn init(level: &str, log_dir: Option<&Path>) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let stdout = fmt::layer().with_target(false).compact();
    match log_dir.and_then(|d| std::fs::create_dir_all(d).ok().map(|_| d)) {
        Some(dir) => {
            let appender = tracing_appender::rolling::daily(dir, "msgrelay.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer().json().with_writer(writer).with_current_span(false);
            let ok = tracing_subscriber::registry().with(filter).with(stdout).with(file).try_init().is_ok();
            ok.then_some(guard)
        }
        None => {
            let _ = tracing_subscriber::registry().with(filter).with(stdout).try_init();
            None
        }
    }
}
