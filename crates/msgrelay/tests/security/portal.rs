//! Attacks on the portal's pages and JSON API by someone with an account or a victim's browser:
//! stored XSS, SQL injection through the message filters, reading another user's message (IDOR),
//! cross-site request forgery and session fixation. Ported from the in-process tests of the
//! portal to the real binary.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Body, Session, TestRelay, DEADLINE};

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img onerror=alert(1) src=x>";

/// No executable markup from `payload` survives in `html`.
fn assert_inert(html: &str, what: &str) {
    for raw in [SCRIPT, "<img onerror", "\"><img"] {
        assert!(
            !html.contains(raw),
            "{what}: raw markup {raw:?} in the page"
        );
    }
}

#[tokio::test]
async fn stored_xss_in_a_message_is_escaped_in_every_page() {
    let relay = TestRelay::up(&[]).await;
    let body = format!("{SCRIPT} and {IMG}");
    let id = relay.send_ok(&body).await;
    relay.wait_delivered(&id, DEADLINE).await;
    let demo = relay.portal_login("demo").await;

    let detail = relay
        .portal(
            Method::GET,
            &format!("/messages/{id}"),
            Some(&demo),
            Body::None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.content_type().starts_with("text/html"));
    assert_inert(&detail.body, "message page");
    assert!(
        detail.body.contains("alert(1)"),
        "the body is shown, escaped"
    );

    // The list echoes its filters back into the form: the same payloads come back escaped.
    let q = format!("sender={}&client_id=demo", crate::support::pct(IMG));
    let list = relay
        .portal(
            Method::GET,
            &format!("/messages?{q}"),
            Some(&demo),
            Body::None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_inert(&list.body, "filtered list");
    let q = format!("client_id={}", crate::support::pct(SCRIPT));
    let list = relay
        .portal(
            Method::GET,
            &format!("/messages?{q}"),
            Some(&demo),
            Body::None,
        )
        .await;
    assert_inert(&list.body, "list with a refused filter");

    // Every page says where scripts may come from: no inline script runs even if one slipped in.
    let csp = detail
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // JSON is JSON: the API returns the body verbatim with a JSON content type.
    let api = relay
        .portal(
            Method::GET,
            &format!("/api/v1/messages/{id}"),
            Some(&demo),
            Body::None,
        )
        .await;
    assert!(api.content_type().starts_with("application/json"));
    assert_eq!(api.json()["message_body"], body.as_str());
}

#[tokio::test]
async fn sql_injection_in_message_filters_is_just_text() {
    let relay = TestRelay::up(&[]).await;
    let id = relay.send_ok("only message").await;
    relay.wait_delivered(&id, DEADLINE).await;
    let pw = relay.create_user("mallory", "user").await;
    let mallory = relay.portal_login_with("mallory", &pw).await;
    let demo = relay.portal_login("demo").await;
    assert_eq!(relay.list_messages(&demo, "").await["total"], 1);

    for inj in [
        "' OR 1=1 --",
        "\" OR \"\"=\"",
        "1; DROP TABLE messages; --",
        "%' OR '%'='",
    ] {
        // Numbers and hashes: no match, never someone else's message.
        for who in [&mallory, &demo] {
            let page = relay
                .portal(
                    Method::GET,
                    &format!("/messages?sender={}", crate::support::pct(inj)),
                    Some(who),
                    Body::None,
                )
                .await;
            assert_eq!(page.status, StatusCode::OK, "{inj}");
            assert!(!page.body.contains(&id), "{inj}: a message leaked");
            let api = relay
                .portal(
                    Method::GET,
                    &format!("/api/v1/messages?sender={}", crate::support::pct(inj)),
                    Some(who),
                    Body::None,
                )
                .await;
            assert_eq!(
                (api.status, &api.json()["total"]),
                (StatusCode::OK, &json!(0)),
                "{inj}"
            );
        }
        // Typed filters refuse the text, naming the parameter.
        for param in ["status", "client_id", "from", "to", "page", "per_page"] {
            let api = relay
                .portal(
                    Method::GET,
                    &format!("/api/v1/messages?{param}={}", crate::support::pct(inj)),
                    Some(&mallory),
                    Body::None,
                )
                .await;
            assert_eq!(
                api.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{param}={inj}: {}",
                api.body
            );
            assert!(api.content_type().starts_with("application/problem+json"));
            assert!(
                api.body.contains(param),
                "{param}: the problem names the parameter: {}",
                api.body
            );
        }
    }
    // The table is still there and still holds one message.
    assert_eq!(relay.list_messages(&demo, "").await["total"], 1);
    assert_eq!(relay.list_messages(&mallory, "").await["total"], 0);
}

#[tokio::test]
async fn idor_another_users_message_is_not_found() {
    let relay = TestRelay::up(&[]).await;
    let id = relay.send_ok("demo's secret").await;
    relay.wait_delivered(&id, DEADLINE).await;
    let pw = relay.create_user("mallory", "user").await;
    let mallory = relay.portal_login_with("mallory", &pw).await;
    let demo = relay.portal_login("demo").await;

    assert_eq!(
        relay.get_message(&demo, &id).await.0,
        StatusCode::OK,
        "the owner sees it"
    );
    let (status, body) = relay.get_message(&mallory, &id).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user: 404, not 403 (which would confirm it exists)"
    );
    assert!(!body.to_string().contains("secret"));
    let missing = relay
        .get_message(&mallory, "00000000-0000-4000-8000-000000000000")
        .await
        .0;
    assert_eq!(
        missing,
        StatusCode::NOT_FOUND,
        "indistinguishable from a missing one"
    );
    let page = relay
        .portal(
            Method::GET,
            &format!("/messages/{id}"),
            Some(&mallory),
            Body::None,
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("secret"));
    // Filtering by the owner's client shows nothing either, and the admin pages are closed.
    assert_eq!(
        relay.list_messages(&mallory, "client_id=demo").await["total"],
        0
    );
    let admin_page = relay
        .portal(Method::GET, "/admin/messages", Some(&mallory), Body::None)
        .await;
    assert_eq!(admin_page.status, StatusCode::FORBIDDEN);
    let admin_api = relay
        .portal(
            Method::GET,
            "/api/v1/admin/users",
            Some(&mallory),
            Body::None,
        )
        .await;
    assert_eq!(admin_api.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn csrf_without_the_sessions_token_changes_nothing() {
    let relay = TestRelay::up(&[]).await;
    let admin = relay.portal_login("admin").await;
    let demo = relay.portal_login("demo").await;
    let create = |token: &str| {
        let mut f = vec![
            ("username", "mallory"),
            ("password", "a long password 1"),
            ("role", "admin"),
        ];
        if !token.is_empty() {
            f.push(("csrf_token", token));
        }
        Body::form(&f)
    };
    let cookie_only = Session {
        cookie: admin.cookie.clone(),
        csrf: String::new(),
    };
    for (what, token) in [
        ("no token", ""),
        ("a wrong token", "wrong-token"),
        ("another user's token", demo.csrf.as_str()),
    ] {
        let r = relay
            .portal(
                Method::POST,
                "/admin/users",
                Some(&cookie_only),
                create(token),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "HTML form with {what}");
    }
    // JSON with the session cookie but without X-CSRF-Token (what a cross-site fetch can send).
    let body = json!({"username": "mallory", "password": "a long password 1", "role": "admin"});
    let r = relay
        .portal(
            Method::POST,
            "/api/v1/admin/users",
            Some(&cookie_only),
            Body::Json(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.content_type().starts_with("application/problem+json"));
    // A form-encoded POST to the JSON API is not accepted either.
    let r = relay
        .portal(
            Method::POST,
            "/api/v1/admin/users",
            Some(&cookie_only),
            Body::form(&[("username", "mallory")]),
        )
        .await;
    assert!(
        r.status.is_client_error() && r.status != StatusCode::CREATED,
        "{}",
        r.status
    );
    // Logout without a token does not log out.
    let r = relay
        .portal(
            Method::POST,
            "/logout",
            Some(&Session {
                cookie: demo.cookie.clone(),
                csrf: String::new(),
            }),
            Body::form(&[]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        relay.portal_get(Some(&demo), "/api/v1/auth/me").await.0,
        StatusCode::OK
    );

    let users = relay
        .portal_get(Some(&admin), "/api/v1/admin/users")
        .await
        .1;
    assert!(
        !users.to_string().contains("mallory"),
        "nothing was created: {users}"
    );
    // With the right token it works (so the refusals above were about the token).
    let r = relay
        .portal(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn session_fixation_a_planted_session_id_is_replaced_at_login() {
    let relay = TestRelay::up(&[]).await;
    let password = relay.bootstrap_password("demo");
    let earlier = relay.portal_login("demo").await;
    let name = earlier.cookie.split('=').next().unwrap().to_owned();

    for planted in [
        format!("{name}=attacker-chosen-session-id-0123456789abcdefghijkl"),
        earlier.cookie.clone(),
    ] {
        let r = relay
            .html_login("demo", &password, Some("/messages"), &planted)
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let fresh = r
            .cookie_pair("msgrelay_session")
            .expect("a new session cookie");
        assert_ne!(
            fresh, planted,
            "login must not keep the session id the browser brought"
        );
        let fresh = Session {
            cookie: fresh,
            csrf: String::new(),
        };
        assert_eq!(
            relay.portal_get(Some(&fresh), "/api/v1/auth/me").await.0,
            StatusCode::OK
        );
        let old = Session {
            cookie: planted.clone(),
            csrf: String::new(),
        };
        assert_eq!(
            relay.portal_get(Some(&old), "/api/v1/auth/me").await.0,
            StatusCode::UNAUTHORIZED,
            "the planted id is dead"
        );
    }
}
/// A token made with `msgrelay admin token create`; the token is the second line of the output.
async fn cli_token(relay: &TestRelay, scope: &str) -> String {
    let out = crate::support::run(relay.cli(&[
        "admin",
        "token",
        "create",
        "--username",
        "admin",
        "--name",
        scope,
        "--scope",
        scope,
        "--days",
        "1",
    ]))
    .await;
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .expect("the token line")
        .trim()
        .to_owned()
}

async fn status_with_token(relay: &TestRelay, token: &str, path: &str) -> StatusCode {
    let url = format!("https://localhost:{}{path}", relay.portal_addr().port());
    relay
        .portal_raw_client(None)
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn a_read_scope_token_of_an_admin_cannot_use_the_admin_api() {
    let relay = TestRelay::up(&[]).await;
    let read = cli_token(&relay, "read").await;
    let admin = cli_token(&relay, "admin").await;
    // The legitimate uses: read scope on the message API, admin scope on the admin API.
    assert_eq!(
        status_with_token(&relay, &read, "/api/v1/messages").await,
        StatusCode::OK
    );
    assert_eq!(
        status_with_token(&relay, &admin, "/api/v1/admin/users").await,
        StatusCode::OK
    );
    // The attack: the administrator's read-only token (e.g. leaked from a reporting script).
    assert_eq!(
        status_with_token(&relay, &read, "/api/v1/admin/users").await,
        StatusCode::FORBIDDEN
    );
    // And a made-up token is no token at all.
    assert_eq!(
        status_with_token(&relay, "mrt_not-a-token", "/api/v1/messages").await,
        StatusCode::UNAUTHORIZED
    );
}
