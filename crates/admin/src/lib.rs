//! Operator tasks on a data directory: the first-run bootstrap (`init`), the client certificate
//! lifecycle (issue, renew, revoke, CRL, list), operations (`ops`: doctor, backup, restore, keys
//! rotate) and the `msgrelay certs` / `msgrelay admin` front ends.
//! Builds on `msgrelay-tls` (PKI files) and `msgrelay-store` (users, clients, certificate registry).

mod bootstrap;
mod bundle;
mod certs;
pub mod cli;
mod error;
pub mod ops;
mod secret;

pub use bootstrap::{init, InitOptions, InitReport, CREDENTIALS_FILE};
pub use bundle::IssuedBundle;
pub use certs::{parse_duration, CertAdmin, CertRow, CrlInfo, KeyAlgorithm, CRL_VALIDITY};
pub use cli::{run_admin, run_admin_with, run_certs, run_certs_with, AdminCommand, CertsCommand};
pub use error::AdminError;
pub use secret::read_bootstrap_password;
