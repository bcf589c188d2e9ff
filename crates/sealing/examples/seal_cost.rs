//! The CPU cost of sealing and opening one message, away from the network and the queue:
//!
//!   cargo run --release -p msgrelay-sealing --example seal_cost -- 2000
//!
//! prints microseconds per seal and per open (wall clock: run it on a quiet machine). For a count
//! that does not depend on the machine's load, count instructions with callgrind and divide by
//! the number of messages (subtract a run with 0, which is the set-up alone):
//!
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/seal_cost 200
//!
//! docs/benchmarks.md records both.

use std::time::Instant;

use msgrelay_core::{ClientId, MessageId};
use msgrelay_sealing::{Envelope, Opener, PlainPayload, Sealer, SealingKeyPair};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the number of messages"))
        .unwrap_or(1000);
    let server = SealingKeyPair::generate();
    let proxy = SealingKeyPair::generate();
    let sealer = Sealer::new(&proxy, &server.public_key_b64()).expect("sealer");
    let opener =
        Opener::new(std::slice::from_ref(&server), &[proxy.public_key_b64()]).expect("opener");
    // A 200-byte body, as `msgrelay bench` sends.
    let payloads: Vec<PlainPayload> = (0..n)
        .map(|_| PlainPayload {
            id: MessageId::new(),
            client_id: ClientId::parse("bench").expect("client id"),
            sender_number: "+15551234567".into(),
            message_body: "x".repeat(200),
            accepted_at_ms: 1_700_000_000_000,
        })
        .collect();

    let t = Instant::now();
    let sealed: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| sealer.seal(p).expect("seal"))
        .collect();
    let seal = t.elapsed();

    let t = Instant::now();
    for (p, s) in payloads.iter().zip(&sealed) {
        let envelope = Envelope {
            id: &p.id,
            client_id: &p.client_id,
            accepted_at_ms: p.accepted_at_ms,
        };
        let opened = opener.open(&envelope, s).expect("open");
        assert_eq!(&opened, p);
    }
    let open = t.elapsed();

    if n > 0 {
        let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{n} messages: seal {:.1} µs, open {:.1} µs per message",
            per(seal),
            per(open)
        );
    }
}
