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
/// `keep_days` files are kept, today's included: tracing-appender deletes the oldest `msgrelay.log*`
/// files (by creation time) when it opens the directory and at each rotation (0: all kept).
pub fn init(level: &str, log_dir: Option<&Path>, keep_days: usize) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let stdout = fmt::layer().with_target(false).compact();
    match log_dir.and_then(|d| std::fs::create_dir_all(d).ok().map(|_| d)) {
        Some(dir) => {
            let mut builder = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("msgrelay.log");
            if keep_days > 0 {
                builder = builder.max_log_files(keep_days);
            }
            let appender = match builder.build(dir) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("file logs disabled: cannot open {}: {e}", dir.display());
                    let _ = tracing_subscriber::registry()
                        .with(filter)
                        .with(stdout)
                        .try_init();
                    return None;
                }
            };
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer()
                .json()
                .with_writer(writer)
                .with_current_span(false);
            let ok = tracing_subscriber::registry()
                .with(filter)
                .with(stdout)
                .with(file)
                .try_init()
                .is_ok();
            ok.then_some(guard)
        }
        None => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(stdout)
                .try_init();
            None
        }
    }
}
