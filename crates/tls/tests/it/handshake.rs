//! The handshake matrix, CRL hot swap, SNI selection, service identities and shutdown.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use msgrelay_tls::client::tls_client_builder;
use msgrelay_tls::{
    fingerprint, load_certs_pem, mtls_server_config, service_client, tls_client, tls_server_config,
    Pki, RevokedCert,
};
use rustls_pki_types::ServerName;

use crate::support::*;

#[tokio::test]
async fn good_client_certificate_is_accepted_with_peer_info() {
    let t = TestPki::new();
    let srv = spawn(t.proxy_config(&DOMAINS)).await;
    let issued = t.pki.issue_client("demo", "localhost", 30).unwrap();
    let client = t.client(
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
        srv.addr,
    );

    let (version, body) = whoami_via(&client, "localhost", srv.addr).await.unwrap();
    let expected = fingerprint(&t.der_of(issued.cert_pem.as_bytes()));
    assert_eq!(expected, issued.fingerprint);
    assert_eq!(body, format!("{expected}|demo|localhost"));
    assert_eq!(
        version,
        reqwest::Version::HTTP_2,
        "ALPN should negotiate h2"
    );
}

#[tokio::test]
async fn bad_client_certificates_are_refused() {
    let t = TestPki::new();
    let srv = spawn(t.proxy_config(&DOMAINS)).await;

    // No certificate at all.
    let anon = resolve_all(
        tls_client_builder(&t.read("internal-ca.crt"), TIMEOUT).unwrap(),
        srv.addr,
    )
    .build()
    .unwrap();
    assert!(
        whoami_via(&anon, "localhost", srv.addr).await.is_err(),
        "no client cert must be refused"
    );

    // Issued by a CA the server does not trust.
    let foreign = TestPki::new();
    let f = foreign.pki.issue_client("demo", "localhost", 30).unwrap();
    let c = t.client(f.cert_pem.as_bytes(), f.key_pem.as_bytes(), srv.addr);
    assert!(
        whoami_via(&c, "localhost", srv.addr).await.is_err(),
        "foreign CA must be refused"
    );

    // Expired yesterday.
    let now = Utc::now();
    let e = t
        .pki
        .issue_client_with_validity(
            "demo",
            "localhost",
            now - chrono::Duration::days(10),
            now - chrono::Duration::days(1),
        )
        .unwrap();
    let c = t.client(e.cert_pem.as_bytes(), e.key_pem.as_bytes(), srv.addr);
    assert!(
        whoami_via(&c, "localhost", srv.addr).await.is_err(),
        "expired cert must be refused"
    );

    // A service certificate from the internal CA: valid, but not a client CA certificate.
    let c = t.client(&t.read("proxy.crt"), &t.read("proxy.key"), srv.addr);
    assert!(
        whoami_via(&c, "localhost", srv.addr).await.is_err(),
        "internal CA cert must be refused"
    );

    // The server keeps serving good clients after all those failures.
    let good = t.pki.issue_client("demo", "localhost", 30).unwrap();
    let c = t.client(good.cert_pem.as_bytes(), good.key_pem.as_bytes(), srv.addr);
    whoami_via(&c, "localhost", srv.addr).await.unwrap();
}

#[tokio::test]
async fn revoked_certificate_is_refused_and_crl_swap_needs_no_restart() {
    let t = TestPki::new();
    let srv = spawn(t.proxy_config(&DOMAINS)).await;
    let victim = t.pki.issue_client("victim", "localhost", 30).unwrap();
    let other = t.pki.issue_client("other", "localhost", 30).unwrap();
    let victim_client = || {
        t.client(
            victim.cert_pem.as_bytes(),
            victim.key_pem.as_bytes(),
            srv.addr,
        )
    };
    whoami_via(&victim_client(), "localhost", srv.addr)
        .await
        .expect("accepted before revocation");

    let revoked = RevokedCert {
        serial_hex: victim.serial_hex.clone(),
        revoked_at: Utc::now(),
        reason: Some("keyCompromise".into()),
    };
    t.pki
        .write_crl(&[revoked], Duration::from_secs(3600))
        .unwrap();
    srv.config.store(t.proxy_config(&DOMAINS));

    // A fresh client (no pooled connection, no session to resume) must now fail the handshake.
    assert!(
        whoami_via(&victim_client(), "localhost", srv.addr)
            .await
            .is_err(),
        "revoked cert must be refused"
    );
    // A certificate of the same CA that is not on the CRL still passes: a CRL from that CA is
    // present, so its status is known ("not revoked") rather than unknown.
    let c = t.client(
        other.cert_pem.as_bytes(),
        other.key_pem.as_bytes(),
        srv.addr,
    );
    let (_, body) = whoami_via(&c, "localhost", srv.addr).await.unwrap();
    assert!(body.starts_with(&other.fingerprint));
    assert!(!srv.task.is_finished());
}

#[tokio::test]
async fn sni_selects_the_domain_certificate() {
    let t = TestPki::new();
    let srv = spawn(t.proxy_config(&["a.test", "b.test"])).await;
    let issued = t.pki.issue_client("demo", "b.test", 30).unwrap();

    // Through reqwest: hostname verification passes only if the matching certificate was served.
    let c = t.client(
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
        srv.addr,
    );
    for d in ["a.test", "b.test"] {
        let (_, body) = whoami_via(&c, d, srv.addr).await.unwrap();
        assert!(body.ends_with(&format!("|{d}")), "{body}");
    }

    // Raw rustls: look at the served leaf. Unknown SNI and no SNI (IP address) get the default (first).
    for (name, expected) in [
        ("a.test", "a.test"),
        ("b.test", "b.test"),
        ("unknown.test", "a.test"),
        ("127.0.0.1", "a.test"),
    ] {
        let served = served_leaf(&t, &issued, srv.addr, name).await;
        let want = load_certs_pem(&t.read(&format!("proxy-{expected}.crt")))
            .unwrap()
            .remove(0);
        assert_eq!(served, want.to_vec(), "SNI {name}");
    }
}

/// Handshakes with `server_name` as SNI, accepting any server certificate, and returns the leaf.
async fn served_leaf(
    t: &TestPki,
    issued: &msgrelay_tls::IssuedCert,
    addr: std::net::SocketAddr,
    server_name: &str,
) -> Vec<u8> {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls_pki_types::CertificateDer<'_>,
            _: &[rustls_pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_client_auth_cert(
            load_certs_pem(issued.cert_pem.as_bytes()).unwrap(),
            msgrelay_tls::load_key_pem(issued.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let _ = &t;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn internal_api_accepts_service_identities_only() {
    let t = TestPki::new();
    let (chain, key) = t.pki.load_identity("server").unwrap();
    // Internal API: trusts the internal CA, no CRL.
    let config = mtls_server_config(
        &[("localhost".into(), chain, key)],
        &t.read("internal-ca.crt"),
        vec![],
    )
    .unwrap();
    let srv = spawn(config).await;

    let worker = service_client(&t.pki, "worker", TIMEOUT).unwrap();
    let url = format!("https://localhost:{}/whoami", srv.addr.port());
    let body = worker
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let worker_fp = fingerprint(&load_certs_pem(&t.read("worker.crt")).unwrap()[0]);
    assert_eq!(body, format!("{worker_fp}|msgrelay-worker|localhost"));

    // A client certificate (client CA) is not a service identity.
    let issued = t.pki.issue_client("demo", "localhost", 30).unwrap();
    let c = t.client(
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
        srv.addr,
    );
    assert!(whoami_via(&c, "localhost", srv.addr).await.is_err());
}

#[tokio::test]
async fn portal_tls_without_client_certificate_and_graceful_shutdown() {
    let t = TestPki::new();
    let (chain, key) = t.pki.load_identity("portal").unwrap();
    let srv = spawn(tls_server_config(chain, key).unwrap()).await;
    let client = tls_client(&t.read("internal-ca.crt"), TIMEOUT).unwrap();
    // 127.0.0.1 is a SAN of the portal certificate.
    let url = format!("https://127.0.0.1:{}/whoami", srv.addr.port());
    let body = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body, "||",
        "no client certificate, no SNI for an IP address"
    );

    // An idle pooled connection is open; shutdown must still complete promptly.
    srv.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(12), srv.task)
        .await
        .expect("serve_tls did not stop")
        .unwrap();
    assert!(
        client.get(&url).send().await.is_err(),
        "listener must be closed after shutdown"
    );
}

#[test]
fn service_client_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.init(&[]).unwrap();
    let err = service_client(&pki, "nosuch", TIMEOUT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuch.crt"), "{err}");
}
