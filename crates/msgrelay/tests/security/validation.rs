//! Every way a submission can be refused: the status, an `application/problem+json` body naming
//! the field, and nothing in the queue. No worker runs here, so whatever the proxy enqueued stays
//! visible; the last request (valid) proves that the queue check would see it.

use msgrelay_tls::Pki;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{TestRelay, SENDER};

const MAX_CHARS: usize = 100;

struct Case {
    name: &'static str,
    content_type: &'static str,
    idempotency_key: Option<String>,
    body: Vec<u8>,
    status: StatusCode,
    field: Option<&'static str>,
}

fn case(name: &'static str, body: Value, status: StatusCode, field: Option<&'static str>) -> Case {
    Case {
        name,
        content_type: "application/json",
        idempotency_key: None,
        body: body.to_string().into_bytes(),
        status,
        field,
    }
}

fn cases() -> Vec<Case> {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    vec![
        Case {
            body: br#"{"sender_number": "+15551234567", "message_body": "#.to_vec(),
            ..case("malformed JSON", json!({}), StatusCode::BAD_REQUEST, None)
        },
        Case {
            body: b"[1, 2]".to_vec(),
            ..case(
                "JSON that is not an object",
                json!({}),
                StatusCode::BAD_REQUEST,
                None,
            )
        },
        case(
            "too large",
            json!({"sender_number": SENDER, "message_body": "x".repeat(2000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        Case {
            content_type: "text/plain",
            ..case(
                "wrong content type",
                json!({"sender_number": SENDER, "message_body": "hi"}),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
            )
        },
        case(
            "sender_number missing",
            json!({"message_body": "hi"}),
            unprocessable,
            Some("sender_number"),
        ),
        case(
            "sender_number not E.164",
            json!({"sender_number": "5551234567", "message_body": "hi"}),
            unprocessable,
            Some("sender_number"),
        ),
        case(
            "sender_number with letters",
            json!({"sender_number": "+1555CALLME", "message_body": "hi"}),
            unprocessable,
            Some("sender_number"),
        ),
        case(
            "sender_number not a string",
            json!({"sender_number": 15551234567u64, "message_body": "hi"}),
            unprocessable,
            Some("sender_number"),
        ),
        case(
            "message_body missing",
            json!({"sender_number": SENDER}),
            unprocessable,
            Some("message_body"),
        ),
        case(
            "message_body empty",
            json!({"sender_number": SENDER, "message_body": ""}),
            unprocessable,
            Some("message_body"),
        ),
        case(
            "message_body too long",
            json!({"sender_number": SENDER, "message_body": "é".repeat(MAX_CHARS + 1)}),
            unprocessable,
            Some("message_body"),
        ),
        case(
            "unknown field",
            json!({"sender_number": SENDER, "message_body": "hi", "priority": 1}),
            unprocessable,
            Some("priority"),
        ),
        case(
            "unknown metadata field",
            json!({"sender_number": SENDER, "message_body": "hi", "metadata": {"client_id": "demo", "tag": "x"}}),
            unprocessable,
            Some("metadata.tag"),
        ),
        case(
            "bad metadata.timestamp",
            json!({"sender_number": SENDER, "message_body": "hi", "metadata": {"timestamp": "yesterday"}}),
            unprocessable,
            Some("metadata.timestamp"),
        ),
        Case {
            idempotency_key: Some("k".repeat(129)),
            ..case(
                "Idempotency-Key too long",
                json!({"sender_number": SENDER, "message_body": "hi"}),
                unprocessable,
                Some("Idempotency-Key"),
            )
        },
        case(
            "metadata.client_id of another client",
            json!({"sender_number": SENDER, "message_body": "hi", "metadata": {"client_id": "someone-else"}}),
            StatusCode::FORBIDDEN,
            Some("metadata.client_id"),
        ),
    ]
}

/// Posts raw bytes; checks the problem document and that the queue is still empty.
async fn assert_problem(relay: &TestRelay, client: &reqwest::Client, c: &Case) {
    let mut req = client
        .post(relay.messages_url())
        .header("content-type", c.content_type)
        .body(c.body.clone());
    if let Some(k) = &c.idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let problem: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, c.status, "{}: {problem}", c.name);
    assert!(
        content_type.starts_with("application/problem+json"),
        "{}: content type {content_type:?}",
        c.name
    );
    assert_eq!(
        problem["status"],
        c.status.as_u16(),
        "{}: {problem}",
        c.name
    );
    assert!(
        problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}: {problem}",
        c.name
    );
    assert_eq!(problem["field"].as_str(), c.field, "{}: {problem}", c.name);
    assert_eq!(
        relay.queue_stats().await,
        Default::default(),
        "{}: the refused request left something in the queue",
        c.name
    );
}

#[tokio::test]
async fn every_validation_error_is_a_problem_and_enqueues_nothing() {
    let mut relay = TestRelay::init().await;
    relay
        .env
        .push(("MSGRELAY_PROXY__MAX_BODY_BYTES".into(), "1024".into()));
    relay.env.push((
        "MSGRELAY_VALIDATION__MAX_MESSAGE_CHARS".into(),
        MAX_CHARS.to_string(),
    ));
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;

    let demo = relay.demo_client();
    for c in cases() {
        assert_problem(&relay, &demo, &c).await;
    }

    // A certificate of the client CA that was never registered to a client.
    let ghost = Pki::new(relay.path("pki"))
        .issue_client("ghost", "localhost", 30)
        .unwrap();
    let ghost_client = relay.proxy_client(ghost.cert_pem.as_bytes(), ghost.key_pem.as_bytes());
    let unknown = case(
        "unregistered certificate",
        json!({"sender_number": SENDER, "message_body": "hi"}),
        StatusCode::FORBIDDEN,
        None,
    );
    assert_problem(&relay, &ghost_client, &unknown).await;

    // Control: the longest valid body is accepted, and the queue check sees it.
    let (status, json) = relay.send(SENDER, &"é".repeat(MAX_CHARS), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    assert_eq!(relay.queue_stats().await.ready, 1);
}
