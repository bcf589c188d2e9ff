//! Attacks with stolen or stale credentials: cookies a sibling subdomain could plant or read,
//! sessions kept alive forever, sessions and API tokens that outlive a password reset or a
//! disabled account, and read-only tokens used on the admin API.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{run, Body, Session, TestRelay};

fn bearer(token: &str) -> reqwest::header::HeaderValue {
    format!("Bearer {token}").parse().unwrap()
}

async fn with_token(relay: &TestRelay, token: &str, path: &str) -> StatusCode {
    relay
        .portal_raw_client(None)
        .get(format!(
            "https://localhost:{}{path}",
            relay.portal_addr().port()
        ))
        .header("authorization", bearer(token))
        .send()
        .await
        .expect("request")
        .status()
}

/// Creates a token through the admin API; returns the whole answer.
async fn create_token(relay: &TestRelay, admin: &Session, body: Value) -> (StatusCode, Value) {
    let r = relay
        .portal(
            Method::POST,
            "/api/v1/admin/tokens",
            Some(admin),
            Body::Json(body),
        )
        .await;
    (r.status, r.json())
}

#[tokio::test]
async fn session_and_csrf_cookies_use_the_host_prefix() {
    let relay = TestRelay::up(&[]).await;
    let password = relay.bootstrap_password("demo");
    let api = relay
        .portal(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": "demo", "password": password})),
        )
        .await;
    let form = relay.portal(Method::GET, "/login", None, Body::None).await;
    let html = relay.html_login("demo", &password, None, "").await;
    for (what, c) in [
        ("API session", api.set_cookie("msgrelay_session")),
        ("login form CSRF", form.set_cookie("login_csrf")),
        ("HTML session", html.set_cookie("msgrelay_session")),
    ] {
        let c = c.unwrap_or_else(|| panic!("{what}: no cookie"));
        let attrs: Vec<&str> = c.split(';').map(str::trim).collect();
        assert!(attrs[0].starts_with("__Host-"), "{what}: {c}");
        assert!(
            attrs.contains(&"Secure") && attrs.contains(&"Path=/") && attrs.contains(&"HttpOnly"),
            "{what}: {c}"
        );
        assert!(attrs.contains(&"SameSite=Strict"), "{what}: {c}");
        assert!(!c.to_ascii_lowercase().contains("domain="), "{what}: {c}");
    }
    // A cookie without the prefix (what a sibling subdomain could set) authenticates nobody.
    let good = api.cookie_pair("msgrelay_session").unwrap();
    let value = good.split_once('=').unwrap().1;
    assert_eq!(
        relay
            .portal_get(
                Some(&Session {
                    cookie: good.clone(),
                    csrf: String::new()
                }),
                "/api/v1/auth/me"
            )
            .await
            .0,
        StatusCode::OK
    );
    let unprefixed = Session {
        cookie: format!("msgrelay_session={value}"),
        csrf: String::new(),
    };
    assert_eq!(
        relay
            .portal_get(Some(&unprefixed), "/api/v1/auth/me")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_in_constant_use_still_ends_at_its_absolute_lifetime() {
    let relay = TestRelay::up(&[("MSGRELAY_PORTAL__SESSION_ABSOLUTE_SECS", "2")]).await;
    let demo = relay.portal_login("demo").await;
    let started = Instant::now();
    let mut uses = 0;
    loop {
        let status = relay.portal_get(Some(&demo), "/api/v1/auth/me").await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        uses += 1;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the session outlived its absolute lifetime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(uses >= 1, "the session worked before it ended");
    // A fresh login works again.
    relay.portal_login("demo").await;
}

#[tokio::test]
async fn a_password_reset_or_disabling_ends_sessions_and_revokes_api_tokens() {
    let relay = TestRelay::up(&[]).await;
    let admin = relay.portal_login("admin").await;
    let pw = relay.create_user("alice", "user").await;

    // Reset by an administrator in the portal.
    let alice = relay.portal_login_with("alice", &pw).await;
    let (status, t) =
        create_token(&relay, &admin, json!({"username": "alice", "name": "ci"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(
        with_token(&relay, &token, "/api/v1/messages").await,
        StatusCode::OK
    );
    let r = relay
        .portal(
            Method::POST,
            "/api/v1/admin/users/alice/password",
            Some(&admin),
            Body::Json(json!({"password": "a whole new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        relay.portal_get(Some(&alice), "/api/v1/auth/me").await.0,
        StatusCode::UNAUTHORIZED,
        "session ended"
    );
    assert_eq!(
        with_token(&relay, &token, "/api/v1/messages").await,
        StatusCode::UNAUTHORIZED,
        "token revoked"
    );

    // Reset with the CLI.
    let alice = relay
        .portal_login_with("alice", "a whole new password")
        .await;
    let (_, t) = create_token(&relay, &admin, json!({"username": "alice", "name": "ci2"})).await;
    let token = t["token"].as_str().unwrap().to_owned();
    let out = crate::support::run_with_stdin(
        relay.cli(&["admin", "user", "reset-password", "--username", "alice"]),
        "yet another password\n".into(),
    )
    .await;
    assert!(out.status.success());
    assert_eq!(
        relay.portal_get(Some(&alice), "/api/v1/auth/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_token(&relay, &token, "/api/v1/messages").await,
        StatusCode::UNAUTHORIZED
    );

    // Disabling; enabling again brings neither back.
    let alice = relay
        .portal_login_with("alice", "yet another password")
        .await;
    let (_, t) = create_token(&relay, &admin, json!({"username": "alice", "name": "ci3"})).await;
    let token = t["token"].as_str().unwrap().to_owned();
    let out = run(relay.cli(&["admin", "user", "disable", "--username", "alice"])).await;
    assert!(out.status.success());
    assert_eq!(
        relay.portal_get(Some(&alice), "/api/v1/auth/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_token(&relay, &token, "/api/v1/messages").await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        run(relay.cli(&["admin", "user", "enable", "--username", "alice"]))
            .await
            .status
            .success()
    );
    assert_eq!(
        with_token(&relay, &token, "/api/v1/messages").await,
        StatusCode::UNAUTHORIZED,
        "still revoked"
    );
    assert_eq!(
        relay.portal_get(Some(&alice), "/api/v1/auth/me").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_read_token_cannot_use_the_admin_api() {
    let relay = TestRelay::up(&[]).await;
    let admin = relay.portal_login("admin").await;
    let (status, read) = create_token(
        &relay,
        &admin,
        json!({"username": "admin", "name": "reader", "scope": "read", "days": 30}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{read}");
    assert_eq!(read["scope"], "read");
    assert!(read["expires_at"].is_string(), "{read}");
    let (_, full) = create_token(
        &relay,
        &admin,
        json!({"username": "admin", "name": "ops", "scope": "admin"}),
    )
    .await;
    let (read, full) = (
        read["token"].as_str().unwrap(),
        full["token"].as_str().unwrap(),
    );

    assert_eq!(
        with_token(&relay, read, "/api/v1/messages").await,
        StatusCode::OK
    );
    assert_eq!(
        with_token(&relay, read, "/api/v1/admin/users").await,
        StatusCode::FORBIDDEN,
        "read scope on the admin API"
    );
    assert_eq!(
        with_token(&relay, full, "/api/v1/admin/users").await,
        StatusCode::OK
    );

    // A user's token cannot have the admin scope, and lifetimes are bounded.
    relay.create_user("alice", "user").await;
    let (status, p) = create_token(
        &relay,
        &admin,
        json!({"username": "alice", "name": "x", "scope": "admin"}),
    )
    .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scope")),
        "{p}"
    );
    let (status, p) = create_token(
        &relay,
        &admin,
        json!({"username": "alice", "name": "x", "days": 0}),
    )
    .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("days")),
        "{p}"
    );
    // The list shows scope and expiry, never the token.
    let list = relay
        .portal_get(Some(&admin), "/api/v1/admin/tokens")
        .await
        .1;
    assert!(
        list.to_string().contains("\"scope\"") && list.to_string().contains("expires_at"),
        "{list}"
    );
    assert!(!list.to_string().contains(read));
    // The CLI created tokens work the same way.
    let out = run(relay.cli(&[
        "admin",
        "token",
        "create",
        "--username",
        "admin",
        "--scope",
        "read",
        "--days",
        "1",
    ]))
    .await;
    assert!(out.status.success());
    let cli_token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(
        with_token(&relay, &cli_token, "/api/v1/admin/users").await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_admin_tokens_page_chooses_and_shows_scope_and_expiry() {
    let relay = TestRelay::up(&[]).await;
    let login = relay
        .html_login("admin", &relay.bootstrap_password("admin"), None, "")
        .await;
    let session = Session {
        cookie: login
            .cookie_pair("msgrelay_session")
            .expect("session cookie"),
        csrf: String::new(),
    };
    let page = relay
        .portal(Method::GET, "/admin/tokens", Some(&session), Body::None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"scope\"") && page.body.contains("name=\"days\""));
    let csrf = crate::support::hidden_value(&page.body, "csrf_token").expect("csrf_token");
    let created = relay
        .portal(
            Method::POST,
            "/admin/tokens",
            Some(&session),
            Body::form(&[
                ("csrf_token", &csrf),
                ("username", "admin"),
                ("name", "ops"),
                ("scope", "admin"),
                ("days", "7"),
            ]),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let token = created
        .body
        .split("id=\"token-value\" readonly value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("token shown")
        .to_owned();
    assert_eq!(
        with_token(&relay, &token, "/api/v1/admin/users").await,
        StatusCode::OK,
        "an admin-scope token from the page"
    );
    let list = relay
        .portal_get(
            Some(&relay.portal_login("admin").await),
            "/api/v1/admin/tokens",
        )
        .await
        .1;
    let t = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ops")
        .expect("listed");
    assert_eq!(t["scope"], "admin", "{t}");
    let expires = chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!(
        (7 * 24 - 1..=7 * 24).contains(&days),
        "expires in {days} h: {t}"
    );
    let listed = relay
        .portal(Method::GET, "/admin/tokens", Some(&session), Body::None)
        .await;
    assert!(
        listed.body.contains("<td class=\"scope\">admin</td>"),
        "the page shows the scope"
    );
    // A user's token cannot be made admin from the page either.
    relay.create_user("alice", "user").await;
    let refused = relay
        .portal(
            Method::POST,
            "/admin/tokens",
            Some(&session),
            Body::form(&[
                ("csrf_token", &csrf),
                ("username", "alice"),
                ("name", "x"),
                ("scope", "admin"),
                ("days", "7"),
            ]),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(refused.body.contains("scope"), "{}", refused.body);
}
