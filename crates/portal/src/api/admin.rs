//! The admin part of the portal JSON API (`/api/v1/admin/...`): users, clients and certificates,
//! API tokens, maintenance statistics, retry and purge. Same extractor as the rest of the JSON API
//! (session cookie + `X-CSRF-Token`, or a Bearer token), administrators only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use msgrelay_certs::{CertAdmin, KeyAlgorithm};
use msgrelay_core::{now_ms, ClientId, MessageId, Role};
use msgrelay_ops::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use msgrelay_store::{TableStat, TokenScope};

use super::doc_types::{RevocationReason, RoleName, ScopeName};
use crate::actions::{bundle_dir, client_views, retry_failed};
use crate::http::{api_cert_problem, api_store_problem, Admin, Caller};
use crate::layout::When;
use crate::PortalState;

pub fn router() -> Router<PortalState> {
    Router::new()
        .route("/api/v1/admin/users", get(list_users).post(create_user))
        .route("/api/v1/admin/users/{username}/role", post(set_role))
        .route("/api/v1/admin/users/{username}/disable", post(disable_user))
        .route("/api/v1/admin/users/{username}/enable", post(enable_user))
        .route(
            "/api/v1/admin/users/{username}/password",
            post(reset_password),
        )
        .route(
            "/api/v1/admin/clients",
            get(list_clients).post(create_client),
        )
        .route(
            "/api/v1/admin/clients/{client_id}/disable",
            post(disable_client),
        )
        .route(
            "/api/v1/admin/clients/{client_id}/enable",
            post(enable_client),
        )
        .route(
            "/api/v1/admin/clients/{client_id}/certificates",
            post(issue_certificate),
        )
        .route(
            "/api/v1/admin/certificates/{serial}/revoke",
            post(revoke_certificate),
        )
        .route("/api/v1/admin/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/api/v1/admin/maintenance/stats", get(stats))
        .route("/api/v1/admin/maintenance/retry", post(retry))
        .route("/api/v1/admin/maintenance/purge", post(purge))
}

type ApiResult = Result<Response, Problem>;

fn ms(ms: i64) -> String {
    When::from_ms(ms).iso
}

fn parse_client(id: &str) -> Result<ClientId, Problem> {
    ClientId::parse(id).map_err(|e| Problem::invalid_field("client_id", e.reason))
}

/// A portal user (never the password hash).
#[derive(Serialize, ToSchema)]
pub struct UserJson {
    pub username: String,
    #[schema(value_type = RoleName)]
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

impl From<msgrelay_store::User> for UserJson {
    fn from(u: msgrelay_store::User) -> Self {
        Self {
            username: u.username,
            role: u.role.as_str().into(),
            disabled: u.disabled,
            created_at: ms(u.created_at_ms),
            last_login_at: u.last_login_at_ms.map(ms),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", responses((status = 200, body = [UserJson]), (status = 401, body = crate::http::ProblemDoc), (status = 403, body = crate::http::ProblemDoc)))]
pub async fn list_users(State(s): State<PortalState>, _: Admin) -> ApiResult {
    let users: Vec<UserJson> = s
        .store
        .list_users()
        .await
        .map_err(api_store_problem)?
        .into_iter()
        .map(UserJson::from)
        .collect();
    Ok(Json(users).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = "^[a-z0-9._-]{3,64}$", example = "alice")]
    pub username: String,
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    #[schema(value_type = RoleName)]
    pub role: String,
}

fn parse_role(r: &str) -> Result<Role, Problem> {
    Role::parse(r).map_err(|_| Problem::invalid_field("role", "must be user or admin"))
}

#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = CreateUser,
    responses((status = 201, body = UserJson), (status = 409, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn create_user(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Json(r): Json<CreateUser>,
) -> ApiResult {
    let role = parse_role(&r.role)?;
    let u = s
        .store
        .create_user(r.username.trim(), &r.password, role)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, username = %u.username, "portal user created (API)");
    Ok((StatusCode::CREATED, Json(UserJson::from(u))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    #[schema(value_type = RoleName)]
    pub role: String,
}

#[utoipa::path(post, path = "/api/v1/admin/users/{username}/role", tag = "admin", request_body = SetRole, params(("username" = String, Path, pattern = "^[a-z0-9._-]{3,64}$", example = "demo")),
    responses((status = 204), (status = 404, body = crate::http::ProblemDoc), (status = 409, body = crate::http::ProblemDoc, description = "an administrator cannot demote themself")))]
pub async fn set_role(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(name): Path<String>,
    Json(r): Json<SetRole>,
) -> ApiResult {
    let role = parse_role(&r.role)?;
    if role != Role::Admin && a.user.username == name {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "you cannot demote yourself",
        ));
    }
    s.store
        .set_user_role(&name, role)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, username = %name, role = role.as_str(), "portal user role set (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/admin/users/{username}/disable", tag = "admin", params(("username" = String, Path, pattern = "^[a-z0-9._-]{3,64}$", example = "demo")),
    responses((status = 204, description = "disabled; the user's sessions ended"), (status = 404, body = crate::http::ProblemDoc), (status = 409, body = crate::http::ProblemDoc)))]
pub async fn disable_user(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    if a.user.username == name {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "you cannot disable yourself",
        ));
    }
    s.store
        .set_user_disabled(&name, true)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, username = %name, "portal user disabled (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/admin/users/{username}/enable", tag = "admin", params(("username" = String, Path, pattern = "^[a-z0-9._-]{3,64}$", example = "demo")),
    responses((status = 204), (status = 404, body = crate::http::ProblemDoc)))]
pub async fn enable_user(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    s.store
        .set_user_disabled(&name, false)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, username = %name, "portal user enabled (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/admin/users/{username}/password", tag = "admin", request_body = ResetPassword, params(("username" = String, Path, pattern = "^[a-z0-9._-]{3,64}$", example = "demo")),
    responses((status = 204, description = "password set; the user's sessions ended"), (status = 404, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn reset_password(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(name): Path<String>,
    Json(r): Json<ResetPassword>,
) -> ApiResult {
    s.store
        .reset_password(&name, &r.password)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, username = %name, "portal user password reset (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A client certificate.
#[derive(Serialize, ToSchema)]
pub struct CertJson {
    /// Lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    pub not_after: String,
    /// `active`, `revoked`, `expired` or `disabled`.
    pub status: String,
}

/// A client system with its certificates.
#[derive(Serialize, ToSchema)]
pub struct ClientJson {
    pub client_id: String,
    pub owner: String,
    pub domain: String,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: String,
    pub certificates: Vec<CertJson>,
}

#[utoipa::path(get, path = "/api/v1/admin/clients", tag = "admin", responses((status = 200, body = [ClientJson]), (status = 403, body = crate::http::ProblemDoc)))]
pub async fn list_clients(State(s): State<PortalState>, _: Admin) -> ApiResult {
    let views = client_views(&s)
        .await
        .map_err(|_| Problem::unavailable("database unavailable", 5))?;
    let out: Vec<ClientJson> = views
        .into_iter()
        .map(|c| ClientJson {
            client_id: c.client_id,
            owner: c.owner,
            domain: c.domain,
            status: if c.active { "active" } else { "disabled" }.into(),
            created_at: c.created.iso,
            certificates: c
                .certs
                .into_iter()
                .map(|x| CertJson {
                    serial: x.serial,
                    fingerprint: x.fingerprint,
                    not_after: x.not_after.iso,
                    status: x.status.into(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(out).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "billing")]
    pub client_id: String,
    /// Username of the owning portal user (404 when there is none).
    #[schema(pattern = "^[a-z0-9._-]{3,64}$", example = "admin")]
    pub owner: String,
    /// The DNS name the client's certificate is for (stored in lower case).
    #[schema(
        pattern = r"^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$",
        max_length = 253,
        example = "localhost"
    )]
    pub domain: String,
}

/// The client just created.
#[derive(Serialize, ToSchema)]
pub struct ClientCreated {
    pub client_id: String,
}

#[utoipa::path(post, path = "/api/v1/admin/clients", tag = "admin", request_body = CreateClient,
    responses((status = 201, body = ClientCreated), (status = 404, body = crate::http::ProblemDoc), (status = 409, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn create_client(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Json(r): Json<CreateClient>,
) -> ApiResult {
    let id = parse_client(r.client_id.trim())?;
    s.store
        .create_client(&id, r.owner.trim(), r.domain.trim())
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, client_id = %id, "client created (API)");
    Ok((
        StatusCode::CREATED,
        Json(ClientCreated {
            client_id: id.to_string(),
        }),
    )
        .into_response())
}

async fn set_client(s: &PortalState, a: &Caller, id: &str, active: bool) -> ApiResult {
    let id = parse_client(id)?;
    s.store
        .set_client_status(&id, active)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, client_id = %id, active, "client status set (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/admin/clients/{client_id}/disable", tag = "admin", params(("client_id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "demo")), responses((status = 204), (status = 404, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc, description = "not a client id")))]
pub async fn disable_client(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    set_client(&s, &a, &id, false).await
}

#[utoipa::path(post, path = "/api/v1/admin/clients/{client_id}/enable", tag = "admin", params(("client_id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "demo")), responses((status = 204), (status = 404, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc, description = "not a client id")))]
pub async fn enable_client(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    set_client(&s, &a, &id, true).await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Validity in days (default 825).
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
}

/// Where a new bundle was written on the server (the private key never travels over the API).
#[derive(Serialize, ToSchema)]
pub struct IssuedJson {
    pub client_id: String,
    pub serial: String,
    pub fingerprint: String,
    pub not_after: String,
    pub bundle_dir: String,
    pub p12_password_file: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/admin/clients/{client_id}/certificates", tag = "admin", params(("client_id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "demo")), request_body(content = Option<IssueRequest>, description = "optional"),
    responses((status = 201, body = IssuedJson), (status = 404, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc),
        (status = 500, body = crate::http::ProblemDoc, description = "the certificate could not be made or written; the cause was logged")))]
pub async fn issue_certificate(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(id): Path<String>,
    body: Option<Json<IssueRequest>>,
) -> ApiResult {
    let id = parse_client(&id)?;
    let days = body
        .map(|b| b.0)
        .unwrap_or_default()
        .days
        .unwrap_or(msgrelay_tls::pki::DEFAULT_CLIENT_DAYS);
    if !(1..=3650).contains(&days) {
        return Err(Problem::invalid_field("days", "must be from 1 to 3650"));
    }
    let client = s
        .store
        .get_client(&id)
        .await
        .map_err(api_store_problem)?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not-found", "no such client"))?;
    let (dir, _) = bundle_dir(&s, &id);
    let b = CertAdmin::new((*s.pki).clone(), s.store.clone())
        .issue_client(
            &id,
            &client.domain,
            days,
            &dir,
            KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .map_err(api_cert_problem)?;
    tracing::info!(admin = %a.user.username, client_id = %id, serial = %b.serial_hex, "client certificate issued (API)");
    let out = IssuedJson {
        client_id: id.to_string(),
        serial: b.serial_hex,
        fingerprint: b.fingerprint,
        not_after: b.not_after.to_rfc3339(),
        bundle_dir: b.dir.display().to_string(),
        p12_password_file: b.p12_password_file.map(|p| p.display().to_string()),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[schema(value_type = Option<RevocationReason>)]
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/admin/certificates/{serial}/revoke", tag = "admin", params(("serial" = String, Path, pattern = "^(0[xX])?[0-9A-Fa-f]+(:[0-9A-Fa-f]+)*$", example = "0a1b2c", description = "hex serial")), request_body(content = Option<RevokeRequest>, description = "optional"),
    responses((status = 204, description = "revoked (idempotent) and the CRL re-signed"), (status = 404, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc),
        (status = 500, body = crate::http::ProblemDoc, description = "the CRL could not be re-signed; the cause was logged")))]
pub async fn revoke_certificate(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(serial): Path<String>,
    body: Option<Json<RevokeRequest>>,
) -> ApiResult {
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    CertAdmin::new((*s.pki).clone(), s.store.clone())
        .revoke_serial(&serial, reason.as_deref())
        .await
        .map_err(api_cert_problem)?;
    tracing::info!(admin = %a.user.username, serial = %serial, "client certificate revoked (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An API token's metadata (never the token).
#[derive(Serialize, ToSchema)]
pub struct TokenJson {
    pub id: i64,
    pub name: String,
    pub username: String,
    #[schema(value_type = ScopeName)]
    pub scope: String,
    pub created_at: String,
    /// The token stops working at this time.
    pub expires_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "admin", responses((status = 200, body = [TokenJson]), (status = 403, body = crate::http::ProblemDoc)))]
pub async fn list_tokens(State(s): State<PortalState>, _: Admin) -> ApiResult {
    let out: Vec<TokenJson> = s
        .store
        .list_api_tokens(None)
        .await
        .map_err(api_store_problem)?
        .into_iter()
        .map(|t| TokenJson {
            id: t.id,
            name: t.name,
            username: t.username,
            scope: t.scope.as_str().to_owned(),
            created_at: ms(t.created_at_ms),
            expires_at: ms(t.expires_at_ms),
            last_used_at: t.last_used_at_ms.map(ms),
            revoked_at: t.revoked_at_ms.map(ms),
        })
        .collect();
    Ok(Json(out).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The owner (404 when there is none).
    pub username: String,
    /// 1-128 characters, not blank.
    #[schema(min_length = 1, max_length = 128, pattern = r"\S", example = "ci")]
    pub name: String,
    /// `read` (default) or `admin` (administrators only: 422 for a user).
    #[schema(value_type = Option<ScopeName>)]
    pub scope: Option<String>,
    /// Lifetime in days, 1 to 3650 (default 90).
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
}

/// A new token: `token` is shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub token: String,
    #[schema(value_type = ScopeName)]
    pub scope: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "admin", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 404, body = crate::http::ProblemDoc), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn create_token(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Json(r): Json<CreateToken>,
) -> ApiResult {
    let scope =
        TokenScope::parse(r.scope.as_deref().unwrap_or("read")).map_err(api_store_problem)?;
    let t = s
        .store
        .create_scoped_api_token(r.username.trim(), r.name.trim(), scope, r.days)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, username = %r.username.trim(), token_id = t.id, scope = t.scope.as_str(), "API token created (API)");
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(CreatedToken {
            id: t.id,
            scope: t.scope.as_str().to_owned(),
            expires_at: ms(t.expires_at_ms),
            token: t.token,
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/admin/tokens/{id}/revoke", tag = "admin", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = crate::http::ProblemDoc)))]
pub async fn revoke_token(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Path(id): Path<i64>,
) -> ApiResult {
    s.store
        .revoke_api_token(id)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, token_id = id, "API token revoked (API)");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Queue depth by state.
#[derive(Serialize, ToSchema)]
pub struct QueueJson {
    pub ready: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub failed: u64,
}

// The OpenAPI shape of `msgrelay_store::TableStat` (the store does not depend on utoipa).
/// Rows and bytes (data + indexes, when the database reports it) of one table.
#[derive(ToSchema)]
#[schema(as = TableStat)]
#[allow(dead_code)]
pub struct TableStatDoc {
    pub table: String,
    pub rows: i64,
    /// `null` where the database cannot tell.
    pub bytes: Option<i64>,
}

/// Database and queue statistics.
#[derive(Serialize, ToSchema)]
pub struct StatsJson {
    #[schema(value_type = Vec<TableStatDoc>)]
    pub tables: Vec<TableStat>,
    /// Messages per status (`queued`, `delivered`, `failed`).
    pub messages_by_status: std::collections::BTreeMap<String, u64>,
    /// `null` when the queue does not answer.
    pub queue: Option<QueueJson>,
}

#[utoipa::path(get, path = "/api/v1/admin/maintenance/stats", tag = "admin", responses((status = 200, body = StatsJson), (status = 403, body = crate::http::ProblemDoc)))]
pub async fn stats(State(s): State<PortalState>, _: Admin) -> ApiResult {
    let tables = s.store.table_stats().await.map_err(api_store_problem)?;
    let messages_by_status = s
        .store
        .count_messages_by_status()
        .await
        .map_err(api_store_problem)?
        .into_iter()
        .map(|(st, n)| (st.as_str().to_owned(), n))
        .collect();
    let queue = s.queue.stats().await.ok().map(|q| QueueJson {
        ready: q.ready,
        in_flight: q.in_flight,
        delayed: q.delayed,
        failed: q.failed,
    });
    Ok(Json(StatsJson {
        tables,
        messages_by_status,
        queue,
    })
    .into_response())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Message ids to retry; omitted or `null`: every failed message.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    pub ids: Option<Vec<String>>,
}

/// How many messages went back into the queue.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// How many delivered messages were deleted.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: u64,
}

#[utoipa::path(post, path = "/api/v1/admin/maintenance/retry", tag = "admin", request_body(content = Option<RetryRequest>, description = "optional"),
    responses((status = 200, body = Requeued, description = "messages put back into the queue"), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn retry(
    State(s): State<PortalState>,
    Admin(a): Admin,
    body: Option<Json<RetryRequest>>,
) -> ApiResult {
    let ids = match body.and_then(|b| b.0.ids) {
        Some(ids) => Some(
            ids.iter()
                .map(|i| {
                    MessageId::parse(i)
                        .map_err(|_| Problem::invalid_field("ids", "must be message ids (UUIDs)"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let (requeued, _) = retry_failed(&s, ids)
        .await
        .map_err(|_| Problem::unavailable("the queue or the database is unavailable", 5))?;
    tracing::info!(admin = %a.user.username, requeued, "failed messages retried (API)");
    Ok(Json(Requeued { requeued }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Delete delivered messages delivered more than this many days ago (at least
    /// `server.max_payload_age_days`, 30 by default).
    #[schema(minimum = 1, maximum = 36500)]
    pub older_than_days: u32,
}

#[utoipa::path(post, path = "/api/v1/admin/maintenance/purge", tag = "admin", request_body = PurgeRequest,
    responses((status = 200, body = Deleted), (status = 422, body = crate::http::ProblemDoc)))]
pub async fn purge(
    State(s): State<PortalState>,
    Admin(a): Admin,
    Json(r): Json<PurgeRequest>,
) -> ApiResult {
    if r.older_than_days == 0 {
        return Err(Problem::invalid_field(
            "older_than_days",
            "must be at least 1",
        ));
    }
    crate::actions::check_purge_days(&s, r.older_than_days)
        .map_err(|why| Problem::invalid_field("older_than_days", why))?;
    let before = now_ms() - i64::from(r.older_than_days) * 24 * 3600 * 1000;
    let deleted = s
        .store
        .purge_delivered_before(before)
        .await
        .map_err(api_store_problem)?;
    tracing::info!(admin = %a.user.username, days = r.older_than_days, deleted, "delivered messages purged (API)");
    Ok(Json(Deleted { deleted }).into_response())
}
