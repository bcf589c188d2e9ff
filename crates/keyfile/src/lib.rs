//! Owner-only key files, written atomically and never overwritten. Shared by the sealing and
//! at-rest crates so that neither has to depend on the other (each role links only the keys it
//! holds). To be folded into the workspace's single durable file writer once it exists.

use std::io::Write;
use std::path::Path;

/// A key file could not be read or written. The message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl KeyFileError {
    /// A key file that exists but whose content is not what it should be.
    pub fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates `path` (which must not exist) owner-only (0600 on Unix) with `contents`, fsynced.
fn write_owner_only_new(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Writes `contents` to `path` readable by the owner only (0600 on Unix; on Windows the data
/// directory's ACL is what protects it, see deploy/windows). Refuses to replace an existing file,
/// so a second `init` can never destroy keys that encrypt stored data. Returns false if it existed.
pub fn write_new_secret(path: &Path, contents: &[u8]) -> Result<bool, KeyFileError> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    write_owner_only_new(&tmp, contents)?;
    // Hard-link instead of rename so that a concurrent writer cannot be silently replaced.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes `contents` to `path` owner-only (0600 on Unix), replacing any previous version
/// atomically (temporary file, fsync, rename). For caches that must not be world-readable.
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_owner_only_new(&tmp, contents)?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Reads a key file, naming the file in the error.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    std::fs::read(path).map_err(|e| {
        KeyFileError::invalid(
            path,
            format!("{e} (run `msgrelay init` to create the keys)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites_and_is_owner_only() {
        let dir = std::env::temp_dir().join(format!("msgrelay-kf-{}", std::process::id()));
        let p = dir.join("k.key");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(write_new_secret(&p, b"one").unwrap());
        assert!(!write_new_secret(&p, b"two").unwrap());
        assert_eq!(read_secret(&p).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replace_private_is_owner_only_and_replaces() {
        let dir = std::env::temp_dir().join(format!("msgrelay-kf-r-{}", std::process::id()));
        let p = dir.join("cache.json");
        let _ = std::fs::remove_dir_all(&dir);
        replace_private(&p, b"one").unwrap();
        replace_private(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
