//! The portal for browsers: server-rendered pages (askama templates in `templates/`), the vendored
//! Bootstrap CSS and a tiny script under `/assets`, the admin JSON API, and `/docs` (Swagger UI
//! with the OpenAPI documents). [`router`] merges all of it with the JSON API of `portal_api`.

mod admin_api;
mod assets;
mod clients;
mod dashboard;
mod error;
mod layout;
mod login;
mod maintenance;
mod messages;
pub mod openapi;
mod session;
mod tokens;
mod users;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use msgrelay_ops::Problem;

use crate::AppState;

/// Every route of the portal listener (pages, assets, docs, JSON API), with security headers.
pub(crate) fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/messages", get(messages::mine))
        .route("/messages/{id}", get(messages::detail))
        .route("/admin", get(dashboard::page))
        .route("/admin/messages", get(messages::all))
        .route("/admin/users", get(users::page).post(users::create))
        .route("/admin/users/{name}/role", post(users::set_role))
        .route("/admin/users/{name}/disable", post(users::disable))
        .route("/admin/users/{name}/enable", post(users::enable))
        .route("/admin/users/{name}/password", post(users::reset_password))
        .route("/admin/clients", get(clients::page).post(clients::create))
        .route("/admin/clients/{id}/disable", post(clients::disable))
        .route("/admin/clients/{id}/enable", post(clients::enable))
        .route("/admin/clients/{id}/issue", post(clients::issue))
        .route("/admin/clients/{id}/revoke", post(clients::revoke))
        .route("/admin/clients/{id}/bundle", post(clients::download_p12))
        .route("/admin/tokens", get(tokens::page).post(tokens::create))
        .route("/admin/tokens/{id}/revoke", post(tokens::revoke))
        .route("/admin/maintenance", get(maintenance::page))
        .route("/admin/maintenance/retry", post(maintenance::retry))
        .route("/admin/maintenance/purge", post(maintenance::purge))
        .route("/admin/maintenance/analyze", post(maintenance::analyze))
        .merge(admin_api::router())
        .with_state(state.clone());
    Router::new()
        .merge(pages)
        .merge(crate::portal_api::router(state))
        .merge(assets::router())
        .merge(openapi::router())
        .fallback(not_found)
        .layer(axum::middleware::map_response(
            crate::portal_api::security_headers,
        ))
}

/// Unknown paths: a problem document under `/api/`, an error page elsewhere.
async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint").into_response()
    } else {
        error::PageError::not_found().into_response()
    }
}
