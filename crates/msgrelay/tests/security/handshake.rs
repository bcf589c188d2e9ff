//! Who may connect: only certificates of the client CA that are registered, valid and not revoked
//! reach the proxy's API; only internal-CA service certificates reach the internal API. Each test
//! first shows that the demo client gets through, so a refusal means what the test says.

use std::time::Duration;

use chrono::Utc;
use msgrelay_core::ClientId;
use msgrelay_store::{NewCertificate, Store};
use msgrelay_tls::{load_crl, Pki};
use reqwest::StatusCode;

use crate::support::{wait_for, TestRelay, DEADLINE, SENDER};

/// Posts a valid message with `client`; true if no 2xx came back (handshake failure or 4xx).
async fn refused(relay: &TestRelay, client: &reqwest::Client) -> bool {
    let resp = client
        .post(relay.messages_url())
        .json(&serde_json::json!({"sender_number": SENDER, "message_body": "should not pass"}))
        .send()
        .await;
    match resp {
        Err(_) => true,
        Ok(r) => !r.status().is_success(),
    }
}

async fn assert_refused(relay: &TestRelay, client: &reqwest::Client, what: &str) {
    assert!(refused(relay, client).await, "{what} was accepted");
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let relay = TestRelay::up(&[]).await;
    let control = relay.send_ok("control").await;
    let anonymous = msgrelay_tls::client::tls_client_builder(
        &relay.read("clients/demo/ca.crt"),
        Duration::from_secs(10),
    )
    .unwrap()
    .resolve("localhost", relay.proxy_addr())
    .build()
    .unwrap();
    assert_refused(&relay, &anonymous, "a request without a client certificate").await;
    relay
        .wait_delivered(&control, Duration::from_secs(10))
        .await;
    assert_eq!(
        relay
            .list_messages(&relay.portal_login("admin").await, "")
            .await["total"],
        1
    );
}

#[tokio::test]
async fn certificate_from_a_foreign_ca_is_refused() {
    let relay = TestRelay::up(&[]).await;
    relay.send_ok("control").await;
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = Pki::new(foreign_dir.path());
    foreign.init(&["localhost".to_owned()]).unwrap();
    // Same client id and domain as the real demo client, only the issuer differs.
    let cert = foreign.issue_client("demo", "localhost", 30).unwrap();
    let client = relay.proxy_client(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes());
    assert_refused(&relay, &client, "a certificate of a foreign CA").await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let relay = TestRelay::up(&[("MSGRELAY_PROXY__REVOCATION_REFRESH_SECS", "1")]).await;
    relay.send_ok("control").await;
    let pki = Pki::new(relay.path("pki"));
    let now = Utc::now();
    let expired = pki
        .issue_client_with_validity(
            "demo",
            "localhost",
            now - chrono::Duration::days(30),
            now - chrono::Duration::days(1),
        )
        .unwrap();
    let fresh = pki.issue_client("demo", "localhost", 30).unwrap();
    // Register both as valid for a year, so that only the certificate's own validity can refuse
    // the expired one (the registry alone would otherwise answer 403 for it).
    let store = Store::connect(
        &msgrelay_core::DatabaseLocation::Sqlite(relay.path("msgrelay.db")),
        1,
    )
    .await
    .unwrap();
    for cert in [&expired, &fresh] {
        store
            .add_certificate(&NewCertificate {
                serial_hex: cert.serial_hex.clone(),
                fingerprint: cert.fingerprint.clone(),
                client_id: ClientId::parse("demo").unwrap(),
                not_after_ms: (now + chrono::Duration::days(365)).timestamp_millis(),
            })
            .await
            .unwrap();
    }
    store.close().await;
    // Once the fresh certificate works, the proxy has the registry holding both.
    let fresh_client = relay.proxy_client(fresh.cert_pem.as_bytes(), fresh.key_pem.as_bytes());
    let fresh_client = &fresh_client;
    let relay_ref = &relay;
    wait_for(
        "the proxy to load the new certificates",
        DEADLINE,
        || async move { (!refused(relay_ref, fresh_client).await).then_some(()) },
    )
    .await;
    let client = relay.proxy_client(expired.cert_pem.as_bytes(), expired.key_pem.as_bytes());
    assert_refused(&relay, &client, "an expired certificate").await;
}

#[tokio::test]
async fn revoked_certificate_is_refused_once_the_crl_is_refreshed() {
    let relay = TestRelay::up(&[("MSGRELAY_PROXY__REVOCATION_REFRESH_SECS", "1")]).await;
    relay.send_ok("control").await;
    let out = crate::support::run(relay.cli(&["certs", "revoke", "--client-id", "demo"])).await;
    assert!(
        out.status.success(),
        "certs revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relay_ref = &relay;
    // A new client per attempt: a fresh handshake each time, as a reconnecting client would do.
    wait_for(
        "the revoked certificate to be refused",
        DEADLINE,
        || async move {
            refused(relay_ref, &relay_ref.demo_client())
                .await
                .then_some(())
        },
    )
    .await;
    // Still refused on a later connection (no flapping back to the old CRL or registry).
    assert_refused(&relay, &relay.demo_client(), "a revoked certificate").await;
}

#[tokio::test]
async fn a_crl_close_to_its_next_update_is_re_signed_when_the_main_server_starts() {
    let mut relay = TestRelay::init().await;
    let pki = Pki::new(relay.path("pki"));
    let now = Utc::now();
    // A CRL with one hour left: the proxies would fail closed soon after.
    pki.write_crl_with_times(
        &[],
        now - chrono::Duration::days(6),
        now + chrono::Duration::hours(1),
    )
    .unwrap();
    relay.start_server(&[]).await;

    let proxy = relay.internal_client(&relay.read("pki/proxy.crt"), &relay.read("pki/proxy.key"));
    let resp = proxy
        .get(relay.internal_url("/internal/crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let served = load_crl(
        &resp.bytes().await.unwrap(),
        &relay.read("pki/client-ca.crt"),
        Duration::ZERO,
    )
    .unwrap();
    assert!(
        served.next_update > now + chrono::Duration::days(3),
        "the server serves a CRL expiring at {}",
        served.next_update
    );
}

#[tokio::test]
async fn service_certificate_is_refused_at_the_proxy() {
    let relay = TestRelay::up(&[]).await;
    relay.send_ok("control").await;
    for service in ["worker", "proxy"] {
        let client = relay.proxy_client(
            &relay.read(&format!("pki/{service}.crt")),
            &relay.read(&format!("pki/{service}.key")),
        );
        assert_refused(
            &relay,
            &client,
            &format!("the {service} service certificate"),
        )
        .await;
    }
}

#[tokio::test]
async fn client_certificate_is_refused_at_the_internal_api() {
    let relay = TestRelay::up(&[]).await;
    let service = relay.internal_client(&relay.read("pki/proxy.crt"), &relay.read("pki/proxy.key"));
    let resp = service
        .get(relay.internal_url("/internal/clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "control: the proxy's service certificate works"
    );

    let client = relay.internal_client(
        &relay.read("clients/demo/client.crt"),
        &relay.read("clients/demo/client.key"),
    );
    for path in [
        "/internal/clients",
        "/internal/sealing-key",
        "/internal/crl",
    ] {
        match client.get(relay.internal_url(path)).send().await {
            Err(_) => {}
            Ok(r) => assert!(
                !r.status().is_success(),
                "a client certificate reached {path}: {}",
                r.status()
            ),
        }
    }
    let deliver = client
        .post(relay.internal_url("/internal/messages/deliver"))
        .json(&serde_json::json!({"messages": []}))
        .send()
        .await;
    assert!(
        deliver.map_or(true, |r| !r.status().is_success()),
        "a client certificate reached /internal/messages/deliver"
    );
}
