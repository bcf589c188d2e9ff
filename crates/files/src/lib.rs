//! The one way msgrelay writes files that must survive a crash and may hold secrets (keys, CRLs,
//! certificates, bundles): a temp file with a random name in the same directory, fsync of the
//! file, an atomic link (never replaces) or rename (replaces) into place, fsync of the parent
//! directory. Secrets are owner-only from the moment they exist: 0600 files and 0700 directories
//! on Unix, a protected DACL (the owner, SYSTEM, Administrators) on Windows (`windows_acl`).
//! Also the key-file helpers the sealing and at-rest crates share (`write_new_secret`, …), so that
//! neither depends on the other.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[cfg(windows)]
pub mod windows_acl;

/// Who may read a file written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Keys, bundles, passwords: the owner only (0600 on Unix, a protected DACL on Windows).
    OwnerOnly,
    /// Certificates and CRLs: anyone may read (0644 on Unix), only the owner writes.
    Public,
}

/// A file operation that failed, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{} already exists (refusing to overwrite it)", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FileError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { op, path, source }
    }
}

/// Creates `dir` and its missing parents; directories created here are owner-only (0700 on Unix,
/// a protected DACL on Windows) because they hold keys. An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
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
        .map_err(FileError::io("creating directory", dir))?;
    #[cfg(windows)]
    windows_acl::restrict_to_owner(dir).map_err(FileError::io("restricting", dir))?;
    Ok(())
}

/// Writes `bytes` to `path` only if it does not exist yet, atomically and durably.
///
/// The content goes to a temp file that is then hard-linked into place: the link fails if the
/// target exists, so even two concurrent writers (two `init`s) cannot replace each other's key.
pub fn write_new(path: &Path, bytes: &[u8], access: Access) -> Result<(), FileError> {
    if path.exists() {
        return Err(FileError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let tmp = write_temp(path, bytes, access)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(FileError::AlreadyExists {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(FileError::io("writing", path)(e)),
    }
}

/// Writes `bytes` to `path`, atomically replacing any previous content (temp file + rename).
pub fn write_replace(path: &Path, bytes: &[u8], access: Access) -> Result<(), FileError> {
    let tmp = write_temp(path, bytes, access)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(FileError::io("writing", path)(e));
    }
    sync_parent(path)
}

/// Makes an existing file owner-only (0600 on Unix, a protected DACL on Windows), e.g. a copy
/// made by `fs::copy` or an appended credentials file.
pub fn make_owner_only(path: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(FileError::io("restricting", path))?;
    }
    #[cfg(windows)]
    windows_acl::restrict_to_owner(path).map_err(FileError::io("restricting", path))?;
    Ok(())
}

/// Writes and fsyncs a randomly named temp file next to `path` (same filesystem, so link/rename
/// are atomic; a random name so that concurrent writers never share a temp file).
fn write_temp(path: &Path, bytes: &[u8], access: Access) -> Result<PathBuf, FileError> {
    let dir = parent_of(path);
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
        // Set at creation so a key is never readable by others, not even for an instant.
        opts.mode(match access {
            Access::OwnerOnly => 0o600,
            Access::Public => 0o644,
        });
    }
    let result = opts.open(&tmp).and_then(|mut f: File| {
        #[cfg(windows)]
        if access == Access::OwnerOnly {
            windows_acl::restrict_to_owner(&tmp)?;
        }
        f.write_all(bytes)?;
        f.sync_all()
    });
    #[cfg(not(any(unix, windows)))]
    let _ = access;
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(FileError::io("writing", &tmp)(e));
    }
    Ok(tmp)
}

/// Whether `path` is a temp file of an interrupted write here (`.NAME.tmp-<16 hex digits>`), or of
/// an older version's (`NAME.tmp<pid>`, `NAME.rotate.tmp`): never a file to keep or back up.
pub fn is_temp_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let current = name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, hex)| hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    let older = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        e == "tmp"
            || e.strip_prefix("tmp")
                .is_some_and(|pid| !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()))
    });
    current || older
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Makes the new directory entry durable (Unix; Windows has no directory handle to flush, the
/// rename itself is journalled by NTFS).
fn sync_parent(path: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        let dir = parent_of(path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(FileError::io("syncing directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

// ---------------------------------------------------------------- key files

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

impl From<FileError> for KeyFileError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::AlreadyExists { path } => {
                KeyFileError::invalid(&path, "already exists (refusing to overwrite it)")
            }
            FileError::Io { path, source, .. } => KeyFileError::Io {
                path: path.display().to_string(),
                source,
            },
        }
    }
}

/// Creates the parent directories of `path` (owner-only) if they are missing.
fn create_parent(path: &Path) -> Result<(), FileError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => create_private_dir(dir),
        _ => Ok(()),
    }
}

/// Writes `contents` to `path` owner-only, durably. Refuses to replace an existing file, so a
/// second `init` can never destroy keys that encrypt stored data. Returns false if it existed.
pub fn write_new_secret(path: &Path, contents: &[u8]) -> Result<bool, KeyFileError> {
    create_parent(path)?;
    match write_new(path, contents, Access::OwnerOnly) {
        Ok(()) => Ok(true),
        Err(FileError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Writes `contents` to `path` owner-only, replacing any previous version atomically and durably.
/// For caches that must not be world-readable.
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    create_parent(path)?;
    Ok(write_replace(path, contents, Access::OwnerOnly)?)
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
    fn temp_files_are_recognised() {
        assert!(is_temp_file(Path::new(
            "keys/.at-rest.json.tmp-0123456789abcdef"
        )));
        assert!(is_temp_file(Path::new("keys/sealing.tmp1234")));
        assert!(is_temp_file(Path::new("keys/at-rest.rotate.tmp")));
        assert!(!is_temp_file(Path::new("keys/sealing.key")));
        assert!(!is_temp_file(Path::new("keys/at-rest.json")));
        assert!(!is_temp_file(Path::new("pki/.tmp-x")));
    }

    #[test]
    fn write_new_never_replaces_and_write_replace_does() {
        let dir = std::env::temp_dir().join(format!("msgrelay-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir).unwrap();
        let p = dir.join("crl.pem");
        write_new(&p, b"one", Access::Public).unwrap();
        assert!(matches!(
            write_new(&p, b"two", Access::Public),
            Err(FileError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_replace(&p, b"three", Access::Public).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("crl.pem")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&p), 0o644);
            assert_eq!(mode(&dir), 0o700);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
