//! The portal's JSON API under `/api/v1` (HTTPS): login/logout and the message views.
//! Every route authenticates through the `Caller` extractor; ownership is enforced in the query.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use msgrelay_core::{ClientId, MessageId, MessageStatus};
use msgrelay_ops::metrics::Reason;
use msgrelay_ops::Problem;
use msgrelay_store::{MessageFilter, StoreError};
use serde::Deserialize;

use super::views::{MessageDetail, MessageListItem};
use crate::actions::{client_ip, note_refused, MAX_LOGIN_BODY};
use crate::http::{api_store_problem, session_cookie, Caller, Via};
use crate::PortalState;

pub fn router(state: PortalState) -> Router {
    Router::new()
        .route(
            "/api/v1/auth/login",
            post(login).layer(axum::extract::DefaultBodyLimit::max(MAX_LOGIN_BODY)),
        )
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/messages", get(list_messages))
        .route("/api/v1/messages/{id}", get(get_message))
        .route(
            "/api/v1/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(state)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// At most 64 bytes.
    #[schema(max_length = 64)]
    username: String,
    password: String,
}

/// The portal user as the API reports it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoginUser {
    pub username: String,
    #[schema(value_type = super::doc_types::RoleName)]
    pub role: String,
}

/// A new session: the cookie is set; unsafe requests send `csrf_token` as `X-CSRF-Token`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub csrf_token: String,
    pub user: LoginUser,
}

/// The caller.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub username: String,
    #[schema(value_type = super::doc_types::RoleName)]
    pub role: String,
    /// The session's CSRF token; `null` with a Bearer token.
    pub csrf_token: Option<String>,
}

/// Logs in; sets the session cookie (`Secure; HttpOnly; SameSite=Strict`) and returns the CSRF token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, security(),
    responses((status = 200, body = LoginResponse, description = "logged in; the session cookie is set"),
        (status = 401, body = crate::http::ProblemDoc, description = "wrong username or password, or the account is disabled"),
        (status = 413, description = "body over 16 KiB"), (status = 422, body = crate::http::ProblemDoc, description = "username over 64 bytes"), (status = 429, body = crate::http::ProblemDoc, description = "too many failed logins for this username or from this address; see Retry-After")))]
pub async fn login(
    State(s): State<PortalState>,
    peer: Option<axum::Extension<msgrelay_tls::PeerInfo>>,
    Json(req): Json<LoginRequest>,
) -> Response {
    if req.username.len() > msgrelay_auth::MAX_USERNAME_BYTES {
        return Problem::invalid_field(
            "username",
            format!(
                "must be at most {} bytes",
                msgrelay_auth::MAX_USERNAME_BYTES
            ),
        )
        .into_response();
    }
    let username = req.username.trim().to_owned();
    let reservation = match s
        .login_limiter
        .reserve(&username, client_ip(peer.as_deref()))
    {
        Ok(r) => r,
        Err(refused) => {
            note_refused(&s, &username, &refused);
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!(
                    "too many failed logins; try again in {} seconds",
                    refused.retry_after_secs()
                ),
            );
            p.retry_after_secs = Some(refused.retry_after_secs());
            return p.into_response();
        }
    };
    match s.store.verify_login(&username, &req.password).await {
        Ok(user) => {
            reservation.succeeded();
            let ttl = Duration::from_secs(s.cfg.portal.session_ttl_secs);
            let session = match s
                .store
                .open_session(
                    user.id,
                    ttl,
                    Duration::from_secs(s.cfg.portal.session_absolute_secs),
                )
                .await
            {
                Ok(sess) => sess,
                Err(e) => return api_store_problem(e).into_response(),
            };
            tracing::info!(username = %user.username, role = user.role.as_str(), "login");
            s.metrics
                .logins
                .get_or_create(&Reason { reason: "success" })
                .inc();
            let body = Json(LoginResponse {
                csrf_token: session.csrf_token,
                user: LoginUser {
                    role: user.role.as_str().to_owned(),
                    username: user.username,
                },
            });
            (
                [(
                    header::SET_COOKIE,
                    session_cookie(&session.token, ttl.as_secs()),
                )],
                body,
            )
                .into_response()
        }
        Err(StoreError::BadCredentials) => {
            tracing::warn!(user_tag = %msgrelay_auth::username_tag(&username), "login failed");
            s.metrics
                .logins
                .get_or_create(&Reason { reason: "failure" })
                .inc();
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "bad-credentials",
                "wrong username or password, or the account is disabled",
            )
            .into_response()
        }
        Err(e) => api_store_problem(e).into_response(),
    }
}

/// Ends the session (a copy of the cookie is dead afterwards).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = crate::http::ProblemDoc), (status = 403, body = crate::http::ProblemDoc, description = "missing or wrong X-CSRF-Token")))]
pub async fn logout(State(s): State<PortalState>, caller: Caller) -> Response {
    if let Via::Session { token, .. } = &caller.via {
        if let Err(e) = s.store.delete_session(token).await {
            return api_store_problem(e).into_response();
        }
    }
    tracing::info!(username = %caller.user.username, "logout");
    (
        [(header::SET_COOKIE, session_cookie("", 0))],
        StatusCode::NO_CONTENT,
    )
        .into_response()
}

/// The caller, and the session's CSRF token (`null` with a Bearer token).
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = MeResponse), (status = 401, body = crate::http::ProblemDoc)))]
pub async fn me(caller: Caller) -> Response {
    let csrf = match &caller.via {
        Via::Session { csrf, .. } => Some(csrf.clone()),
        Via::Bearer { .. } => None,
    };
    Json(MeResponse {
        role: caller.user.role.as_str().to_owned(),
        username: caller.user.username,
        csrf_token: csrf,
    })
    .into_response()
}

/// Query parameters of the message list, as strings so every error can name its parameter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<super::doc_types::StatusName>)]
    pub status: Option<String>,
    /// Earliest acceptance time: `YYYY-MM-DD` (start of day, UTC) or an RFC 3339 date-time.
    #[param(
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$",
        example = "2026-01-31"
    )]
    pub from: Option<String>,
    /// Latest acceptance time: `YYYY-MM-DD` (end of day, UTC) or an RFC 3339 date-time.
    #[param(
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$",
        example = "2026-12-31T23:59:59Z"
    )]
    pub to: Option<String>,
    /// The exact sender number (matched by keyed hash, not searched).
    pub sender: Option<String>,
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "demo")]
    pub client_id: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1_000_000)]
    pub page: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub per_page: Option<String>,
}

fn parse_time(field: &str, s: &str, end_of_day: bool) -> Result<i64, Problem> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        Problem::invalid_field(
            field,
            "must be a date (YYYY-MM-DD) or an RFC 3339 date-time",
        )
    })?;
    let t = if end_of_day {
        date.and_hms_milli_opt(23, 59, 59, 999)
    } else {
        date.and_hms_opt(0, 0, 0)
    };
    Ok(t.expect("valid time").and_utc().timestamp_millis())
}

fn parse_num(
    field: &str,
    s: Option<&str>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, Problem> {
    match s.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Problem::invalid_field(
                    field,
                    format!(
                        "must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

impl ListQuery {
    /// Turns the query into a store filter for `caller` (ownership is part of the filter).
    pub(crate) fn to_filter(
        &self,
        s: &PortalState,
        caller: &Caller,
    ) -> Result<MessageFilter, Problem> {
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(MessageFilter {
            visible_to: caller.visible_to(),
            status: nonempty(&self.status)
                .map(|v| {
                    MessageStatus::parse(&v).map_err(|e| Problem::invalid_field("status", e.reason))
                })
                .transpose()?,
            from_ms: nonempty(&self.from)
                .map(|v| parse_time("from", &v, false))
                .transpose()?,
            to_ms: nonempty(&self.to)
                .map(|v| parse_time("to", &v, true))
                .transpose()?,
            sender_hash: nonempty(&self.sender).map(|v| s.at_rest.sender_hash(&v)),
            client_id: nonempty(&self.client_id)
                .map(|v| {
                    ClientId::parse(&v).map_err(|e| Problem::invalid_field("client_id", e.reason))
                })
                .transpose()?,
            page: parse_num("page", self.page.as_deref(), 1, 1..=1_000_000)?,
            per_page: parse_num("per_page", self.per_page.as_deref(), 50, 1..=200)?,
        })
    }
}

/// Messages, newest first: a user's own clients only, everything for an administrator; each with
/// its sender and the first 80 characters of its body. `from`/`to`: `YYYY-MM-DD` or RFC 3339;
/// `sender`: exact number (matched by keyed hash). Body text cannot be searched: it is stored
/// encrypted, and no index works over encrypted data.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, body = super::views::MessagePageDoc), (status = 401, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn list_messages(
    State(s): State<PortalState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = match q.to_filter(&s, &caller) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    match s.store.list_messages(&filter).await {
        Ok(page) => Json(serde_json::json!({
            "items": page.items.iter().map(|r| MessageListItem::decrypt(r, &s.at_rest)).collect::<Vec<_>>(),
            "total": page.total,
            "page": page.page,
            "per_page": page.per_page,
        }))
        .into_response(),
        Err(e) => api_store_problem(e).into_response(),
    }
}

/// One message with its decrypted sender and body. Another user's message and a missing one look the same: 404.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = String, Path, format = Uuid, description = "message id (UUID)")),
    responses((status = 200, body = super::views::MessageDetail), (status = 401, body = crate::http::ProblemDoc), (status = 404, body = crate::http::ProblemDoc, description = "no such message, not yours, or not a message id"),
        (status = 500, body = crate::http::ProblemDoc, description = "the stored message cannot be decrypted (at-rest key missing); the cause was logged")))]
pub async fn get_message(
    State(s): State<PortalState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let not_found =
        || Problem::new(StatusCode::NOT_FOUND, "not-found", "no such message").into_response();
    let Ok(id) = MessageId::parse(&id) else {
        return not_found();
    };
    match s.store.get_message(&id, caller.visible_to()).await {
        Ok(Some(row)) => match MessageDetail::decrypt(&row, &s.at_rest) {
            Ok(detail) => {
                tracing::info!(message_id = %id, username = %caller.user.username, "message viewed");
                Json(detail).into_response()
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "stored message cannot be decrypted (missing or wrong at-rest key?)");
                Problem::internal().into_response()
            }
        },
        Ok(None) => not_found(),
        Err(e) => api_store_problem(e).into_response(),
    }
}
