//! Who may use the internal API: only internal-CA service certificates that are not revoked. A
//! revoked proxy or worker certificate is refused without a restart of the main server, on new
//! connections and on connections it opened before the revocation.

use reqwest::StatusCode;

use crate::support::{run, wait_for, TestRelay, DEADLINE};

async fn status(client: &reqwest::Client, url: &str) -> Option<StatusCode> {
    client.get(url).send().await.ok().map(|r| r.status())
}

#[tokio::test]
async fn revoked_service_certificate_is_refused_at_the_internal_api() {
    let relay = TestRelay::up(&[("MSGRELAY_PROXY__REVOCATION_REFRESH_SECS", "1")]).await;
    let url = relay.internal_url("/internal/crl");
    let (old_crt, old_key) = (relay.read("pki/worker.crt"), relay.read("pki/worker.key"));
    // Opened before the revocation, and kept open by its pool.
    let pooled = relay.internal_client(&old_crt, &old_key);
    assert_eq!(
        status(&pooled, &url).await,
        Some(StatusCode::OK),
        "control: the worker certificate works"
    );

    let out = run(relay.cli(&[
        "certs",
        "revoke-service",
        "--service",
        "worker",
        "--reason",
        "keyCompromise",
    ]))
    .await;
    assert!(
        out.status.success(),
        "certs revoke-service: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let relay_ref = &relay;
    let (url_ref, crt, key) = (&url, &old_crt, &old_key);
    wait_for(
        "the revoked worker certificate to be refused on a new connection",
        DEADLINE,
        || async move {
            let fresh = relay_ref.internal_client(crt, key);
            (!status(&fresh, url_ref)
                .await
                .is_some_and(|s| s.is_success()))
            .then_some(())
        },
    )
    .await;
    let answer = status(&pooled, &url).await;
    assert!(
        !answer.is_some_and(|s| s.is_success()),
        "a connection opened before the revocation still works: {answer:?}"
    );

    // The certificate issued in its place works; so does the proxy's, which was not revoked.
    let renewed =
        relay.internal_client(&relay.read("pki/worker.crt"), &relay.read("pki/worker.key"));
    assert_eq!(
        status(&renewed, &url).await,
        Some(StatusCode::OK),
        "the new worker certificate"
    );
    let proxy = relay.internal_client(&relay.read("pki/proxy.crt"), &relay.read("pki/proxy.key"));
    assert_eq!(
        status(&proxy, &url).await,
        Some(StatusCode::OK),
        "the proxy certificate"
    );
}

#[tokio::test]
async fn expired_service_certificate_is_refused_at_the_internal_api() {
    let relay = TestRelay::up(&[]).await;
    let url = relay.internal_url("/internal/crl");
    let pki = msgrelay_tls::Pki::new(relay.path("pki"));
    let now = chrono::Utc::now();
    let issue = |not_before, not_after| {
        pki.issue_service_with_validity("worker", not_before, not_after)
            .expect("issue a worker certificate")
    };
    // Same CA, same CN, same key usage: only the validity window differs.
    let current = issue(
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(1),
    );
    let expired = issue(
        now - chrono::Duration::days(30),
        now - chrono::Duration::minutes(5),
    );
    let not_yet = issue(
        now + chrono::Duration::days(1),
        now + chrono::Duration::days(30),
    );
    let client = |c: &msgrelay_tls::IssuedCert| {
        relay.internal_client(c.cert_pem.as_bytes(), c.key_pem.as_bytes())
    };
    assert_eq!(
        status(&client(&current), &url).await,
        Some(StatusCode::OK),
        "control: a current certificate made the same way works"
    );
    for (what, cert) in [("an expired", &expired), ("a not yet valid", &not_yet)] {
        let answer = status(&client(cert), &url).await;
        assert_eq!(
            answer, None,
            "{what} service certificate got an answer (the handshake must fail)"
        );
    }
}
