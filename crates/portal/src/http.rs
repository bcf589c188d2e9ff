//! The portal's HTTP edge, shared by pages and the JSON API: the security headers (applied once,
//! to every response of the portal listener, by [`crate::router`]), the error-to-response
//! mappings (`errors`) and the extractors that authenticate callers (`extract` for the JSON API,
//! `session` for pages).

mod errors;
mod extract;
mod session;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use msgrelay_ops::Problem;

pub use errors::{
    api_cert_problem, api_problem_only, api_store_problem, FieldErrorDoc, PageError, ProblemDoc,
};
pub use extract::{cookie, Admin, Caller, Via, SESSION_COOKIE};
pub use session::{
    form_bytes_max, login_csrf_cookie, login_csrf_ok, parse_form, random_token, session_cookie,
    AdminForm, CsrfForm, PageAdmin, PageUser,
};

/// Headers every portal response carries.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Unknown paths: a problem document under `/api/`, an error page elsewhere.
pub async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint").into_response()
    } else {
        PageError::not_found().into_response()
    }
}
