//! The message list shows who sent each message and how it starts: the sender number and the
//! first 80 characters of the body, decrypted for the rows shown, escaped, on the user's list,
//! the administrator's list and in the JSON API; and it says that body text cannot be searched.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{deliver, spawn_app};

const SENDER: &str = "+15550001234";

#[tokio::test]
async fn the_message_list_shows_sender_and_the_first_80_characters_escaped() {
    let app = spawn_app().await;
    let head = format!("<b>bold</b> {}", "x".repeat(80 - 12));
    let body = format!("{head}THE-TAIL-IS-NOT-SHOWN");
    let id = deliver(&app.portal, "alice-app", SENDER, &body).await;
    let escaped_head = head.replace('<', "&#60;").replace('>', "&#62;");

    let alice = app.login("alice").await;
    let boss = app.login("boss").await;
    for (who, session, path) in [
        ("user", &alice, "/messages"),
        ("admin", &boss, "/admin/messages"),
    ] {
        let page = app.get(path, session).await;
        assert_eq!(page.status, StatusCode::OK, "{who}");
        let row = page
            .body
            .split("<tr>")
            .find(|r| r.contains(&id.to_string()))
            .unwrap_or_else(|| panic!("{who}: no row for the message"));
        assert!(row.contains(SENDER), "{who}: sender shown: {row}");
        assert!(
            row.contains(&format!("{escaped_head}…")),
            "{who}: preview shown, escaped: {row}"
        );
        assert!(!row.contains("<b>"), "{who}: raw markup in the list");
        assert!(
            !row.contains("THE-TAIL"),
            "{who}: more than 80 characters shown"
        );
        assert!(
            row.contains(&format!("href=\"/messages/{id}\"")),
            "{who}: the id is the link"
        );
        assert!(
            page.body
                .contains("cannot use an index over encrypted data"),
            "{who}: the page says body text cannot be searched"
        );
    }
    // Another user's list shows nothing of it.
    let bob = app.login("bob").await;
    let page = app.get("/messages", &bob).await;
    assert!(!page.body.contains(SENDER) && !page.body.contains("xxxxxxxx"));

    let api = app.get("/api/v1/messages", &alice).await;
    assert_eq!(api.status, StatusCode::OK);
    let list: Value = serde_json::from_str(&api.body).expect("JSON");
    let item = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == id.to_string())
        .expect("the message in the API list");
    assert_eq!(item["sender_number"], SENDER);
    assert_eq!(item["body_preview"], format!("{head}…"));
}
