//! `msgrelay portal` as its own process next to a main server that does not serve the portal
//! (`server.with_portal = false`): the portal reads the server's database (messages it shows
//! decrypted with the at-rest keys), and a revocation it makes reaches the proxy through the CRL
//! the main server serves.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{wait_for, Body, TestRelay, DEADLINE, SENDER};

#[tokio::test]
async fn the_portal_runs_as_its_own_process_on_the_servers_database() {
    let mut relay = TestRelay::init().await;
    let server = relay
        .start_server(&[("MSGRELAY_SERVER__WITH_PORTAL", "false")])
        .await;
    assert!(
        !server.serves("portal"),
        "with server.with_portal = false the main server must not serve the portal"
    );
    relay.start_proxy(&[]).await;
    relay.start_worker(&[]).await;
    relay.start_portal(&[]).await;

    // A message delivered by the server's worker path is read, decrypted, through the portal process.
    let body = format!("seen through the portal role {}", uuid::Uuid::new_v4());
    let id = relay.send_ok(&body).await;
    relay.wait_delivered(&id, DEADLINE).await;
    let demo = relay.portal_login("demo").await;
    let (status, message) = relay.get_message(&demo, &id).await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_eq!(message["message_body"], body.as_str());

    // An administrator of the portal process revokes the demo certificate; the main server serves
    // the re-signed CRL, and the proxy refuses the client from its next refresh.
    let admin = relay.portal_login("admin").await;
    let (status, clients) = relay
        .portal_get(Some(&admin), "/api/v1/admin/clients")
        .await;
    assert_eq!(status, StatusCode::OK, "{clients}");
    let serial = clients
        .as_array()
        .and_then(|c| c.iter().find(|c| c["client_id"] == "demo"))
        .and_then(|c| c["certificates"][0]["serial"].as_str())
        .unwrap_or_else(|| panic!("the demo client has a certificate: {clients}"))
        .to_owned();
    let revoked = relay
        .portal(
            Method::POST,
            &format!("/api/v1/admin/certificates/{serial}/revoke"),
            Some(&admin),
            Body::Json(json!({"reason": "keyCompromise"})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    // Each try is a new client, hence a new handshake, which the proxy refuses once it has the CRL.
    wait_for(
        "the proxy to refuse the revoked certificate",
        DEADLINE,
        || async {
            let sent = relay
                .demo_client()
                .post(relay.messages_url())
                .json(&json!({"sender_number": SENDER, "message_body": "after revocation"}))
                .send()
                .await;
            sent.is_err().then_some(())
        },
    )
    .await;
}
