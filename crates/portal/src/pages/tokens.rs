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

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub username: String,
    pub created: When,
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
    let tokens = s
        .store
        .list_api_tokens(None)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            username: t.username,
            created: When::from_ms(t.created_at_ms),
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
}

pub async fn create(
    State(s): State<PortalState>,
    AdminForm(u, f): AdminForm<CreateToken>,
) -> Result<Response, PageError> {
    match s
        .store
        .create_api_token(f.username.trim(), f.name.trim())
        .await
    {
        Ok((id, raw)) => {
            tracing::info!(admin = %u.user.username, username = %f.username.trim(), token_id = id, "API token created");
            render(&s, &u, None, None, Some((f.name.trim().to_owned(), raw))).await
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
