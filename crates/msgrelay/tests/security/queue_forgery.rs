//! Attack: write to the queue (queue.db, or the Redis stream) without any sealing key, in the
//! middle of a load of genuine messages: garbage, a genuine payload copied under another id or
//! client or accepted time, and old genuine payloads (a purged message replayed, a queue restored
//! from an old backup, one of them in the pre-upgrade v1 format). None of them becomes a row, each
//! is dead-lettered on its own while the rest of its batch is delivered, the dead letters are kept
//! and counted but shown as unopened, never as a client's message, and every genuine message is
//! delivered exactly once. A retention purge shorter than the replay window is refused, so a
//! purged message cannot come back either.
//!
//! The Redis variant uses the server at `MSGRELAY_TEST_REDIS_URL` (default redis://127.0.0.1:6379)
//! with its own key prefix; without one it is skipped with a notice, or fails under
//! `MSGRELAY_TEST_REQUIRE_EXTERNAL=1` (the skip policy of `msgrelay-testkit`).

use std::time::{Duration, Instant};

use msgrelay_core::config::{QueueBackend, QueueConfig};
use msgrelay_core::{now_ms, ClientId, MessageId};
use msgrelay_queue::{EnqueueOutcome, NewMessage, Queue};
use msgrelay_sealing::{seal_v1, PlainPayload, Sealer, SealingKeyPair};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{metric, metrics, wait_for, Body, TestRelay, DEADLINE, SENDER};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// `server.max_payload_age_days` of the attacked relay.
const MAX_AGE_DAYS: i64 = 2;

/// Forged entries an attacker with write access to the queue (and a copy of a genuine queued
/// payload, and old payloads from a backup) can make. `real` stands for payloads the genuine
/// proxy once sealed; the attacker only copies their bytes.
fn forged_entries(
    real: &Sealer,
    proxy_key: &SealingKeyPair,
    server_public: &str,
    copied: &NewMessage,
) -> Vec<NewMessage> {
    let demo = ClientId::parse("demo").unwrap();
    let other = ClientId::parse("other").unwrap();
    let old = |id: MessageId, days: i64| PlainPayload {
        id,
        client_id: demo.clone(),
        sender_number: SENDER.into(),
        message_body: "an old message".into(),
        accepted_at_ms: now_ms() - days * DAY_MS,
    };
    let entry = |id, client_id: &ClientId, payload, accepted_at_ms| NewMessage {
        id,
        client_id: client_id.clone(),
        payload,
        accepted_at_ms,
    };
    let (purged, backup, backup_v2, backup_v1) = (
        MessageId::new(),
        MessageId::new(),
        MessageId::new(),
        MessageId::new(),
    );
    let p_purged = old(purged, MAX_AGE_DAYS + 1);
    let p_backup = old(backup, 40);
    let p_v2 = old(backup_v2, 40);
    let p_v1 = old(backup_v1, 40);
    vec![
        entry(
            MessageId::new(),
            &demo,
            b"garbage, not a sealed payload".to_vec(),
            now_ms(),
        ),
        entry(
            MessageId::new(),
            &demo,
            b"MRS2 and then nothing much".to_vec(),
            now_ms(),
        ),
        entry(
            MessageId::new(),
            &demo,
            b"MRS3 and then nothing much".to_vec(),
            now_ms(),
        ),
        // A genuine payload copied under a fresh id, and under its own id for another client.
        entry(
            MessageId::new(),
            &copied.client_id,
            copied.payload.clone(),
            copied.accepted_at_ms,
        ),
        entry(
            copied.id,
            &other,
            copied.payload.clone(),
            copied.accepted_at_ms,
        ),
        // The same, with the envelope's accepted time moved.
        entry(
            MessageId::new(),
            &copied.client_id,
            copied.payload.clone(),
            copied.accepted_at_ms + 1,
        ),
        // Genuine payloads older than the replay window: a purged message, old backups (v3, v2, v1).
        entry(
            purged,
            &demo,
            real.seal(&p_purged).unwrap(),
            p_purged.accepted_at_ms,
        ),
        entry(
            backup,
            &demo,
            real.seal(&p_backup).unwrap(),
            p_backup.accepted_at_ms,
        ),
        entry(
            backup_v2,
            &demo,
            real.seal_v2(&p_v2).unwrap(),
            p_v2.accepted_at_ms,
        ),
        entry(
            backup_v1,
            &demo,
            seal_v1(proxy_key, server_public, &p_v1).unwrap(),
            p_v1.accepted_at_ms,
        ),
    ]
}

/// Enqueues every forged entry (the queue accepts anything; that is the point); returns the ids
/// that went in. The SQLite queue keeps one entry per id, so the copy under the genuine (still
/// queued) id is a duplicate there; a Redis stream takes it as a second entry with that id.
async fn inject(queue: &Queue, entries: &[NewMessage]) -> Vec<MessageId> {
    let mut enqueued = Vec::new();
    for e in entries {
        match queue
            .enqueue(e.clone(), None)
            .await
            .expect("inject into the queue")
        {
            EnqueueOutcome::Enqueued => enqueued.push(e.id),
            other => assert!(
                matches!(other, EnqueueOutcome::Duplicate { .. }),
                "{other:?}"
            ),
        }
    }
    enqueued
}

#[tokio::test]
async fn forged_and_replayed_entries_in_queue_db_mid_load_never_become_rows() {
    attack(QueueConfig::default()).await;
}

#[tokio::test]
async fn forged_and_replayed_entries_in_the_redis_stream_mid_load_never_become_rows() {
    let redis_url = std::env::var("MSGRELAY_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if !msgrelay_testkit::available("Redis", msgrelay_testkit::tcp_reachable(&redis_url, 6379)) {
        return;
    }
    let cfg = QueueConfig {
        backend: QueueBackend::Redis,
        redis_url,
        key_prefix: format!("sec-forge-{}", uuid::Uuid::new_v4().simple()),
        allow_non_durable_redis: true,
        ..QueueConfig::default()
    };
    attack(cfg.clone()).await;
    let client = redis::Client::open(cfg.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", cfg.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// Reads one queued entry's bytes, as someone with read access to the queue can.
async fn copy_entry(relay: &TestRelay, cfg: &QueueConfig, id: &str) -> NewMessage {
    let (client, payload, accepted_at_ms): (String, Vec<u8>, i64) = match cfg.backend {
        QueueBackend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(relay.path("queue.db"))
                .read_only(true);
            let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
            sqlx::query_as(
                "SELECT client_id, payload, accepted_at_ms FROM queue_messages WHERE id = ?",
            )
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap()
        }
        QueueBackend::Redis => {
            let mut conn = redis::Client::open(cfg.redis_url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(format!("{}:stream", cfg.key_prefix))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            let e = entries
                .ids
                .iter()
                .find(|e| e.get::<String>("id").as_deref() == Some(id))
                .expect("the genuine entry is in the stream");
            let acc: String = e.get("acc").unwrap();
            (
                e.get("client").unwrap(),
                e.get("payload").unwrap(),
                acc.parse().unwrap(),
            )
        }
    };
    NewMessage {
        id: MessageId::parse(id).unwrap(),
        client_id: ClientId::parse(&client).unwrap(),
        payload,
        accepted_at_ms,
    }
}

async fn attack(cfg: QueueConfig) {
    let mut relay = TestRelay::init().await;
    relay.env.push((
        "MSGRELAY_SERVER__MAX_PAYLOAD_AGE_DAYS".into(),
        MAX_AGE_DAYS.to_string(),
    ));
    relay
        .env
        .push(("MSGRELAY_WORKER__RETRY_INTERVAL_SECS".into(), "1".into()));
    if cfg.backend == QueueBackend::Redis {
        for (k, v) in [
            ("BACKEND", "redis"),
            ("REDIS_URL", cfg.redis_url.as_str()),
            ("KEY_PREFIX", cfg.key_prefix.as_str()),
            ("ALLOW_NON_DURABLE_REDIS", "true"),
        ] {
            relay
                .env
                .push((format!("MSGRELAY_QUEUE__{k}"), v.to_owned()));
        }
    }
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;

    // Genuine messages queued before any worker runs; the first one's bytes are what the
    // attacker copies.
    let mut ids = vec![relay.send_ok("genuine 0").await];
    let queue = Queue::connect(&cfg, &relay.data_dir())
        .await
        .expect("open the queue");
    let copied = copy_entry(&relay, &cfg, &ids[0]).await;
    let server_public = String::from_utf8(relay.read("keys/sealing.pub")).unwrap();
    let proxy_key = SealingKeyPair::load(&relay.path("keys/proxy-sealing.key")).unwrap();
    let real = Sealer::new(&proxy_key, server_public.trim()).unwrap();
    let forged = forged_entries(&real, &proxy_key, server_public.trim(), &copied);
    for i in 1..10 {
        ids.push(relay.send_ok(&format!("genuine {i}")).await);
    }
    let dead = inject(&queue, &forged).await;
    assert!(dead.len() >= forged.len() - 1, "{dead:?}");
    for i in 10..15 {
        ids.push(relay.send_ok(&format!("genuine {i}")).await);
    }
    // The worker's first lease takes genuine and forged entries in one batch; more genuine
    // messages arrive while it delivers.
    let server_ops = relay.server.as_ref().unwrap().addr("ops");
    let worker_ops = relay.start_worker(&[]).await.addr("ops");
    for i in 15..30 {
        ids.push(relay.send_ok(&format!("genuine {i}")).await);
    }
    let delivered = relay.wait_all_delivered(&ids, DEADLINE).await;
    // Delivered at the first attempt: a bad neighbour in the batch did not hold them back.
    let first_batch: Vec<_> = delivered[..15]
        .iter()
        .filter(|d| d["attempt_count"] != 1)
        .collect();
    assert!(first_batch.is_empty(), "retried: {first_batch:?}");

    // Every forged entry that went in is a dead letter, kept in the queue and counted.
    let (n, queue_ref) = (dead.len() as u64, &queue);
    wait_for(
        "every forged entry to be dead-lettered",
        DEADLINE,
        || async move {
            let stats = queue_ref.stats().await.unwrap();
            (stats.failed == n && stats.ready + stats.in_flight + stats.delayed == 0).then_some(())
        },
    )
    .await;
    let m = metrics(server_ops).await;
    for reason in ["malformed", "unauthentic", "too_old"] {
        assert!(
            m.contains(&format!(
                "msgrelay_payloads_refused_total{{reason=\"{reason}\"}}"
            )),
            "no {reason} refusal counted:\n{m}"
        );
    }
    let w = metrics(worker_ops).await;
    for name in [
        "msgrelay_messages_dead_lettered_total",
        "msgrelay_messages_dead_lettered_unopened_total",
    ] {
        assert_eq!(metric(&w, name), n as f64, "{name}");
    }

    // Exactly the genuine messages are rows, each once, attributed as sealed; the dead letters
    // stay invisible also after the main server's dead-letter sync (every 5 s) has run.
    let admin = relay.portal_login("admin").await;
    let sync_ran = Instant::now() + Duration::from_secs(6);
    loop {
        let list = relay.list_messages(&admin, "per_page=100").await;
        assert_eq!(list["total"], ids.len(), "{list}");
        for e in &forged {
            let (status, json) = relay.get_message(&admin, &e.id.to_string()).await;
            if e.id == copied.id {
                assert_eq!(
                    (json["client_id"].as_str(), json["status"].as_str()),
                    (Some("demo"), Some("delivered")),
                    "{json}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "forged entry {} became a row: {json}",
                    e.id
                );
            }
        }
        if Instant::now() > sync_ran {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The administrator sees the dead letters as unopened, never as a client's message.
    let page = relay
        .portal(Method::GET, "/admin/maintenance", Some(&admin), Body::None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let rows: Vec<&str> = page.body.split("<tr>").skip(1).collect();
    for id in &dead {
        let row = rows
            .iter()
            .find(|r| r.contains(&id.to_string()))
            .unwrap_or_else(|| panic!("dead letter {id} not listed:\n{}", page.body));
        assert!(row.contains(">unopened<"), "{row}");
        assert!(!row.contains(">demo<") && !row.contains(">other<"), "{row}");
    }
    // (A Redis stream takes the forged copy under the genuine first id as an entry of its own:
    // that dead letter is listed, as unopened, above.)
    for id in ids
        .iter()
        .filter(|id| !dead.iter().any(|d| d.to_string() == **id))
    {
        assert!(
            !page.body.contains(id.as_str()),
            "genuine {id} listed as failed"
        );
    }

    // A purge inside the replay window is refused, naming the setting; at the window it runs, and
    // what it deletes is older than any payload the main server still opens.
    for (days, status) in [
        (MAX_AGE_DAYS - 1, StatusCode::UNPROCESSABLE_ENTITY),
        (MAX_AGE_DAYS, StatusCode::OK),
    ] {
        let r = relay
            .portal(
                Method::POST,
                "/api/v1/admin/maintenance/purge",
                Some(&admin),
                Body::Json(json!({"older_than_days": days})),
            )
            .await;
        assert_eq!(r.status, status, "purge {days} days: {}", r.body);
        if status != StatusCode::OK {
            assert_eq!(r.json()["field"], "older_than_days", "{}", r.body);
            assert!(r.body.contains("server.max_payload_age_days"), "{}", r.body);
        }
    }
}
