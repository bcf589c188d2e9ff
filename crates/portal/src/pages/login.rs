//! `/login` and `/logout` for browsers. Shares the failure throttle, the session store and the
//! session cookie with the JSON API; a login always creates a new session id (and ends the one the
//! browser had), so a session id planted before login is worthless.

use std::time::Duration;

use askama::Template;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use msgrelay_ops::metrics::Reason;
use msgrelay_store::StoreError;
use serde::Deserialize;

use crate::actions::{client_ip, note_refused, MAX_LOGIN_BODY};
use crate::http::PageError;
use crate::http::{cookie, session_cookie, SESSION_COOKIE};
use crate::http::{
    form_bytes_max, login_csrf_cookie, login_csrf_ok, parse_form, random_token, CsrfForm, PageUser,
};
use crate::layout::Layout;
use crate::PortalState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf_token: String,
    next: String,
    username: String,
    notice: Option<&'static str>,
    error: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    logged_out: Option<String>,
}

use msgrelay_auth::safe_next;

fn render(
    token: &str,
    next: &str,
    username: &str,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
    set_cookie: bool,
) -> Response {
    let page = LoginPage {
        layout: Layout::anonymous("Log in"),
        csrf_token: token.to_owned(),
        next: next.to_owned(),
        username: username.to_owned(),
        notice,
        error,
    };
    match page.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            if set_cookie {
                resp.headers_mut()
                    .append(header::SET_COOKIE, login_csrf_cookie(token, 3600));
            }
            resp
        }
        Err(e) => PageError::from(e).into_response(),
    }
}

/// The login form. Someone already logged in goes straight on.
pub async fn form(
    State(s): State<PortalState>,
    Query(q): Query<LoginQuery>,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    if PageUser::from_request_parts(&mut parts, &s).await.is_ok() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let notice = q
        .logged_out
        .is_some()
        .then_some("You have been logged out.");
    render(
        &random_token(),
        &safe_next(q.next.as_deref()),
        "",
        notice,
        None,
        StatusCode::OK,
        true,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn submit(State(s): State<PortalState>, req: Request) -> Result<Response, PageError> {
    let (parts, body) = req.into_parts();
    let form: LoginForm = parse_form(
        &form_bytes_max(Request::from_parts(parts.clone(), body), MAX_LOGIN_BODY).await?,
    )?;
    if !login_csrf_ok(&parts, &form.csrf_token) {
        tracing::warn!("login form refused: bad CSRF token");
        return Err(PageError::forbidden("The login form has expired or did not come from this site. Open the login page again and retry."));
    }
    let next = safe_next(form.next.as_deref());
    if form.username.len() > msgrelay_auth::MAX_USERNAME_BYTES {
        return Ok(render(
            &form.csrf_token,
            &next,
            "",
            None,
            Some("Usernames are at most 64 bytes long."),
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
        ));
    }
    let username = form.username.trim().to_owned();
    let again = |error: &'static str, status: StatusCode| {
        render(
            &form.csrf_token,
            &next,
            &username,
            None,
            Some(error),
            status,
            false,
        )
    };
    let peer = parts.extensions.get::<msgrelay_tls::PeerInfo>();
    let reservation = match s.login_limiter.reserve(&username, client_ip(peer)) {
        Ok(r) => r,
        Err(refused) => {
            note_refused(&s, &username, &refused);
            let mut resp = again(
                "Too many failed logins. Wait a while, then try again.",
                StatusCode::TOO_MANY_REQUESTS,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, refused.retry_after_secs().into());
            return Ok(resp);
        }
    };
    let user = match s.store.verify_login(&username, &form.password).await {
        Ok(u) => u,
        Err(StoreError::BadCredentials) => {
            tracing::warn!(user_tag = %msgrelay_auth::username_tag(&username), "portal login failed");
            s.metrics
                .logins
                .get_or_create(&Reason { reason: "failure" })
                .inc();
            return Ok(again(
                "Wrong username or password, or the account is disabled.",
                StatusCode::UNAUTHORIZED,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    reservation.succeeded();
    // Rotate: whatever session id the browser had is ended; the new one is fresh.
    if let Some(old) = cookie(&parts, SESSION_COOKIE).filter(|t| !t.is_empty()) {
        s.store.delete_session(&old).await?;
    }
    let ttl = Duration::from_secs(s.cfg.portal.session_ttl_secs);
    let session = s
        .store
        .open_session(
            user.id,
            ttl,
            Duration::from_secs(s.cfg.portal.session_absolute_secs),
        )
        .await?;
    tracing::info!(username = %user.username, role = user.role.as_str(), "portal login");
    s.metrics
        .logins
        .get_or_create(&Reason { reason: "success" })
        .inc();
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        session_cookie(&session.token, ttl.as_secs()),
    );
    h.append(header::SET_COOKIE, login_csrf_cookie("", 0));
    Ok(resp)
}

#[derive(Deserialize)]
pub struct Empty {}

/// Ends the session (the cookie is dead server-side even if a copy of it survives).
pub async fn logout(
    State(s): State<PortalState>,
    CsrfForm(u, Empty {}): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    s.store.delete_session(&u.token).await?;
    tracing::info!(username = %u.user.username, "portal logout");
    let mut resp = Redirect::to("/login?logged_out=1").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, session_cookie("", 0));
    Ok(resp)
}

/// `/`: the messages page (which sends anonymous visitors to the login form).
pub async fn home(u: Result<PageUser, PageError>) -> Redirect {
    match u {
        Ok(u) if u.is_admin() => Redirect::to("/admin"),
        _ => Redirect::to("/messages"),
    }
}
