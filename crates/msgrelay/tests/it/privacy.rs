//! No plaintext at rest: after a message went through every stage (and was read back and searched
//! for), neither its body nor its sender number appears in any file of the data directory.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{files_under, TestRelay};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn neither_body_nor_number_is_ever_stored_in_clear() {
    let mut relay = TestRelay::up(&[]).await;
    let body = format!("privacy-canary-{}", uuid::Uuid::new_v4());
    let digits = format!("{:010}", uuid::Uuid::new_v4().as_u128() % 10_000_000_000);
    let number = format!("+44{digits}");

    let (status, json) = relay.send(&number, &body, Some("privacy-test")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    let id = json["id"].as_str().unwrap().to_owned();
    // Refused requests carrying them too (errors must not log the input).
    let (status, _) = relay
        .send(&number, &format!("{body}{}", "x".repeat(5000)), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = relay
        .send(&format!("{number}x"), &body, Some("privacy-test-2"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    relay.wait_delivered(&id, Duration::from_secs(10)).await;
    let demo = relay.portal_login("demo").await;
    let (_, detail) = relay.get_message(&demo, &id).await;
    assert_eq!(
        detail["message_body"],
        body.as_str(),
        "control: the canary went through"
    );
    let found = relay
        .list_messages(&demo, &format!("sender={}", number.replace('+', "%2B")))
        .await;
    assert_eq!(found["total"], 1, "control: the number search works");

    let up = relay.up.as_mut().unwrap();
    up.stop().await;
    let stdout = up.output();

    let files = files_under(&relay.data_dir());
    assert!(
        files.iter().any(|f| f.starts_with(relay.path("logs"))),
        "no log files to search"
    );
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().ends_with("-wal") || f.to_string_lossy().ends_with(".db")));
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !contains(&bytes, body.as_bytes()),
            "the message body is in clear in {}",
            file.display()
        );
        assert!(
            !contains(&bytes, number.as_bytes()),
            "the sender number is in clear in {}",
            file.display()
        );
        assert!(
            !contains(&bytes, digits.as_bytes()),
            "the sender number's digits are in clear in {}",
            file.display()
        );
    }
    assert!(
        !stdout.contains(&body) && !stdout.contains(&digits),
        "the console log shows the body or the number"
    );
}
