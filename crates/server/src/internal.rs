//! The internal API (mutual TLS, internal-CA service certificates only; the TLS verifier trusts
//! nothing else). Each route also checks the caller's role by certificate CN.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use msgrelay_at_rest::EncryptedFields;
use msgrelay_core::wire::{
    DeliverOutcome, DeliverRequest, DeliverResponse, DeliverResult, RegisterRequest, RegistryEntry,
    RegistryResponse, SealingKeyResponse,
};
use msgrelay_core::{deliver_batch, now_ms};
use msgrelay_ops::Problem;
use msgrelay_sealing::{Envelope, PlainPayload, SealError};
use msgrelay_store::{DeliveredMessage, RegisteredMessage};
use msgrelay_tls::PeerInfo;

use crate::AppState;

const PROXY: &str = "msgrelay-proxy";
/// How far ahead of this server's clock a proxy's accepted time may be.
const MAX_CLOCK_SKEW_MS: i64 = 24 * 3600 * 1000;
const WORKER: &str = "msgrelay-worker";

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/internal/messages/register", post(register))
        .route("/internal/messages/deliver", post(deliver))
        .route("/internal/clients", get(clients))
        .route("/internal/crl", get(crl))
        .route("/internal/sealing-key", get(sealing_key))
        .route(
            "/internal/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        // A full batch of maximum-size messages, base64-encoded, is a few MB.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(state)
}

fn require(peer: &PeerInfo, roles: &[&str]) -> Result<(), Problem> {
    match peer.common_name.as_deref() {
        Some(cn) if roles.contains(&cn) => Ok(()),
        _ => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this endpoint is for {}", roles.join(" or ")),
        )),
    }
}

fn internal_store_problem(e: msgrelay_store::StoreError) -> Problem {
    tracing::error!(error = %e, "database error on the internal API");
    Problem::unavailable("database unavailable", 5)
}

async fn register(
    State(s): State<AppState>,
    Extension(peer): Extension<PeerInfo>,
    Json(req): Json<RegisterRequest>,
) -> Response {
    if let Err(p) = require(&peer, &[PROXY]) {
        return p.into_response();
    }
    let mut items = req.messages;
    let skipped = s.recent.retain_unknown(&mut items, |m| m.id);
    s.metrics.registrations_skipped.inc_by(skipped as u64);
    // With nothing left, `register_messages` answers 0 without the database.
    let now = now_ms();
    let rows: Vec<_> = items
        .into_iter()
        .map(|m| RegisteredMessage {
            id: m.id,
            client_id: m.client_id,
            created_at_ms: m.accepted_at_ms,
            queued_at_ms: now,
        })
        .collect();
    match s.store.register_messages(&rows).await {
        Ok(n) => Json(serde_json::json!({"registered": n})).into_response(),
        Err(e) => internal_store_problem(e).into_response(),
    }
}

/// Opens each sealed payload, encrypts it for rest and upserts the whole batch in one
/// transaction. Only what was opened is trusted: id, client_id and accepted time come from the
/// sealed content (the envelope's copies must match, they are associated data); the envelope's
/// attempt count can only raise the stored one. A payload that cannot be opened or attributed,
/// or that is older than `server.max_payload_age_days` (a replay), is answered `rejected` (the
/// worker dead-letters it, alone); one sealed to a key this server does not hold is answered
/// `retry`. Nothing of a refused payload is stored.
async fn deliver(
    State(s): State<AppState>,
    Extension(peer): Extension<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(p) = require(&peer, &[WORKER]) {
        return p.into_response();
    }
    let items = match batch_items(&headers, &body) {
        Ok(items) => items,
        Err(p) => return p.into_response(),
    };
    // Opening (an AEAD per message, and an HPKE key exchange for each sealing epoch not seen
    // before) and the at-rest encryption are the CPU-heavy part of a delivery: done on the
    // blocking pool, so the runtime's threads keep serving other requests meanwhile (in
    // `msgrelay up` the proxy's ingest shares them).
    let (opener, span) = (s.clone(), tracing::Span::current());
    let opened = tokio::task::spawn_blocking(move || span.in_scope(|| open_batch(&opener, items)));
    let (rows, results) = match opened.await {
        Ok(opened) => opened,
        Err(e) => {
            tracing::error!(error = %e, "opening a delivery batch failed");
            return Problem::internal().into_response();
        }
    };
    if let Err(e) = s.store.deliver_messages(&rows).await {
        return internal_store_problem(e).into_response();
    }
    s.recent.insert_all(rows.iter().map(|r| r.id));
    for r in &rows {
        tracing::debug!(message_id = %r.id, client_id = %r.client_id, attempt = r.attempt_count, "stored");
    }
    Json(DeliverResponse { results }).into_response()
}

/// Opens and re-encrypts every item of a batch: the rows to store and one result per item.
fn open_batch(s: &AppState, items: Vec<Incoming>) -> (Vec<DeliveredMessage>, Vec<DeliverResult>) {
    let now = now_ms();
    let oldest = now - i64::from(s.cfg.server.max_payload_age_days) * 24 * 3600 * 1000;
    // A claimed accepted time beyond the clock skew any proxy may have is not a genuine one.
    let window = oldest..=now + MAX_CLOCK_SKEW_MS;
    let mut results = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        match open_item(s, &item, &window) {
            Ok((plain, enc)) => {
                rows.push(DeliveredMessage {
                    id: plain.id,
                    client_id: plain.client_id,
                    encrypted_body: enc.encrypted_body,
                    encrypted_sender: enc.encrypted_sender,
                    sender_hash: enc.sender_hash,
                    key_id: enc.key_id,
                    created_at_ms: plain.accepted_at_ms,
                    queued_at_ms: plain.accepted_at_ms,
                    delivered_at_ms: now,
                    attempt_count: item.attempt_count,
                });
                results.push(DeliverResult {
                    id: item.id,
                    outcome: DeliverOutcome::Stored,
                    reason: None,
                });
            }
            Err(refusal) => {
                s.metrics.payload_refused(refusal.metric);
                let outcome = if refusal.retry {
                    DeliverOutcome::Retry
                } else {
                    DeliverOutcome::Rejected
                };
                // The client_id is only what the unopened envelope claims: logged as such.
                tracing::error!(message_id = %item.id, claimed_client_id = %item.client_id, reason = %refusal.reason, ?outcome, "payload not stored");
                results.push(DeliverResult {
                    id: item.id,
                    outcome,
                    reason: Some(refusal.reason),
                });
            }
        }
    }
    (rows, results)
}

/// Why one payload was not stored: a fixed metric label, a message without content, and whether
/// it may open later.
struct Refusal {
    metric: &'static str,
    reason: String,
    retry: bool,
}

fn open_item(
    s: &AppState,
    item: &Incoming,
    window: &std::ops::RangeInclusive<i64>,
) -> Result<(PlainPayload, EncryptedFields), Refusal> {
    let oldest_ms = *window.start();
    let refuse = |metric, reason: String| Refusal {
        metric,
        reason,
        retry: false,
    };
    let sealed = item
        .sealed
        .as_ref()
        .map_err(|_| refuse("malformed", "sealed payload is not base64".into()))?;
    let envelope = Envelope {
        id: &item.id,
        client_id: &item.client_id,
        accepted_at_ms: item.accepted_at_ms,
    };
    let plain = s.keys.opener.open(&envelope, sealed).map_err(|e| {
        let metric = match &e {
            SealError::UnknownKey(_) => "unknown_key",
            SealError::Unauthentic => "unauthentic",
            SealError::Mismatch(_) => "mismatch",
            _ => "malformed",
        };
        // An unknown key is retried, but not for ever: past the replay window (by the envelope's
        // claim, the only date there is) it is refused like any old payload, and so is a claim
        // from the future (which would otherwise be retried for ever).
        let retry = e.is_retryable() && window.contains(&item.accepted_at_ms);
        let hint = if retry {
            "; add the key to the main server's keys/ (retried until then)"
        } else {
            ""
        };
        Refusal {
            metric,
            reason: format!("{e}{hint}"),
            retry,
        }
    })?;
    if plain.accepted_at_ms < oldest_ms {
        return Err(refuse(
            "too_old",
            "accepted longer ago than server.max_payload_age_days (a replay?)".into(),
        ));
    }
    let enc = s
        .keys
        .at_rest
        .encrypt_message(&plain.id, &plain.sender_number, &plain.message_body)
        .map_err(|e| Refusal {
            metric: "encrypt",
            reason: e.to_string(),
            retry: true,
        })?;
    Ok((plain, enc))
}

/// One message of a delivery batch; `sealed` is `Err` when the JSON body's base64 was invalid
/// (answered `rejected` for that message alone, as before).
struct Incoming {
    id: msgrelay_core::MessageId,
    client_id: msgrelay_core::ClientId,
    accepted_at_ms: i64,
    attempt_count: u32,
    sealed: Result<Vec<u8>, ()>,
}

/// Reads the binary batch (what workers send) or the JSON body (base64 payloads).
fn batch_items(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Incoming>, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with(deliver_batch::CONTENT_TYPE) {
        let items = deliver_batch::decode(body)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
        return Ok(items
            .into_iter()
            .map(|i| Incoming {
                id: i.id,
                client_id: i.client_id,
                accepted_at_ms: i.accepted_at_ms,
                attempt_count: i.attempt_count,
                sealed: Ok(i.sealed),
            })
            .collect());
    }
    let req: DeliverRequest = serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("malformed delivery batch: {e}"),
        )
    })?;
    Ok(req
        .messages
        .into_iter()
        .map(|i| Incoming {
            sealed: B64.decode(&i.sealed).map_err(|_| ()),
            id: i.id,
            client_id: i.client_id,
            accepted_at_ms: i.accepted_at_ms,
            attempt_count: i.attempt_count,
        })
        .collect())
}

async fn clients(State(s): State<AppState>, Extension(peer): Extension<PeerInfo>) -> Response {
    if let Err(p) = require(&peer, &[PROXY]) {
        return p.into_response();
    }
    match s.store.registry().await {
        Ok(rows) => Json(RegistryResponse {
            clients: rows
                .into_iter()
                .map(|r| RegistryEntry {
                    fingerprint: r.fingerprint,
                    client_id: r.client_id,
                    domain: r.domain,
                    status: r.status,
                })
                .collect(),
        })
        .into_response(),
        Err(e) => internal_store_problem(e).into_response(),
    }
}

async fn crl(State(s): State<AppState>, Extension(peer): Extension<PeerInfo>) -> Response {
    if let Err(p) = require(&peer, &[PROXY, WORKER]) {
        return p.into_response();
    }
    match s.pki.read("client-ca.crl") {
        Ok(pem) => (
            [(axum::http::header::CONTENT_TYPE, "application/pkix-crl+pem")],
            pem,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the CRL");
            Problem::unavailable("CRL unavailable", 5).into_response()
        }
    }
}

async fn sealing_key(State(s): State<AppState>, Extension(peer): Extension<PeerInfo>) -> Response {
    if let Err(p) = require(&peer, &[PROXY]) {
        return p.into_response();
    }
    Json(SealingKeyResponse {
        key_id: s.keys.sealing.key_id(),
        public_key: s.keys.sealing.public_key_b64(),
        trusted_proxy_key_ids: s.keys.opener.trusted_proxy_key_ids(),
    })
    .into_response()
}
