//! Typed clients of a `TestRelay`: the proxy (mutual TLS, `localhost` resolved to the proxy so SNI
//! and certificate names stay real), the portal JSON API, the internal API and the queue file.

use std::time::{Duration, Instant};

use msgrelay_core::config::QueueConfig;
use msgrelay_queue::{Queue, QueueStats};
use reqwest::StatusCode;
use serde_json::Value;

use super::{run_with_stdin, wait_for, TestRelay, SENDER};

/// A portal session (cookie + CSRF token).
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// `name=value` of the session cookie, as sent back in a `Cookie` header.
    pub cookie: String,
    pub csrf: String,
}

impl TestRelay {
    // ---- proxy -----------------------------------------------------------------------------

    /// A client of the proxy presenting `cert`/`key` (PEM), trusting the bundle CA, with
    /// `localhost` resolved to the proxy (SNI and certificate name stay `localhost`).
    pub fn proxy_client(&self, cert: &[u8], key: &[u8]) -> reqwest::Client {
        let ca = self.read("clients/demo/ca.crt");
        msgrelay_tls::client::mtls_client_builder(&ca, cert, key, Duration::from_secs(10))
            .expect("client identity")
            .resolve("localhost", self.proxy_addr())
            .build()
            .expect("build client")
    }

    /// A proxy client with the demo bundle's certificate.
    pub fn demo_client(&self) -> reqwest::Client {
        self.proxy_client(
            &self.read("clients/demo/client.crt"),
            &self.read("clients/demo/client.key"),
        )
    }

    /// `https://localhost:<proxy port>/api/v1/messages`.
    pub fn messages_url(&self) -> String {
        format!(
            "https://localhost:{}/api/v1/messages",
            self.proxy_addr().port()
        )
    }

    /// The bundle flags of `msgrelay send` and the Python client.
    pub fn client_flags(&self) -> Vec<String> {
        let b = |f: &str| {
            self.path(&format!("clients/demo/{f}"))
                .display()
                .to_string()
        };
        vec![
            "--url".into(),
            format!("https://localhost:{}", self.proxy_addr().port()),
            "--cert".into(),
            b("client.crt"),
            "--key".into(),
            b("client.key"),
            "--ca".into(),
            b("ca.crt"),
        ]
    }

    /// Posts a message as the demo client: `(status, JSON body)`.
    pub async fn send(&self, sender: &str, body: &str, idem: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .demo_client()
            .post(self.messages_url())
            .json(&serde_json::json!({"sender_number": sender, "message_body": body}));
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.expect("send to the proxy");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts a message that must be accepted; returns its id.
    pub async fn send_ok(&self, body: &str) -> String {
        let (status, json) = self.send(SENDER, body, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        json["id"].as_str().expect("id").to_owned()
    }

    // ---- portal API ------------------------------------------------------------------------

    pub(super) fn portal_client(&self) -> reqwest::Client {
        msgrelay_tls::client::tls_client_builder(
            &self.read("pki/internal-ca.crt"),
            Duration::from_secs(10),
        )
        .expect("portal client")
        .resolve("localhost", self.portal_addr())
        .build()
        .expect("build client")
    }

    pub(super) fn portal_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.portal_addr().port())
    }

    /// The bootstrap password of `demo` or `admin`.
    pub fn bootstrap_password(&self, user: &str) -> String {
        msgrelay_admin::read_bootstrap_password(&self.path(msgrelay_admin::CREDENTIALS_FILE), user)
            .unwrap_or_else(|| panic!("no bootstrap password for {user}"))
    }

    /// Creates a portal user with `msgrelay admin user create` (password on stdin) and logs it in.
    pub async fn create_user_and_login(&self, username: &str, role: &str) -> Session {
        let password = format!("pw-{}", uuid::Uuid::new_v4());
        let out = run_with_stdin(
            self.cli(&[
                "admin",
                "user",
                "create",
                "--username",
                username,
                "--role",
                role,
            ]),
            format!("{password}\n"),
        )
        .await;
        assert!(
            out.status.success(),
            "admin user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.portal_login_with(username, &password).await
    }

    /// Logs a bootstrap user (`demo`, `admin`) in.
    pub async fn portal_login(&self, user: &str) -> Session {
        self.portal_login_with(user, &self.bootstrap_password(user))
            .await
    }

    pub async fn portal_login_with(&self, user: &str, password: &str) -> Session {
        let resp = self
            .portal_client()
            .post(self.portal_url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("portal login");
        assert_eq!(resp.status(), StatusCode::OK, "login as {user}");
        let cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| {
                c.split('=')
                    .next()
                    .is_some_and(|n| n.ends_with("msgrelay_session"))
            })
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_owned();
        let json: Value = resp.json().await.expect("login JSON");
        Session {
            cookie,
            csrf: json["csrf_token"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// `GET <path>` on the portal, with a session or anonymously.
    pub async fn portal_get(&self, session: Option<&Session>, path: &str) -> (StatusCode, Value) {
        let mut req = self.portal_client().get(self.portal_url(path));
        if let Some(s) = session {
            req = req.header(reqwest::header::COOKIE, &s.cookie);
        }
        let resp = req.send().await.expect("portal request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/auth/logout` with the session's cookie and CSRF token.
    pub async fn portal_logout(&self, session: &Session) -> StatusCode {
        let resp = self
            .portal_client()
            .post(self.portal_url("/api/v1/auth/logout"))
            .header(reqwest::header::COOKIE, &session.cookie)
            .header("X-CSRF-Token", &session.csrf)
            .send()
            .await
            .expect("portal logout");
        resp.status()
    }

    /// `GET /api/v1/messages/{id}`.
    pub async fn get_message(&self, session: &Session, id: &str) -> (StatusCode, Value) {
        self.portal_get(Some(session), &format!("/api/v1/messages/{id}"))
            .await
    }

    /// `GET /api/v1/messages?<query>` (must answer 200).
    pub async fn list_messages(&self, session: &Session, query: &str) -> Value {
        let (status, json) = self
            .portal_get(Some(session), &format!("/api/v1/messages?{query}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// Polls the portal (as admin) until message `id` is delivered; returns its detail.
    pub async fn wait_delivered(&self, id: &str, deadline: Duration) -> Value {
        self.wait_all_delivered(&[id.to_owned()], deadline)
            .await
            .remove(0)
    }

    /// Polls until every message in `ids` is delivered; returns the details in order.
    pub async fn wait_all_delivered(&self, ids: &[String], deadline: Duration) -> Vec<Value> {
        let admin = &self.portal_login("admin").await;
        let end = Instant::now() + deadline;
        let mut out = Vec::new();
        for id in ids {
            let left = end.saturating_duration_since(Instant::now());
            let detail = wait_for(&format!("message {id} delivered"), left, || async move {
                let (status, json) = self.get_message(admin, id).await;
                (status == StatusCode::OK && json["status"] == "delivered").then_some(json)
            })
            .await;
            out.push(detail);
        }
        out
    }

    // ---- queue, ops, internal API ----------------------------------------------------------

    /// The embedded queue file of this data directory, opened by the test process.
    pub async fn queue(&self) -> Queue {
        Queue::connect(&QueueConfig::default(), &self.data_dir())
            .await
            .expect("open the queue file")
    }

    pub async fn queue_stats(&self) -> QueueStats {
        self.queue().await.stats().await.expect("queue stats")
    }

    /// Rows in the queue file and the lowest attempt count among them, read-only.
    pub async fn queue_attempts(&self) -> (i64, i64) {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.path("queue.db"))
            .read_only(true);
        let mut conn = sqlx::ConnectOptions::connect(&options)
            .await
            .expect("open queue.db read-only");
        let row: (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(attempts) FROM queue_messages")
                .fetch_one(&mut conn)
                .await
                .expect("query queue.db");
        (row.0, row.1.unwrap_or(0))
    }

    /// An mTLS client for the internal API with a service identity (`proxy`, `worker`) or any cert.
    pub fn internal_client(&self, cert: &[u8], key: &[u8]) -> reqwest::Client {
        msgrelay_tls::client::mtls_client_builder(
            &self.read("pki/internal-ca.crt"),
            cert,
            key,
            Duration::from_secs(10),
        )
        .expect("client identity")
        .resolve("localhost", self.server_addr())
        .build()
        .expect("build client")
    }

    pub fn internal_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.server_addr().port())
    }
}
