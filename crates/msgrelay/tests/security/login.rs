//! Attacks on the login: memory and CPU exhaustion without credentials, password guessing, locking
//! the administrator out, and sending a user off-site after login. Limits are set small through
//! configuration so each attack reaches them quickly on two cores.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{hidden_value, metric, metrics, rss_kib, Body, Session, TestRelay};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const OFFICE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn login_json(
    relay: &TestRelay,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> crate::support::Resp {
    relay
        .portal_send(
            client,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Body::Json(json!({"username": username, "password": password})),
        )
        .await
}

fn ops(relay: &TestRelay) -> std::net::SocketAddr {
    relay.up.as_ref().expect("up running").addr("ops")
}

#[tokio::test]
async fn usernames_over_64_bytes_are_refused_before_any_work() {
    let relay = TestRelay::up(&[]).await;
    let client = relay.portal_raw_client(None);
    let before = metric(
        &metrics(ops(&relay)).await,
        "msgrelay_password_hashes_total",
    );
    for len in [65, 1000, 8000] {
        let r = login_json(&relay, &client, &"a".repeat(len), "whatever").await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{len} bytes: {}",
            r.body
        );
        assert!(r.content_type().starts_with("application/problem+json"));
        assert_eq!(r.json()["field"], "username", "{}", r.body);
    }
    // Far larger bodies are not even read.
    let r = login_json(&relay, &client, &"a".repeat(1 << 20), "whatever").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let after = metric(
        &metrics(ops(&relay)).await,
        "msgrelay_password_hashes_total",
    );
    assert_eq!(
        after, before,
        "no password hash ran for an over-long username"
    );
    // 64 bytes is still a login attempt (a wrong one).
    assert_eq!(
        login_json(&relay, &client, &"a".repeat(64), "whatever")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// 100,000 failed logins, each with a username never seen before, a hundred of them 1 MiB long
/// and ten thousand between 65 bytes and 4 KiB: the portal's memory stays flat (the limiter is a
/// bounded LRU of hashes, long names are refused unread) and no log line carries a username.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_failed_logins_with_distinct_usernames_keep_memory_flat() {
    const TOTAL: usize = 100_000;
    let relay = TestRelay::up(&[
        ("MSGRELAY_PORTAL__LOGIN_MAX_FAILURES_PER_IP", "300"),
        ("MSGRELAY_PORTAL__LOGIN_LIMITER_CAPACITY", "200"),
        ("MSGRELAY_PORTAL__PASSWORD_HASH_CONCURRENCY", "2"),
    ])
    .await;
    let pid = relay.up.as_ref().unwrap().pid();
    let client = relay.portal_raw_client(Some(ATTACKER));
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        u16,
        usize,
    >::new()));

    let attack = |from: usize, to: usize| {
        let next = Arc::new(AtomicUsize::new(from));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (next, client, statuses) = (next.clone(), client.clone(), statuses.clone());
                let url = format!(
                    "https://localhost:{}/api/v1/auth/login",
                    relay.portal_addr().port()
                );
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= to {
                            break;
                        }
                        let username = match i {
                            i if i % 1000 == 0 => format!("guess-{i}-{}", "x".repeat(1 << 20)),
                            i if i % 10 == 0 => format!("guess-{i}-{}", "y".repeat(60 + i % 4000)),
                            i => format!("guess-{i}"),
                        };
                        let body = json!({"username": username, "password": format!("hunter{i}")});
                        let status = match client.post(&url).json(&body).send().await {
                            Ok(r) => r.status().as_u16(),
                            // A 1 MiB body may be cut off by the server's refusal: also a refusal.
                            Err(_) => 0,
                        };
                        *statuses.lock().unwrap().entry(status).or_default() += 1;
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.expect("attack task");
            }
        }
    };

    attack(0, 2_000).await;
    let warm = rss_kib(pid);
    attack(2_000, TOTAL).await;
    let end = rss_kib(pid);
    let statuses = statuses.lock().unwrap().clone();
    eprintln!("failed logins: {TOTAL}; statuses {statuses:?}; portal RSS after 2,000: {warm} KiB, after {TOTAL}: {end} KiB");

    assert_eq!(statuses.values().sum::<usize>(), TOTAL);
    assert!(
        statuses.keys().all(|s| [0, 401, 413, 422, 429].contains(s)),
        "only refusals: {statuses:?}"
    );
    assert!(
        statuses.get(&401).copied().unwrap_or(0) <= 300,
        "the address limit held: {statuses:?}"
    );
    assert!(
        statuses.get(&0).copied().unwrap_or(0) <= TOTAL / 1000,
        "only 1 MiB requests may be cut off: {statuses:?}"
    );
    assert!(
        end <= warm + 48 * 1024,
        "RSS grew from {warm} KiB to {end} KiB"
    );

    // The relay still works for everyone else.
    let office = relay.portal_raw_client(Some(OFFICE));
    assert_eq!(
        login_json(&relay, &office, "demo", &relay.bootstrap_password("demo"))
            .await
            .status,
        StatusCode::OK
    );

    // Nothing logged at full length, no attempted username (or password) in any log.
    let mut logs = relay.up.as_ref().unwrap().output();
    for f in crate::support::files_under(&relay.path("logs")) {
        logs.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2048, "a log line of {longest} bytes");
    assert!(
        !logs.contains("guess-") && !logs.contains("hunter"),
        "an attempted username or password was logged"
    );
    assert!(
        logs.contains("user_tag"),
        "failed logins are logged with a tag of the username"
    );
}

/// 200 parallel wrong passwords for one user: the check-and-reserve lets exactly the allowed
/// number through to a password hash; everyone else gets 429 with Retry-After at once. Then 40
/// parallel logins of distinct users: never more hashes at once than configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_password_guesses_run_at_most_the_allowed_hashes() {
    let relay = TestRelay::up(&[
        ("MSGRELAY_PORTAL__LOGIN_MAX_FAILURES_PER_USER", "5"),
        ("MSGRELAY_PORTAL__LOGIN_MAX_FAILURES_PER_IP", "100000"),
        ("MSGRELAY_PORTAL__PASSWORD_HASH_CONCURRENCY", "2"),
    ])
    .await;
    let before = metric(
        &metrics(ops(&relay)).await,
        "msgrelay_password_hashes_total",
    );
    let client = relay.portal_raw_client(Some(ATTACKER));
    let guesses: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let url = format!(
                "https://localhost:{}/api/v1/auth/login",
                relay.portal_addr().port()
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"username": "admin", "password": format!("guess {i}")}))
                    .send()
                    .await
                    .expect("login");
                (
                    r.status(),
                    r.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok()),
                )
            })
        })
        .collect();
    let mut wrong = 0;
    let mut throttled = 0;
    for g in guesses {
        match g.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => wrong += 1,
            (StatusCode::TOO_MANY_REQUESTS, Some(secs)) if (1..=900).contains(&secs) => {
                throttled += 1
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((wrong, throttled), (5, 195));
    let m = metrics(ops(&relay)).await;
    assert_eq!(
        metric(&m, "msgrelay_password_hashes_total") - before,
        5.0,
        "one hash per allowed guess"
    );
    assert!(metric(&m, "msgrelay_password_hashes_peak") <= 2.0);

    let distinct: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            let url = format!(
                "https://localhost:{}/api/v1/auth/login",
                relay.portal_addr().port()
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"username": format!("nobody{i}"), "password": "x"}))
                    .send()
                    .await
                    .expect("login")
                    .status()
            })
        })
        .collect();
    for d in distinct {
        assert_eq!(d.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let m = metrics(ops(&relay)).await;
    assert_eq!(metric(&m, "msgrelay_password_hashes_total") - before, 45.0);
    let peak = metric(&m, "msgrelay_password_hashes_peak");
    assert!(
        (1.0..=2.0).contains(&peak),
        "at most 2 hashes at once, saw {peak}"
    );
    assert_eq!(metric(&m, "msgrelay_password_hashes_in_flight"), 0.0);
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_admin_out_from_everywhere() {
    let relay = TestRelay::up(&[("MSGRELAY_PORTAL__LOGIN_MAX_FAILURES_PER_USER", "3")]).await;
    let attacker = relay.portal_raw_client(Some(ATTACKER));
    for _ in 0..3 {
        assert_eq!(
            login_json(&relay, &attacker, "admin", "wrong password")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let password = relay.bootstrap_password("admin");
    let r = login_json(&relay, &attacker, "admin", &password).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker's address is throttled, even with the right password"
    );
    assert!(r.headers.get("retry-after").is_some());
    // The administrator, from another address, logs in at once.
    let office = relay.portal_raw_client(Some(OFFICE));
    let r = login_json(&relay, &office, "admin", &password).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // And the HTML form answers the attacker with 429 and Retry-After too.
    let form = relay
        .portal_send(&attacker, Method::GET, "/login", None, Body::None)
        .await;
    let token = hidden_value(&form.body, "csrf_token").unwrap();
    let cookie = form.cookie_pair("login_csrf").unwrap();
    let r = relay
        .portal_send(
            &attacker,
            Method::POST,
            "/login",
            Some(&Session {
                cookie,
                csrf: String::new(),
            }),
            Body::form(&[
                ("csrf_token", &token),
                ("username", "admin"),
                ("password", "x"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn open_redirect_after_login_is_refused() {
    let relay = TestRelay::up(&[]).await;
    let password = relay.bootstrap_password("demo");
    for bad in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/ /evil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
        "evil.example",
    ] {
        let r = relay.html_login("demo", &password, Some(bad), "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{bad:?}: {}", r.body);
        assert_eq!(r.location(), "/", "{bad:?} must not be followed");
        // The query string of the form is decoded by the server: `%09` arrives as a tab.
        let form = relay
            .portal(
                Method::GET,
                &format!("/login?next={bad}")
                    .replace('\t', "%09")
                    .replace('\n', "%0A")
                    .replace(' ', "%20"),
                None,
                Body::None,
            )
            .await;
        assert_eq!(
            hidden_value(&form.body, "next").as_deref(),
            Some("/"),
            "{bad:?} in the form"
        );
    }
    let r = relay
        .html_login("demo", &password, Some("/messages?page=1"), "")
        .await;
    assert_eq!(r.location(), "/messages?page=1", "a local path is followed");
    // Someone already logged in is sent on at once: the same check applies.
    let s = Session {
        cookie: r.cookie_pair("msgrelay_session").unwrap(),
        csrf: String::new(),
    };
    let r = relay
        .portal(
            Method::GET,
            "/login?next=/%09/evil.example",
            Some(&s),
            Body::None,
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
}
