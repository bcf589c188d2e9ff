//! Atomic, permission-aware file writes: a crash never leaves a half-written key or CRL behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::PkiError;

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io("reading", path, e))
}

/// Creates `dir` (and parents); a newly created directory is owner-only on Unix because it holds keys.
pub(crate) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| PkiError::io("creating directory", dir, e))
}

/// Writes `bytes` to `path` only if it does not exist yet, atomically.
///
/// The content goes to a temp file first and is then hard-linked into place: `link` fails if the
/// target exists, so even two concurrent `init`s cannot overwrite each other's key.
pub(crate) fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    if path.exists() {
        return Err(PkiError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let tmp = write_temp(path, bytes, secret)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(PkiError::AlreadyExists {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(PkiError::io("writing", path, e)),
    }
}

/// Writes `bytes` to `path`, atomically replacing any previous content (temp file + rename).
pub(crate) fn write_replace(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let tmp = write_temp(path, bytes, secret)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io("writing", path, e));
    }
    sync_parent(path)
}

/// Writes and fsyncs a uniquely named temp file next to `path` (same filesystem, so link/rename are atomic).
fn write_temp(path: &Path, bytes: &[u8], secret: bool) -> Result<PathBuf, PkiError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation so the key is never readable by others, not even for an instant.
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let result = opts.open(&tmp).and_then(|mut f: File| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io("writing", &tmp, e));
    }
    Ok(tmp)
}

/// Makes the new directory entry durable (Unix only; elsewhere the rename is all we can do).
fn sync_parent(path: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PkiError::io("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
