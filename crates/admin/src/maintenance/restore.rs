//! `msgrelay restore --from DIR [--keys-from DIR]`: checks every file of a backup against its
//! manifest, checks that every target is empty (data dir, SQLite files, MySQL database, Redis
//! prefix), then restores each part. Refuses while a relay runs on this configuration.

use std::path::{Component, Path, PathBuf};

use msgrelay_core::config::QueueBackend;
use msgrelay_core::Config;
use msgrelay_queue::redis_snapshot::{self, RedisSnapshot};

use super::backup::{FileKind, Manifest, MANIFEST_FORMAT};
use super::files::{copy_file, files_under, is_secret, sha256_file};
use super::mysql::{self, MysqlTarget};
use super::{sqlite_queue_path, sqlite_store_path, MANIFEST_FILE};
use crate::progress;
use crate::AdminError;

/// Where the backup is.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The directory `backup --out` wrote.
    pub from: PathBuf,
    /// The directory `backup --keys-out` wrote, when the keys were kept apart.
    pub keys_from: Option<PathBuf>,
}

/// What `restore` did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Files written under the data dir (keys, PKI, bundles, SQLite files).
    pub files: usize,
    /// The MySQL database the dump was replayed into.
    pub mysql_database: Option<String>,
    /// Redis keys restored, and the prefix they now have.
    pub redis_keys: Option<(usize, String)>,
}

fn read_manifest(dir: &Path) -> Result<Manifest, AdminError> {
    let path = dir.join(MANIFEST_FILE);
    let raw = std::fs::read(&path).map_err(AdminError::io("reading the backup manifest", &path))?;
    let manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| {
        AdminError::Invalid(format!(
            "{} is not a msgrelay backup manifest: {e}",
            path.display()
        ))
    })?;
    if !(1..=MANIFEST_FORMAT).contains(&manifest.format) {
        return Err(AdminError::Invalid(format!(
            "backup format {} is not supported (this msgrelay reads formats 1 to {MANIFEST_FORMAT})",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// One file to restore: where it is in the backup and what it is.
struct Item {
    src: PathBuf,
    rel: PathBuf,
    kind: FileKind,
    secret: bool,
}

/// Checks every file of `manifest` in `dir` against its SHA-256.
fn verify(dir: &Path, manifest: &Manifest) -> Result<Vec<Item>, AdminError> {
    let mut items = Vec::new();
    for f in &manifest.files {
        let rel = safe_relative(&f.path)?;
        let src = dir.join(&rel);
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
                src.display(), f.sha256
            )));
        }
        items.push(Item {
            src,
            rel,
            kind: f.kind,
            secret: is_secret(&f.path),
        });
    }
    Ok(items)
}

/// Refuses with `what` when `path` exists.
fn must_not_exist(path: &Path, what: &str) -> Result<(), AdminError> {
    if path.exists() {
        return Err(AdminError::Invalid(format!(
            "{what} {} already exists; restore onto an empty target only (move it away first)",
            path.display()
        )));
    }
    Ok(())
}

/// Restores the backup into the relay configured by `cfg`. Nothing is written unless every file
/// checks out and every target is empty.
pub async fn restore(cfg: &Config, opts: &RestoreOptions) -> Result<RestoreReport, AdminError> {
    let manifest = read_manifest(&opts.from)?;
    let mut items = verify(&opts.from, &manifest)?;
    match (manifest.keys_elsewhere, &opts.keys_from) {
        (true, None) => {
            return Err(AdminError::Invalid(format!(
                "the keys of this backup were written to a separate directory (backup --keys-out); give it with --keys-from (nothing was restored from {})",
                opts.from.display()
            )))
        }
        (true, Some(k)) => {
            let keys = read_manifest(k)?;
            if keys.backup_id != manifest.backup_id || keys.keys_elsewhere {
                return Err(AdminError::Invalid(format!(
                    "{} holds the keys of another backup (backup id {} there, {} in {}); nothing was restored",
                    k.display(),
                    keys.backup_id,
                    manifest.backup_id,
                    opts.from.display()
                )));
            }
            items.extend(verify(k, &keys)?);
        }
        (false, Some(k)) => {
            return Err(AdminError::Invalid(format!(
                "the keys of this backup are in {} itself; leave out --keys-from {}",
                opts.from.display(),
                k.display()
            )))
        }
        (false, None) => {}
    }

    // Where each part goes, refusing a configuration that does not fit the backup.
    let mut mysql_part = None;
    let mut redis_part = None;
    let mut copies = Vec::new();
    for item in items {
        let dest = match item.kind {
            FileKind::Database => sqlite_store_path(cfg).ok_or_else(|| {
                AdminError::Invalid("the backup holds a SQLite store but `database.url` is not sqlite://; restore with the backup's kind of configuration".into())
            })?,
            FileKind::Queue => sqlite_queue_path(cfg).ok_or_else(|| {
                AdminError::Invalid("the backup holds a SQLite queue but `queue.backend` is not \"sqlite\"; restore with the backup's kind of configuration".into())
            })?,
            FileKind::Mysql => {
                if sqlite_store_path(cfg).is_some() {
                    return Err(AdminError::Invalid("the backup holds a MySQL/MariaDB store but `database.url` is sqlite://; set it to the (empty) database to restore into".into()));
                }
                mysql_part = Some(item.src);
                continue;
            }
            FileKind::Redis => {
                if cfg.queue.backend != QueueBackend::Redis {
                    return Err(AdminError::Invalid("the backup holds a Redis queue but `queue.backend` is not \"redis\"; set it and `queue.redis_url` to the server to restore into".into()));
                }
                redis_part = Some(item.src);
                continue;
            }
            FileKind::File => cfg.data_dir.join(&item.rel),
        };
        copies.push((item.src, dest, item.kind, item.secret));
    }

    if let Some(addr) = running_relay(cfg) {
        return Err(AdminError::Invalid(format!(
            "{addr} (ops.listen) is in use: a msgrelay process seems to run on this configuration; stop every role first (docs/operations.md §9)"
        )));
    }
    // Every target must be empty; each refusal names what is not.
    let existing = files_under(&cfg.data_dir)?;
    if let Some(first) = existing.first() {
        return Err(AdminError::Invalid(format!(
            "data directory {} is not empty ({} files, e.g. {}); restore onto an empty target only: give a new --data-dir or move this one away",
            cfg.data_dir.display(),
            existing.len(),
            first.display()
        )));
    }
    for (_, dest, kind, _) in &copies {
        match kind {
            FileKind::Database => must_not_exist(dest, "the SQLite store")?,
            FileKind::Queue => must_not_exist(dest, "the SQLite queue")?,
            _ => {}
        }
    }
    let mysql_target = match &mysql_part {
        Some(_) => {
            let tools = mysql::find_tools(cfg)?;
            let target = MysqlTarget::parse(&cfg.database.url)?;
            let (t, g) = (tools.clone(), target.clone());
            let tables = tokio::task::spawn_blocking(move || mysql::table_count(&t, &g))
                .await
                .map_err(|e| AdminError::Invalid(format!("the check task failed: {e}")))??;
            if tables > 0 {
                return Err(AdminError::Invalid(format!(
                    "database `{}` on {}:{} holds {tables} tables; restore onto an empty database only (create a new one as deploy/sql/setup.sql does, and point database.url at it)",
                    target.database, target.host, target.port
                )));
            }
            Some((tools, target))
        }
        None => None,
    };
    let snapshot = match &redis_part {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(AdminError::io("reading", path))?;
            let snap = RedisSnapshot::read_from(&bytes)?;
            let n = redis_snapshot::count_own_keys(&cfg.queue, &cfg.data_dir).await?;
            if n > 0 {
                return Err(AdminError::Invalid(format!(
                    "Redis already holds {n} keys under queue.key_prefix \"{}\"; restore onto an empty prefix only (choose a new queue.key_prefix, or delete the relay's own keys)",
                    cfg.queue.key_prefix
                )));
            }
            Some(snap)
        }
        None => None,
    };

    let redis_len = snapshot.as_ref().map_or(0, |s| s.keys.len() as u64);
    let bar = progress::bar(
        copies.len() as u64 + u64::from(mysql_target.is_some()) + redis_len,
        "restore",
    );
    let mut report = RestoreReport::default();
    bar.set_message("restore: files");
    for (src, dest, kind, secret) in copies {
        copy_file(&src, &dest, secret || kind != FileKind::File)?;
        report.files += 1;
        bar.inc(1);
    }
    if let (Some(dump), Some((tools, target))) = (mysql_part, mysql_target) {
        bar.set_message("restore: store");
        let db = target.database.clone();
        tokio::task::spawn_blocking(move || mysql::load(&tools, &target, &dump))
            .await
            .map_err(|e| AdminError::Invalid(format!("the load task failed: {e}")))??;
        report.mysql_database = Some(db);
        bar.inc(1);
    }
    if let Some(snap) = snapshot {
        bar.set_message("restore: queue");
        let n = redis_snapshot::import(&cfg.queue, &cfg.data_dir, &snap, || bar.inc(1)).await?;
        report.redis_keys = Some((n, cfg.queue.key_prefix.clone()));
    }
    bar.finish_and_clear();
    Ok(report)
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
