//! The PKI's file writes go through `msgrelay-files` (temp file, fsync, atomic link or rename,
//! fsync of the directory; keys owner-only): a crash never leaves a half-written key or CRL behind.

use std::fs;
use std::path::Path;

use msgrelay_files::{Access, FileError};

use crate::PkiError;

impl From<FileError> for PkiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::AlreadyExists { path } => PkiError::AlreadyExists { path },
            FileError::Io { op, path, source } => PkiError::io(op, path, source),
        }
    }
}

fn access(secret: bool) -> Access {
    if secret {
        Access::OwnerOnly
    } else {
        Access::Public
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io("reading", path, e))
}

/// Creates `dir` (and parents); a newly created directory is owner-only because it holds keys.
pub(crate) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    Ok(msgrelay_files::create_private_dir(dir)?)
}

/// Writes `bytes` to `path` only if it does not exist yet, atomically (two concurrent `init`s
/// cannot overwrite each other's key).
pub(crate) fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    Ok(msgrelay_files::write_new(path, bytes, access(secret))?)
}

/// Writes `bytes` to `path`, atomically replacing any previous content.
pub(crate) fn write_replace(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    Ok(msgrelay_files::write_replace(path, bytes, access(secret))?)
}
