//! `Idempotency-Key`: a retry returns the first id and stores nothing new; reusing a key for a
//! different message is refused.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{TestRelay, SENDER};

#[tokio::test]
async fn same_key_twice_gives_one_id_and_one_row() {
    let relay = TestRelay::up(&[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    let (s1, first) = relay.send(SENDER, "retried message", Some(&key)).await;
    let (s2, second) = relay.send(SENDER, "retried message", Some(&key)).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
        "{first} {second}"
    );
    let id = first["id"].as_str().unwrap();
    assert_eq!(second["id"], id, "a retry must return the first id");

    relay.wait_delivered(id, Duration::from_secs(10)).await;
    // A retry after the delivery still maps to the same message.
    let (s3, third) = relay.send(SENDER, "retried message", Some(&key)).await;
    assert_eq!(s3, StatusCode::ACCEPTED);
    assert_eq!(third["id"], id);

    // Control: another key is another message.
    let other = relay
        .send(
            SENDER,
            "retried message",
            Some(&uuid::Uuid::new_v4().to_string()),
        )
        .await
        .1;
    assert_ne!(other["id"], id);
    relay
        .wait_delivered(other["id"].as_str().unwrap(), Duration::from_secs(10))
        .await;

    let admin = relay.portal_login("admin").await;
    assert_eq!(
        relay.list_messages(&admin, "").await["total"],
        2,
        "the retries must not create rows"
    );
    assert_eq!(
        relay.queue_stats().await,
        Default::default(),
        "nothing left to deliver"
    );
}

#[tokio::test]
async fn same_key_with_another_payload_is_refused() {
    let relay = TestRelay::up(&[]).await;
    let key = uuid::Uuid::new_v4().to_string();
    let (status, first) = relay.send(SENDER, "original", Some(&key)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");

    for (sender, body) in [(SENDER, "changed"), ("+15557654321", "original")] {
        let (status, problem) = relay.send(sender, body, Some(&key)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["field"], "Idempotency-Key", "{problem}");
    }

    relay
        .wait_delivered(first["id"].as_str().unwrap(), Duration::from_secs(10))
        .await;
    let admin = relay.portal_login("admin").await;
    assert_eq!(relay.list_messages(&admin, "").await["total"], 1);
}
