//! Portal integration tests: one binary; each test starts its own main server (port 0, temp data
//! directory) and talks HTTPS to the portal listener.

mod authz;
mod browser;
mod openapi;
mod security;
mod support;
