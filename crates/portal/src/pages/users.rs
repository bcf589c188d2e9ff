//! `/admin/users`: create users, set roles, disable/enable, reset passwords, see last logins.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use msgrelay_core::Role;
use serde::Deserialize;

use crate::http::PageError;
use crate::http::{AdminForm, PageAdmin, PageUser};
use crate::layout::{done_notice, Layout, When};
use crate::PortalState;

pub struct UserRow {
    pub username: String,
    pub role: &'static str,
    pub disabled: bool,
    pub created: When,
    pub last_login: Option<When>,
    pub is_self: bool,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    layout: Layout,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
    users: Vec<UserRow>,
    roles: [&'static str; 2],
}

#[derive(Deserialize, Default)]
pub struct Done {
    pub done: Option<String>,
}

async fn render(
    s: &PortalState,
    u: &PageUser,
    notice: Option<&'static str>,
    error: Option<(StatusCode, String)>,
) -> Result<Response, PageError> {
    let users = s
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|x| UserRow {
            is_self: x.id == u.user.id,
            username: x.username,
            role: x.role.as_str(),
            disabled: x.disabled,
            created: When::from_ms(x.created_at_ms),
            last_login: When::opt(x.last_login_at_ms),
        })
        .collect();
    let status = error.as_ref().map(|e| e.0).unwrap_or(StatusCode::OK);
    let page = UsersPage {
        layout: Layout::for_user("Users", "users", u),
        csrf: u.csrf.clone(),
        notice,
        error: error.map(|e| e.1),
        users,
        roles: ["user", "admin"],
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// Runs an action; on a refusable error shows the page again with the reason, else redirects.
pub(super) async fn outcome<F: std::future::Future<Output = Result<Response, PageError>>>(
    result: Result<(), PageError>,
    done: &str,
    base: &str,
    again: impl FnOnce(StatusCode, String) -> F,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("{base}?done={done}")).into_response()),
        Err(PageError::Page { status, detail, .. }) if status.is_client_error() => {
            again(status, detail).await
        }
        Err(e) => Err(e),
    }
}

pub async fn page(
    State(s): State<PortalState>,
    PageAdmin(u): PageAdmin,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    render(&s, &u, done_notice(q.done.as_deref()), None).await
}

fn parse_role(r: &str) -> Result<Role, PageError> {
    Role::parse(r).map_err(|_| {
        PageError::page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input",
            "role: must be user or admin",
        )
    })
}

#[derive(Deserialize)]
pub struct CreateUser {
    username: String,
    password: String,
    role: String,
}

pub async fn create(
    State(s): State<PortalState>,
    AdminForm(u, f): AdminForm<CreateUser>,
) -> Result<Response, PageError> {
    let r = async {
        let role = parse_role(&f.role)?;
        s.store.create_user(f.username.trim(), &f.password, role).await?;
        tracing::info!(admin = %u.user.username, username = %f.username.trim(), role = role.as_str(), "portal user created");
        Ok(())
    }
    .await;
    outcome(r, "user-created", "/admin/users", |st, e| {
        render(&s, &u, None, Some((st, e)))
    })
    .await
}

#[derive(Deserialize)]
pub struct SetRole {
    role: String,
}

/// Refuses to let an administrator lock themselves out.
fn not_self(u: &PageUser, name: &str, what: &str) -> Result<(), PageError> {
    if u.user.username == name {
        return Err(PageError::page(
            StatusCode::CONFLICT,
            "Conflict",
            format!("You cannot {what} your own account; ask another administrator."),
        ));
    }
    Ok(())
}

pub async fn set_role(
    State(s): State<PortalState>,
    Path(name): Path<String>,
    AdminForm(u, f): AdminForm<SetRole>,
) -> Result<Response, PageError> {
    let r = async {
        let role = parse_role(&f.role)?;
        if role != Role::Admin {
            not_self(&u, &name, "demote")?;
        }
        s.store.set_user_role(&name, role).await?;
        tracing::info!(admin = %u.user.username, username = %name, role = role.as_str(), "portal user role set");
        Ok(())
    }
    .await;
    outcome(r, "role-set", "/admin/users", |st, e| {
        render(&s, &u, None, Some((st, e)))
    })
    .await
}

#[derive(Deserialize)]
pub struct NoFields {}

pub async fn disable(
    State(s): State<PortalState>,
    Path(name): Path<String>,
    AdminForm(u, NoFields {}): AdminForm<NoFields>,
) -> Result<Response, PageError> {
    let r = async {
        not_self(&u, &name, "disable")?;
        s.store.set_user_disabled(&name, true).await?;
        tracing::info!(admin = %u.user.username, username = %name, "portal user disabled");
        Ok(())
    }
    .await;
    outcome(r, "user-disabled", "/admin/users", |st, e| {
        render(&s, &u, None, Some((st, e)))
    })
    .await
}

pub async fn enable(
    State(s): State<PortalState>,
    Path(name): Path<String>,
    AdminForm(u, NoFields {}): AdminForm<NoFields>,
) -> Result<Response, PageError> {
    let r = s
        .store
        .set_user_disabled(&name, false)
        .await
        .map_err(PageError::from);
    tracing::info!(admin = %u.user.username, username = %name, "portal user enabled");
    outcome(r, "user-enabled", "/admin/users", |st, e| {
        render(&s, &u, None, Some((st, e)))
    })
    .await
}

#[derive(Deserialize)]
pub struct ResetPassword {
    password: String,
}

pub async fn reset_password(
    State(s): State<PortalState>,
    Path(name): Path<String>,
    AdminForm(u, f): AdminForm<ResetPassword>,
) -> Result<Response, PageError> {
    let r = s
        .store
        .reset_password(&name, &f.password)
        .await
        .map_err(PageError::from);
    if r.is_ok() {
        tracing::info!(admin = %u.user.username, username = %name, "portal user password reset");
    }
    outcome(r, "password-reset", "/admin/users", |st, e| {
        render(&s, &u, None, Some((st, e)))
    })
    .await
}
