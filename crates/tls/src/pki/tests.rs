use super::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let c = std::fs::read(&p).unwrap();
            (p, c)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn init_is_idempotent_and_keys_are_private() {
    let t = tmp();
    let pki = Pki::new(t.path().join("pki"));
    let first = pki
        .init(&["localhost".into(), "relay.example.com".into()])
        .unwrap();
    for f in [
        "client-ca.crt",
        "client-ca.key",
        "internal-ca.crt",
        "internal-ca.key",
        "proxy-localhost.crt",
        "proxy-localhost.key",
        "proxy-relay.example.com.crt",
        "proxy.crt",
        "proxy.key",
        "worker.crt",
        "worker.key",
        "server.crt",
        "server.key",
        "portal.crt",
        "portal.key",
        "client-ca.crl",
        "crl-number",
    ] {
        assert!(pki.path(f).exists(), "{f} missing");
    }
    assert_eq!(first.created.len(), 18, "{:?}", first.created);

    let before = snapshot(pki.dir());
    let second = pki
        .init(&["localhost".into(), "relay.example.com".into()])
        .unwrap();
    assert!(second.created.is_empty(), "{:?}", second.created);
    assert_eq!(before, snapshot(pki.dir()));

    #[cfg(unix)]
    for (p, _) in &before {
        use std::os::unix::fs::PermissionsExt;
        if p.extension().is_some_and(|e| e == "key") {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
    // No temp file left behind.
    assert!(before
        .iter()
        .all(|(p, _)| !p.file_name().unwrap().to_string_lossy().starts_with('.')));
}

#[test]
fn init_adds_a_new_domain_and_reissues_a_lost_certificate() {
    let t = tmp();
    let pki = Pki::new(t.path());
    pki.init(&["a.test".into()]).unwrap();
    let worker_key = std::fs::read(pki.path("worker.key")).unwrap();
    std::fs::remove_file(pki.path("worker.crt")).unwrap();
    let r = pki.init(&["a.test".into(), "b.test".into()]).unwrap();
    let mut names: Vec<_> = r
        .created
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["proxy-b.test.crt", "proxy-b.test.key", "worker.crt"]
    );
    assert_eq!(
        worker_key,
        std::fs::read(pki.path("worker.key")).unwrap(),
        "existing key must be kept"
    );
}

#[test]
fn ca_certificate_without_key_is_an_error() {
    let t = tmp();
    let pki = Pki::new(t.path());
    pki.init(&[]).unwrap();
    std::fs::remove_file(pki.path("client-ca.key")).unwrap();
    let err = pki.init(&[]).unwrap_err();
    assert!(matches!(err, PkiError::MissingKey { .. }), "{err}");
    assert!(err.to_string().contains("client-ca.key"), "{err}");
}

#[test]
fn bad_domain_is_rejected() {
    let t = tmp();
    let pki = Pki::new(t.path());
    assert!(matches!(
        pki.init(&["../evil".into()]),
        Err(PkiError::Invalid { .. })
    ));
}

#[test]
fn client_certificate_fields() {
    let t = tmp();
    let pki = Pki::new(t.path());
    pki.init(&[]).unwrap();
    let issued = pki.issue_client("demo", "localhost", 825).unwrap();
    let der = load_certs_pem(issued.cert_pem.as_bytes())
        .unwrap()
        .remove(0);
    assert_eq!(issued.fingerprint, fingerprint(&der));
    assert_eq!(issued.fingerprint.len(), 64);
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(hex::encode(x.raw_serial()), issued.serial_hex);
    assert_eq!(issued.serial_hex.len(), 32);
    assert_eq!(
        x.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "demo"
    );
    assert_eq!(
        x.subject()
            .iter_organizational_unit()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "localhost"
    );
    let eku = x.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let days = (issued.not_after - chrono::Utc::now()).num_days();
    assert!((824..=825).contains(&days), "{days}");
    assert!(format!("{issued:?}").contains("***") && !format!("{issued:?}").contains("PRIVATE"));

    let other = pki.issue_client("demo", "localhost", 1).unwrap();
    assert_ne!(other.serial_hex, issued.serial_hex);
}

#[test]
fn bundle_never_overwrites_a_key() {
    let t = tmp();
    let pki = Pki::new(t.path().join("pki"));
    pki.init(&[]).unwrap();
    let issued = pki.issue_client("demo", "localhost", 30).unwrap();
    let out = t.path().join("clients/demo");
    pki.write_client_bundle(&issued, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("ca.crt")).unwrap(),
        std::fs::read(pki.path("internal-ca.crt")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("client.key")).unwrap(),
        issued.key_pem
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("client.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = pki.issue_client("demo", "localhost", 30).unwrap();
    assert!(matches!(
        pki.write_client_bundle(&again, &out),
        Err(PkiError::AlreadyExists { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(out.join("client.key")).unwrap(),
        issued.key_pem
    );
}

#[test]
fn crl_lists_revoked_serials_and_numbers_increase() {
    let t = tmp();
    let pki = Pki::new(t.path());
    pki.init(&[]).unwrap();
    let issued = pki.issue_client("demo", "localhost", 30).unwrap();
    let revoked = RevokedCert {
        serial_hex: issued.serial_hex.clone(),
        revoked_at: chrono::Utc::now(),
        reason: Some("keyCompromise".into()),
    };
    let pem = pki
        .write_crl(&[revoked], Duration::from_secs(3600))
        .unwrap();
    assert_eq!(std::fs::read_to_string(pki.path(CRL_FILE)).unwrap(), pem);
    assert_eq!(
        std::fs::read_to_string(pki.path(CRL_NUMBER_FILE))
            .unwrap()
            .trim(),
        "2"
    );
    let ca = std::fs::read(pki.path("client-ca.crt")).unwrap();
    let loaded = load_crl(pem.as_bytes(), &ca, Duration::ZERO).unwrap();
    assert_eq!(loaded.revoked_serials, vec![issued.serial_hex]);
    let bad = RevokedCert {
        serial_hex: "01".into(),
        revoked_at: chrono::Utc::now(),
        reason: Some("because".into()),
    };
    assert!(matches!(
        pki.write_crl(&[bad], Duration::from_secs(60)),
        Err(PkiError::Invalid { .. })
    ));
}

#[test]
fn load_crl_rejects_expired_and_foreign() {
    let t = tmp();
    let pki = Pki::new(t.path().join("a"));
    pki.init(&[]).unwrap();
    let other = Pki::new(t.path().join("b"));
    other.init(&[]).unwrap();
    let ca = std::fs::read(pki.path("client-ca.crt")).unwrap();

    let now = chrono::Utc::now();
    let pem = pki
        .write_crl_with_times(
            &[],
            now - chrono::Duration::hours(2),
            now - chrono::Duration::minutes(1),
        )
        .unwrap();
    match load_crl(pem.as_bytes(), &ca, Duration::ZERO) {
        Err(PkiError::Expired { .. }) => {}
        other => panic!("expected Expired, got {other:?}"),
    }
    // ... and a grace period keeps it usable.
    load_crl(pem.as_bytes(), &ca, Duration::from_secs(600)).unwrap();

    let foreign = other.write_crl(&[], Duration::from_secs(600)).unwrap();
    match load_crl(foreign.as_bytes(), &ca, Duration::ZERO) {
        Err(PkiError::WrongSigner { .. }) => {}
        other => panic!("expected WrongSigner, got {other:?}"),
    }
    // Signed by the internal CA: also not the client CA's CRL.
    let internal_ca = std::fs::read(pki.path("internal-ca.crt")).unwrap();
    let good = pki.write_crl(&[], Duration::from_secs(600)).unwrap();
    assert!(matches!(
        load_crl(good.as_bytes(), &internal_ca, Duration::ZERO),
        Err(PkiError::WrongSigner { .. })
    ));
    assert!(matches!(
        load_crl(b"garbage", &ca, Duration::ZERO),
        Err(PkiError::Malformed { .. })
    ));
}

#[test]
fn main_server_certificate_is_reissued_for_more_names_with_the_same_key() {
    let t = tmp();
    let pki = Pki::new(t.path());
    pki.init(&[]).unwrap();
    let key_before = std::fs::read(pki.path("server.key")).unwrap();
    let names = ["main-2.internal".to_owned(), "10.0.0.21".to_owned()];
    let written = pki.issue_main_server(&names).unwrap();
    assert_eq!(written, pki.path("server.crt"));
    assert_eq!(std::fs::read(pki.path("server.key")).unwrap(), key_before);
    let pem = std::fs::read(&written).unwrap();
    let der = load_certs_pem(&pem).unwrap().remove(0);
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    let names = &x
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    let dns: Vec<&str> = names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    let ips: Vec<&[u8]> = names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::IPAddress(b) => Some(*b),
            _ => None,
        })
        .collect();
    assert!(
        dns.contains(&"localhost") && dns.contains(&"main-2.internal"),
        "{dns:?}"
    );
    assert!(
        ips.contains(&&[10u8, 0, 0, 21][..]) && ips.contains(&&[127u8, 0, 0, 1][..]),
        "{ips:?}"
    );
    assert!(pki.issue_main_server(&["bad name".into()]).is_err());
}
