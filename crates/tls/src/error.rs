//! The one error type of this crate; every variant says what to fix and, where a file is involved, which one.

use std::path::PathBuf;

/// Errors from the PKI on disk, PEM parsing, CRL checks and TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "writing", "creating directory", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file we must never overwrite (a private key) is already there.
    #[error("{} already exists; refusing to overwrite it (move it away first if you really mean to replace it)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A certificate exists but its private key is missing, so nothing can be signed with it.
    #[error("{} is missing but its certificate exists; restore the key from backup, or remove the certificate to create a new CA (every certificate it signed becomes untrusted)", path.display())]
    MissingKey {
        /// The missing key file.
        path: PathBuf,
    },
    /// PEM or DER content could not be parsed.
    #[error("{what}: {detail}")]
    Malformed {
        /// What was being parsed, e.g. "certificate in /data/pki/client-ca.crt".
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A CRL's next update (plus grace) is in the past: revocation data is stale.
    #[error("CRL expired: its next update was {next_update} (plus grace); issue a fresh CRL (`msgrelay certs crl`)")]
    Expired {
        /// The CRL's next-update time.
        next_update: chrono::DateTime<chrono::Utc>,
    },
    /// A CRL is not signed by the expected CA.
    #[error(
        "CRL is not signed by the expected CA ({detail}); fetch the CRL issued by the client CA"
    )]
    WrongSigner {
        /// What did not match.
        detail: String,
    },
    /// An argument was invalid (domain name, serial, revocation reason, validity...).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// Certificate or CRL generation failed in rcgen.
    #[error("generating {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused the configuration (e.g. a key that does not match its certificate).
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl PkiError {
    /// Shorthand for an I/O error on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PkiError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for a parse error.
    pub(crate) fn malformed(what: impl Into<String>, detail: impl ToString) -> Self {
        PkiError::Malformed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// Shorthand for an rcgen failure.
    pub(crate) fn generate(what: impl Into<String>, source: rcgen::Error) -> Self {
        PkiError::Generate {
            what: what.into(),
            source,
        }
    }
}
