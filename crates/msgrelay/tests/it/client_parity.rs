//! `msgrelay send` and `clients/python/send_message.py` behave the same: each case runs both
//! clients with the same flags against the same relay and compares exit codes and, where the
//! output is deterministic, the exact error lines.

use std::process::Output;

use crate::support::{command, free_port, msgrelay, run, run_with_stdin, TestRelay, SENDER};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../clients/python/send_message.py"
);

/// Both clients' outputs for the same arguments (and standard input, if any).
async fn both(args: &[String], stdin: Option<&str>) -> [(&'static str, Output); 2] {
    let mut rust = msgrelay(&["send"]);
    rust.args(args);
    let mut python = command("python3");
    python.arg(SCRIPT).args(args);
    let go = |cmd| async move {
        match stdin {
            Some(input) => run_with_stdin(cmd, input.to_owned()).await,
            None => run(cmd).await,
        }
    };
    [
        ("msgrelay send", go(rust).await),
        ("send_message.py", go(python).await),
    ]
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(name: &str, out: &Output) -> String {
    format!(
        "{name}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    )
}

/// Both exit with `expected`; returns their standard error texts.
fn expect_exit(outs: &[(&str, Output); 2], expected: i32) -> [String; 2] {
    for (name, out) in outs {
        assert_eq!(code(out), expected, "{}", describe(name, out));
    }
    [stderr(&outs[0].1), stderr(&outs[1].1)]
}

fn flags(relay: &TestRelay, extra: &[&str]) -> Vec<String> {
    let mut args = relay.client_flags();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn without(mut args: Vec<String>, flag: &str) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).expect("flag present");
    args.drain(i..i + 2);
    args
}

fn set(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).expect("flag present");
    args[i + 1] = value.to_owned();
    args
}

#[tokio::test]
async fn both_clients_agree_on_every_case() {
    let relay = TestRelay::up(&[]).await;

    // Accepted, with the body on the command line and from standard input: exit 0, the id only.
    for (args, stdin) in [
        (
            flags(&relay, &["--sender", SENDER, "--body", "parity"]),
            None,
        ),
        (
            flags(&relay, &["--sender", SENDER, "--body", "-"]),
            Some("parity from stdin\n"),
        ),
    ] {
        for (name, out) in both(&args, stdin).await {
            assert_eq!(code(&out), 0, "{}", describe(name, &out));
            let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{name} printed {id:?}");
        }
    }

    // One PEM file with certificate and key: --key may be left out.
    let combined = relay.path("clients/demo/combined.pem");
    let mut pem = relay.read("clients/demo/client.crt");
    pem.extend(relay.read("clients/demo/client.key"));
    std::fs::write(&combined, pem).unwrap();
    let args = set(
        without(flags(&relay, &["--sender", SENDER, "--body", "b"]), "--key"),
        "--cert",
        &combined.display().to_string(),
    );
    expect_exit(&both(&args, None).await, 0);

    // Refused by the relay (422): exit 2, the field named, the number never echoed.
    let bad_number = "+12";
    let [rust, python] = expect_exit(
        &both(
            &flags(&relay, &["--sender", bad_number, "--body", "b"]),
            None,
        )
        .await,
        2,
    );
    for err in [&rust, &python] {
        assert!(err.contains("error: 422"), "{err}");
        assert!(err.contains("field: sender_number"), "{err}");
        assert!(!err.contains(bad_number), "{err}");
    }
    assert_eq!(rust, python, "the same problem+json prints the same lines");

    // The proxy's certificate does not verify against --ca: exit 2 at once, no retries.
    let client_crt = relay.path("clients/demo/client.crt").display().to_string();
    let args = set(
        flags(&relay, &["--sender", SENDER, "--body", "b"]),
        "--ca",
        &client_crt,
    );
    for err in expect_exit(&both(&args, None).await, 2) {
        assert!(
            err.contains("cannot verify the proxy's certificate"),
            "{err}"
        );
        assert!(!err.contains("warning: attempt"), "{err}");
    }

    // Nobody listens: exit 3 after the retries, the same warning and the key to re-run with.
    let closed = format!("https://localhost:{}", free_port());
    let args = set(
        flags(
            &relay,
            &[
                "--sender",
                SENDER,
                "--body",
                "b",
                "--retries",
                "1",
                "--idempotency-key",
                "parity-key-1",
            ],
        ),
        "--url",
        &closed,
    );
    let [rust, python] = expect_exit(&both(&args, None).await, 3);
    assert_eq!(rust, python);
    assert!(rust.starts_with(
        "warning: attempt 1 of 2 failed (connection refused); retrying in 1 s\n\
         error: gave up after 2 attempt(s); last error: connection refused\n"
    ));
    assert!(rust.contains("--idempotency-key parity-key-1 "), "{rust}");

    // Local mistakes: exit 64 with the same line.
    for args in [
        vec!["--body".to_owned(), "b".to_owned()],
        flags(
            &relay,
            &["--sender", SENDER, "--body", "b", "--timeout", "0"],
        ),
        flags(
            &relay,
            &["--sender", SENDER, "--body", "b", "--retries", "x"],
        ),
        flags(
            &relay,
            &[
                "--sender",
                SENDER,
                "--body",
                "b",
                "--idempotency-key",
                "clé",
            ],
        ),
        set(
            flags(&relay, &["--sender", SENDER, "--body", "b"]),
            "--url",
            "http://localhost:1",
        ),
        set(
            flags(&relay, &["--sender", SENDER, "--body", "b"]),
            "--cert",
            "/nonexistent/client.crt",
        ),
    ] {
        let [rust, python] = expect_exit(&both(&args, None).await, 64);
        assert_eq!(rust, python, "args {args:?}");
        assert!(rust.starts_with("error: "), "{rust}");
    }

    // An unknown flag is a usage error for both (64), whatever the parser prints.
    expect_exit(&both(&["--no-such-flag".to_owned()], None).await, 64);
}
