//! Proxy integration tests: one binary; each test bootstraps a temp data directory, runs the real
//! main server and the proxy in-process on port 0 with their own embedded queue, and talks mutual
//! TLS to the proxy as the demo client. Attacks on the running binary live in
//! `crates/msgrelay/tests/security`; these pin down what the proxy itself promises.

mod submit;
mod support;
