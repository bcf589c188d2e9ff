use crate::harness::{cid, delivered, hash_of, registered, user, Ctx};
use msgrelay_core::{now_ms, MessageId, MessageStatus, Role};
use msgrelay_store::{MessageFilter, Store, StoreError};

async fn status_of(s: &Store, id: &MessageId) -> MessageStatus {
    s.get_message(id, None).await.unwrap().unwrap().status
}

pub async fn register_then_deliver(ctx: Ctx) {
    let s = &ctx.store;
    let (a, b) = (MessageId::new(), MessageId::new());
    let t = now_ms();
    assert_eq!(
        s.register_messages(&[registered(a, "shop", t), registered(b, "shop", t)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.register_messages(&[registered(a, "shop", t)])
            .await
            .unwrap(),
        0,
        "register is insert-if-absent"
    );
    let row = s.get_message(&a, None).await.unwrap().unwrap();
    assert_eq!(
        (
            row.status,
            row.attempt_count,
            row.encrypted_body.clone(),
            row.delivered_at_ms
        ),
        (MessageStatus::Queued, 0, None, None)
    );
    assert_eq!((row.created_at_ms, row.queued_at_ms), (t, t + 1));

    let mut d = delivered(a, "shop", t, &hash_of(1));
    d.attempt_count = 3;
    s.deliver_messages(&[d.clone()]).await.unwrap();
    let row = s.get_message(&a, None).await.unwrap().unwrap();
    assert_eq!(row.status, MessageStatus::Delivered);
    assert_eq!(
        row.encrypted_body.as_deref(),
        Some(d.encrypted_body.as_slice()),
        "ciphertext is stored byte for byte"
    );
    assert_eq!(
        row.encrypted_sender.as_deref(),
        Some(d.encrypted_sender.as_slice())
    );
    assert_eq!(
        (
            row.key_id.as_deref(),
            row.delivered_at_ms,
            row.attempt_count
        ),
        (Some("k1"), Some(d.delivered_at_ms), 3)
    );
    assert!(
        !format!("{row:?}{d:?}").contains("159, 255"),
        "Debug hides ciphertexts"
    );
    assert_eq!(status_of(s, &b).await, MessageStatus::Queued);
    s.deliver_messages(&[]).await.unwrap();
    assert_eq!(
        status_of(s, &b).await,
        MessageStatus::Queued,
        "an empty batch changes nothing"
    );
}

pub async fn deliver_then_late_register_stays_delivered(ctx: Ctx) {
    let s = &ctx.store;
    let id = MessageId::new();
    let t = now_ms();
    s.deliver_messages(&[delivered(id, "shop", t, &hash_of(1))])
        .await
        .unwrap();
    assert_eq!(
        s.register_messages(&[registered(id, "shop", t)])
            .await
            .unwrap(),
        0
    );
    let row = s.get_message(&id, None).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempt_count),
        (MessageStatus::Delivered, 1)
    );
    assert!(row.encrypted_body.is_some());
}

pub async fn deliver_twice_is_idempotent(ctx: Ctx) {
    let s = &ctx.store;
    let id = MessageId::new();
    let t = now_ms();
    let first = delivered(id, "shop", t, &hash_of(1));
    s.deliver_messages(std::slice::from_ref(&first))
        .await
        .unwrap();

    let mut second = delivered(id, "shop", t, &hash_of(2));
    second.encrypted_body = b"other".to_vec();
    second.delivered_at_ms = first.delivered_at_ms + 5_000;
    second.attempt_count = 7;
    // The same id twice in one batch is fine too.
    s.deliver_messages(&[second.clone(), second.clone()])
        .await
        .unwrap();
    let row = s.get_message(&id, None).await.unwrap().unwrap();
    assert_eq!(
        row.encrypted_body.as_deref(),
        Some(first.encrypted_body.as_slice()),
        "original ciphertext kept"
    );
    assert_eq!(
        (row.delivered_at_ms, row.attempt_count),
        (Some(first.delivered_at_ms), 7)
    );

    let mut lower = first.clone();
    lower.attempt_count = 2;
    s.deliver_messages(&[lower]).await.unwrap();
    assert_eq!(
        s.get_message(&id, None)
            .await
            .unwrap()
            .unwrap()
            .attempt_count,
        7,
        "attempt_count never decreases"
    );
    let page = s.list_messages(&MessageFilter::default()).await.unwrap();
    assert_eq!(page.total, 1);
    let f = MessageFilter {
        sender_hash: Some(hash_of(1)),
        ..MessageFilter::default()
    };
    assert_eq!(
        s.list_messages(&f).await.unwrap().total,
        1,
        "sender hash of the first delivery kept"
    );
}

pub async fn large_batches_are_chunked(ctx: Ctx) {
    let s = &ctx.store;
    let t = now_ms();
    let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::new()).collect();
    let regs: Vec<_> = ids[..250]
        .iter()
        .map(|id| registered(*id, "shop", t))
        .collect();
    assert_eq!(s.register_messages(&regs).await.unwrap(), 250);
    let batch: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| delivered(*id, "shop", t + i as i64, &hash_of((i % 7) as u8)))
        .collect();
    s.deliver_messages(&batch).await.unwrap();
    s.deliver_messages(&batch).await.unwrap();
    let counts = s.count_messages_by_status().await.unwrap();
    assert_eq!(
        counts,
        [
            (MessageStatus::Queued, 0),
            (MessageStatus::Delivered, 1000),
            (MessageStatus::Failed, 0)
        ]
    );
    let page = s
        .list_messages(&MessageFilter {
            per_page: 200,
            page: 5,
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (1000, 200));
}

pub async fn fail_requeue_and_purge(ctx: Ctx) {
    let s = &ctx.store;
    let t = now_ms();
    let (q, d) = (MessageId::new(), MessageId::new());
    s.register_messages(&[registered(q, "shop", t)])
        .await
        .unwrap();
    let mut old = delivered(d, "shop", t, &hash_of(1));
    old.delivered_at_ms = t - 10_000;
    s.deliver_messages(&[old]).await.unwrap();

    assert_eq!(
        s.mark_failed(&[q, d, MessageId::new()]).await.unwrap(),
        1,
        "only queued → failed"
    );
    assert_eq!(status_of(s, &q).await, MessageStatus::Failed);
    assert_eq!(status_of(s, &d).await, MessageStatus::Delivered);
    assert_eq!(
        s.requeue_failed(&[q, d]).await.unwrap(),
        1,
        "only failed → queued"
    );
    assert_eq!(status_of(s, &q).await, MessageStatus::Queued);

    assert_eq!(s.purge_delivered_before(t - 20_000).await.unwrap(), 0);
    assert_eq!(s.purge_delivered_before(t).await.unwrap(), 1);
    assert!(s.get_message(&d, None).await.unwrap().is_none());
    assert!(
        s.get_message(&q, None).await.unwrap().is_some(),
        "queued messages are never purged"
    );
}

/// Alice owns `shop`, Bob owns `bank`; six messages spread over statuses, times and senders.
async fn fixture(s: &Store) -> (i64, i64, Vec<MessageId>) {
    let alice = user(s, "alice", Role::User).await;
    let bob = user(s, "bob", Role::User).await;
    s.create_client(&cid("shop"), "alice", "relay.example.com")
        .await
        .unwrap();
    s.create_client(&cid("bank"), "bob", "relay.example.com")
        .await
        .unwrap();
    let ids: Vec<MessageId> = (0..6).map(|_| MessageId::new()).collect();
    let base = 1_700_000_000_000;
    // (client, created offset in s, delivered?, sender)
    let plan = [
        ("shop", 0, true, 1),
        ("shop", 10, true, 2),
        ("shop", 20, false, 1),
        ("shop", 30, true, 1),
        ("bank", 40, true, 1),
        ("bank", 50, false, 3),
    ];
    for (id, (client, off, done, sender)) in ids.iter().zip(plan) {
        let created = base + off * 1000;
        if done {
            s.deliver_messages(&[delivered(*id, client, created, &hash_of(sender))])
                .await
                .unwrap();
        } else {
            s.register_messages(&[registered(*id, client, created)])
                .await
                .unwrap();
        }
    }
    (alice.id, bob.id, ids)
}

pub async fn list_filters_and_pagination(ctx: Ctx) {
    let s = &ctx.store;
    let (_, _, ids) = fixture(s).await;
    let base = 1_700_000_000_000;
    let list = |f: MessageFilter| async move { s.list_messages(&f).await.unwrap() };
    let all = list(MessageFilter::default()).await;
    assert_eq!(all.total, 6);
    assert_eq!(
        all.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );

    let by_status = list(MessageFilter {
        status: Some(MessageStatus::Queued),
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_status.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[5], ids[2]]
    );
    let range = list(MessageFilter {
        from_ms: Some(base + 10_000),
        to_ms: Some(base + 30_000),
        ..Default::default()
    })
    .await;
    assert_eq!(range.total, 3, "bounds are inclusive");
    let sender = list(MessageFilter {
        sender_hash: Some(hash_of(1)),
        ..Default::default()
    })
    .await;
    assert_eq!(sender.total, 3, "queued messages have no sender hash yet");
    let client = list(MessageFilter {
        client_id: Some(cid("bank")),
        ..Default::default()
    })
    .await;
    assert_eq!(client.total, 2);
    let combined = list(MessageFilter {
        client_id: Some(cid("shop")),
        status: Some(MessageStatus::Delivered),
        sender_hash: Some(hash_of(1)),
        from_ms: Some(base + 1),
        ..Default::default()
    })
    .await;
    assert_eq!(
        combined.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[3]]
    );

    let p1 = list(MessageFilter {
        per_page: 4,
        page: 1,
        ..Default::default()
    })
    .await;
    let p2 = list(MessageFilter {
        per_page: 4,
        page: 2,
        ..Default::default()
    })
    .await;
    let p3 = list(MessageFilter {
        per_page: 4,
        page: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(
        (
            p1.total,
            p1.items.len(),
            p2.total,
            p2.items.len(),
            p3.items.len()
        ),
        (6, 4, 6, 2, 0)
    );
    assert_eq!((p2.page, p2.per_page), (2, 4));
    assert_eq!(p2.items[0].id, ids[1]);

    for (page, per_page, field) in [(0, 10, "page"), (1, 0, "per_page"), (1, 201, "per_page")] {
        let f = MessageFilter {
            page,
            per_page,
            ..Default::default()
        };
        assert!(
            matches!(s.list_messages(&f).await, Err(StoreError::Invalid { field: got, .. }) if got == field)
        );
    }
}

pub async fn visibility_by_owner(ctx: Ctx) {
    let s = &ctx.store;
    let (alice, bob, ids) = fixture(s).await;
    let mine = s
        .list_messages(&MessageFilter {
            visible_to: Some(alice),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.total, 4);
    assert!(mine.items.iter().all(|m| m.client_id.as_str() == "shop"));
    // Asking for another user's client through the filter still yields nothing.
    let theirs = MessageFilter {
        visible_to: Some(alice),
        client_id: Some(cid("bank")),
        ..Default::default()
    };
    assert_eq!(s.list_messages(&theirs).await.unwrap().total, 0);
    let nobody = MessageFilter {
        visible_to: Some(9_999_999),
        ..Default::default()
    };
    assert_eq!(s.list_messages(&nobody).await.unwrap().total, 0);

    assert!(s.get_message(&ids[0], Some(alice)).await.unwrap().is_some());
    assert!(
        s.get_message(&ids[0], Some(bob)).await.unwrap().is_none(),
        "another user's message is invisible"
    );
    assert!(s.get_message(&ids[4], Some(bob)).await.unwrap().is_some());
    assert!(
        s.get_message(&ids[4], None).await.unwrap().is_some(),
        "admin sees everything"
    );
    assert!(s
        .get_message(&MessageId::new(), None)
        .await
        .unwrap()
        .is_none());
}

pub async fn filter_values_with_sql_metacharacters(ctx: Ctx) {
    let s = &ctx.store;
    let (alice, _, _) = fixture(s).await;
    for evil in [
        "' OR '1'='1",
        "x'); DELETE FROM messages; --",
        "%",
        "\\",
        "\"; DROP TABLE messages; #",
    ] {
        let f = MessageFilter {
            sender_hash: Some(evil.into()),
            ..Default::default()
        };
        assert_eq!(s.list_messages(&f).await.unwrap().total, 0, "{evil}");
        let f = MessageFilter {
            sender_hash: Some(evil.into()),
            visible_to: Some(alice),
            ..Default::default()
        };
        assert_eq!(s.list_messages(&f).await.unwrap().total, 0, "{evil}");
    }
    assert_eq!(
        s.list_messages(&MessageFilter::default())
            .await
            .unwrap()
            .total,
        6,
        "nothing was deleted"
    );
    // Extreme time bounds are just numbers.
    let f = MessageFilter {
        from_ms: Some(i64::MIN),
        to_ms: Some(i64::MAX),
        ..Default::default()
    };
    assert_eq!(s.list_messages(&f).await.unwrap().total, 6);
}

/// Workers handing over overlapping batches at the same time (and a proxy registering late):
/// no deadlock or busy error, every message ends up delivered once, and the register changes no
/// delivered row.
pub async fn concurrent_overlapping_deliveries(ctx: Ctx) {
    let s = &ctx.store;
    let t = now_ms();
    let ids: Vec<MessageId> = (0..300).map(|_| MessageId::new()).collect();
    let mut tasks = Vec::new();
    for w in 0..4usize {
        let store = s.clone();
        let batch: Vec<_> = ids
            .iter()
            .skip(w * 50)
            .take(200)
            .map(|id| delivered(*id, "shop", t, &hash_of(1)))
            .collect();
        tasks.push(tokio::spawn(async move {
            store.deliver_messages(&batch).await.unwrap()
        }));
    }
    let store = s.clone();
    let regs: Vec<_> = ids.iter().map(|id| registered(*id, "shop", t)).collect();
    let register = tokio::spawn(async move { store.register_messages(&regs).await.unwrap() });
    for task in tasks {
        task.await.unwrap();
    }
    register.await.unwrap();
    // Workers 0..4 cover ids 0..350 ∩ 0..300, so every id.
    let counts = s.count_messages_by_status().await.unwrap();
    assert_eq!(
        counts,
        [
            (MessageStatus::Queued, 0),
            (MessageStatus::Delivered, 300),
            (MessageStatus::Failed, 0)
        ]
    );
    for id in &ids {
        let row = s.get_message(id, None).await.unwrap().unwrap();
        assert_eq!(row.attempt_count, 1, "{id}");
        assert!(
            row.encrypted_body.is_some() && row.delivered_at_ms.is_some(),
            "{id}"
        );
    }
}
