use super::*;

fn payload(id: MessageId, client: &str, accepted_at_ms: i64) -> PlainPayload {
    PlainPayload {
        id,
        client_id: ClientId::parse(client).unwrap(),
        sender_number: "+15551234567".into(),
        message_body: "hello".into(),
        accepted_at_ms,
    }
}

fn env<'a>(p: &'a PlainPayload) -> Envelope<'a> {
    Envelope {
        id: &p.id,
        client_id: &p.client_id,
        accepted_at_ms: p.accepted_at_ms,
    }
}

struct Pair {
    server: SealingKeyPair,
    proxy: SealingKeyPair,
    sealer: Sealer,
    opener: Opener,
}

fn pair() -> Pair {
    let server = SealingKeyPair::generate();
    let proxy = SealingKeyPair::generate();
    let sealer = Sealer::new(&proxy, &server.public_key_b64()).unwrap();
    let opener = Opener::new(std::slice::from_ref(&server), &[proxy.public_key_b64()]).unwrap();
    Pair {
        server,
        proxy,
        sealer,
        opener,
    }
}

/// The epoch key exchange part of a v3 header: encapsulated key.
const ENC_AT: std::ops::Range<usize> = 20..52;
/// The sequence number in a v3 header.
const SEQ_AT: std::ops::Range<usize> = 52..60;

#[test]
fn round_trip_within_one_epoch() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 1_700_000_000_000);
    let a = k.sealer.seal(&p).unwrap();
    let b = k.sealer.seal(&p).unwrap();
    assert!(!a.windows(5).any(|w| w == b"hello"));
    assert_eq!(&a[..4], b"MRS3");
    assert_eq!(a[ENC_AT], b[ENC_AT], "one epoch, one key exchange");
    assert_eq!(a[SEQ_AT], 0u64.to_be_bytes());
    assert_eq!(b[SEQ_AT], 1u64.to_be_bytes());
    assert_ne!(a[60..], b[60..], "same plaintext, other nonce");
    assert_eq!(k.opener.open(&env(&p), &a).unwrap(), p);
    assert_eq!(k.opener.open(&env(&p), &b).unwrap(), p);
    assert_eq!(k.opener.cached_epochs(), 1);
    assert_eq!(k.sealer.server_key_id(), k.server.key_id());
    assert_eq!(k.opener.trusted_proxy_key_ids(), vec![k.proxy.key_id()]);
}

#[test]
fn epochs_end_by_count_and_by_age() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 5);
    let by_count = Sealer::new(&k.proxy, &k.server.public_key_b64())
        .unwrap()
        .with_epoch_limits(std::time::Duration::from_secs(3600), 3);
    let sealed: Vec<Vec<u8>> = (0..7).map(|_| by_count.seal(&p).unwrap()).collect();
    let epochs: Vec<&[u8]> = sealed.iter().map(|s| &s[ENC_AT]).collect();
    assert!(epochs[0] == epochs[1] && epochs[1] == epochs[2]);
    assert!(epochs[2] != epochs[3] && epochs[3] == epochs[5] && epochs[5] != epochs[6]);
    assert_eq!(sealed[3][SEQ_AT], 0u64.to_be_bytes(), "numbering restarts");
    for s in &sealed {
        assert_eq!(k.opener.open(&env(&p), s).unwrap(), p);
    }
    assert_eq!(k.opener.cached_epochs(), 3);

    let by_age = Sealer::new(&k.proxy, &k.server.public_key_b64())
        .unwrap()
        .with_epoch_limits(std::time::Duration::from_millis(30), u64::MAX);
    let first = by_age.seal(&p).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(60));
    let second = by_age.seal(&p).unwrap();
    assert_ne!(first[ENC_AT], second[ENC_AT]);
    assert_eq!(
        Sealer::new(&k.proxy, &k.server.public_key_b64())
            .unwrap()
            .seal(&p)
            .unwrap()[ENC_AT]
            .len(),
        32
    );
    assert_eq!(super::EPOCH_MAX_AGE, std::time::Duration::from_secs(1));
}

#[test]
fn concurrent_seals_never_share_a_nonce() {
    let k = pair();
    let sealer = std::sync::Arc::new(k.sealer);
    let p = payload(MessageId::new(), "demo", 5);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (sealer, p) = (sealer.clone(), p.clone());
            std::thread::spawn(move || {
                (0..500)
                    .map(|_| sealer.seal(&p).unwrap()[ENC_AT.start..SEQ_AT.end].to_vec())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Vec<u8>> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an (epoch, sequence) pair was used twice");
}

#[test]
fn only_epoch_keys_that_opened_an_authentic_payload_are_kept() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 5);
    let sealed = k.sealer.seal(&p).unwrap();
    // Tampered before the first open of its epoch: refused, and the epoch is not cached.
    let mut bad = sealed.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        k.opener.open(&env(&p), &bad),
        Err(SealError::Unauthentic)
    ));
    assert_eq!(k.opener.cached_epochs(), 0);
    // A sequence number is authenticated (it is the nonce and in the associated data).
    let mut other_seq = sealed.clone();
    other_seq[SEQ_AT].copy_from_slice(&7u64.to_be_bytes());
    assert!(matches!(
        k.opener.open(&env(&p), &other_seq),
        Err(SealError::Unauthentic)
    ));
    assert_eq!(k.opener.cached_epochs(), 0);
    assert_eq!(k.opener.open(&env(&p), &sealed).unwrap(), p);
    assert_eq!(k.opener.cached_epochs(), 1);
    // With the epoch cached, tampering is still caught.
    assert!(matches!(
        k.opener.open(&env(&p), &bad),
        Err(SealError::Unauthentic)
    ));
    assert!(matches!(
        k.opener.open(&env(&p), &other_seq),
        Err(SealError::Unauthentic)
    ));
    // A rogue proxy that reuses a cached epoch's header under the trusted proxy's id cannot
    // produce a payload that opens: it does not hold the epoch key.
    let rogue = Sealer::new(&SealingKeyPair::generate(), &k.server.public_key_b64()).unwrap();
    let mut forged = rogue.seal(&p).unwrap();
    forged[4..SEQ_AT.end].copy_from_slice(&sealed[4..SEQ_AT.end]);
    assert!(matches!(
        k.opener.open(&env(&p), &forged),
        Err(SealError::Unauthentic)
    ));
    assert_eq!(k.opener.cached_epochs(), 1);
}

#[test]
fn v2_payloads_queued_before_the_upgrade_still_open() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 9);
    let a = k.sealer.seal_v2(&p).unwrap();
    let b = k.sealer.seal_v2(&p).unwrap();
    assert_eq!(&a[..4], b"MRS2");
    assert_ne!(a[ENC_AT], b[ENC_AT], "v2: one key exchange per payload");
    assert_eq!(k.opener.open(&env(&p), &a).unwrap(), p);
    let moved = Envelope {
        accepted_at_ms: 10,
        ..env(&p)
    };
    assert!(matches!(
        k.opener.open(&moved, &a),
        Err(SealError::Unauthentic)
    ));
    let mut bad = b.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        k.opener.open(&env(&p), &bad),
        Err(SealError::Unauthentic)
    ));
    assert_eq!(k.opener.cached_epochs(), 0);
}

#[test]
fn id_client_and_accepted_at_are_bound() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 5);
    let sealed = k.sealer.seal(&p).unwrap();
    let other_client = ClientId::parse("other").unwrap();
    let other_id = MessageId::new();
    let moved = [
        Envelope {
            client_id: &other_client,
            ..env(&p)
        },
        Envelope {
            id: &other_id,
            ..env(&p)
        },
        Envelope {
            accepted_at_ms: 6,
            ..env(&p)
        },
    ];
    for e in moved {
        assert!(
            matches!(k.opener.open(&e, &sealed), Err(SealError::Unauthentic)),
            "{e:?}"
        );
    }
    let mut bad = sealed.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        k.opener.open(&env(&p), &bad),
        Err(SealError::Unauthentic)
    ));
    // The key ids are authenticated too: pointing at another proxy's slot does not help.
    let mut header = sealed.clone();
    header[4] ^= 1;
    assert!(matches!(
        k.opener.open(&env(&p), &header),
        Err(SealError::UnknownKey(_))
    ));
}

#[test]
fn the_proxy_secret_opens_nothing() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 5);
    let sealed = k.sealer.seal(&p).unwrap();
    // Everything the proxy holds, used every way it can be: as the recipient key with the server
    // as sender, and as the v1 box key (what opened the old format).
    let thief = Opener::new(
        std::slice::from_ref(&k.proxy),
        &[k.server.public_key_b64(), k.proxy.public_key_b64()],
    )
    .unwrap();
    assert!(thief.open(&env(&p), &sealed).is_err());
    let mut as_v1 = sealed.clone();
    as_v1[..4].copy_from_slice(b"MRS1");
    as_v1[4..12].copy_from_slice(&k.proxy.kid());
    as_v1[12..20].copy_from_slice(&k.server.kid());
    assert!(thief.open(&env(&p), &as_v1).is_err());
}

#[test]
fn untrusted_proxy_cannot_forge_and_garbage_is_malformed() {
    let k = pair();
    let rogue = SealingKeyPair::generate();
    let p = payload(MessageId::new(), "demo", 5);
    let forged = Sealer::new(&rogue, &k.server.public_key_b64())
        .unwrap()
        .seal(&p)
        .unwrap();
    let err = k.opener.open(&env(&p), &forged).unwrap_err();
    assert!(matches!(err, SealError::UnknownKey(_)) && err.is_retryable());
    // A rogue key that claims the trusted proxy's id fails authentication (Auth mode).
    let mut claimed = forged.clone();
    claimed[12..20].copy_from_slice(&k.proxy.kid());
    let err = k.opener.open(&env(&p), &claimed).unwrap_err();
    assert!(matches!(err, SealError::Unauthentic) && !err.is_retryable());
    // Bytes that only start like a payload (and so name key ids) are malformed too, not a
    // payload for a missing key that would be retried.
    for garbage in [
        &b"plain text in the queue"[..],
        b"MRS2",
        b"MRS3",
        b"",
        b"MRS2 and then nothing much",
        b"MRS3 and then nothing much",
        b"MRS1 and then nothing much",
    ] {
        assert!(matches!(
            k.opener.open(&env(&p), garbage),
            Err(SealError::Malformed(_))
        ));
    }
}

#[test]
fn v1_payloads_queued_before_the_upgrade_still_open() {
    let k = pair();
    let p = payload(MessageId::new(), "demo", 7);
    let v1 = crate::legacy::seal_v1(&k.proxy, &k.server.public_key_b64(), &p).unwrap();
    assert_eq!(&v1[..4], b"MRS1");
    // v1 carries accepted_at only inside: the opened value wins over the envelope's.
    let opened = k
        .opener
        .open(
            &Envelope {
                accepted_at_ms: 999,
                ..env(&p)
            },
            &v1,
        )
        .unwrap();
    assert_eq!(opened, p);
    let other = ClientId::parse("other").unwrap();
    assert!(matches!(
        k.opener.open(
            &Envelope {
                client_id: &other,
                ..env(&p)
            },
            &v1
        ),
        Err(SealError::Mismatch("client_id"))
    ));
}

#[test]
fn v1_fixture_from_the_old_code_opens() {
    // Produced by the pre-v2 proxy (crypto_box, commit ed007ce) and checked in, so that the
    // upgrade path is tested against bytes the old code wrote, not only against `seal_v1`.
    let f: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/v1-payload.json")).unwrap();
    let server = SealingKeyPair {
        secret: crypto_box::SecretKey::from(b64_32(&f["server_secret"])),
    };
    let opener = Opener::new(&[server], &[f["proxy_public"].as_str().unwrap().to_owned()]).unwrap();
    let id: MessageId = serde_json::from_value(f["id"].clone()).unwrap();
    let client = ClientId::parse(f["client_id"].as_str().unwrap()).unwrap();
    let sealed = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        f["sealed"].as_str().unwrap(),
    )
    .unwrap();
    let opened = opener
        .open(
            &Envelope {
                id: &id,
                client_id: &client,
                accepted_at_ms: 0,
            },
            &sealed,
        )
        .unwrap();
    assert_eq!(opened.message_body, f["message_body"].as_str().unwrap());
    assert_eq!(opened.accepted_at_ms, f["accepted_at_ms"].as_i64().unwrap());
}

fn b64_32(v: &serde_json::Value) -> [u8; 32] {
    base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v.as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap()
}
