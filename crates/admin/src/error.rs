//! The crate's one error type. Messages are for operators: each says what to do next.

use msgrelay_at_rest::AtRestError;
use msgrelay_files::KeyFileError;
use msgrelay_queue::QueueError;
use msgrelay_sealing::SealError;
use msgrelay_store::StoreError;
use msgrelay_tls::PkiError;
use std::path::{Path, PathBuf};

/// Why an operator task failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sealing(#[from] SealError),
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something named on the command line does not exist; the message says how to create it.
    #[error("{0}")]
    NotFound(String),
    /// An argument or a file was refused; the message says why and what to do.
    #[error("{0}")]
    Invalid(String),
    /// A certificate operation (`msgrelay-certs`) failed; its message says what to do next.
    #[error(transparent)]
    Cert(#[from] msgrelay_certs::CertError),
}

impl From<msgrelay_files::FileError> for AdminError {
    fn from(e: msgrelay_files::FileError) -> Self {
        match e {
            msgrelay_files::FileError::AlreadyExists { path } => AdminError::Invalid(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            )),
            msgrelay_files::FileError::Io { op, path, source } => AdminError::Io {
                action: op,
                path,
                source,
            },
        }
    }
}

impl AdminError {
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> AdminError {
        let path = path.to_path_buf();
        move |source| AdminError::Io {
            action,
            path,
            source,
        }
    }
}
