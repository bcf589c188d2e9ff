//! Raw portal requests for the attack suite: no redirects followed, every header and the body
//! text returned, an optional source address on the loopback range (127.0.0.0/8) so a test can
//! act as several clients.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Session, TestRelay};

/// A portal response, whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// The `Location` header ("" when absent).
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The `Set-Cookie` header of the cookie whose name ends with `suffix`.
    pub fn set_cookie(&self, suffix: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.split('=').next().is_some_and(|n| n.ends_with(suffix)))
    }

    /// `name=value` of that cookie, for a `Cookie` header.
    pub fn cookie_pair(&self, suffix: &str) -> Option<String> {
        self.set_cookie(suffix)
            .and_then(|c| c.split(';').next().map(str::to_owned))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What a portal request carries.
pub enum Body {
    None,
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    Json(Value),
    /// Bytes with a content type.
    Raw(&'static str, Vec<u8>),
}

impl Body {
    /// A form from string pairs.
    pub fn form(fields: &[(&str, &str)]) -> Body {
        Body::Form(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

/// Value of the hidden `<input name="NAME" ... value="...">` of a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let v = tag.split("value=\"").nth(1)?.split('"').next()?;
    Some(v.replace("&#38;", "&").replace("&amp;", "&"))
}

impl TestRelay {
    /// A portal client that follows no redirect, optionally from a given loopback source address.
    pub fn portal_raw_client(&self, from: Option<IpAddr>) -> reqwest::Client {
        let mut b = msgrelay_tls::client::tls_client_builder(
            &self.read("pki/internal-ca.crt"),
            Duration::from_secs(30),
        )
        .expect("portal client")
        .resolve("localhost", self.portal_addr())
        .redirect(reqwest::redirect::Policy::none());
        if let Some(ip) = from {
            b = b.local_address(ip);
        }
        b.build().expect("build client")
    }

    /// One portal request with `client`: the session's cookie (plus `extra_cookie`), its CSRF token
    /// as `X-CSRF-Token` on JSON requests, and the body.
    pub async fn portal_send(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Body,
    ) -> Resp {
        let mut req = client.request(method, self.portal_url(path));
        if let Some(s) = session {
            if !s.cookie.is_empty() {
                req = req.header(reqwest::header::COOKIE, &s.cookie);
            }
            if !s.csrf.is_empty() && matches!(body, Body::Json(_)) {
                req = req.header("X-CSRF-Token", &s.csrf);
            }
        }
        req = match body {
            Body::None => req,
            Body::Form(fields) => req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(serde_urlencoded_pairs(&fields)),
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, bytes) => req.header(reqwest::header::CONTENT_TYPE, ct).body(bytes),
        };
        let resp = req.send().await.expect("portal request");
        let (status, headers) = (resp.status(), resp.headers().clone());
        Resp {
            status,
            headers,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// [`TestRelay::portal_send`] with a fresh client from 127.0.0.1.
    pub async fn portal(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Body,
    ) -> Resp {
        self.portal_send(&self.portal_raw_client(None), method, path, session, body)
            .await
    }

    /// Logs in through the HTML form (GET /login for its token and cookie, then POST), with
    /// `planted` cookies sent along; returns the POST's response.
    pub async fn html_login(
        &self,
        username: &str,
        password: &str,
        next: Option<&str>,
        planted: &str,
    ) -> Resp {
        let client = self.portal_raw_client(None);
        let form = self
            .portal_send(&client, Method::GET, "/login", None, Body::None)
            .await;
        assert_eq!(form.status, StatusCode::OK, "login form");
        let token = hidden_value(&form.body, "csrf_token").expect("csrf_token field");
        let pre = form.cookie_pair("login_csrf").expect("login CSRF cookie");
        let cookie = if planted.is_empty() {
            pre
        } else {
            format!("{pre}; {planted}")
        };
        let mut fields = vec![
            ("csrf_token", token.as_str()),
            ("username", username),
            ("password", password),
        ];
        if let Some(n) = next {
            fields.push(("next", n));
        }
        let session = Session {
            cookie,
            csrf: String::new(),
        };
        self.portal_send(
            &client,
            Method::POST,
            "/login",
            Some(&session),
            Body::form(&fields),
        )
        .await
    }

    /// Creates a portal user with the CLI (password on stdin); returns the password.
    pub async fn create_user(&self, username: &str, role: &str) -> String {
        let password = format!("pw-{}", uuid::Uuid::new_v4());
        let out = super::run_with_stdin(
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
        password
    }
}

fn serde_urlencoded_pairs(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 unreserved characters stay as they are; everything else becomes %XX.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Form and path-segment encoding (the `percent-encoding` crate).
pub fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// The resident set size of a process in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS line")
}
