//! The crate's one error type. Messages are for operators: each says what to do next.

use std::path::{Path, PathBuf};

use msgrelay_store::StoreError;
use msgrelay_tls::PkiError;

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyFile(#[from] msgrelay_files::KeyFileError),
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something named does not exist; the message says how to create it.
    #[error("{0}")]
    NotFound(String),
    /// An argument or a file was refused; the message says why and what to do.
    #[error("{0}")]
    Invalid(String),
    /// Building the PKCS#12 bundle failed.
    #[error("building the PKCS#12 bundle: {0}")]
    Pkcs12(String),
}

impl CertError {
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> CertError {
        let path = path.to_path_buf();
        move |source| CertError::Io {
            action,
            path,
            source,
        }
    }
}
