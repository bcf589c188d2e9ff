use crate::harness::{cid, user, Ctx};
use msgrelay_core::{now_ms, Role};
use msgrelay_store::{NewCertificate, StoreError};

const DAY: i64 = 86_400_000;

fn cert(serial: &str, fp_byte: u8, client: &str, not_after_ms: i64) -> NewCertificate {
    NewCertificate {
        serial_hex: serial.into(),
        fingerprint: format!("{fp_byte:02x}").repeat(32),
        client_id: cid(client),
        not_after_ms,
    }
}

pub async fn clients_and_ownership(ctx: Ctx) {
    let s = &ctx.store;
    let alice = user(s, "alice", Role::User).await;
    let bob = user(s, "bob", Role::User).await;

    let c = s
        .create_client(&cid("shop-1"), "alice", "Relay.Example.com")
        .await
        .unwrap();
    assert_eq!(
        (
            c.owner_user_id,
            c.owner_username.as_str(),
            c.domain.as_str(),
            c.active
        ),
        (alice.id, "alice", "relay.example.com", true)
    );
    assert_eq!(c.cert_fingerprint, None);
    s.create_client(&cid("bank"), "bob", "relay.example.com")
        .await
        .unwrap();
    assert!(matches!(
        s.create_client(&cid("shop-1"), "bob", "x.example").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_client(&cid("ghost"), "nobody", "x.example").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_client(&cid("bad"), "alice", "not a domain").await,
        Err(StoreError::Invalid {
            field: "domain",
            ..
        })
    ));

    let ids = |v: Vec<msgrelay_store::Client>| {
        v.into_iter()
            .map(|c| c.client_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(s.list_clients(None).await.unwrap()), ["bank", "shop-1"]);
    assert_eq!(
        ids(s.list_clients(Some(alice.id)).await.unwrap()),
        ["shop-1"]
    );
    assert_eq!(ids(s.list_clients(Some(bob.id)).await.unwrap()), ["bank"]);

    s.set_client_status(&cid("bank"), false).await.unwrap();
    assert!(!s.get_client(&cid("bank")).await.unwrap().unwrap().active);
    assert!(matches!(
        s.set_client_status(&cid("ghost"), true).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.get_client(&cid("ghost")).await.unwrap().is_none());
}

pub async fn certificates_and_registry(ctx: Ctx) {
    let s = &ctx.store;
    user(s, "alice", Role::User).await;
    s.create_client(&cid("shop"), "alice", "relay.example.com")
        .await
        .unwrap();
    s.create_client(&cid("old"), "alice", "relay.example.com")
        .await
        .unwrap();
    let now = now_ms();

    s.add_certificate(&cert("0A:01", 0xa1, "shop", now + DAY))
        .await
        .unwrap(); // will be revoked
    s.add_certificate(&cert("0a02", 0xa2, "shop", now - DAY))
        .await
        .unwrap(); // expired
    let mut renewed = cert("0a03", 0xa3, "shop", now + 30 * DAY);
    renewed.fingerprint = renewed.fingerprint.to_uppercase(); // normalised on the way in
    s.add_certificate(&renewed).await.unwrap();
    s.add_certificate(&cert("0b01", 0xb1, "old", now + DAY))
        .await
        .unwrap();
    assert_eq!(
        s.get_client(&cid("shop"))
            .await
            .unwrap()
            .unwrap()
            .cert_fingerprint,
        Some("a3".repeat(32))
    );

    assert!(matches!(
        s.add_certificate(&cert("0a01", 0xff, "shop", now)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.add_certificate(&cert("ffff", 0xa2, "shop", now)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.add_certificate(&cert("0c01", 0xc1, "ghost", now)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_certificate(&cert("zz", 0xc1, "shop", now)).await,
        Err(StoreError::Invalid { .. })
    ));

    let revoked = s
        .revoke_certificate("0a01", Some("key compromise"))
        .await
        .unwrap();
    assert_eq!(
        (
            revoked.serial_hex.as_str(),
            revoked.revoke_reason.as_deref()
        ),
        ("0a01", Some("key compromise"))
    );
    let again = s.revoke_certificate("0A:01", Some("other")).await.unwrap();
    assert_eq!(
        (again.revoked_at_ms, again.revoke_reason.as_deref()),
        (revoked.revoked_at_ms, Some("key compromise"))
    );
    assert!(matches!(
        s.revoke_certificate("dead", None).await,
        Err(StoreError::NotFound(_))
    ));
    s.set_client_status(&cid("old"), false).await.unwrap();

    let crl: Vec<_> = s
        .revoked_certificates()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial_hex)
        .collect();
    assert_eq!(crl, ["0a01"]);
    assert_eq!(
        s.list_certificates(Some(&cid("shop"))).await.unwrap().len(),
        3
    );
    assert_eq!(s.list_certificates(None).await.unwrap().len(), 4);

    let mut reg: Vec<_> = s
        .registry()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.fingerprint[..2].to_owned(),
                r.client_id.to_string(),
                r.status.to_string(),
            )
        })
        .collect();
    reg.sort();
    let want = [
        ("a1", "shop", "revoked"),
        ("a2", "shop", "expired"),
        ("a3", "shop", "active"),
        ("b1", "old", "disabled"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(reg, want);
}
