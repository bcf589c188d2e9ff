//! The authorization matrix: every portal route × {anonymous, user, other user, admin}.
//! "user" is alice, "other" is bob; `{A}` is a message of alice's client. POSTs carry a valid
//! CSRF token for the session in use (so what is tested here is the role, not CSRF).

use reqwest::{Method, StatusCode};

use crate::support::{spawn_app, Session};

/// What a case expects: a status, or a redirect to the login form.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Exp {
    S(u16),
    Login,
}
use Exp::{Login, S};

enum Body {
    None,
    Form(&'static [(&'static str, &'static str)]),
    Json(&'static str),
}

struct Case {
    method: Method,
    path: &'static str,
    body: Body,
    /// anonymous, user (owner), other user, admin
    expect: [Exp; 4],
}

fn c(method: Method, path: &'static str, body: Body, expect: [Exp; 4]) -> Case {
    Case {
        method,
        path,
        body,
        expect,
    }
}

fn cases() -> Vec<Case> {
    use Body::{Form, Json, None as N};
    let (get, post) = (Method::GET, Method::POST);
    let html_admin = [Login, S(403), S(403)];
    let api_admin = [S(401), S(403), S(403)];
    let with = |a: [Exp; 3], admin: Exp| [a[0], a[1], a[2], admin];
    vec![
        // Public
        c(get.clone(), "/login", N, [S(200), S(303), S(303), S(303)]),
        c(get.clone(), "/assets/portal.js", N, [S(200); 4]),
        c(
            get.clone(),
            "/assets/bootstrap-5.3.9.min.css",
            N,
            [S(200); 4],
        ),
        c(get.clone(), "/docs/", N, [S(200); 4]),
        c(get.clone(), "/openapi/portal.json", N, [S(200); 4]),
        c(get.clone(), "/openapi/proxy.json", N, [S(200); 4]),
        c(get.clone(), "/openapi/internal.json", N, [S(200); 4]),
        c(get.clone(), "/api/v1/health", N, [S(200); 4]),
        c(get.clone(), "/no/such/page", N, [S(404); 4]),
        // Pages for every user
        c(get.clone(), "/", N, [S(303); 4]),
        c(get.clone(), "/messages", N, [Login, S(200), S(200), S(200)]),
        c(
            get.clone(),
            "/messages?status=delivered&page=1",
            N,
            [Login, S(200), S(200), S(200)],
        ),
        c(
            get.clone(),
            "/messages/{A}",
            N,
            [Login, S(200), S(404), S(200)],
        ),
        c(
            get.clone(),
            "/messages/00000000-0000-0000-0000-000000000000",
            N,
            [Login, S(404), S(404), S(404)],
        ),
        c(
            get.clone(),
            "/messages/not-a-uuid",
            N,
            [Login, S(404), S(404), S(404)],
        ),
        // Admin pages
        c(get.clone(), "/admin", N, with(html_admin, S(200))),
        c(get.clone(), "/admin/messages", N, with(html_admin, S(200))),
        c(get.clone(), "/admin/users", N, with(html_admin, S(200))),
        c(get.clone(), "/admin/clients", N, with(html_admin, S(200))),
        c(get.clone(), "/admin/tokens", N, with(html_admin, S(200))),
        c(
            get.clone(),
            "/admin/maintenance",
            N,
            with(html_admin, S(200)),
        ),
        c(
            post.clone(),
            "/admin/users",
            Form(&[
                ("username", "dave"),
                ("password", "a long password 1"),
                ("role", "user"),
            ]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/users/carol/role",
            Form(&[("role", "user")]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/users/carol/disable",
            Form(&[]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/users/carol/enable",
            Form(&[]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/users/carol/password",
            Form(&[("password", "another long password")]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/users/nobody/disable",
            Form(&[]),
            with(html_admin, S(404)),
        ),
        c(
            post.clone(),
            "/admin/clients",
            Form(&[
                ("client_id", "dave-app"),
                ("owner", "carol"),
                ("domain", "localhost"),
            ]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/clients/carol-app/disable",
            Form(&[]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/clients/carol-app/enable",
            Form(&[]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/clients/carol-app/issue",
            Form(&[("days", "30")]),
            with(html_admin, S(200)),
        ),
        c(
            post.clone(),
            "/admin/clients/carol-app/revoke",
            Form(&[("serial", "abcdef")]),
            with(html_admin, S(404)),
        ),
        c(
            post.clone(),
            "/admin/clients/carol-app/bundle",
            Form(&[("bundle", "20000101T000000.000Z")]),
            with(html_admin, S(404)),
        ),
        c(
            post.clone(),
            "/admin/tokens",
            Form(&[("username", "carol"), ("name", "matrix")]),
            with(html_admin, S(200)),
        ),
        c(
            post.clone(),
            "/admin/tokens/9999/revoke",
            Form(&[]),
            with(html_admin, S(404)),
        ),
        c(
            post.clone(),
            "/admin/maintenance/retry",
            Form(&[]),
            with(html_admin, S(303)),
        ),
        c(
            post.clone(),
            "/admin/maintenance/purge",
            Form(&[("days", "30")]),
            with(html_admin, S(200)),
        ),
        c(
            post.clone(),
            "/admin/maintenance/analyze",
            Form(&[]),
            with(html_admin, S(303)),
        ),
        // JSON API for every user
        c(
            get.clone(),
            "/api/v1/auth/me",
            N,
            [S(401), S(200), S(200), S(200)],
        ),
        c(
            get.clone(),
            "/api/v1/messages",
            N,
            [S(401), S(200), S(200), S(200)],
        ),
        c(
            get.clone(),
            "/api/v1/messages/{A}",
            N,
            [S(401), S(200), S(404), S(200)],
        ),
        // Admin JSON API
        c(
            get.clone(),
            "/api/v1/admin/users",
            N,
            with(api_admin, S(200)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/users",
            Json(r#"{"username":"erin","password":"a long password 2","role":"user"}"#),
            with(api_admin, S(201)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/users/carol/role",
            Json(r#"{"role":"user"}"#),
            with(api_admin, S(204)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/users/carol/disable",
            Json("{}"),
            with(api_admin, S(204)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/users/carol/enable",
            Json("{}"),
            with(api_admin, S(204)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/users/carol/password",
            Json(r#"{"password":"yet another password"}"#),
            with(api_admin, S(204)),
        ),
        c(
            get.clone(),
            "/api/v1/admin/clients",
            N,
            with(api_admin, S(200)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/clients",
            Json(r#"{"client_id":"erin-app","owner":"carol","domain":"localhost"}"#),
            with(api_admin, S(201)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/clients/carol-app/disable",
            Json("{}"),
            with(api_admin, S(204)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/clients/carol-app/enable",
            Json("{}"),
            with(api_admin, S(204)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/clients/carol-app/certificates",
            Json(r#"{"days":10}"#),
            with(api_admin, S(201)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/certificates/abcdef/revoke",
            Json("{}"),
            with(api_admin, S(404)),
        ),
        c(
            get.clone(),
            "/api/v1/admin/tokens",
            N,
            with(api_admin, S(200)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/tokens",
            Json(r#"{"username":"carol","name":"api"}"#),
            with(api_admin, S(201)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/tokens/9999/revoke",
            Json("{}"),
            with(api_admin, S(404)),
        ),
        c(
            get.clone(),
            "/api/v1/admin/maintenance/stats",
            N,
            with(api_admin, S(200)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/maintenance/retry",
            Json("{}"),
            with(api_admin, S(200)),
        ),
        c(
            post.clone(),
            "/api/v1/admin/maintenance/purge",
            Json(r#"{"older_than_days":30}"#),
            with(api_admin, S(200)),
        ),
        // Logout last (it ends the session).
        c(post, "/logout", Form(&[]), [Login, S(303), S(303), S(303)]),
    ]
}

#[tokio::test]
async fn authorization_matrix() {
    let app = spawn_app().await;
    let sessions = [
        Session::default(),
        app.login("alice").await,
        app.login("bob").await,
        app.login("boss").await,
    ];
    let names = ["anonymous", "user", "other user", "admin"];
    let mut failures = Vec::new();
    for case in cases() {
        let path = case.path.replace("{A}", &app.alice_msg.to_string());
        for (i, s) in sessions.iter().enumerate() {
            let r = match &case.body {
                Body::None => app.request(case.method.clone(), &path, s, None, None).await,
                Body::Form(fields) => app.post_form(&path, s, fields).await,
                Body::Json(j) => {
                    app.request(
                        case.method.clone(),
                        &path,
                        s,
                        None,
                        Some(serde_json::from_str(j).unwrap()),
                    )
                    .await
                }
            };
            let got = if r.status == StatusCode::SEE_OTHER
                && r.location().starts_with("/login?")
                && case.expect[i] == Login
            {
                Login
            } else {
                S(r.status.as_u16())
            };
            if got != case.expect[i] {
                failures.push(format!(
                    "{} {path} as {}: expected {:?}, got {:?} {}",
                    case.method,
                    names[i],
                    case.expect[i],
                    got,
                    r.location()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix:\n{}",
        failures.join("\n")
    );
}
