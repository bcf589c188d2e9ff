//! Every refusal arrives whole. A server that answers before it has read the request (415 on the
//! content type, 413 on the declared length, 403 on the certificate) and then closes the socket or
//! resets the stream makes the client see a transport error instead of the problem document. Each
//! kind of refusal is sent 50 times, each on a fresh connection, over HTTP/1.1 and HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use msgrelay_tls::Pki;
use reqwest::StatusCode;

use crate::exhaustion::client_config;
use crate::support::{TestRelay, SENDER};

const TRIES: usize = 50;

#[derive(Clone, Copy, Debug)]
enum Proto {
    Http1,
    Http2,
}

/// A client that opens one new connection for its one request, speaking only `proto`.
fn fresh_client(
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    proto: Proto,
) -> reqwest::Client {
    let mut cfg = (**tls).clone();
    let b = reqwest::Client::builder()
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0);
    let b = match proto {
        Proto::Http1 => {
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            b.http1_only()
        }
        Proto::Http2 => {
            cfg.alpn_protocols = vec![b"h2".to_vec()];
            b.http2_prior_knowledge()
        }
    };
    b.use_preconfigured_tls(cfg).build().expect("client")
}

struct Refusal {
    name: &'static str,
    tls: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    request: Box<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder>,
    status: StatusCode,
}

async fn assert_always_delivered(r: &Refusal) {
    for proto in [Proto::Http1, Proto::Http2] {
        for i in 0..TRIES {
            let client = fresh_client(&r.tls, r.addr, proto);
            let resp = (r.request)(&client).send().await.unwrap_or_else(|e| {
                panic!("{} over {proto:?}, try {i}: transport error {e:?}", r.name)
            });
            assert_eq!(
                resp.status(),
                r.status,
                "{} over {proto:?}, try {i}",
                r.name
            );
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.bytes().await.unwrap_or_else(|e| {
                panic!("{} over {proto:?}, try {i}: body cut off: {e:?}", r.name)
            });
            assert!(
                content_type.starts_with("application/problem+json"),
                "{} over {proto:?}: {content_type}",
                r.name
            );
            let problem: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e})", r.name));
            assert_eq!(
                problem["status"],
                r.status.as_u16(),
                "{}: {problem}",
                r.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_reach_the_client_whole_over_http1_and_http2() {
    let relay = TestRelay::up(&[]).await;
    relay.send_ok("control").await;
    let ca = relay.read("clients/demo/ca.crt");
    let demo = client_config(
        &ca,
        Some((
            &relay.read("clients/demo/client.crt"),
            &relay.read("clients/demo/client.key"),
        )),
        &[],
    );
    let ghost = Pki::new(relay.path("pki"))
        .issue_client("ghost", "localhost", 30)
        .unwrap();
    let ghost = client_config(
        &ca,
        Some((ghost.cert_pem.as_bytes(), ghost.key_pem.as_bytes())),
        &[],
    );
    let portal = client_config(&relay.read("pki/internal-ca.crt"), None, &[]);
    let url = relay.messages_url();
    let portal_url = |p: &str| format!("https://localhost:{}{p}", relay.portal_addr().port());
    let valid = serde_json::json!({"sender_number": SENDER, "message_body": "hi"}).to_string();
    // 300 kB over the default max_body_bytes (65536).
    let oversized = format!(
        "{{\"sender_number\":\"{SENDER}\",\"message_body\":\"{}\"}}",
        "x".repeat(65536 + 300_000)
    );

    // Throttle one username (5 failures), so that every further login for it is a 429.
    let login = portal_url("/api/v1/auth/login");
    let wrong = serde_json::json!({"username": "victim", "password": "wrong"}).to_string();
    for _ in 0..5 {
        let c = fresh_client(&portal, relay.portal_addr(), Proto::Http1);
        let _ = c
            .post(&login)
            .header("content-type", "application/json")
            .body(wrong.clone())
            .send()
            .await
            .unwrap();
    }

    let refusals = vec![
        Refusal {
            name: "415 text/plain",
            tls: demo.clone(),
            addr: relay.proxy_addr(),
            request: Box::new({
                let (url, body) = (url.clone(), valid.clone());
                move |c: &reqwest::Client| {
                    c.post(&url)
                        .header("content-type", "text/plain")
                        .body(body.clone())
                }
            }),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        },
        Refusal {
            name: "413 body 300 kB over max_body_bytes",
            tls: demo.clone(),
            addr: relay.proxy_addr(),
            request: Box::new({
                let (url, body) = (url.clone(), oversized.clone());
                move |c: &reqwest::Client| {
                    c.post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                }
            }),
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
        Refusal {
            name: "422 unknown field",
            tls: demo.clone(),
            addr: relay.proxy_addr(),
            request: Box::new({
                let url = url.clone();
                let body = serde_json::json!({"sender_number": SENDER, "message_body": "hi", "priority": 1}).to_string();
                move |c: &reqwest::Client| {
                    c.post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                }
            }),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        },
        Refusal {
            name: "403 unregistered certificate",
            tls: ghost,
            addr: relay.proxy_addr(),
            request: Box::new({
                let (url, body) = (url.clone(), valid.clone());
                move |c: &reqwest::Client| {
                    c.post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                }
            }),
            status: StatusCode::FORBIDDEN,
        },
        Refusal {
            name: "401 portal API without a session",
            tls: portal.clone(),
            addr: relay.portal_addr(),
            request: Box::new({
                let u = portal_url("/api/v1/auth/me");
                move |c: &reqwest::Client| c.get(&u)
            }),
            status: StatusCode::UNAUTHORIZED,
        },
        Refusal {
            name: "429 throttled login",
            tls: portal.clone(),
            addr: relay.portal_addr(),
            request: Box::new({
                let (u, body) = (login.clone(), wrong.clone());
                move |c: &reqwest::Client| {
                    c.post(&u)
                        .header("content-type", "application/json")
                        .body(body.clone())
                }
            }),
            status: StatusCode::TOO_MANY_REQUESTS,
        },
    ];
    for r in &refusals {
        assert_always_delivered(r).await;
    }
}
