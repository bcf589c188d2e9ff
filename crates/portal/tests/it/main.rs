//! Portal integration tests: one binary; each test starts its own portal (port 0, temp data
//! directory) and talks HTTPS to it.

mod authz;
mod browser;
mod message_list;
mod openapi;
mod security;
mod support;
