//! The crate's one error type. Messages are for operators: each says what to do next.

use msgrelay_at_rest::AtRestError;
use msgrelay_keyfile::KeyFileError;
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
    /// Building the PKCS#12 bundle failed.
    #[error("building the PKCS#12 bundle: {0}")]
    Pkcs12(String),
}

/// Keeps the operator's messages as they were when the lifecycle lived in this crate.
impl From<msgrelay_certs::CertError> for AdminError {
    fn from(e: msgrelay_certs::CertError) -> Self {
        use msgrelay_certs::CertError as C;
        match e {
            C::Pki(e) => AdminError::Pki(e),
            C::Store(e) => AdminError::Store(e),
            C::KeyFile(e) => AdminError::KeyFile(e),
            C::Io {
                action,
                path,
                source,
            } => AdminError::Io {
                action,
                path,
                source,
            },
            C::NotFound(m) => AdminError::NotFound(m),
            C::Invalid(m) => AdminError::Invalid(m),
            C::Pkcs12(m) => AdminError::Pkcs12(m),
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
