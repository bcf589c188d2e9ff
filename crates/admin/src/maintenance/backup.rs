//! `msgrelay backup --out DIR`: an online backup of the embedded defaults. SQLite files are copied
//! with `VACUUM INTO` (a consistent snapshot, safe while the relay writes in WAL mode); `pki/`,
//! `keys/`, `clients/` and the credentials file are copied as they are; `manifest.json` lists every
//! file with its SHA-256 so `restore` can refuse a damaged or altered backup.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use msgrelay_core::config::QueueBackend;
use msgrelay_core::Config;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::files::{
    copy_file, create_private_dir, files_under, is_secret, make_owner_only, sha256_file,
};
use super::{sqlite_queue_path, sqlite_store_path, MANIFEST_FILE};
use crate::AdminError;

/// Version of the manifest layout; `restore` refuses others.
pub(crate) const MANIFEST_FORMAT: u32 = 1;
/// Directories of the data dir copied as they are.
const DIRS: [&str; 3] = ["pki", "keys", "clients"];

/// What a backup file is; decides where `restore` puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileKind {
    /// The store's SQLite database (restored to `database.url`'s file).
    Database,
    /// The queue's SQLite file (restored to `queue.sqlite_path`).
    Queue,
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
    pub files: Vec<ManifestEntry>,
    /// Parts of the state this backup does not hold (external backends), with how to back them up.
    pub not_included: Vec<String>,
}

/// What `backup` wrote and what the operator still has to do.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub out_dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Instructions for state kept outside the data dir (MySQL, Redis).
    pub external_steps: Vec<String>,
}

/// How to back up a MySQL/MariaDB store, in this platform's shell (PowerShell on Windows).
fn external_store_step() -> &'static str {
    if cfg!(windows) {
        "store (MySQL/MariaDB) is not in this backup: in PowerShell run `mysqldump.exe --single-transaction --no-tablespaces --set-gtid-purged=OFF -u msgrelay_backup -p msgrelay --result-file=\"msgrelay-db-$(Get-Date -Format yyyy-MM-dd).sql\"` (MariaDB: leave out --set-gtid-purged), then `Compress-Archive` the file"
    } else {
        "store (MySQL/MariaDB) is not in this backup: run `mysqldump --single-transaction --no-tablespaces --set-gtid-purged=OFF -u msgrelay_backup -p msgrelay | gzip > msgrelay-db-$(date +%F).sql.gz` (MariaDB: leave out --set-gtid-purged)"
    }
}

/// How to back up a Redis-compatible queue, in this platform's shell (PowerShell on Windows).
fn external_queue_step() -> &'static str {
    if cfg!(windows) {
        "queue (Redis-compatible) is not in this backup: in PowerShell run `memurai-cli BGREWRITEAOF` (or redis-cli), wait for `aof_rewrite_in_progress:0` in `memurai-cli INFO persistence`, then `Compress-Archive -Path '<Memurai dir>\\appendonlydir' -DestinationPath \"redis-aof-$(Get-Date -Format yyyy-MM-dd).zip\"`"
    } else {
        "queue (Redis) is not in this backup: run `redis-cli BGREWRITEAOF`, wait for `aof_rewrite_in_progress:0` in `redis-cli INFO persistence`, then archive the whole AOF directory (`tar -C /var/lib/redis -czf redis-aof-$(date +%F).tar.gz appendonlydir`)"
    }
}

/// Backs `cfg.data_dir` up into `out` (created owner-only; must not exist or be empty).
pub async fn backup(cfg: &Config, out: &Path) -> Result<BackupReport, AdminError> {
    if !cfg.data_dir.is_dir() {
        return Err(AdminError::NotFound(format!(
            "data directory {} does not exist; check --data-dir/--config",
            cfg.data_dir.display()
        )));
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(AdminError::io("listing", out))?
            .next()
            .is_some()
    {
        return Err(AdminError::Invalid(format!(
            "{} is not empty; give a new directory to --out (backups are never merged)",
            out.display()
        )));
    }
    create_private_dir(out)?;

    let mut files = Vec::new();
    let mut external_steps = Vec::new();
    match sqlite_store_path(cfg) {
        Some(db) => files.push(snapshot_sqlite(&db, out, "msgrelay.db", FileKind::Database).await?),
        None => external_steps.push(external_store_step().to_owned()),
    }
    match (cfg.queue.backend, sqlite_queue_path(cfg)) {
        (QueueBackend::Sqlite, Some(q)) if q.exists() => {
            files.push(snapshot_sqlite(&q, out, "queue.db", FileKind::Queue).await?)
        }
        (QueueBackend::Sqlite, _) => {} // never started: nothing queued yet
        (QueueBackend::Redis, _) => external_steps.push(external_queue_step().to_owned()),
    }

    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in DIRS {
        sources.extend(files_under(&cfg.path(dir))?);
    }
    let credentials = cfg.path(crate::CREDENTIALS_FILE);
    if credentials.is_file() {
        sources.push(credentials);
    }
    for src in sources {
        let rel = relative(&cfg.data_dir, &src)?;
        if msgrelay_files::is_temp_file(&src) {
            continue; // an interrupted atomic write (msgrelay-files), not a key
        }
        let dest = out.join(&rel);
        copy_file(&src, &dest, is_secret(&rel))?;
        files.push(entry(out, rel, FileKind::File)?);
    }

    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        msgrelay_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now(),
        files,
        not_included: external_steps.clone(),
    };
    let path = out.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| AdminError::Invalid(format!("encoding the manifest: {e}")))?;
    std::fs::write(&path, json).map_err(AdminError::io("writing", &path))?;
    make_owner_only(&path)?;
    Ok(BackupReport {
        out_dir: out.to_path_buf(),
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        external_steps,
    })
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
