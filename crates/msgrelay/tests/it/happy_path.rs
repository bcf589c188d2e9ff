//! A message through every stage, sent by the Rust client and by the Python client, then read
//! back (decrypted) through the portal API by its owner and an admin, and by nobody else.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{command, msgrelay, run, TestRelay, SENDER};

/// Delivered within a few seconds; visible to demo and admin with its content, 404 to another user, 401 without a session.
async fn assert_delivered_and_private(relay: &TestRelay, id: &str, body: &str) {
    let delivered = relay.wait_delivered(id, Duration::from_secs(10)).await;
    assert!(delivered["delivered_at"].is_string(), "{delivered}");
    assert!(
        delivered["attempt_count"].as_u64() >= Some(1),
        "{delivered}"
    );

    for user in ["demo", "admin"] {
        let session = relay.portal_login(user).await;
        let (status, json) = relay.get_message(&session, id).await;
        assert_eq!(status, StatusCode::OK, "{user}: {json}");
        assert_eq!(json["id"], id);
        assert_eq!(json["client_id"], "demo");
        assert_eq!(json["status"], "delivered");
        assert_eq!(
            json["message_body"], body,
            "{user} reads the decrypted body"
        );
        assert_eq!(
            json["sender_number"], SENDER,
            "{user} reads the decrypted number"
        );
    }

    let other = relay.create_user_and_login("other", "user").await;
    let (status, json) = relay.get_message(&other, id).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user must not see the message: {json}"
    );
    assert!(json.get("message_body").is_none());
    assert_eq!(relay.list_messages(&other, "").await["total"], 0);

    // No session, and a session that was logged out: 401.
    assert!(relay.portal_logout(&other).await.is_success());
    let (status, _) = relay.get_message(&other, id).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a logged-out session still works"
    );
    let (status, _) = relay
        .portal_get(None, &format!("/api/v1/messages/{id}"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = relay.portal_get(None, "/api/v1/messages").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn printed_id(out: &std::process::Output, client: &str) -> String {
    assert!(
        out.status.success(),
        "{client} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    uuid::Uuid::parse_str(&id)
        .unwrap_or_else(|_| panic!("{client} printed {id:?}, not a message id"));
    id
}

#[tokio::test]
async fn rust_client_message_is_delivered_and_readable_by_its_owner_only() {
    let relay = TestRelay::up(&[]).await;
    let body = format!("hello from msgrelay send {}", uuid::Uuid::new_v4());
    let mut cmd = msgrelay(&["send"]);
    cmd.args(relay.client_flags())
        .args(["--sender", SENDER, "--body", &body]);
    let id = printed_id(&run(cmd).await, "msgrelay send");
    assert_delivered_and_private(&relay, &id, &body).await;
}

#[tokio::test]
async fn python_client_message_is_delivered_and_readable_by_its_owner_only() {
    let relay = TestRelay::up(&[]).await;
    let body = format!("hello from python {}", uuid::Uuid::new_v4());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clients/python/send_message.py"
    );
    let mut cmd = command("python3");
    cmd.arg(script)
        .args(relay.client_flags())
        .args(["--sender", SENDER, "--body", &body]);
    let id = printed_id(&run(cmd).await, "send_message.py");
    assert_delivered_and_private(&relay, &id, &body).await;
}
