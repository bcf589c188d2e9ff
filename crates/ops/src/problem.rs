//! RFC 9457 problem details: the one error body every msgrelay HTTP API returns.
//! 5xx problems are opaque (details belong in the log, not in the response).

use std::ops::{Deref, DerefMut};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An `application/problem+json` response; its fields ([`ProblemBody`]) are reached through
/// `Deref`. Boxed so that `Result<_, Problem>` stays one pointer wide (clippy::result_large_err):
/// handlers return it on every path.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemBody>);

/// The members of a problem. `field` names the offending input for 4xx errors.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

/// One invalid field and why.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl Problem {
    /// A problem with a status, a short slug for `type` and a human detail.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemBody {
            kind: format!("https://msgrelay.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
            retry_after_secs: None,
        }))
    }

    /// 422 naming one invalid field.
    pub fn invalid_field(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            format!("{field}: {reason}"),
        );
        p.field = Some(field.to_owned());
        p.errors.push(FieldError {
            field: field.to_owned(),
            reason,
        });
        p
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut p = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        p.retry_after_secs = Some(retry_after_secs);
        p
    }

    /// 503 `saturated`: the queue is at its high-water mark (`queue.max_depth`); nothing was
    /// stored, the client retries after `Retry-After`.
    pub fn saturated(retry_after_secs: u64) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "saturated",
            "the relay is saturated: its queue is full until workers deliver the backlog; nothing was stored, retry after Retry-After seconds",
        );
        p.retry_after_secs = Some(retry_after_secs);
        p
    }

    /// 500 without details (log the cause before returning this).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the cause was logged",
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

impl DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemBody {
        &mut self.0
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (self.status(), body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
