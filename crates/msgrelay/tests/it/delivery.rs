//! From the queue to the store: status never goes backwards, forged queue entries are never
//! stored, and neither a main-server outage nor a crashed worker loses or duplicates a message.

use std::time::{Duration, Instant};

use msgrelay_core::{now_ms, ClientId, MessageId};
use msgrelay_queue::{EnqueueOutcome, NewMessage};
use msgrelay_sealing::{PlainPayload, Sealer, SealingKeyPair};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{free_port, metric, metrics, wait_for, TestRelay, DEADLINE, SENDER};

#[tokio::test]
async fn a_register_after_the_delivery_leaves_the_message_delivered() {
    let relay = TestRelay::up(&[]).await;
    let id = relay.send_ok("delivered before its registration").await;
    let before = relay.wait_delivered(&id, Duration::from_secs(10)).await;

    // The proxy's late (e.g. retried) registration, made with the proxy's own service identity.
    let proxy = relay.internal_client(&relay.read("pki/proxy.crt"), &relay.read("pki/proxy.key"));
    let register = |id: &str| json!({"messages": [{"id": id, "client_id": "demo", "accepted_at_ms": now_ms()}]});
    let ops = relay.up.as_ref().unwrap().addr("ops");
    let skipped =
        || async move { metric(&metrics(ops).await, "msgrelay_registrations_skipped_total") };
    let skipped_before = skipped().await;
    let resp = proxy
        .post(relay.internal_url("/internal/messages/register"))
        .json(&register(&id))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "register answered {}",
        resp.status()
    );
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["registered"],
        0
    );
    // The server had just stored it: answered from memory, without the database (the proxy's
    // own registration of the message may be skipped meanwhile too).
    assert!(
        skipped().await >= skipped_before + 1.0,
        "the registration of a message just stored went to the database"
    );

    let admin = relay.portal_login("admin").await;
    let (status, after) = relay.get_message(&admin, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        after["status"], "delivered",
        "a late register turned the message back: {after}"
    );
    assert_eq!(after["delivered_at"], before["delivered_at"]);
    assert_eq!(after["message_body"], "delivered before its registration");

    // Control: the same call does register a message the server has not seen.
    let unseen = uuid::Uuid::now_v7().to_string();
    let resp = proxy
        .post(relay.internal_url("/internal/messages/register"))
        .json(&register(&unseen))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (status, json) = relay.get_message(&admin, &unseen).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("queued")),
        "{json}"
    );
}

/// An upgrade with messages still queued: payloads sealed by the previous release (format v2, one
/// HPKE seal each) are delivered by the new main server next to the current format (v3, epochs).
#[tokio::test]
async fn payloads_sealed_by_the_previous_release_are_delivered_after_an_upgrade() {
    let mut relay = TestRelay::init().await;
    relay.start_server(&[]).await;
    let demo = ClientId::parse("demo").unwrap();
    let server_public = String::from_utf8(relay.read("keys/sealing.pub")).unwrap();
    let sealer = Sealer::new(
        &SealingKeyPair::load(&relay.path("keys/proxy-sealing.key")).unwrap(),
        server_public.trim(),
    )
    .unwrap();
    let queue = relay.queue().await;
    let mut ids = Vec::new();
    for (i, v2) in [true, false, true].into_iter().enumerate() {
        let p = PlainPayload {
            id: MessageId::new(),
            client_id: demo.clone(),
            sender_number: SENDER.into(),
            message_body: format!("queued before the upgrade {i}"),
            accepted_at_ms: now_ms(),
        };
        let payload = if v2 {
            sealer.seal_v2(&p).unwrap()
        } else {
            sealer.seal(&p).unwrap()
        };
        assert_eq!(&payload[..4], if v2 { b"MRS2" } else { b"MRS3" });
        let msg = NewMessage {
            id: p.id,
            client_id: demo.clone(),
            payload,
            accepted_at_ms: p.accepted_at_ms,
        };
        assert_eq!(
            queue.enqueue(msg, None).await.unwrap(),
            EnqueueOutcome::Enqueued
        );
        ids.push(p.id.to_string());
    }
    relay.start_worker(&[]).await;
    let rows = relay.wait_all_delivered(&ids, DEADLINE).await;
    let mut bodies: Vec<&str> = rows
        .iter()
        .map(|r| r["message_body"].as_str().unwrap_or_default())
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [0, 1, 2].map(|i| format!("queued before the upgrade {i}")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn forged_queue_entries_are_dead_lettered_and_never_stored() {
    let mut relay = TestRelay::init().await;
    relay.start_server(&[]).await;

    let demo = ClientId::parse("demo").unwrap();
    let other = ClientId::parse("other").unwrap();
    let server_public = String::from_utf8(relay.read("keys/sealing.pub")).unwrap();
    let real = Sealer::new(
        &SealingKeyPair::load(&relay.path("keys/proxy-sealing.key")).unwrap(),
        server_public.trim(),
    )
    .unwrap();
    let rogue = Sealer::new(&SealingKeyPair::generate(), server_public.trim()).unwrap();
    let payload = |id: MessageId, client_id: &ClientId| PlainPayload {
        id,
        client_id: client_id.clone(),
        sender_number: SENDER.into(),
        message_body: "forged".into(),
        accepted_at_ms: now_ms(),
    };
    let (id1, id2, id3, id4) = (
        MessageId::new(),
        MessageId::new(),
        MessageId::new(),
        MessageId::new(),
    );
    let forged = [
        // Not sealed at all.
        (id1, demo.clone(), b"plain text".to_vec()),
        // Sealed to the right server key by a key the server does not trust: retried (a key may
        // be missing from the server), never stored.
        (id2, demo.clone(), rogue.seal(&payload(id2, &demo)).unwrap()),
        // A genuine seal for demo, re-labelled as another client's.
        (id3, other.clone(), real.seal(&payload(id3, &demo)).unwrap()),
        // A genuine seal replayed under another message id.
        (
            id4,
            demo.clone(),
            real.seal(&payload(MessageId::new(), &demo)).unwrap(),
        ),
    ];
    let queue = relay.queue().await;
    for (id, client_id, payload) in &forged {
        let msg = NewMessage {
            id: *id,
            client_id: client_id.clone(),
            payload: payload.clone(),
            accepted_at_ms: now_ms(),
        };
        assert_eq!(
            queue.enqueue(msg, None).await.unwrap(),
            EnqueueOutcome::Enqueued
        );
    }

    let server_ops = relay.server.as_ref().unwrap().addr("ops");
    let ops = relay.start_worker(&[]).await.addr("ops");
    let n = forged.len() as f64 - 1.0;
    wait_for(
        "the worker to dead-letter the forged entries",
        DEADLINE,
        || async move {
            (metric(&metrics(ops).await, "msgrelay_messages_dead_lettered_total") >= n)
                .then_some(())
        },
    )
    .await;
    wait_for(
        "the untrusted key to be reported",
        DEADLINE,
        || async move {
            metrics(server_ops)
                .await
                .contains("msgrelay_payloads_refused_total{reason=\"unknown_key\"}")
                .then_some(())
        },
    )
    .await;
    // The counter moves when the worker decides; the queue's writer commits the dead letter a
    // moment later (group commit), so poll the queue rather than read it once.
    let relay_ref = &relay;
    wait_for(
        "the forged entries to be kept in the queue as failed, for the operator",
        DEADLINE,
        || async move { (relay_ref.queue_stats().await.failed == n as u64).then_some(()) },
    )
    .await;

    // Control: a genuine message goes through the same worker and server.
    relay.start_proxy(&[]).await;
    let genuine = relay.send_ok("genuine").await;
    relay
        .wait_delivered(&genuine, Duration::from_secs(10))
        .await;

    // The main server mirrors the queue's dead letters into `messages` every 5 s: watch for longer.
    let admin = relay.portal_login("admin").await;
    let watch_until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < watch_until {
        for (id, _, _) in &forged {
            let (status, json) = relay.get_message(&admin, &id.to_string()).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "forged message {id} was stored: {json}"
            );
        }
        assert_eq!(
            relay.list_messages(&admin, "").await["total"],
            1,
            "only the genuine message is stored"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn messages_accepted_while_the_main_server_is_down_are_delivered_once_it_is_back() {
    let mut relay = TestRelay::init().await;
    relay
        .env
        .push(("MSGRELAY_WORKER__RETRY_INTERVAL_SECS".into(), "1".into()));
    let listen = format!("127.0.0.1:{}", free_port());
    relay
        .start_server(&[("MSGRELAY_SERVER__LISTEN", &listen)])
        .await;
    relay.start_proxy(&[]).await;
    relay.start_worker(&[]).await;

    relay.server.as_mut().unwrap().stop().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            relay
                .send_ok(&format!("sent while the main server is down {i}"))
                .await,
        );
    }
    // Every message has had a whole failed attempt once the second one is leased.
    let relay_ref = &relay;
    wait_for(
        "every message to fail a delivery attempt",
        DEADLINE,
        || async move {
            let (rows, min_attempts) = relay_ref.queue_attempts().await;
            (rows == 20 && min_attempts >= 2).then_some(())
        },
    )
    .await;

    relay
        .start_server(&[("MSGRELAY_SERVER__LISTEN", &listen)])
        .await;
    for detail in relay.wait_all_delivered(&ids, DEADLINE).await {
        assert!(detail["attempt_count"].as_u64() > Some(1), "{detail}");
    }
    let admin = relay.portal_login("admin").await;
    assert_eq!(
        relay.list_messages(&admin, "").await["total"],
        20,
        "each message exactly once"
    );
    let relay_ref = &relay;
    wait_for("the queue to drain", DEADLINE, || async move {
        (relay_ref.queue_attempts().await.0 == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn messages_of_a_worker_killed_mid_delivery_are_delivered_by_another_exactly_once() {
    let mut relay = TestRelay::init().await;
    for (k, v) in [
        ("LEASE_SECS", "3"),
        ("DELIVERY_TIMEOUT_SECS", "2"),
        ("RETRY_INTERVAL_SECS", "1"),
    ] {
        relay.env.push((format!("MSGRELAY_WORKER__{k}"), v.into()));
    }
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;
    // A stopped main server accepts TCP connections (the kernel does) but never answers: deliveries hang.
    relay.server.as_ref().unwrap().signal("STOP");
    const N: u64 = 10;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(relay.send_ok(&format!("delivery interrupted {i}")).await);
    }

    relay.start_worker(&[]).await;
    let relay_ref = &relay;
    wait_for("worker A to lease every message", DEADLINE, || async move {
        (relay_ref.queue_stats().await.in_flight == N).then_some(())
    })
    .await;
    relay.workers[0].kill9();
    relay.server.as_ref().unwrap().signal("CONT");

    relay.start_worker(&[]).await;
    for detail in relay.wait_all_delivered(&ids, DEADLINE).await {
        assert!(
            detail["attempt_count"].as_u64() >= Some(2),
            "delivered by worker A after all? {detail}"
        );
    }
    let admin = relay.portal_login("admin").await;
    assert_eq!(
        relay.list_messages(&admin, "").await["total"],
        N,
        "each message exactly once"
    );
}
