//! Maintenance of a data directory (named so as not to clash with the `msgrelay-ops` crate):
//! `keys rotate`, `doctor`, `backup` and `restore`.
//! Each writes plain lines to an `Io`-like writer so tests can read them; none prints key material.

mod backup;
mod cli;
mod doctor;
pub(crate) mod files;
mod keys;
mod mysql;
mod restore;

pub use backup::{backup, BackupOptions, BackupReport};
pub use cli::{run_backup, run_doctor, run_keys_rotate, run_restore};
pub use doctor::{doctor, report, Check, Status};
pub use keys::rotate_at_rest_key;
pub use restore::{restore, RestoreOptions, RestoreReport};

use std::path::PathBuf;

use msgrelay_core::config::QueueBackend;
use msgrelay_core::{Config, DatabaseLocation};

/// The at-rest key file, relative to the data directory.
pub const AT_REST_KEY_FILE: &str = "keys/at-rest.json";
/// The backup's description of itself.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The store's SQLite file, if `database.url` is SQLite.
pub(crate) fn sqlite_store_path(cfg: &Config) -> Option<PathBuf> {
    match cfg.database() {
        DatabaseLocation::Sqlite(path) => Some(path),
        DatabaseLocation::Server(_) => None,
    }
}

/// The queue's SQLite file, if `queue.backend = "sqlite"`.
pub(crate) fn sqlite_queue_path(cfg: &Config) -> Option<PathBuf> {
    (cfg.queue.backend == QueueBackend::Sqlite).then(|| cfg.path(&cfg.queue.sqlite_path))
}
