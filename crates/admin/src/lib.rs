//! Operator tasks on a data directory: the first-run bootstrap (`init`), `maintenance` (doctor,
//! backup, restore, keys rotate) and the `msgrelay certs` / `msgrelay admin` front ends.
//! The certificate lifecycle itself is `msgrelay-certs` (re-exported here for the front ends).
//! Only the binary depends on this crate; no network role does.

mod bootstrap;
pub mod cli;
mod error;
pub mod maintenance;
mod progress;
mod secret;

pub use bootstrap::{init, InitOptions, InitReport, CREDENTIALS_FILE};
pub use cli::{run_admin, run_admin_with, run_certs, run_certs_with, AdminCommand, CertsCommand};
pub use error::AdminError;
pub use msgrelay_certs::{
    CertAdmin, CertError, CertRow, CrlInfo, IssuedBundle, KeyAlgorithm, CRL_VALIDITY,
};
pub use secret::read_bootstrap_password;
