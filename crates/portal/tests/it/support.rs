//! `spawn_app()`: a bootstrapped data directory, a running `Portal`, users, clients, messages, and an
//! HTTPS client that keeps no cookies on its own (tests pass them explicitly).

use std::sync::Arc;
use std::time::Duration;

use msgrelay_admin::{init, InitOptions};
use msgrelay_core::{now_ms, ClientId, Config, MessageId, Role};
use msgrelay_ops::{Metrics, OpsState};
use msgrelay_portal::Portal;
use msgrelay_store::DeliveredMessage;
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub _dir: tempfile::TempDir,
    pub portal: Portal,
    pub shutdown: CancellationToken,
    pub base: String,
    pub http: reqwest::Client,
    /// A message of alice's client.
    pub alice_msg: MessageId,
    /// A message of bob's client.
    pub bob_msg: MessageId,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A logged-in browser-like session.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// `Cookie` header value (empty: anonymous).
    pub cookie: String,
    pub csrf: String,
}

/// One response, read completely.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `name=value` of a Set-Cookie header for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
    }
}

/// The value of the first `<input name="NAME" value="...">` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

pub async fn spawn_app() -> TestApp {
    msgrelay_tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.portal.listen = "127.0.0.1:0".into();
    cfg.ops.listen = "127.0.0.1:0".into();
    init(&cfg, &InitOptions::default()).await.expect("init");

    let metrics = Arc::new(Metrics::new());
    let mut ops = OpsState::new(metrics.clone());
    let shutdown = CancellationToken::new();
    let queue = msgrelay_queue::Queue::connect(&cfg.queue, &cfg.data_dir)
        .await
        .expect("queue");
    let portal = Portal::start(
        Arc::new(cfg.clone()),
        queue.monitor(),
        metrics,
        &mut ops,
        shutdown.clone(),
    )
    .await
    .expect("portal starts");
    let store = portal.state.store.clone();
    for (name, role) in [
        ("alice", Role::User),
        ("bob", Role::User),
        ("carol", Role::User),
        ("boss", Role::Admin),
    ] {
        store.create_user(name, PASSWORD, role).await.expect("user");
    }
    for (client, owner) in [
        ("alice-app", "alice"),
        ("bob-app", "bob"),
        ("carol-app", "carol"),
    ] {
        store
            .create_client(&ClientId::parse(client).unwrap(), owner, "localhost")
            .await
            .expect("client");
    }
    let alice_msg = deliver(&portal, "alice-app", "+15550000001", "hello from alice").await;
    let bob_msg = deliver(&portal, "bob-app", "+15550000002", "hello from bob").await;

    let ca = std::fs::read(cfg.path("pki/internal-ca.crt")).expect("internal CA");
    let http = msgrelay_tls::client::tls_client_builder(&ca, Duration::from_secs(30))
        .expect("client")
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = format!("https://localhost:{}", portal.addr.port());
    TestApp {
        _dir: dir,
        portal,
        shutdown,
        base,
        http,
        alice_msg,
        bob_msg,
    }
}

/// Stores a delivered message the way the internal API does (encrypted at rest).
pub async fn deliver(portal: &Portal, client: &str, sender: &str, body: &str) -> MessageId {
    let id = MessageId::new();
    let enc = portal
        .state
        .at_rest
        .encrypt_message(&id, sender, body)
        .expect("encrypt");
    let now = now_ms();
    let m = DeliveredMessage {
        id,
        client_id: ClientId::parse(client).unwrap(),
        encrypted_body: enc.encrypted_body,
        encrypted_sender: enc.encrypted_sender,
        sender_hash: enc.sender_hash,
        key_id: enc.key_id,
        created_at_ms: now,
        queued_at_ms: now,
        delivered_at_ms: now,
        attempt_count: 1,
    };
    portal
        .state
        .store
        .deliver_messages(&[m])
        .await
        .expect("deliver");
    id
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        s: &Session,
        form: Option<String>,
        json: Option<serde_json::Value>,
    ) -> Resp {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if !s.cookie.is_empty() {
            rb = rb.header(COOKIE, &s.cookie);
        }
        if let Some(f) = form {
            rb = rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(f);
        }
        if let Some(j) = json {
            rb = rb.header("x-csrf-token", &s.csrf).json(&j);
        }
        let r = rb.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str, s: &Session) -> Resp {
        self.request(Method::GET, path, s, None, None).await
    }

    /// POSTs a form with the session's CSRF token added.
    pub async fn post_form(&self, path: &str, s: &Session, fields: &[(&str, &str)]) -> Resp {
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", s.csrf.as_str())];
        all.extend_from_slice(fields);
        self.request(
            Method::POST,
            path,
            s,
            Some(serde_urlencoded::to_string(&all).unwrap()),
            None,
        )
        .await
    }

    /// Logs in through the HTML form, as a browser does.
    pub async fn login(&self, username: &str) -> Session {
        let form = self.get("/login", &Session::default()).await;
        assert_eq!(form.status, StatusCode::OK);
        let pre = form
            .set_cookie("__Host-msgrelay_login_csrf")
            .expect("login CSRF cookie");
        let token = hidden_value(&form.body, "csrf_token").expect("csrf field");
        let body = serde_urlencoded::to_string([
            ("csrf_token", token.as_str()),
            ("username", username),
            ("password", PASSWORD),
            ("next", "/messages"),
        ])
        .unwrap();
        let r = self
            .request(
                Method::POST,
                "/login",
                &Session {
                    cookie: pre,
                    csrf: String::new(),
                },
                Some(body),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "login of {username}: {}",
            r.body
        );
        let cookie = r
            .set_cookie("__Host-msgrelay_session")
            .expect("session cookie");
        let mut s = Session {
            cookie,
            csrf: String::new(),
        };
        let page = self.get("/messages", &s).await;
        s.csrf = hidden_value(&page.body, "csrf_token").expect("csrf in the logout form");
        s
    }
}
