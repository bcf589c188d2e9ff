//! The portal for browsers: server-rendered pages (askama templates in `templates/`), and the
//! vendored Bootstrap CSS and a tiny script under `/assets`.

mod assets;
mod clients;
mod dashboard;
mod login;
mod maintenance;
mod messages;
mod tokens;
mod users;

use axum::routing::{get, post};
use axum::Router;

use crate::PortalState;

/// Every HTML page and `/assets`.
pub fn router(state: PortalState) -> Router {
    Router::new()
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
        .with_state(state)
        .merge(assets::router())
}
