//! The attack suite: every test is named after the attack it makes and drives the real `msgrelay`
//! binary (spawned on port 0 with its own data directory, see `support::TestRelay`). An attack
//! that is closed stays closed: each test first shows the legitimate path works, then attacks.
//! `docs/security.md` maps each line of the threat model to the test here that proves it.

#[path = "../it/support/mod.rs"]
#[allow(dead_code)]
mod support;

mod early_answers;
mod exhaustion;
mod handshake;
mod internal_trust;
mod login;
mod openapi_conformance;
mod portal;
mod queue_dump;
mod queue_forgery;
mod sessions;
mod validation;
