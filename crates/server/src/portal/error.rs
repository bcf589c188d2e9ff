//! What an HTML page answers when it cannot show what was asked: a redirect to the login form, or
//! an error page that says what happened (never internal details: those go to the log).

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use msgrelay_store::StoreError;

use super::layout::Layout;

/// Why a page is not shown.
#[derive(Debug)]
pub enum PageError {
    /// Not logged in (or the session is dead): go to the login form, then back to `next`.
    Login { next: String },
    /// An error page with this status.
    Page {
        status: StatusCode,
        title: &'static str,
        detail: String,
    },
}

impl PageError {
    pub fn not_found() -> Self {
        Self::page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing at this address, or you are not allowed to see it.",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::page(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::page(StatusCode::BAD_REQUEST, "Bad request", detail)
    }

    /// 500 after logging `what` (the page itself says nothing about the cause).
    pub fn internal(what: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %what, "portal page failed");
        Self::page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "Something went wrong on the server. The cause was logged; try again or tell the administrator.")
    }

    pub fn page(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self::Page {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(),
            StoreError::Invalid { field, reason } => Self::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid input",
                format!("{field}: {reason}"),
            ),
            StoreError::Conflict(what) => Self::page(StatusCode::CONFLICT, "Conflict", what),
            other => {
                tracing::error!(error = %other, "portal database error");
                Self::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable",
                    "The database cannot be reached right now. Try again in a few seconds.",
                )
            }
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        Self::internal(&e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    detail: &'a str,
}

/// Renders the error page without any user context (it may be answering an anonymous caller).
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let page = ErrorPage {
        layout: Layout::anonymous(title),
        status: status.as_u16(),
        detail,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page cannot be rendered");
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                detail.to_owned(),
            )
                .into_response()
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::Login { next } => {
                let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/login?{q}")).into_response()
            }
            Self::Page {
                status,
                title,
                detail,
            } => error_page(status, title, &detail),
        }
    }
}
