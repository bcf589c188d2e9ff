//! Integration tests: a real `serve_tls` on 127.0.0.1:0 against real reqwest/rustls clients.

mod discard;
mod handshake;
mod support;
