//! Static files compiled into the binary (nothing is fetched from a CDN): Bootstrap 5.3.9's CSS
//! (from the npm package `bootstrap`, MIT, see `assets/bootstrap-LICENSE`), the portal's own CSS
//! and the script that shows `<time>` elements in the browser's time zone.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::PageError;

const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "bootstrap-5.3.9.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/bootstrap-5.3.9.min.css"),
    ),
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/portal.css"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/portal.js"),
    ),
];

pub fn router() -> Router {
    Router::new().route("/assets/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        // Versioned URLs (`?v=` or the file name) make a year-long cache safe.
        Some((_, mime, body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *body,
        )
            .into_response(),
        None => PageError::not_found().into_response(),
    }
}
