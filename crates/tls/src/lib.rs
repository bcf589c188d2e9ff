//! PKI (CAs, certificates, CRLs) and the mutual-TLS plumbing: hot-swappable server configs, mTLS HTTP clients, the TLS accept loop.
//! Owns every file under `<data_dir>/pki` and every rustls configuration of the workspace.
//! Uses the ring crypto provider only.

mod accept;
mod body;
pub mod client;
mod error;
mod limits;
mod linger;
pub mod pki;
pub mod server;

pub use accept::{serve_tls, ServeOptions};
pub use body::{is_body_read_timeout, BodyReadTimeout};
pub use client::{mtls_client, service_client, tls_client};
pub use error::PkiError;
pub use limits::{ConnEvent, ConnEvents, ListenerLimits};
pub use pki::{
    fingerprint, load_certs_pem, load_crl, load_key_pem, InitReport, IssuedCert, LoadedCrl, Pki,
    RevokedCert,
};
pub use server::{mtls_server_config, tls_server_config, PeerInfo};

/// Installs rustls' ring provider as the process default (a second call is a no-op).
///
/// Our own configs pass the provider explicitly; this is for other rustls users in the process
/// (sqlx, redis), which panic if both ring and aws-lc-rs are compiled in and no default is set.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is exactly what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
