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

/// The JSON API's error answers that did not come from a handler: axum's extractor rejections
/// (a malformed JSON body, a wrong content type, a body over the limit, a path or query parameter
/// that does not decode) and 405 are plain text; here they become problem documents with the same
/// status. Applied to every `/api/v1` route, so no error of the JSON API leaves as anything but
/// `application/problem+json`.
pub async fn api_problem_only(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    // Rejection texts are short and describe the caller's own input; 5xx texts stay in the log.
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            "JSON API answered a non-problem server error"
        );
        let mut p = Problem::new(status, "internal", "internal error; the cause was logged");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            p.retry_after_secs = Some(5);
        }
        return p.into_response();
    }
    let (slug, default) = match status {
        StatusCode::BAD_REQUEST => ("malformed", "the request could not be read"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "this method is not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "send Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation", "the body does not match the schema"),
        _ => ("error", "the request was refused"),
    };
    let detail = if text.is_empty() {
        default.to_owned()
    } else {
        text
    };
    let mut p = Problem::new(status, slug, detail.clone());
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        p.field = rejected_field(&detail);
    }
    let mut resp = p.into_response();
    if let Some(allow) = allow {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}

/// The field a JSON data error is about: serde's "missing field `x`" / "unknown field `x`", or
/// the path `axum` puts before the message ("…target type: a.b: invalid type …").
fn rejected_field(detail: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = detail.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    let after = detail.split("target type: ").nth(1)?;
    let (path, _) = after.split_once(": ")?;
    (!path.is_empty() && !path.contains(' ') && path != ".").then(|| path.to_owned())
}

#[cfg(test)]
mod rejection_tests {
    use super::rejected_field;

    #[test]
    fn rejected_field_names_the_field() {
        assert_eq!(
            rejected_field("Failed to deserialize the JSON body into the target type: missing field `password` at line 1 column 20").as_deref(),
            Some("password")
        );
        assert_eq!(
            rejected_field("Failed to deserialize the JSON body into the target type: role: invalid type: integer `1`, expected a string at line 1 column 9").as_deref(),
            Some("role")
        );
        assert_eq!(
            rejected_field("Failed to parse the request body as JSON"),
            None
        );
    }
}
