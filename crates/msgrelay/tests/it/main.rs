//! The relay end to end: every test spawns the real `msgrelay` binary on port 0 with its own temp
//! data directory (see `support::TestRelay`) and talks to it over mutual TLS like a client would.

mod backup;
mod certs;
mod client_parity;
mod config;
mod delivery;
mod happy_path;
mod idempotency;
mod logs;
mod ops;
mod passwords;
mod portal_role;
mod privacy;
mod restart;
mod service;
mod support;
