use msgrelay_admin::{read_bootstrap_password, CREDENTIALS_FILE};
use msgrelay_core::ClientStatus;

use crate::support::TestDir;

#[tokio::test]
async fn init_is_idempotent_and_records_passwords_owner_only() {
    let t = TestDir::new();
    let first = t.init(true).await;
    assert!(first.admin_created);
    assert_eq!(
        first.demo_bundle.as_deref(),
        Some(t.cfg.path("clients/demo").as_path())
    );
    for f in [
        "pki/client-ca.crt",
        "pki/internal-ca.crt",
        "pki/proxy-localhost.crt",
        "pki/client-ca.crl",
        "keys/sealing.key",
        "keys/sealing.pub",
        "keys/proxy-sealing.key",
        "keys/at-rest.json",
        "clients/demo/client.crt",
        "clients/demo/client.key",
        "clients/demo/ca.crt",
        "clients/demo/client.p12",
        "clients/demo/client.p12.pass",
    ] {
        assert!(t.cfg.path(f).is_file(), "{f} missing");
    }
    let sealing = std::fs::read(t.cfg.path("keys/sealing.key")).unwrap();

    let second = t.init(true).await;
    assert!(
        second.created.is_empty(),
        "second init created {:?}",
        second.created
    );
    assert!(!second.admin_created);
    assert!(second.demo_bundle.is_none());
    assert_eq!(
        std::fs::read(t.cfg.path("keys/sealing.key")).unwrap(),
        sealing
    );

    let creds = t.cfg.path(CREDENTIALS_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let admin_pw = read_bootstrap_password(&creds, "admin").expect("admin password recorded");
    let demo_pw = read_bootstrap_password(&creds, "demo").expect("demo password recorded");
    assert_eq!(admin_pw.len(), 20);
    assert_eq!(
        std::fs::read_to_string(&creds)
            .unwrap()
            .matches("password=")
            .count(),
        2
    );

    let store = t.store().await;
    assert_eq!(
        store.verify_login("admin", &admin_pw).await.unwrap().role,
        msgrelay_core::Role::Admin
    );
    store.verify_login("demo", &demo_pw).await.unwrap();
    let registry = store.registry().await.unwrap();
    assert_eq!(registry.len(), 1);
    assert_eq!(registry[0].client_id.as_str(), "demo");
    assert_eq!(registry[0].status, ClientStatus::Active);
    let crt = std::fs::read(t.cfg.path("clients/demo/client.crt")).unwrap();
    let der = msgrelay_tls::load_certs_pem(&crt).unwrap();
    assert_eq!(registry[0].fingerprint, msgrelay_tls::fingerprint(&der[0]));
    // The bundle's ca.crt is the CA of the proxy's server certificate.
    assert_eq!(
        std::fs::read(t.cfg.path("clients/demo/ca.crt")).unwrap(),
        std::fs::read(t.cfg.path("pki/internal-ca.crt")).unwrap()
    );
}

#[tokio::test]
async fn init_without_demo_then_with_extra_domain() {
    let t = TestDir::new();
    let r = t.init(false).await;
    assert!(r.demo_bundle.is_none());
    assert!(!t.cfg.path("clients/demo").exists());
    let r = msgrelay_admin::init(
        &t.cfg,
        &msgrelay_admin::InitOptions {
            domains: vec!["relay.example.com".into()],
            demo: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r.created,
        vec![
            t.cfg
                .path("pki/proxy-relay.example.com.key")
                .display()
                .to_string(),
            t.cfg
                .path("pki/proxy-relay.example.com.crt")
                .display()
                .to_string()
        ]
    );
}
