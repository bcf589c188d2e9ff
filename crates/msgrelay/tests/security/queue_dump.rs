//! Attack: steal the proxy host (every file it has, `keys/proxy-sealing.key` included) and a full
//! dump of the queue, then try to read the queued messages. With sealing v3 (HPKE Auth mode under
//! an ephemeral key per epoch that only the proxy's memory ever held) and v2 (one per message)
//! nothing opens; the same attack code opens payloads sealed by the v1 format and payloads opened
//! with the server's key, so it is not a vacuous attempt.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use crypto_box::aead::Aead;
use hpke::{Deserializable, OpModeR};
use msgrelay_core::{ClientId, MessageId};
use msgrelay_sealing::{seal_v1, PlainPayload, SealingKeyPair};

use crate::support::{files_under, TestRelay, DEADLINE};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;

/// One queued entry as a dump shows it.
struct Dumped {
    id: MessageId,
    client_id: ClientId,
    accepted_at_ms: i64,
    payload: Vec<u8>,
}

async fn dump_queue(relay: &TestRelay) -> Vec<Dumped> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(relay.path("queue.db"))
        .read_only(true);
    let mut conn = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("open queue.db read-only");
    let rows: Vec<(String, String, i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, client_id, accepted_at_ms, payload FROM queue_messages")
            .fetch_all(&mut conn)
            .await
            .expect("dump");
    rows.into_iter()
        .map(|(id, client, accepted_at_ms, payload)| Dumped {
            id: MessageId(id.parse().expect("uuid")),
            client_id: ClientId::parse(&client).expect("client id"),
            accepted_at_ms,
            payload,
        })
        .collect()
}

/// Every 32-byte value in the given files, raw or base64 (whole file or one token): the key
/// material an attacker would try.
fn candidate_keys(files: &[PathBuf]) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap_or_default();
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            out.push(raw);
        }
        for token in String::from_utf8_lossy(&bytes)
            .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)))
        {
            if let Ok(k) = B64.decode(token).map(<[u8; 32]>::try_from) {
                out.extend(k);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Tries every candidate secret against one payload, every way the formats allow: HPKE with the
/// candidate as recipient (base mode, and auth mode with each known public key as sender; v3's
/// epoch key exchange and v2's single-shot seal), and a static-static crypto_box (v1) with each
/// known public key. True if anything opens.
fn thief_opens(secrets: &[[u8; 32]], publics: &[[u8; 32]], e: &Dumped) -> bool {
    let p = &e.payload;
    if p.len() < 60 + 16 {
        return false;
    }
    let v3 = &p[..4] == b"MRS3";
    let header = if v3 { 60 } else { 20 };
    let mut aad = p[..header].to_vec();
    aad.extend_from_slice(e.id.0.as_bytes());
    aad.extend_from_slice(&e.accepted_at_ms.to_be_bytes());
    aad.extend_from_slice(e.client_id.as_str().as_bytes());
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&p[20..52]).expect("32 bytes");
    let hpke_opens = |mode: &OpModeR<Kem>, hsk: &<Kem as hpke::Kem>::PrivateKey| {
        if v3 {
            let Ok(ctx) = hpke::setup_receiver::<hpke::aead::ExportOnlyAead, Kdf, Kem>(
                mode,
                hsk,
                &enc,
                b"msgrelay sealing v3 epoch",
            ) else {
                return false;
            };
            let mut key = [0u8; 32];
            ctx.export(b"msgrelay sealing v3 payload key", &mut key)
                .expect("32-byte export");
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&p[52..60]);
            let cipher = <ChaCha20Poly1305 as KeyInit>::new(&key.into());
            chacha20poly1305::aead::Aead::decrypt(
                &cipher,
                &nonce.into(),
                Payload {
                    msg: &p[60..],
                    aad: &aad,
                },
            )
            .is_ok()
        } else {
            hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, Kdf, Kem>(
                mode,
                hsk,
                &enc,
                b"msgrelay sealing v2",
                &p[52..],
                &aad,
            )
            .is_ok()
        }
    };
    for sk in secrets {
        let Ok(hsk) = <Kem as hpke::Kem>::PrivateKey::from_bytes(sk) else {
            continue;
        };
        if hpke_opens(&OpModeR::Base, &hsk) {
            return true;
        }
        for pk in publics {
            let hpk = <Kem as hpke::Kem>::PublicKey::from_bytes(pk).expect("32 bytes");
            if hpke_opens(&OpModeR::Auth(hpk), &hsk) {
                return true;
            }
            let b = crypto_box::ChaChaBox::new(
                &crypto_box::PublicKey::from(*pk),
                &crypto_box::SecretKey::from(*sk),
            );
            if b.decrypt(crypto_box::Nonce::from_slice(&p[20..44]), &p[44..])
                .is_ok()
            {
                return true;
            }
        }
    }
    false
}

fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    *crypto_box::SecretKey::from(*secret).public_key().as_bytes()
}

#[tokio::test]
async fn proxy_files_and_a_full_queue_dump_open_no_payload() {
    // Proxy and main server, no worker: the queue fills and stays full.
    let mut relay = TestRelay::init().await;
    relay.start_server(&[]).await;
    relay.start_proxy(&[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(relay.send_ok(&format!("queued secret {i}")).await);
    }
    let dump = dump_queue(&relay).await;
    assert_eq!(dump.len(), 20, "the queue holds every accepted message");

    // Everything on the proxy host: the whole data directory minus what only the main server has.
    let server_only =
        ["keys/sealing.key", "keys/at-rest.json", "msgrelay.db"].map(|r| relay.path(r));
    let proxy_files: Vec<PathBuf> = files_under(&relay.data_dir())
        .into_iter()
        .filter(|f| {
            !server_only
                .iter()
                .any(|s| f.starts_with(s) || f.to_string_lossy().starts_with(&*s.to_string_lossy()))
        })
        .collect();
    let proxy_key = relay.path("keys/proxy-sealing.key");
    assert!(
        proxy_files.contains(&proxy_key),
        "the proxy's sealing key is among the stolen files"
    );
    let secrets = candidate_keys(&proxy_files);
    let proxy_secret: [u8; 32] = B64
        .decode(relay.read("keys/proxy-sealing.key"))
        .unwrap()
        .try_into()
        .unwrap();
    assert!(secrets.contains(&proxy_secret));
    let mut publics: Vec<[u8; 32]> = secrets.iter().map(public_of).collect();
    publics.extend(candidate_keys(&[
        relay.path("keys/sealing.pub"),
        relay.path("keys/proxy-sealing.pub"),
    ]));

    for e in &dump {
        assert!(
            !thief_opens(&secrets, &publics, e),
            "payload {} opened with the proxy's files",
            e.id
        );
    }

    // Controls: the attack code does open what it should.
    let server_secret: [u8; 32] = B64
        .decode(relay.read("keys/sealing.key"))
        .unwrap()
        .try_into()
        .unwrap();
    assert!(
        dump.iter()
            .all(|e| thief_opens(&[server_secret], &publics, e)),
        "the server's key opens every payload"
    );
    let old = PlainPayload {
        id: MessageId::new(),
        client_id: ClientId::parse("demo").unwrap(),
        sender_number: "+15551234567".into(),
        message_body: "sealed by v1".into(),
        accepted_at_ms: 0,
    };
    let proxy_pair = SealingKeyPair::load(&proxy_key).unwrap();
    let server_pub = String::from_utf8(relay.read("keys/sealing.pub")).unwrap();
    let v1 = Dumped {
        id: old.id,
        client_id: old.client_id.clone(),
        accepted_at_ms: 0,
        payload: seal_v1(&proxy_pair, server_pub.trim(), &old).unwrap(),
    };
    assert!(
        thief_opens(&secrets, &publics, &v1),
        "the same attack opens a v1 payload with the proxy's key alone"
    );
    let sealer = msgrelay_sealing::Sealer::new(&proxy_pair, server_pub.trim()).unwrap();
    let v2 = Dumped {
        payload: sealer.seal_v2(&old).unwrap(),
        ..v1
    };
    assert!(!thief_opens(&secrets, &publics, &v2), "v2 resists too");
    assert!(thief_opens(&[server_secret], &publics, &v2));
    assert!(dump.iter().all(|e| e.payload.starts_with(b"MRS3")));

    // And the stolen-from queue is intact: every message is delivered once a worker runs.
    relay.start_worker(&[]).await;
    relay.wait_all_delivered(&ids, DEADLINE).await;
}
