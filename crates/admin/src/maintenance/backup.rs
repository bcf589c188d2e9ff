//! `msgrelay backup --out DIR [--keys-out DIR]`: an online backup of the whole relay state.
//!
//! - The queue first, then the store. A message delivered between the two copies is then in both
//!   (a restore delivers it again, and the store keeps one row per message id); the other order
//!   would lose it. A message accepted after the queue copy is not in the backup.
//! - SQLite (store and queue): `VACUUM INTO`, a consistent snapshot, safe while the relay writes.
//! - MySQL/MariaDB store: `mariadb-dump`/`mysqldump --single-transaction` (`mysql.rs`).
//! - Redis queue: the relay's own keys under `queue.key_prefix`, copied by one atomic script
//!   (`msgrelay_queue::redis_snapshot`).
//! - Always `keys/`, `pki/`, `clients/` and the credentials file, into `--keys-out` when given.
//!
//! Each destination gets a `manifest.json` listing its files with their SHA-256, so `restore` can
//! refuse a damaged or altered backup; both name the same backup id.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use msgrelay_core::config::QueueBackend;
use msgrelay_core::Config;
use msgrelay_queue::redis_snapshot;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::files::{
    copy_file, create_private_dir, files_under, is_secret, make_owner_only, sha256_file,
};
use super::mysql::{self, MysqlTarget};
use super::{sqlite_queue_path, sqlite_store_path, MANIFEST_FILE};
use crate::progress;
use crate::AdminError;

/// Version of the manifest layout; `restore` reads this one and format 1 (embedded mode only).
pub(crate) const MANIFEST_FORMAT: u32 = 2;
/// Directories of the data dir copied as they are.
const DIRS: [&str; 3] = ["pki", "keys", "clients"];
/// The MySQL/MariaDB dump inside a backup.
pub(crate) const MYSQL_DUMP_FILE: &str = "mysql.sql";
/// The Redis keys inside a backup.
pub(crate) const REDIS_KEYS_FILE: &str = "redis-keys.bin";

/// What a backup file is; decides where `restore` puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileKind {
    /// The store's SQLite database (restored to `database.url`'s file).
    Database,
    /// The queue's SQLite file (restored to `queue.sqlite_path`).
    Queue,
    /// A MySQL/MariaDB dump of the store (replayed into `database.url`'s database).
    Mysql,
    /// The relay's Redis keys (restored under `queue.key_prefix`).
    Redis,
    /// Any other file, restored to the same path under the data dir.
    File,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestEntry {
    /// Path inside the backup, `/`-separated, relative.
    pub path: String,
    pub kind: FileKind,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub msgrelay_version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The same in the data and the keys manifest of one backup.
    #[serde(default)]
    pub backup_id: String,
    /// The keys, PKI and client bundles are in another directory (`--keys-out`).
    #[serde(default)]
    pub keys_elsewhere: bool,
    /// `queue.key_prefix` of the backed-up relay (Redis keys are stored without it).
    #[serde(default)]
    pub redis_key_prefix: Option<String>,
    pub files: Vec<ManifestEntry>,
    /// Parts of the state this backup does not hold, with how to back them up.
    #[serde(default)]
    pub not_included: Vec<String>,
}

/// Where `backup` writes.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The data: database and queue (and the keys unless `keys_out`).
    pub out: PathBuf,
    /// A separate destination for keys, PKI and client bundles.
    pub keys_out: Option<PathBuf>,
}

/// What `backup` wrote and what the operator should know.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub out_dir: PathBuf,
    pub keys_dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Set when keys and data share one destination.
    pub shared_destination_warning: Option<String>,
}

/// A new or empty directory, or an error naming it.
fn check_empty_destination(dir: &Path, flag: &str) -> Result<(), AdminError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(AdminError::io("listing", dir))?
            .next()
            .is_some()
    {
        return Err(AdminError::Invalid(format!(
            "{} is not empty; give a new directory to {flag} (backups are never merged)",
            dir.display()
        )));
    }
    Ok(())
}

/// A path made absolute (lexically: it need not exist) for comparing destinations.
fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.components().collect()
}

/// The warning when keys and data end up in one place, or `None` when they are apart.
fn shared_destination(out: &Path, keys_out: Option<&Path>) -> Option<String> {
    match keys_out {
        None => Some(format!(
            "keys, PKI and client bundles are in {} together with the data: anyone with this backup can read every message; store it encrypted, or keep the keys apart with --keys-out",
            out.display()
        )),
        Some(k) => {
            let (a, b) = (absolute(out), absolute(k));
            (a.starts_with(&b) || b.starts_with(&a)).then(|| {
                format!(
                    "--keys-out {} and --out {} share one destination: the keys are not kept apart from the data",
                    k.display(),
                    out.display()
                )
            })
        }
    }
}

/// Backs the relay configured by `cfg` up (see the module documentation).
pub async fn backup(cfg: &Config, opts: &BackupOptions) -> Result<BackupReport, AdminError> {
    if !cfg.data_dir.is_dir() {
        return Err(AdminError::NotFound(format!(
            "data directory {} does not exist; check --data-dir/--config",
            cfg.data_dir.display()
        )));
    }
    let out = opts.out.as_path();
    check_empty_destination(out, "--out")?;
    let separate = opts
        .keys_out
        .as_deref()
        .filter(|k| absolute(k) != absolute(out));
    if let Some(k) = separate {
        check_empty_destination(k, "--keys-out")?;
    }
    let warning = shared_destination(out, opts.keys_out.as_deref());
    let keys_dir = separate.unwrap_or(out).to_path_buf();
    // The MySQL tools are checked before anything is written.
    let store_server = match sqlite_store_path(cfg) {
        Some(_) => None,
        None => {
            let url = &cfg.database.url;
            Some((mysql::find_tools(cfg)?, MysqlTarget::parse(url)?))
        }
    };
    create_private_dir(out)?;
    if separate.is_some() {
        create_private_dir(&keys_dir)?;
    }

    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in DIRS {
        sources.extend(files_under(&cfg.path(dir))?);
    }
    let credentials = cfg.path(crate::CREDENTIALS_FILE);
    if credentials.is_file() {
        sources.push(credentials);
    }
    sources.retain(|s| !msgrelay_files::is_temp_file(s)); // interrupted atomic writes, not keys
    let bar = progress::bar(sources.len() as u64 + 2, "backup");

    // The queue before the store (module documentation).
    let mut data = Vec::new();
    let mut redis_key_prefix = None;
    bar.set_message("backup: queue");
    match (cfg.queue.backend, sqlite_queue_path(cfg)) {
        (QueueBackend::Sqlite, Some(q)) if q.exists() => {
            data.push(snapshot_sqlite(&q, out, "queue.db", FileKind::Queue).await?)
        }
        (QueueBackend::Sqlite, _) => {} // never started: nothing queued yet
        (QueueBackend::Redis, _) => {
            let snap = redis_snapshot::export(&cfg.queue, &cfg.data_dir).await?;
            let path = out.join(REDIS_KEYS_FILE);
            write_private(&path, |f| snap.write_to(f))?;
            redis_key_prefix = Some(cfg.queue.key_prefix.clone());
            data.push(entry(out, REDIS_KEYS_FILE.to_owned(), FileKind::Redis)?);
        }
    }
    bar.inc(1);
    bar.set_message("backup: store");
    match (sqlite_store_path(cfg), &store_server) {
        (Some(db), _) => {
            data.push(snapshot_sqlite(&db, out, "msgrelay.db", FileKind::Database).await?)
        }
        (None, Some((tools, target))) => {
            let dest = out.join(MYSQL_DUMP_FILE);
            let (tools, target, d) = (tools.clone(), target.clone(), dest.clone());
            tokio::task::spawn_blocking(move || mysql::dump(&tools, &target, &d))
                .await
                .map_err(|e| AdminError::Invalid(format!("the dump task failed: {e}")))??;
            data.push(entry(out, MYSQL_DUMP_FILE.to_owned(), FileKind::Mysql)?);
        }
        (None, None) => unreachable!("checked above"),
    }
    bar.inc(1);

    bar.set_message("backup: keys and PKI");
    let mut keys = Vec::new();
    for src in sources {
        let rel = relative(&cfg.data_dir, &src)?;
        copy_file(&src, &keys_dir.join(&rel), is_secret(&rel))?;
        keys.push(entry(&keys_dir, rel, FileKind::File)?);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let backup_id = uuid::Uuid::new_v4().simple().to_string();
    let created_at = chrono::Utc::now();
    let manifest = |files: Vec<ManifestEntry>, keys_elsewhere: bool| Manifest {
        format: MANIFEST_FORMAT,
        msgrelay_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at,
        backup_id: backup_id.clone(),
        keys_elsewhere,
        redis_key_prefix: redis_key_prefix.clone(),
        files,
        not_included: Vec::new(),
    };
    let (files, bytes) = {
        let all = data.iter().chain(&keys);
        (all.clone().count(), all.map(|f| f.bytes).sum())
    };
    if separate.is_some() {
        write_manifest(out, &manifest(data, true))?;
        write_manifest(&keys_dir, &manifest(keys, false))?;
    } else {
        data.extend(keys);
        write_manifest(out, &manifest(data, false))?;
    }
    Ok(BackupReport {
        out_dir: out.to_path_buf(),
        keys_dir,
        files,
        bytes,
        shared_destination_warning: warning,
    })
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), AdminError> {
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| AdminError::Invalid(format!("encoding the manifest: {e}")))?;
    write_private(&path, |f| std::io::Write::write_all(f, &json))
}

/// Writes a new owner-only file.
fn write_private(
    path: &Path,
    body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), AdminError> {
    let file = std::fs::File::create(path).map_err(AdminError::io("creating", path))?;
    make_owner_only(path)?;
    let mut w = std::io::BufWriter::new(file);
    body(&mut w)
        .and_then(|()| std::io::Write::flush(&mut w))
        .map_err(AdminError::io("writing", path))?;
    w.into_inner()
        .map_err(|e| AdminError::io("writing", path)(e.into_error()))?
        .sync_all()
        .map_err(AdminError::io("writing", path))
}

/// `VACUUM INTO` a consistent copy of a live SQLite database.
async fn snapshot_sqlite(
    src: &Path,
    out: &Path,
    name: &str,
    kind: FileKind,
) -> Result<ManifestEntry, AdminError> {
    if !src.is_file() {
        return Err(AdminError::NotFound(format!(
            "{} does not exist; run `msgrelay init` or check `database.url`",
            src.display()
        )));
    }
    let dest = out.join(name);
    let sqlite_err = |e: sqlx::Error| {
        AdminError::Invalid(format!("copying {} with VACUUM INTO: {e}", src.display()))
    };
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(sqlite_err)?
        .filename(src)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = options.connect().await.map_err(sqlite_err)?;
    // VACUUM INTO takes no bound parameters; the path is a quoted SQL string literal (SQLite
    // takes it as it is, backslashes included; a lossy conversion would write somewhere else).
    let target = dest
        .to_str()
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "{} is not valid Unicode; choose another --out",
                dest.display()
            ))
        })?
        .replace('\'', "''");
    sqlx::query(&format!("VACUUM INTO '{target}'"))
        .execute(&mut conn)
        .await
        .map_err(sqlite_err)?;
    conn.close().await.map_err(sqlite_err)?;
    // Password hashes, sessions and sealed payloads: owner-only like the original should be.
    make_owner_only(&dest)?;
    entry(out, name.to_owned(), kind)
}

fn entry(out: &Path, rel: String, kind: FileKind) -> Result<ManifestEntry, AdminError> {
    let path = out.join(&rel);
    let bytes = std::fs::metadata(&path)
        .map_err(AdminError::io("reading", &path))?
        .len();
    Ok(ManifestEntry {
        sha256: sha256_file(&path)?,
        path: rel,
        kind,
        bytes,
    })
}

/// `path` relative to `base`, `/`-separated (the manifest is portable between Linux and Windows).
fn relative(base: &Path, path: &Path) -> Result<String, AdminError> {
    let rel = path.strip_prefix(base).map_err(|_| {
        AdminError::Invalid(format!("{} is outside {}", path.display(), base.display()))
    })?;
    Ok(rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/"))
}

#[cfg(test)]
mod tests {
    use super::shared_destination;
    use std::path::Path;

    #[test]
    fn keys_sharing_the_data_destination_are_warned_about() {
        let out = Path::new("/backups/relay");
        assert!(shared_destination(out, None).is_some());
        assert!(shared_destination(out, Some(Path::new("/backups/relay"))).is_some());
        assert!(shared_destination(out, Some(Path::new("/backups/relay/keys"))).is_some());
        assert!(shared_destination(out, Some(Path::new("/backups"))).is_some());
        assert!(shared_destination(out, Some(Path::new("/vault/relay-keys"))).is_none());
        assert!(shared_destination(out, Some(Path::new("/backups/relay-keys"))).is_none());
    }
}
