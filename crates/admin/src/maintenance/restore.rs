//! `msgrelay restore --from DIR`: checks every file of a backup against its manifest, then copies
//! it into the data directory. Refuses a non-empty data dir without `--force`, and a running relay.

use std::path::{Component, Path, PathBuf};

use msgrelay_core::Config;

use super::backup::{FileKind, Manifest, MANIFEST_FORMAT};
use super::files::{copy_file, files_under, is_secret, sha256_file};
use super::{sqlite_queue_path, sqlite_store_path, MANIFEST_FILE};
use crate::AdminError;

/// How `restore` may treat the target.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Overwrite the files of a non-empty data directory.
    pub force: bool,
}

/// Restores the backup in `from` into `cfg.data_dir`; returns the restored paths.
pub fn restore(
    cfg: &Config,
    from: &Path,
    opts: RestoreOptions,
) -> Result<Vec<PathBuf>, AdminError> {
    let manifest_path = from.join(MANIFEST_FILE);
    let raw = std::fs::read(&manifest_path).map_err(AdminError::io(
        "reading the backup manifest",
        &manifest_path,
    ))?;
    let manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| {
        AdminError::Invalid(format!(
            "{} is not a msgrelay backup manifest: {e}",
            manifest_path.display()
        ))
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(AdminError::Invalid(format!(
            "backup format {} is not supported (this msgrelay reads format {MANIFEST_FORMAT})",
            manifest.format
        )));
    }

    // Everything is verified before anything is written: a bad backup leaves the target untouched.
    let mut plan = Vec::new();
    for f in &manifest.files {
        let rel = safe_relative(&f.path)?;
        let src = from.join(&rel);
        if !src.is_file() {
            return Err(AdminError::Invalid(format!(
                "the backup is incomplete: {} is missing",
                src.display()
            )));
        }
        let actual = sha256_file(&src)?;
        if actual != f.sha256 {
            return Err(AdminError::Invalid(format!(
                "the backup is damaged or was altered: {} has SHA-256 {actual}, the manifest says {}; nothing was restored",
                f.path, f.sha256
            )));
        }
        let dest = match f.kind {
            FileKind::Database => sqlite_store_path(cfg).ok_or_else(|| {
                AdminError::Invalid("the backup holds a SQLite store but `database.url` is not sqlite://; restore with the backup's configuration".into())
            })?,
            FileKind::Queue => sqlite_queue_path(cfg).ok_or_else(|| {
                AdminError::Invalid("the backup holds a SQLite queue but `queue.backend` is not \"sqlite\"; restore with the backup's configuration".into())
            })?,
            FileKind::File => cfg.data_dir.join(&rel),
        };
        plan.push((src, dest, f.kind, is_secret(&f.path)));
    }

    if let Some(addr) = running_relay(cfg) {
        return Err(AdminError::Invalid(format!(
            "{addr} (ops.listen) is in use: a msgrelay process seems to run on this configuration; stop every role first (docs/operations.md §4)"
        )));
    }
    let existing = files_under(&cfg.data_dir)?;
    if !existing.is_empty() && !opts.force {
        return Err(AdminError::Invalid(format!(
            "{} is not empty ({} files); restore into a new directory, or pass --force to overwrite the backed-up files",
            cfg.data_dir.display(),
            existing.len()
        )));
    }

    let mut restored = Vec::new();
    for (src, dest, kind, secret) in plan {
        if kind != FileKind::File {
            // A WAL left by the old database would be replayed onto the restored one.
            for suffix in ["-wal", "-shm", "-journal"] {
                let side = PathBuf::from(format!("{}{suffix}", dest.display()));
                match std::fs::remove_file(&side) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(AdminError::io("removing", &side)(e))
                    }
                    _ => {}
                }
            }
        }
        copy_file(&src, &dest, secret || kind != FileKind::File)?;
        restored.push(dest);
    }
    Ok(restored)
}

/// A manifest path as a relative path that cannot leave the target directory.
fn safe_relative(path: &str) -> Result<PathBuf, AdminError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(AdminError::Invalid(format!(
            "the backup manifest names an unsafe path {path:?}; refusing to restore"
        )));
    }
    Ok(p.to_path_buf())
}

/// The ops address if something listens there: every msgrelay role binds it while running.
fn running_relay(cfg: &Config) -> Option<String> {
    match std::net::TcpListener::bind(cfg.ops.listen.as_str()) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Some(cfg.ops.listen.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn manifest_paths_cannot_leave_the_data_dir() {
        assert!(safe_relative("keys/at-rest.json").is_ok());
        for bad in ["", "../etc/passwd", "keys/../../x", "/etc/passwd", "./keys"] {
            assert!(safe_relative(bad).is_err(), "{bad:?} accepted");
        }
    }
}
