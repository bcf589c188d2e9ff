//! Integration tests of msgrelay-admin: each test bootstraps its own temp data directory (SQLite).

mod bootstrap;
mod certs;
mod cli;
mod scripts;
mod support;
