//! Every error-to-response mapping of the portal, in one place: for HTML pages ([`PageError`]: a
//! redirect to the login form, or an error page that says what happened) and for the JSON API
//! (`api_*_problem`: problem+json). Internal details go to the log, never to the caller.

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use msgrelay_certs::CertError;
use msgrelay_ops::Problem;
use msgrelay_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::actions::RetryError;
use crate::layout::Layout;

/// RFC 9457 problem details, the error body of every msgrelay API (`application/problem+json`).
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// `https://msgrelay.dev/problems/<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The offending input, for 4xx errors about one field.
    pub field: Option<String>,
    pub errors: Option<Vec<FieldErrorDoc>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDoc {
    pub field: String,
    pub reason: String,
}

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

impl From<CertError> for PageError {
    fn from(e: CertError) -> Self {
        match e {
            CertError::Store(e) => e.into(),
            CertError::NotFound(m) => Self::page(StatusCode::NOT_FOUND, "Not found", m),
            CertError::Invalid(m) => {
                Self::page(StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", m)
            }
            other => Self::internal(&other),
        }
    }
}

impl From<RetryError> for PageError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::Store(e) => e.into(),
            RetryError::Queue(e) => Self::internal(&e),
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

/// A store error as the JSON API answers it.
pub fn api_store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", "not found"),
        StoreError::Invalid { field, reason } => Problem::invalid_field(field, reason),
        StoreError::Conflict(what) => Problem::new(StatusCode::CONFLICT, "conflict", what),
        other => {
            tracing::error!(error = %other, "portal database error");
            Problem::unavailable("the database is unavailable; try again shortly", 5)
        }
    }
}

/// A certificate-lifecycle error as the JSON API answers it.
pub fn api_cert_problem(e: CertError) -> Problem {
    match e {
        CertError::Store(e) => api_store_problem(e),
        CertError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "not-found", m),
        CertError::Invalid(m) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", m),
        other => {
            tracing::error!(error = %other, "certificate operation failed");
            Problem::internal()
        }
    }
}
