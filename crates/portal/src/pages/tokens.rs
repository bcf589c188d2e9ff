//! `/admin/tokens`: API tokens for the portal JSON API (the store's functions, as
//! `msgrelay admin token create` uses); a new token is shown once, only its hash is stored.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::users::{outcome, Done, NoFields};
use crate::http::PageError;
use crate::http::{AdminForm, PageAdmin, PageUser};
use crate::layout::{done_notice, Layout, When};
use crate::PortalState;
use msgrelay_store::{StoreError, TokenScope, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS};

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub scope: &'static str,
    pub created: When,
    pub expires: When,
    pub expired: bool,
    pub last_used: Option<When>,
    pub revoked: Option<When>,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage {
    layout: Layout,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
    tokens: Vec<TokenRow>,
    users: Vec<String>,
    default_days: u32,
    max_days: u32,
    /// (name, raw token) of a token just created: shown this once.
    created: Option<(String, String)>,
}

async fn render(
    s: &PortalState,
    u: &PageUser,
    notice: Option<&'static str>,
    error: Option<(StatusCode, String)>,
    created: Option<(String, String)>,
) -> Result<Response, PageError> {
    let now = msgrelay_core::now_ms();
    let tokens = s
        .store
        .list_api_tokens(None)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            username: t.username,
            scope: t.scope.as_str(),
            created: When::from_ms(t.created_at_ms),
            expires: When::from_ms(t.expires_at_ms),
            expired: t.expires_at_ms <= now,
            last_used: When::opt(t.last_used_at_ms),
            revoked: When::opt(t.revoked_at_ms),
        })
        .collect();
    let users = s
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|x| x.username)
        .collect();
    let status = error.as_ref().map(|e| e.0).unwrap_or(StatusCode::OK);
    let page = TokensPage {
        layout: Layout::for_user("API tokens", "tokens", u),
        csrf: u.csrf.clone(),
        notice,
        error: error.map(|e| e.1),
        tokens,
        users,
        default_days: DEFAULT_TOKEN_DAYS,
        max_days: MAX_TOKEN_DAYS,
        created,
    };
    let mut resp = (status, Html(page.render()?)).into_response();
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

pub async fn page(
    State(s): State<PortalState>,
    PageAdmin(u): PageAdmin,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    render(&s, &u, done_notice(q.done.as_deref()), None, None).await
}

#[derive(Deserialize)]
pub struct CreateToken {
    username: String,
    name: String,
    /// `read` (default) or `admin`.
    scope: Option<String>,
    /// Lifetime in days (default 90).
    days: Option<String>,
}

pub async fn create(
    State(s): State<PortalState>,
    AdminForm(u, f): AdminForm<CreateToken>,
) -> Result<Response, PageError> {
    let created = async {
        let scope = TokenScope::parse(f.scope.as_deref().map_or("read", str::trim))?;
        let days = match f.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => Some(d.parse::<u32>().map_err(|_| StoreError::Invalid {
                field: "days",
                reason: format!("must be a whole number from 1 to {MAX_TOKEN_DAYS}"),
            })?),
            None => None,
        };
        s.store
            .create_scoped_api_token(f.username.trim(), f.name.trim(), scope, days)
            .await
    }
    .await;
    match created {
        Ok(t) => {
            tracing::info!(admin = %u.user.username, username = %f.username.trim(), token_id = t.id, scope = t.scope.as_str(), "API token created");
            render(
                &s,
                &u,
                None,
                None,
                Some((f.name.trim().to_owned(), t.token)),
            )
            .await
        }
        Err(e) => match PageError::from(e) {
            PageError::Page { status, detail, .. } if status.is_client_error() => {
                render(&s, &u, None, Some((status, detail)), None).await
            }
            other => Err(other),
        },
    }
}

pub async fn revoke(
    State(s): State<PortalState>,
    Path(id): Path<i64>,
    AdminForm(u, NoFields {}): AdminForm<NoFields>,
) -> Result<Response, PageError> {
    let r = s.store.revoke_api_token(id).await.map_err(PageError::from);
    if r.is_ok() {
        tracing::info!(admin = %u.user.username, token_id = id, "API token revoked");
    }
    outcome(r, "token-revoked", "/admin/tokens", |st, e| {
        render(&s, &u, None, Some((st, e)), None)
    })
    .await
}
