//! What the proxy does with a submission: a valid one is in the queue, sealed, before the 202; an
//! invalid one is refused naming the field and never queued; a retried one is queued once.

use std::time::Duration;

use serde_json::json;

use crate::support::spawn_proxy;

#[tokio::test]
async fn an_accepted_message_is_queued_sealed_before_the_answer() {
    let p = spawn_proxy().await;
    let body = "one-time code 918273 for the proxy test";
    let (status, answer) = p
        .post(
            json!({"sender_number": "+15551230000", "message_body": body}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().expect("id");

    let leased = p
        .queue
        .lease("proxy-test", 10, Duration::from_secs(60))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1, "queued before the 202");
    assert_eq!(leased[0].id.to_string(), id);
    assert_eq!(
        leased[0].client_id.as_str(),
        "demo",
        "attributed to the certificate's client"
    );
    let payload = &leased[0].payload;
    for secret in [
        body.as_bytes(),
        b"+15551230000".as_slice(),
        b"918273".as_slice(),
    ] {
        assert!(
            !payload.windows(secret.len()).any(|w| w == secret),
            "the queued payload is sealed"
        );
    }
}

#[tokio::test]
async fn an_invalid_message_names_the_field_and_is_not_queued() {
    let p = spawn_proxy().await;
    let (status, problem) = p
        .post(json!({"sender_number": "555", "message_body": "hi"}), None)
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "sender_number");
    let (status, problem) = p.post(json!({"sender_number": "+15551230000"}), None).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "message_body");
    let stats = p.queue.stats().await.expect("stats");
    assert_eq!(stats.ready, 0, "nothing refused is queued");
}

#[tokio::test]
async fn a_retried_submission_is_queued_once() {
    let p = spawn_proxy().await;
    let msg = json!({"sender_number": "+15551230000", "message_body": "retry me"});
    let (s1, a1) = p.post(msg.clone(), Some("key-1")).await;
    let (s2, a2) = p.post(msg, Some("key-1")).await;
    assert_eq!(s1, 202, "{a1}");
    assert!(s2.is_success(), "{s2} {a2}");
    assert_eq!(a1["id"], a2["id"], "the retry answers with the first id");
    let stats = p.queue.stats().await.expect("stats");
    assert_eq!(stats.ready, 1, "queued once");
}
