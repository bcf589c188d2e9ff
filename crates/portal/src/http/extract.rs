//! Portal authentication: the session cookie (with a CSRF token for unsafe methods) or an
//! `Authorization: Bearer` API token, resolved by the [`Caller`] extractor so handlers never
//! deal with credentials themselves.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use msgrelay_core::Role;
use msgrelay_ops::Problem;
use msgrelay_store::{TokenScope, User};
use subtle::ConstantTimeEq;

use crate::PortalState;

/// Name of the portal session cookie.
pub const SESSION_COOKIE: &str = "__Host-msgrelay_session";

/// How the caller authenticated.
#[derive(Clone)]
pub enum Via {
    Session {
        token: String,
        csrf: String,
    },
    /// An API token; its scope limits what it may do (`read`: the message API only).
    Bearer {
        scope: TokenScope,
    },
}

/// Redacted: a session id or CSRF token in a log is a stolen session.
impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Session { .. } => f.write_str("Session { token: ***, csrf: *** }"),
            Via::Bearer { scope } => write!(f, "Bearer {{ scope: {} }}", scope.as_str()),
        }
    }
}

/// An authenticated portal caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub via: Via,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// `None` for admins (everything is visible), else the user id whose clients are visible.
    pub fn visible_to(&self) -> Option<i64> {
        (!self.is_admin()).then_some(self.user.id)
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail.to_owned())
}

/// Reads one cookie's value from the request.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<PortalState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Problem> {
        let db_error = |e: msgrelay_store::StoreError| {
            tracing::error!(error = %e, "authentication lookup failed");
            Problem::unavailable("database unavailable", 5)
        };
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let token = auth
                .strip_prefix("Bearer ")
                .ok_or_else(|| unauthorized("use `Authorization: Bearer <token>`"))?;
            let auth = state
                .store
                .authenticate_scoped_api_token(token.trim())
                .await
                .map_err(db_error)?;
            return auth
                .map(|a| Caller {
                    user: a.user,
                    via: Via::Bearer { scope: a.scope },
                })
                .ok_or_else(|| unauthorized("invalid, expired or revoked API token"));
        }
        let token = cookie(parts, SESSION_COOKIE)
            .ok_or_else(|| unauthorized("log in first (POST /api/v1/auth/login)"))?;
        let (user, csrf) = state
            .store
            .get_session(&token)
            .await
            .map_err(db_error)?
            .ok_or_else(|| unauthorized("session expired or logged out"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !bool::from(sent.as_bytes().ct_eq(csrf.as_bytes())) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token header",
                ));
            }
        }
        Ok(Caller {
            user,
            via: Via::Session { token, csrf },
        })
    }
}

/// An authenticated admin; anyone else gets 403 (or 401 when not logged in).
pub struct Admin(pub Caller);

impl FromRequestParts<PortalState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Problem> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if let Via::Bearer { scope } = caller.via {
            if !scope.allows(TokenScope::Admin) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this API token has the read scope; the admin API needs an admin-scope token",
                ));
            }
        }
        if caller.is_admin() {
            Ok(Admin(caller))
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "administrators only",
            ))
        }
    }
}
