//! The store's one error type.

/// Why a store operation failed. Messages may contain SQL details: log them, never show them to a caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique value (username, client id, serial, fingerprint) is already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An argument was refused; `reason` is safe to show to the caller.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Unknown user, wrong password or disabled account (deliberately indistinguishable).
    #[error("bad credentials")]
    BadCredentials,
    /// The database cannot be reached (connection refused, pool exhausted or closed).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A bug or an environment problem outside the database (e.g. password hashing failed).
    #[error("internal error: {0}")]
    Internal(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Maps a unique-constraint violation to `Conflict(what)`, anything else as usual.
    pub(crate) fn conflict_or(e: sqlx::Error, what: impl Into<String>) -> Self {
        let unique = e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation());
        if unique {
            Self::Conflict(what.into())
        } else {
            e.into()
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            other => Self::Database(other),
        }
    }
}
