//! The proxy's HTTP API: `POST /api/v1/messages`, `GET /api/v1/health`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use msgrelay_core::wire::{RegisterItem, RegistryEntry};
use msgrelay_core::{now_ms, ClientId, ClientStatus, MessageId};
use msgrelay_ops::Problem;
use msgrelay_queue::{EnqueueOutcome, Idempotency, NewMessage};
use msgrelay_sealing::PlainPayload;
use msgrelay_tls::PeerInfo;

use crate::{validate, AppState, QUEUE_TIMEOUT};

/// The state is shared behind one `Arc`: axum clones it for every request, and cloning the
/// fields one by one showed in the profile (docs/benchmarks.md, session 8).
pub(crate) fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/api/v1/messages", post(submit))
        .route("/api/v1/health", get(health))
        .with_state(state)
}

/// Identifies the caller from its certificate, per request (so revocation also applies to open
/// connections and resumed sessions), and checks the SNI domain.
fn authorize(state: &AppState, peer: &PeerInfo) -> Result<(RegistryEntry, ClientId), Problem> {
    if let Err(why) = state.revocation.check_fresh() {
        tracing::error!(reason = %why, "refusing request: revocation data is stale");
        state.metrics.reject("crl_stale");
        return Err(Problem::unavailable(
            "revocation data is stale; the operator has been alerted",
            30,
        ));
    }
    let forbidden = |reason: &'static str, detail: &str| {
        state.metrics.reject(reason);
        Problem::new(StatusCode::FORBIDDEN, reason, detail.to_owned())
    };
    let fp = peer
        .fingerprint
        .as_deref()
        .ok_or_else(|| forbidden("no_certificate", "a client certificate is required"))?;
    let entry = state.revocation.lookup(fp).ok_or_else(|| {
        forbidden(
            "unknown_client",
            "this certificate is not registered for any client",
        )
    })?;
    match entry.status {
        ClientStatus::Active => {}
        ClientStatus::Revoked => {
            return Err(forbidden("revoked", "this certificate has been revoked"))
        }
        ClientStatus::Expired => return Err(forbidden("expired", "this certificate has expired")),
        ClientStatus::Disabled => return Err(forbidden("disabled", "this client is disabled")),
    }
    let default_domain = state
        .cfg
        .proxy
        .domains
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    let asked = peer.sni.as_deref().unwrap_or(default_domain);
    if !asked.eq_ignore_ascii_case(&entry.domain) {
        return Err(forbidden(
            "wrong_domain",
            "this client is not registered for this domain",
        ));
    }
    let client_id = entry.client_id.clone();
    Ok((entry, client_id))
}

async fn health(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<PeerInfo>,
) -> Response {
    match authorize(&state, &peer) {
        Ok((_, client_id)) => {
            Json(serde_json::json!({"status": "ok", "client_id": client_id})).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// The answer to an accepted message.
#[derive(serde::Serialize)]
struct Queued {
    id: MessageId,
    status: &'static str,
}

/// Takes the request whole: its headers and the peer are borrowed from it, not copied (the hot path).
async fn submit(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let Some(peer) = parts.extensions.get::<PeerInfo>() else {
        tracing::error!("no peer information on a proxy request");
        return Problem::internal().into_response();
    };
    match accept(&state, peer, &parts.headers, body).await {
        Ok((id, status)) => {
            state
                .metrics
                .ingest_latency
                .observe(started.elapsed().as_secs_f64());
            let queued = Queued {
                id,
                status: "queued",
            };
            (status, Json(queued)).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// Why reading the body failed: too large (413), too slow (408) or cut off (400).
fn body_problem(e: &axum::Error, limit: usize) -> (&'static str, Problem) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return (
                "too_large",
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    format!("request body exceeds {limit} bytes"),
                ),
            );
        }
        if msgrelay_tls::is_body_read_timeout(err) {
            return (
                "body_timeout",
                Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    "the request body was not received in time",
                ),
            );
        }
        source = err.source();
    }
    (
        "body_incomplete",
        Problem::new(
            StatusCode::BAD_REQUEST,
            "body-incomplete",
            "the request body could not be read",
        ),
    )
}

async fn accept(
    state: &AppState,
    peer: &PeerInfo,
    headers: &HeaderMap,
    body: Body,
) -> Result<(MessageId, StatusCode), Problem> {
    let (_, client_id) = authorize(state, peer)?;
    let reject = |reason: &'static str, p: Problem| {
        state.metrics.reject(reason);
        p
    };

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(reject(
            "unsupported_media_type",
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send Content-Type: application/json",
            ),
        ));
    }
    let limit = state.cfg.proxy.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| body_problem(&e, limit))
        .map_err(|(r, p)| reject(r, p))?;
    let submission = validate::parse(&bytes, &state.cfg.validation)
        .map_err(|p| reject(validate::metric_reason(p.field.as_deref()), p))?;
    if let Some(claimed) = &submission.claimed_client_id {
        if claimed != client_id.as_str() {
            let mut p = Problem::new(
                StatusCode::FORBIDDEN,
                "client-mismatch",
                "metadata.client_id does not match the client certificate",
            );
            p.field = Some("metadata.client_id".into());
            return Err(reject("client_mismatch", p));
        }
    }
    let idem = match headers.get("idempotency-key") {
        Some(raw) => {
            Some(validate::idempotency_key(raw).map_err(|p| reject("Idempotency-Key", p))?)
        }
        None => None,
    };

    if state.backpressure.saturated() {
        return Err(reject(
            "saturated",
            Problem::saturated(crate::backpressure::SATURATED_RETRY_AFTER_SECS),
        ));
    }

    let id = MessageId::new();
    let accepted_at_ms = now_ms();
    let payload = PlainPayload {
        id,
        client_id: client_id.clone(),
        sender_number: submission.sender.as_str().to_owned(),
        message_body: submission.body.as_str().to_owned(),
        accepted_at_ms,
    };
    let sealed = state.sealer.seal(&payload).map_err(|e| {
        tracing::error!(error = %e, "sealing failed");
        Problem::internal()
    })?;
    let msg = NewMessage {
        id,
        client_id: client_id.clone(),
        payload: sealed,
        accepted_at_ms,
    };
    let idem = idem.map(|key| {
        (
            client_id.clone(),
            Idempotency {
                key,
                request_hash: submission.request_hash(),
            },
        )
    });

    let outcome = tokio::time::timeout(QUEUE_TIMEOUT, state.queue.enqueue(msg, idem)).await;
    match outcome {
        Ok(Ok(EnqueueOutcome::Enqueued)) => {
            state.metrics.accepted.inc();
            state.backpressure.enqueued();
            tracing::debug!(message_id = %id, client_id = %client_id, "queued");
            state.register.send(RegisterItem {
                id,
                client_id,
                accepted_at_ms,
            });
            Ok((id, StatusCode::ACCEPTED))
        }
        Ok(Ok(EnqueueOutcome::Duplicate { id: first })) => {
            tracing::debug!(message_id = %first, client_id = %client_id, "idempotent replay");
            Ok((first, StatusCode::ACCEPTED))
        }
        Ok(Ok(EnqueueOutcome::Conflict { .. })) => Err(reject(
            "idempotency_conflict",
            Problem::invalid_field(
                "Idempotency-Key",
                "was already used with a different payload",
            ),
        )),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "enqueue failed");
            Err(reject(
                "queue_unavailable",
                Problem::unavailable(
                    "the queue is unavailable; retry with the same Idempotency-Key",
                    2,
                ),
            ))
        }
        Err(_) => {
            tracing::error!("enqueue timed out");
            Err(reject(
                "queue_unavailable",
                Problem::unavailable(
                    "the queue did not answer in time; retry with the same Idempotency-Key",
                    2,
                ),
            ))
        }
    }
}
