//! File helpers shared by backup, restore and doctor: hashing, owner-only modes, directory walks.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::AdminError;

/// SHA-256 of a file's contents, lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String, AdminError> {
    let mut file = std::fs::File::open(path).map_err(AdminError::io("reading", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(AdminError::io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Creates `dir` and its missing parents owner-only (`msgrelay-files`).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AdminError> {
    Ok(msgrelay_files::create_private_dir(dir)?)
}

/// Makes a file owner-only (0600 on Unix; on Windows a protected DACL for this account, SYSTEM
/// and Administrators).
pub(crate) fn make_owner_only(path: &Path) -> Result<(), AdminError> {
    Ok(msgrelay_files::make_owner_only(path)?)
}

/// `None` if only the owner may access `path` (Unix: no group/other bits; Windows: the DACL
/// allows only the owner, SYSTEM, Administrators and service accounts, nothing inherited);
/// otherwise what is broader, and the command that fixes it.
pub(crate) fn broader_access(path: &Path) -> Option<(String, String)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o777);
        let fix = if path.is_dir() { "700" } else { "600" };
        (mode & 0o077 != 0).then(|| {
            (
                format!("is accessible to group or others (mode {:o})", mode & 0o777),
                format!("chmod {fix} {}", path.display()),
            )
        })
    }
    #[cfg(windows)]
    {
        let fix = format!(
            "icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\" SYSTEM:F Administrators:F",
            path.display()
        );
        match msgrelay_files::windows_acl::broader_access(path) {
            Ok(None) => None,
            Ok(Some(what)) => Some((what, fix)),
            Err(e) => Some((format!("DACL unreadable ({e})"), fix)),
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        None
    }
}

/// Copies `from` to `to` (parents created owner-only); secrets end up 0600 whatever the source mode.
pub(crate) fn copy_file(from: &Path, to: &Path, secret: bool) -> Result<u64, AdminError> {
    if let Some(dir) = to.parent() {
        create_private_dir(dir)?;
    }
    let bytes = std::fs::copy(from, to).map_err(AdminError::io("copying", from))?;
    if secret {
        make_owner_only(to)?;
    }
    Ok(bytes)
}

/// Every regular file under `dir`, recursively, sorted; empty when `dir` does not exist.
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>, AdminError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AdminError::io("listing", &d)(e)),
        };
        for entry in entries {
            let path = entry.map_err(AdminError::io("listing", &d))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a file holds secret material: keys, PKCS#12 bundles and their passwords, credentials.
pub(crate) fn is_secret(rel: &str) -> bool {
    rel.starts_with("keys/")
        || rel.ends_with(".key")
        || rel.ends_with(".p12")
        || rel.ends_with(".pass")
        || rel == crate::CREDENTIALS_FILE
}
