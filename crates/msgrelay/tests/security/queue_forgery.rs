//! Attack: write to the queue (queue.db, or the Redis stream) without any sealing key, during a
//! load of genuine messages: garbage, a genuine payload copied under another id or
//! client, and old genuine payloads (a purged message replayed, a queue restored from an old
//! backup, one of them in the pre-upgrade v1 format). None of them becomes a row, each is
//! dead-lettered on its own, and every genuine message is delivered exactly once.
//!
//! The Redis variant uses the server at `MSGRELAY_TEST_REDIS_URL` (default redis://127.0.0.1:6379)
//! with its own key prefix; `MSGRELAY_SKIP_REDIS_TESTS=1` skips it (printed) where there is none.

use std::time::Duration;

use msgrelay_core::{now_ms, ClientId, MessageId};
use msgrelay_core::config::{QueueBackend, QueueConfig};
use msgrelay_queue::{EnqueueOutcome, NewMessage, Queue};
use msgrelay_sealing::{seal_v1, PlainPayload, Sealer, SealingKeyPair};
use reqwest::StatusCode;

use crate::support::{metric, metrics, wait_for, TestRelay, DEADLINE, SENDER};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Forged entries an attacker with write access to the queue (and a copy of a genuine queued
/// payload, and old payloads from a backup) can make. `real` stands for payloads the genuine
/// proxy once sealed; the attacker only copies their bytes.
pub fn forged_entries(real: &Sealer, proxy_key: &SealingKeyPair, server_public: &str, copied: &NewMessage) -> Vec<NewMessage> {
    let demo = ClientId::parse("demo").unwrap();
    let other = ClientId::parse("other").unwrap();
    let old = |id: MessageId, days: i64| PlainPayload {
        id,
        client_id: demo.clone(),
        sender_number: SENDER.into(),
        message_body: "an old message".into(),
        accepted_at_ms: now_ms() - days * DAY_MS,
    };
    let (purged, backup, backup_v1) = (MessageId::new(), MessageId::new(), MessageId::new());
    let entry = |id, client_id: &ClientId, payload, accepted_at_ms| NewMessage { id, client_id: client_id.clone(), payload, accepted_at_ms };
    let p_purged = old(purged, 3);
    let p_backup = old(backup, 40);
    let p_v1 = old(backup_v1, 40);
    vec![
        entry(MessageId::new(), &demo, b"garbage, not a sealed payload".to_vec(), now_ms()),
        entry(MessageId::new(), &demo, b"MRS2 and then nothing much".to_vec(), now_ms()),
        // A genuine payload copied under a fresh id, and under its id for another client.
        entry(MessageId::new(), &copied.client_id, copied.payload.clone(), copied.accepted_at_ms),
        entry(copied.id, &other, copied.payload.clone(), copied.accepted_at_ms),
        // The same, with the envelope's accepted time moved.
        entry(MessageId::new(), &copied.client_id, copied.payload.clone(), copied.accepted_at_ms + 1),
        // Genuine payloads older than the replay window: a purged message, old backups (v2, v1).
        entry(purged, &demo, real.seal(&p_purged).unwrap(), p_purged.accepted_at_ms),
        entry(backup, &demo, real.seal(&p_backup).unwrap(), p_backup.accepted_at_ms),
        entry(backup_v1, &demo, seal_v1(proxy_key, server_public, &p_v1).unwrap(), p_v1.accepted_at_ms),
    ]
}

/// Enqueues every forged entry (the queue accepts anything; that is the point); returns how many
/// went in. The copy under the genuine id may collide with it, if it is still queued.
pub async fn inject(queue: &Queue, entries: &[NewMessage]) -> u64 {
    let mut enqueued = 0;
    for e in entries {
        let copy = NewMessage { id: e.id, client_id: e.client_id.clone(), payload: e.payload.clone(), accepted_at_ms: e.accepted_at_ms };
        match queue.enqueue(copy, None).await.expect("inject into the queue") {
            EnqueueOutcome::Enqueued => enqueued += 1,
            other => assert!(matches!(other, EnqueueOutcome::Duplicate { .. }), "{other:?}"),
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
    if std::env::var("MSGRELAY_SKIP_REDIS_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("skipped: MSGRELAY_SKIP_REDIS_TESTS=1");
        return;
    }
    let cfg = QueueConfig {
        backend: QueueBackend::Redis,
        redis_url: std::env::var("MSGRELAY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        key_prefix: format!("sec-forge-{}", uuid::Uuid::new_v4().simple()),
        allow_non_durable_redis: true,
        ..QueueConfig::default()
    };
    attack(cfg.clone()).await;
    let client = redis::Client::open(cfg.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}:*", cfg.key_prefix)).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

/// Reads one queued entry's bytes, as someone with read access to the queue can.
async fn copy_entry(relay: &TestRelay, cfg: &QueueConfig, id: &str) -> NewMessage {
    let id_parsed = MessageId(id.parse().unwrap());
    let (client, payload, accepted_at_ms): (String, Vec<u8>, i64) = match cfg.backend {
        QueueBackend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(relay.path("queue.db")).read_only(true);
            let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
            sqlx::query_as("SELECT client_id, payload, accepted_at_ms FROM queue_messages WHERE id = ?").bind(id).fetch_one(&mut conn).await.unwrap()
        }
        QueueBackend::Redis => {
            let mut conn = redis::Client::open(cfg.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
            let entries: redis::streams::StreamRangeReply =
                redis::cmd("XRANGE").arg(format!("{}:stream", cfg.key_prefix)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
            let e = entries
                .ids
                .iter()
                .find(|e| e.get::<String>("id").as_deref() == Some(id))
                .expect("the genuine entry is in the stream");
            let acc: String = e.get("acc").unwrap();
            (e.get("client").unwrap(), e.get("payload").unwrap(), acc.parse().unwrap())
        }
    };
    NewMessage { id: id_parsed, client_id: ClientId::parse(&client).unwrap(), payload, accepted_at_ms }
}

async fn attack(cfg: QueueConfig) {
    let mut relay = TestRelay::init().await;
    relay.env.push(("MSGRELAY_SERVER__MAX_PAYLOAD_AGE_DAYS".into(), "2".into()));
    relay.env.push(("MSGRELAY_WORKER__RETRY_INTERVAL_SECS".into(), "1".into()));
    if cfg.backend == QueueBackend::Redis {
        relay.env.push(("MSGRELAY_QUEUE__BACKEND".into(), "redis".into()));
        relay.env.push(("MSGRELAY_QUEUE__REDIS_URL".into(), cfg.redis_url.clone()));
        relay.env.push(("MSGRELAY_QUEUE__KEY_PREFIX".into(), cfg.key_prefix.clone()));
        relay.env.push(("MSGRELAY_QUEUE__ALLOW_NON_DURABLE_REDIS".into(), "true".into()));
    }
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;

    // A first genuine message, still queued: its bytes are what the attacker copies.
    let first = relay.send_ok("genuine 0").await;
    let queue = Queue::connect(&cfg, &relay.data_dir()).await.expect("open the queue");
    let copied = copy_entry(&relay, &cfg, &first).await;
    let server_public = String::from_utf8(relay.read("keys/sealing.pub")).unwrap();
    let proxy_key = SealingKeyPair::load(&relay.path("keys/proxy-sealing.key")).unwrap();
    let real = Sealer::new(&proxy_key, server_public.trim()).unwrap();
    let forged = forged_entries(&real, &proxy_key, server_public.trim(), &copied);

    // Load: genuine messages before, while and after the forged entries go in.
    let server_ops = relay.server.as_ref().unwrap().addr("ops");
    let worker_ops = relay.start_worker(&[]).await.addr("ops");
    let mut ids = vec![first];
    let mut dead = 0;
    for i in 1..=30 {
        ids.push(relay.send_ok(&format!("genuine {i}")).await);
        if i == 15 {
            dead = inject(&queue, &forged).await;
        }
    }
    assert!(dead >= forged.len() as u64 - 1);
    relay.wait_all_delivered(&ids, DEADLINE).await;

    // Every forged entry that went in is a dead letter.
    wait_for("every forged entry to be dead-lettered", DEADLINE, || async {
        (queue.stats().await.unwrap().failed == dead).then_some(())
    })
    .await;
    let m = metrics(server_ops).await;
    for reason in ["malformed", "unauthentic", "too_old"] {
        assert!(m.contains(&format!("msgrelay_payloads_refused_total{{reason=\"{reason}\"}}")), "no {reason} refusal counted:\n{m}");
    }
    assert_eq!(metric(&metrics(worker_ops).await, "msgrelay_messages_dead_lettered_total"), dead as f64);

    // Exactly the genuine messages are rows, each once, attributed as sealed; the dead letters
    // stay invisible also after the main server's dead-letter sync (every 5 s) has run.
    let admin = relay.portal_login("admin").await;
    let sync_ran = std::time::Instant::now() + Duration::from_secs(6);
    loop {
        let list = relay.list_messages(&admin, "per_page=100").await;
        assert_eq!(list["total"], ids.len(), "{list}");
        for e in &forged {
            let (status, json) = relay.get_message(&admin, &e.id.to_string()).await;
            if e.id == copied.id {
                assert_eq!((json["client_id"].as_str(), json["status"].as_str()), (Some("demo"), Some("delivered")), "{json}");
            } else {
                assert_eq!(status, StatusCode::NOT_FOUND, "forged entry {} became a row: {json}", e.id);
            }
        }
        if std::time::Instant::now() > sync_ran {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
