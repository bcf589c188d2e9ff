//! A short tag of an attempted username for logs. A failed login's username is often a
//! mistyped password, so the text never reaches a log; the tag lets an operator see that the
//! same name is being tried again. It is keyed with a random per-process key, so a log reader
//! cannot test guesses against it (a plain hash of a short string is easily reversed).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::sync::OnceLock;

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        k
    })
}

/// 12 hex digits of HMAC-SHA256(per-process key, username): equal within one process run.
pub fn username_tag(username: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key()).expect("any key length");
    mac.update(username.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_stable_and_not_the_text() {
        let a = username_tag("hunter2-password");
        assert_eq!(a.len(), 12);
        assert_eq!(a, username_tag("hunter2-password"));
        assert_ne!(a, username_tag("hunter2-passwore"));
        assert!(!a.contains("hunter"));
        assert_eq!(username_tag(&"x".repeat(1 << 20)).len(), 12);
    }
}
