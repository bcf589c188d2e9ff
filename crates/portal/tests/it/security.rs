//! Escaping, CSRF, dead sessions, SQL metacharacters in filters, security headers.

use reqwest::{Method, StatusCode};

use crate::support::{deliver, hidden_value, spawn_app, Session, PASSWORD};

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img onerror=alert(1) src=x>";

/// HTML-escaped as the templates do it (numeric character references).
fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// `<script>` elements without a `src` (inline code).
fn inline_scripts(html: &str) -> usize {
    html.match_indices("<script")
        .filter(|(i, _)| !html[*i..].split('>').next().unwrap_or("").contains(" src="))
        .count()
}

#[tokio::test]
async fn message_content_is_escaped_in_list_and_detail() {
    let app = spawn_app().await;
    let body = format!("{SCRIPT} and {IMG}");
    let id = deliver(&app.portal, "alice-app", IMG, &body).await;
    let alice = app.login("alice").await;

    let detail = app.get(&format!("/messages/{id}"), &alice).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(
        !detail.body.contains(SCRIPT) && !detail.body.contains("<img onerror"),
        "raw markup in the detail page"
    );
    assert!(detail.body.contains(&escaped(SCRIPT)), "escaped body shown");
    assert!(
        detail.body.contains(&escaped(IMG)),
        "escaped sender/body shown"
    );

    // The list shows no content, but it echoes the filter: the same payloads must come back escaped.
    let q = serde_urlencoded::to_string([("sender", IMG), ("client_id", SCRIPT)]).unwrap();
    let list = app.get(&format!("/messages?{q}"), &alice).await;
    assert!(
        !list.body.contains(SCRIPT) && !list.body.contains("<img onerror"),
        "raw markup in the list page"
    );
    let list = app
        .get(
            &format!(
                "/messages?{}",
                serde_urlencoded::to_string([("sender", IMG)]).unwrap()
            ),
            &alice,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains(&format!("value=\"{}\"", escaped(IMG))),
        "sender filter echoed escaped"
    );
    assert!(
        list.body.contains(&id.to_string()),
        "the exact sender filter finds the message"
    );

    // JSON is JSON: the API returns the body verbatim with a JSON content type.
    let api = app.get(&format!("/api/v1/messages/{id}"), &alice).await;
    assert!(api.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["message_body"], body.as_str());
}

#[tokio::test]
async fn forms_need_the_csrf_token() {
    let app = spawn_app().await;
    let boss = app.login("boss").await;
    let create = |token: &str| {
        serde_urlencoded::to_string([
            ("csrf_token", token),
            ("username", "mallory"),
            ("password", PASSWORD),
            ("role", "admin"),
        ])
        .unwrap()
    };
    for token in ["", "wrong-token"] {
        let body = if token.is_empty() {
            "username=mallory&password=correct+horse+battery&role=admin".to_owned()
        } else {
            create(token)
        };
        let r = app
            .request(Method::POST, "/admin/users", &boss, Some(body), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "token {token:?}");
    }
    // The other user's token is no good either.
    let alice = app.login("alice").await;
    let r = app
        .request(
            Method::POST,
            "/admin/users",
            &boss,
            Some(create(&alice.csrf)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        app.portal
            .state
            .store
            .get_user_by_name("mallory")
            .await
            .unwrap()
            .is_none(),
        "nothing was created"
    );
    // Logout without a token does not log out.
    let r = app
        .request(Method::POST, "/logout", &alice, Some(String::new()), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/messages", &alice).await.status, StatusCode::OK);
    // JSON with the session cookie but without X-CSRF-Token.
    let no_header = Session {
        cookie: boss.cookie.clone(),
        csrf: String::new(),
    };
    let r = app
        .request(
            Method::POST,
            "/api/v1/admin/users",
            &no_header,
            None,
            Some(serde_json::json!({"username": "mallory", "password": PASSWORD, "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With the right token it works.
    let r = app
        .request(
            Method::POST,
            "/admin/users",
            &boss,
            Some(create(&boss.csrf)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_form_needs_its_token_and_rotates_the_session() {
    let app = spawn_app().await;
    let form = app.get("/login", &Session::default()).await;
    let pre = form.set_cookie("__Host-msgrelay_login_csrf").unwrap();
    let token = hidden_value(&form.body, "csrf_token").unwrap();
    let body = |t: &str| {
        serde_urlencoded::to_string([
            ("csrf_token", t),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .unwrap()
    };
    // No cookie, wrong token.
    let r = app
        .request(
            Method::POST,
            "/login",
            &Session::default(),
            Some(body(&token)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let with_pre = Session {
        cookie: pre.clone(),
        csrf: String::new(),
    };
    let r = app
        .request(Method::POST, "/login", &with_pre, Some(body("nope")), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Wrong password: 401 and the form again.
    let bad = serde_urlencoded::to_string([
        ("csrf_token", token.as_str()),
        ("username", "alice"),
        ("password", "wrong password!"),
    ])
    .unwrap();
    let r = app
        .request(Method::POST, "/login", &with_pre, Some(bad), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Wrong username or password"));
    // A session id the browser already had is replaced, and the old one is dead.
    let old = app.login("alice").await;
    let both = Session {
        cookie: format!("{pre}; {}", old.cookie),
        csrf: String::new(),
    };
    let r = app
        .request(Method::POST, "/login", &both, Some(body(&token)), None)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let new = r.set_cookie("__Host-msgrelay_session").unwrap();
    assert_ne!(new, old.cookie);
    assert!(app
        .get("/messages", &old)
        .await
        .location()
        .starts_with("/login"));
    assert_eq!(
        app.get(
            "/messages",
            &Session {
                cookie: new,
                csrf: String::new()
            }
        )
        .await
        .status,
        StatusCode::OK
    );
    assert!(app
        .portal
        .state
        .store
        .get_user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .last_login_at_ms
        .is_some());
    // Disabled users are refused.
    app.portal
        .state
        .store
        .set_user_disabled("bob", true)
        .await
        .unwrap();
    let r = app
        .request(
            Method::POST,
            "/login",
            &with_pre,
            Some(
                serde_urlencoded::to_string([
                    ("csrf_token", token.as_str()),
                    ("username", "bob"),
                    ("password", PASSWORD),
                ])
                .unwrap(),
            ),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_logged_out_cookie_is_dead() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let r = app.post_form("/logout", &alice, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("__Host-msgrelay_session=;")));
    // The browser forgot the cookie; an attacker who kept a copy gets nothing.
    let page = app.get("/messages", &alice).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"));
    assert_eq!(
        app.get(&format!("/messages/{}", app.alice_msg), &alice)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.get("/api/v1/messages", &alice).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sql_metacharacters_in_filters_are_just_text() {
    let app = spawn_app().await;
    let alice = app.login("alice").await;
    let inj = "' OR 1=1 --";
    let all = app.get("/api/v1/messages", &alice).await;
    let total: serde_json::Value = serde_json::from_str(&all.body).unwrap();
    assert_eq!(total["total"], 1, "alice sees her one message");
    for (param, html_status, api_status) in [
        ("sender", 200, 200),
        ("status", 422, 422),
        ("client_id", 422, 422),
        ("from", 422, 422),
        ("page", 422, 422),
    ] {
        let q = serde_urlencoded::to_string([(param, inj)]).unwrap();
        let page = app.get(&format!("/messages?{q}"), &alice).await;
        assert_eq!(page.status.as_u16(), html_status, "{param}");
        assert!(
            !page.body.contains(&app.bob_msg.to_string()),
            "{param}: another user's message leaked"
        );
        let api = app.get(&format!("/api/v1/messages?{q}"), &alice).await;
        assert_eq!(api.status.as_u16(), api_status, "{param}: {}", api.body);
        if api_status == 200 {
            let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
            assert_eq!(v["total"], 0, "{param}: nothing matches");
        }
    }
    assert!(
        app.get("/messages", &alice)
            .await
            .body
            .contains(&app.alice_msg.to_string()),
        "the table is still there"
    );
}

#[tokio::test]
async fn every_page_has_the_security_headers() {
    let app = spawn_app().await;
    let boss = app.login("boss").await;
    let anon = Session::default();
    let mut checked = 0;
    for (path, s) in [
        ("/login", &anon),
        ("/messages", &anon),
        ("/no/such/page", &anon),
        ("/assets/portal.js", &anon),
        ("/api/v1/messages", &anon),
        ("/docs/", &anon),
        ("/openapi/portal.json", &anon),
        ("/messages", &boss),
        (&format!("/messages/{}", app.alice_msg), &boss),
        ("/admin", &boss),
        ("/admin/messages", &boss),
        ("/admin/users", &boss),
        ("/admin/clients", &boss),
        ("/admin/tokens", &boss),
        ("/admin/maintenance", &boss),
        ("/api/v1/admin/users", &boss),
    ] {
        let r = app.get(path, s).await;
        let h = |n: &str| {
            r.headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| panic!("{path}: no {n}"))
        };
        let csp = h("content-security-policy");
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap_or_else(|| panic!("{path}: no script-src"));
        assert!(
            !script_src.contains("unsafe-inline") && !script_src.contains("unsafe-eval"),
            "{path}: {script_src}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert!(!h("referrer-policy").is_empty(), "{path}");
        assert!(
            h("strict-transport-security").contains("max-age="),
            "{path}"
        );
        if r.headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"))
        {
            assert_eq!(inline_scripts(&r.body), 0, "{path}: inline script");
            checked += 1;
        }
    }
    assert!(checked >= 10, "HTML pages checked: {checked}");
}

#[tokio::test]
async fn admin_actions_work() {
    let app = spawn_app().await;
    let boss = app.login("boss").await;
    // Create a user, who can then log in.
    let r = app
        .post_form(
            "/admin/users",
            &boss,
            &[
                ("username", "frank"),
                ("password", PASSWORD),
                ("role", "user"),
            ],
        )
        .await;
    assert_eq!(r.location(), "/admin/users?done=user-created");
    app.login("frank").await;
    let page = app.get("/admin/users?done=user-created", &boss).await;
    assert!(page.body.contains("User created.") && page.body.contains("frank"));
    // A refused input shows the page again with the reason.
    let r = app
        .post_form(
            "/admin/users",
            &boss,
            &[
                ("username", "Bad Name"),
                ("password", PASSWORD),
                ("role", "user"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("username: must be"));
    // An admin cannot disable themselves.
    assert_eq!(
        app.post_form("/admin/users/boss/disable", &boss, &[])
            .await
            .status,
        StatusCode::CONFLICT
    );
    // Issue a certificate from the portal and download its PKCS#12 file.
    let r = app
        .post_form("/admin/clients/alice-app/issue", &boss, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let bundle = hidden_value(&r.body, "bundle").expect("bundle field");
    let p12 = app
        .post_form(
            "/admin/clients/alice-app/bundle",
            &boss,
            &[("bundle", &bundle)],
        )
        .await;
    assert_eq!(p12.status, StatusCode::OK);
    assert_eq!(p12.headers["content-type"], "application/x-pkcs12");
    let certs = app
        .portal
        .state
        .store
        .list_certificates(Some(&msgrelay_core::ClientId::parse("alice-app").unwrap()))
        .await
        .unwrap();
    assert_eq!(certs.len(), 1);
    let r = app
        .post_form(
            "/admin/clients/alice-app/revoke",
            &boss,
            &[("serial", &certs[0].serial_hex), ("reason", "superseded")],
        )
        .await;
    assert_eq!(r.location(), "/admin/clients?done=cert-revoked");
    // Purge asks for confirmation first.
    let r = app
        .post_form("/admin/maintenance/purge", &boss, &[("days", "30")])
        .await;
    assert!(r.body.contains("id=\"purge-confirm\""));
    let r = app
        .post_form(
            "/admin/maintenance/purge",
            &boss,
            &[("days", "30"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.location(), "/admin/maintenance?done=purged");
    // Tokens are shown once and work as Bearer tokens.
    let r = app
        .post_form(
            "/admin/tokens",
            &boss,
            &[("username", "alice"), ("name", "script")],
        )
        .await;
    let token = r
        .body
        .split("id=\"token-value\" readonly value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("token shown")
        .to_owned();
    let api = app
        .http
        .get(format!("{}/api/v1/messages", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    assert!(
        !app.get("/admin/tokens", &boss).await.body.contains(&token),
        "shown only once"
    );
    // Dashboard and maintenance render with data.
    let dash = app.get("/admin", &boss).await;
    assert!(dash.body.contains("<svg") && dash.body.contains("bar-delivered"));
    let m = app.get("/admin/maintenance", &boss).await;
    assert!(m.body.contains("client_certificates"));
    assert_eq!(
        app.post_form("/admin/maintenance/analyze", &boss, &[])
            .await
            .location(),
        "/admin/maintenance?done=analyzed"
    );
}
