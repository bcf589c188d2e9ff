//! Authentication of HTML pages: the session cookie only (no Bearer tokens in a browser), and a
//! CSRF token in a hidden form field on every POST, checked by the [`CsrfForm`] extractor before
//! the handler runs. The login form itself, having no session yet, uses a double-submit token: a
//! random value in a `__Host-` cookie that must equal the hidden field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use msgrelay_core::Role;
use msgrelay_store::User;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::errors::PageError;
use super::extract::{cookie, Caller, Via, SESSION_COOKIE};
use crate::layout::{Layout, NavUser, ASSET_VERSION};
use crate::PortalState;

/// Cookie holding the login form's CSRF token (only sent to `/login`).
pub const LOGIN_CSRF_COOKIE: &str = "__Host-msgrelay_login_csrf";
/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A user with a live portal session.
#[derive(Clone)]
pub struct PageUser {
    pub user: User,
    pub token: String,
    pub csrf: String,
}

/// Redacted: the session id and CSRF token never reach a log.
impl std::fmt::Debug for PageUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageUser")
            .field("user", &self.user)
            .field("token", &"***")
            .field("csrf", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_redacts_session_secrets() {
        let u = super::PageUser {
            user: msgrelay_store::User {
                id: 1,
                username: "u".into(),
                role: msgrelay_core::Role::User,
                disabled: false,
                created_at_ms: 0,
                last_login_at_ms: None,
            },
            token: "sekrit-token".into(),
            csrf: "sekrit-csrf".into(),
        };
        let d = format!("{u:?} {:?}", u.caller());
        assert!(!d.contains("sekrit"), "{d}");
    }
}

impl PageUser {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// The same caller as the JSON API sees it (for the shared message filter).
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.clone(),
            via: Via::Session {
                token: self.token.clone(),
                csrf: self.csrf.clone(),
            },
        }
    }

    fn require_admin(self) -> Result<Self, PageError> {
        if self.is_admin() {
            Ok(self)
        } else {
            Err(PageError::forbidden(
                "This page is for administrators. Your account has the role user.",
            ))
        }
    }
}

/// Where to come back to after logging in: the path and query of this request.
fn next_of(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into())
}

impl FromRequestParts<PortalState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, PageError> {
        let login = || PageError::Login {
            next: next_of(parts),
        };
        let token = cookie(parts, SESSION_COOKIE)
            .filter(|t| !t.is_empty())
            .ok_or_else(login)?;
        let (user, csrf) = state.store.get_session(&token).await?.ok_or_else(login)?;
        Ok(PageUser { user, token, csrf })
    }
}

/// A logged-in administrator; anyone else logged in gets the 403 page.
pub struct PageAdmin(pub PageUser);

impl FromRequestParts<PortalState> for PageAdmin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, PageError> {
        Ok(PageAdmin(
            PageUser::from_request_parts(parts, state)
                .await?
                .require_admin()?,
        ))
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf_token: String,
}

/// Constant-time comparison of a submitted token with the expected one (empty never matches).
pub fn tokens_match(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

fn csrf_refused() -> PageError {
    PageError::forbidden("The form was refused because its security token is missing or out of date (it may come from another site, or your session changed). Go back, reload the page and submit it again.")
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
pub async fn form_bytes(req: Request) -> Result<axum::body::Bytes, PageError> {
    form_bytes_max(req, MAX_FORM_BYTES).await
}

/// Reads a form body of at most `max` bytes.
pub async fn form_bytes_max(req: Request, max: usize) -> Result<axum::body::Bytes, PageError> {
    axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| {
            PageError::page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The submitted form is larger than the server accepts.",
            )
        })
}

/// Parses a form body; a malformed one is a 400 page naming no internals.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| PageError::bad_request(format!("The form could not be read: {e}.")))
}

/// A POSTed form from a logged-in user whose `csrf_token` field matched the session's token.
pub struct CsrfForm<T>(pub PageUser, pub T);

impl<T: DeserializeOwned + Send> FromRequest<PortalState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &PortalState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let user = PageUser::from_request_parts(&mut parts, state).await?;
        let body = form_bytes(Request::from_parts(parts, body)).await?;
        let sent: CsrfField = parse_form(&body)?;
        if !tokens_match(&sent.csrf_token, &user.csrf) {
            tracing::warn!(username = %user.user.username, "portal form refused: bad CSRF token");
            return Err(csrf_refused());
        }
        Ok(CsrfForm(user, parse_form(&body)?))
    }
}

/// [`CsrfForm`] from an administrator.
pub struct AdminForm<T>(pub PageUser, pub T);

impl<T: DeserializeOwned + Send> FromRequest<PortalState> for AdminForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &PortalState) -> Result<Self, PageError> {
        let CsrfForm(user, form) = CsrfForm::<T>::from_request(req, state).await?;
        Ok(AdminForm(user.require_admin()?, form))
    }
}

/// A fresh random token, base64url (256 bits).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    B64URL.encode(b)
}

/// Session cookie: never readable by scripts, never sent cross-site or over plain HTTP.
pub fn session_cookie(token: &str, max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"))
        .expect("token is base64url")
}

/// The login form's CSRF cookie (`__Host-`: Secure, Path=/, no Domain; gone after an hour or a login).
pub fn login_csrf_cookie(token: &str, max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("{LOGIN_CSRF_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"))
        .expect("token is base64url")
}

/// Checks a login form's token against its cookie.
pub fn login_csrf_ok(parts: &Parts, sent: &str) -> bool {
    cookie(parts, LOGIN_CSRF_COOKIE).is_some_and(|c| tokens_match(sent, &c))
}

/// The layout of a page shown to a logged-in user (here, not in `layout`, so that `layout`
/// depends on nothing in `http`).
impl Layout {
    pub fn for_user(title: &str, active: &'static str, u: &PageUser) -> Self {
        Self {
            title: title.to_owned(),
            active,
            user: Some(NavUser {
                username: u.user.username.clone(),
                is_admin: u.is_admin(),
                csrf: u.csrf.clone(),
            }),
            asset_version: ASSET_VERSION,
        }
    }
}
