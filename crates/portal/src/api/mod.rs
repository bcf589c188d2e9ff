//! The portal JSON API under `/api/v1`: `user` (login, logout, messages) for everyone with an
//! account, `admin` for administrators. Both authenticate with the extractors of `crate::http`.

pub mod admin;
pub(crate) mod doc_types;
pub mod user;
mod views;

use axum::Router;

pub use user::ListQuery;
pub use views::{MessageDetail, MessageListItem};

use crate::PortalState;

/// Every `/api/v1` route.
pub fn router(state: PortalState) -> Router {
    Router::new()
        .merge(user::router(state.clone()))
        .merge(admin::router().with_state(state))
        .layer(axum::middleware::map_response(
            crate::http::api_problem_only,
        ))
}
