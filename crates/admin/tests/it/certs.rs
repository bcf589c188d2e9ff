use std::time::Duration;

use msgrelay_admin::{CertError, KeyAlgorithm};
use msgrelay_core::{ClientId, ClientStatus, Role};
use msgrelay_tls::load_crl;

use crate::support::{have_openssl, TestDir};

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

async fn setup() -> (TestDir, msgrelay_admin::CertAdmin) {
    let t = TestDir::new();
    t.init(false).await;
    let certs = t.certs().await;
    certs
        .store()
        .create_user("alice", "alice-password-long", Role::User)
        .await
        .unwrap();
    certs
        .store()
        .create_client(&id("acme"), "alice", "localhost")
        .await
        .unwrap();
    (t, certs)
}

fn crl_serials(t: &TestDir) -> Vec<String> {
    let crl = std::fs::read(t.cfg.path("pki/client-ca.crl")).unwrap();
    let ca = std::fs::read(t.cfg.path("pki/client-ca.crt")).unwrap();
    load_crl(&crl, &ca, Duration::ZERO).unwrap().revoked_serials
}

#[tokio::test]
async fn issue_renew_revoke_and_list() {
    let (t, certs) = setup().await;
    let out1 = t.dir.path().join("b1");
    let b1 = certs
        .issue_client(
            &id("acme"),
            "localhost",
            30,
            &out1,
            KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .unwrap();
    let reg = certs.store().registry().await.unwrap();
    assert_eq!(reg.len(), 1);
    assert_eq!(
        (reg[0].fingerprint.as_str(), reg[0].status.as_str()),
        (b1.fingerprint.as_str(), "active")
    );

    // A second bundle into the same directory is refused, the old one is untouched.
    let again = certs.renew(&id("acme"), &out1, 30).await.unwrap_err();
    assert!(
        again.to_string().contains("choose another --out"),
        "{again}"
    );

    let b2 = certs
        .renew(&id("acme"), &t.dir.path().join("b2"), 400)
        .await
        .unwrap();
    let reg = certs.store().registry().await.unwrap();
    assert_eq!(
        reg.iter()
            .filter(|r| r.status == ClientStatus::Active)
            .count(),
        2
    );
    assert_eq!(
        certs
            .store()
            .get_client(&id("acme"))
            .await
            .unwrap()
            .unwrap()
            .cert_fingerprint
            .as_deref(),
        Some(b2.fingerprint.as_str())
    );

    // Only the 30-day certificate expires within 60 days.
    let soon = certs.list(Some(chrono::Duration::days(60))).await.unwrap();
    assert_eq!(
        soon.iter()
            .map(|r| r.serial_hex.as_str())
            .collect::<Vec<_>>(),
        vec![b1.serial_hex.as_str()]
    );
    assert_eq!(certs.list(None).await.unwrap().len(), 2);

    let info = certs
        .revoke_serial(&b1.serial_hex.to_uppercase(), Some("superseded"))
        .await
        .unwrap();
    assert_eq!(info.revoked, 1);
    assert!(info.next_update > chrono::Utc::now() + chrono::Duration::days(6));
    assert_eq!(crl_serials(&t), vec![b1.serial_hex.clone()]);
    let rows = certs.list(None).await.unwrap();
    let status = |s: &str| rows.iter().find(|r| r.serial_hex == s).unwrap().status;
    assert_eq!(
        (status(&b1.serial_hex), status(&b2.serial_hex)),
        (ClientStatus::Revoked, ClientStatus::Active)
    );
    assert!(certs
        .list(Some(chrono::Duration::days(60)))
        .await
        .unwrap()
        .is_empty());

    // Revoking a whole client lists both; a second revocation is idempotent.
    let info = certs
        .revoke_client(&id("acme"), Some("keyCompromise"))
        .await
        .unwrap();
    assert_eq!(info.revoked, 2);
    let mut serials = crl_serials(&t);
    serials.sort();
    let mut expected = vec![b1.serial_hex.clone(), b2.serial_hex.clone()];
    expected.sort();
    assert_eq!(serials, expected);
    assert!(certs
        .store()
        .registry()
        .await
        .unwrap()
        .iter()
        .all(|r| r.status == ClientStatus::Revoked));
    assert_eq!(
        certs
            .revoke_serial(&b1.serial_hex, None)
            .await
            .unwrap()
            .revoked,
        2
    );
}

#[tokio::test]
async fn errors_say_what_to_do() {
    let (t, certs) = setup().await;
    let out = t.dir.path().join("x");
    let e = certs
        .issue_client(
            &id("nobody"),
            "localhost",
            30,
            &out,
            KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, CertError::NotFound(_))
            && e.to_string().contains("msgrelay admin client create"),
        "{e}"
    );
    let e = certs
        .issue_client(
            &id("acme"),
            "other.example",
            30,
            &out,
            KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--domain localhost"), "{e}");
    let e = certs.revoke_serial("abcdef", None).await.unwrap_err();
    assert!(e.to_string().contains("certs list"), "{e}");
    let e = certs.revoke_serial("zz", None).await.unwrap_err();
    assert!(e.to_string().contains("not hexadecimal"), "{e}");
    assert!(!out.join("client.key").exists());
}

#[tokio::test]
async fn crl_refresh_only_when_due_or_out_of_step() {
    let (t, certs) = setup().await;
    // init wrote a fresh, empty CRL that matches the empty store.
    assert!(certs.refresh_crl_if_due().await.unwrap().is_none());
    // A revocation recorded by another front end (straight in the store) is picked up.
    let b = certs
        .issue_client(
            &id("acme"),
            "localhost",
            30,
            &t.dir.path().join("b"),
            KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .unwrap();
    certs
        .store()
        .revoke_certificate(&b.serial_hex, Some("lost laptop"))
        .await
        .unwrap();
    let info = certs
        .refresh_crl_if_due()
        .await
        .unwrap()
        .expect("out of step");
    assert_eq!(info.revoked, 1);
    assert!(certs.refresh_crl_if_due().await.unwrap().is_none());
    // A CRL with less than half its validity left is re-signed.
    let now = chrono::Utc::now();
    certs
        .pki()
        .write_crl_with_times(
            &[],
            now - chrono::Duration::days(5),
            now + chrono::Duration::days(2),
        )
        .unwrap();
    assert_eq!(
        certs
            .refresh_crl_if_due()
            .await
            .unwrap()
            .expect("due")
            .revoked,
        1
    );
    // Missing CRL: re-signed too.
    std::fs::remove_file(t.cfg.path("pki/client-ca.crl")).unwrap();
    assert!(certs.refresh_crl_if_due().await.unwrap().is_some());
    assert_eq!(crl_serials(&t), vec![b.serial_hex]);
}

#[tokio::test]
async fn p12_opens_with_openssl_and_given_password() {
    let (t, certs) = setup().await;
    let out = t.dir.path().join("p");
    let b = certs
        .issue_client(
            &id("acme"),
            "localhost",
            30,
            &out,
            KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .unwrap();
    let pass = b
        .p12_password_file
        .clone()
        .expect("generated password file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["client.key", "client.p12", "client.p12.pass"] {
            assert_eq!(
                std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777,
                0o600,
                "{f}"
            );
        }
    }
    let given = t.dir.path().join("q");
    let b2 = certs
        .issue_client(
            &id("acme"),
            "localhost",
            30,
            &given,
            KeyAlgorithm::EcdsaP256,
            Some("given-password-123".into()),
        )
        .await
        .unwrap();
    assert!(b2.p12_password_file.is_none() && !given.join("client.p12.pass").exists());
    if !have_openssl() {
        return;
    }
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let p12 = out.join("client.p12");
    let certs_out = run(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("file:{}", pass.display()),
        "-nokeys",
    ]);
    assert!(
        certs_out.contains("CN=acme") || certs_out.contains("CN = acme"),
        "{certs_out}"
    );
    let key_out = run(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("file:{}", pass.display()),
        "-nocerts",
        "-nodes",
    ]);
    assert!(key_out.contains("PRIVATE KEY"));
    let p12b = given.join("client.p12");
    run(&[
        "pkcs12",
        "-in",
        p12b.to_str().unwrap(),
        "-passin",
        "pass:given-password-123",
        "-nokeys",
    ]);
    let fp = run(&[
        "x509",
        "-in",
        out.join("client.crt").to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert_eq!(
        fp.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        b.fingerprint
    );
}

#[tokio::test]
async fn rsa_client_certificates() {
    let (t, certs) = setup().await;
    let out = t.dir.path().join("rsa");
    let b = certs
        .issue_client(
            &id("acme"),
            "localhost",
            30,
            &out,
            KeyAlgorithm::Rsa2048,
            None,
        )
        .await
        .unwrap();
    let pem = std::fs::read(out.join("client.crt")).unwrap();
    let der = msgrelay_tls::load_certs_pem(&pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
    );
    assert_eq!(hex::encode(cert.raw_serial()), b.serial_hex);
    // It chains to the client CA and passes the same checks as an external certificate.
    let ca = std::fs::read(t.cfg.path("pki/client-ca.crt")).unwrap();
    let ca_der = msgrelay_tls::load_certs_pem(&ca).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der[0]).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
    assert_eq!(
        certs.store().registry().await.unwrap()[0].fingerprint,
        b.fingerprint
    );
}

#[tokio::test]
async fn issue_server_reissues_and_keeps_a_backup() {
    let (t, certs) = setup().await;
    let crt = t.cfg.path("pki/proxy-localhost.crt");
    let before = std::fs::read(&crt).unwrap();
    let key_before = std::fs::read(t.cfg.path("pki/proxy-localhost.key")).unwrap();
    let written = certs
        .issue_server(&["localhost".into(), "relay.example.com".into()])
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_ne!(std::fs::read(&crt).unwrap(), before);
    assert_eq!(
        std::fs::read(t.cfg.path("pki/proxy-localhost.key")).unwrap(),
        key_before
    );
    assert!(t.cfg.path("pki/proxy-relay.example.com.crt").is_file());
    let backups = std::fs::read_dir(t.cfg.path("pki"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".bak")
        })
        .count();
    assert_eq!(backups, 1);
}
