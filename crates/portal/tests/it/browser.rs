//! A real browser (Debian's headless Chromium through chromedriver, driven by fantoccini) walks
//! the portal: a user logs in, sees and filters their messages, opens one, logs out; an admin logs
//! in, creates a user, issues a client certificate, creates an API token, lists every message,
//! retries a failed message and looks at the dashboard. Each step asserts what the page shows; the
//! screenshots illustrate docs/user-guide.md and docs/admin-guide.md. Screenshots go to `<target>/screenshots/`
//! (and to `docs/screenshots/` with `UPDATE_SCREENSHOTS=1`).
//! Skipped with a notice when chromium or chromedriver is missing, or fails under
//! `MSGRELAY_TEST_REQUIRE_EXTERNAL=1` (the skip policy of `msgrelay-testkit`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::support::{deliver, spawn_app, PASSWORD};

const CHROMIUM: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const DRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(candidates: &[&str], env: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.exists())
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

async fn start_driver(driver: &Path, profile: &Path) -> (Driver, Client, PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = profile.join("chromedriver.log");
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let chromium = find(&CHROMIUM, "CHROMIUM").expect("chromium");
    let caps = serde_json::json!({
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--ignore-certificate-errors",
                     "--window-size=1280,900", format!("--user-data-dir={}", profile.join("chrome").display())]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    loop {
        let mut b = ClientBuilder::new(HttpConnector::new());
        b.capabilities(caps.clone());
        match b.connect(&url).await {
            Ok(c) => return (guard, c, log),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "cannot start a Chromium session through chromedriver: {e} (log: {})",
                log.display()
            ),
        }
    }
}

async fn login(c: &Client, base: &str, user: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("whoami")).await.unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn user_and_admin_walk_through_the_portal() {
    let (Some(driver), Some(_)) = (find(&DRIVER, "CHROMEDRIVER"), find(&CHROMIUM, "CHROMIUM"))
    else {
        msgrelay_testkit::skip(
            "chromium and chromedriver",
            "not found (apt-get install -y chromium chromium-driver)",
        );
        return;
    };
    let app = spawn_app().await;
    let second = deliver(
        &app.portal,
        "alice-app",
        "+15557654321",
        "Your code is 424242",
    )
    .await;
    // A message the workers gave up on: in the queue's dead letters, for the maintenance page.
    let cfg = app.portal.state.cfg.clone();
    let queue = msgrelay_queue::Queue::connect(&cfg.queue, &cfg.data_dir)
        .await
        .expect("queue");
    let failed_id = msgrelay_core::MessageId::new();
    queue
        .enqueue(
            msgrelay_queue::NewMessage {
                id: failed_id,
                client_id: msgrelay_core::ClientId::parse("carol-app").unwrap(),
                payload: vec![1; 64],
                accepted_at_ms: msgrelay_core::now_ms(),
            },
            None,
        )
        .await
        .expect("enqueue");
    let leased = queue
        .lease("browser-test", 1, Duration::from_secs(60))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1);
    queue
        .retry_later(
            &[leased[0].token.clone()],
            Duration::ZERO,
            1,
            "main server unreachable",
        )
        .await
        .expect("fail it");
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c, _log) = start_driver(&driver, profile.path()).await;
    let base = app.base.clone();
    let result = async {
        // The login page.
        c.goto(&format!("{base}/messages")).await.unwrap();
        assert_eq!(
            c.current_url().await.unwrap().path(),
            "/login",
            "anonymous visitors are sent to the login page"
        );
        c.find(Locator::Id("username")).await.unwrap();
        c.find(Locator::Css("input#password[type=password]"))
            .await
            .unwrap();
        shot(&c, "00-login").await;

        // A user: own messages only, filter, detail, logout.
        login(&c, &base, "alice").await;
        assert!(c
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/messages"));
        let table = text(&c, "#messages").await;
        assert!(
            table.contains(&app.alice_msg.to_string()) && table.contains(&second.to_string()),
            "own messages listed"
        );
        assert!(
            !table.contains(&app.bob_msg.to_string()),
            "no other user's message"
        );
        assert!(
            !c.find(Locator::Css("#messages time"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("UTC"),
            "times converted to the browser's zone"
        );
        shot(&c, "01-user-messages").await;
        c.find(Locator::Id("f-sender"))
            .await
            .unwrap()
            .send_keys("+15557654321")
            .await
            .unwrap();
        c.find(Locator::Id("apply-filter"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap_or("")
            .contains("sender=%2B15557654321")
        {
            assert!(
                Instant::now() < deadline,
                "the filter form was not submitted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let total = text(&c, "#total").await;
        assert!(total.starts_with("1 message"), "filtered: {total}");
        shot(&c, "02-user-filtered").await;
        c.find(Locator::LinkText(&second.to_string()))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(text(&c, "#body").await, "Your code is 424242");
        shot(&c, "03-user-message").await;
        c.find(Locator::Id("logout"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait().for_element(Locator::Id("password")).await.unwrap();
        assert!(c
            .source()
            .await
            .unwrap()
            .contains("You have been logged out."));
        c.goto(&format!("{base}/messages")).await.unwrap();
        assert_eq!(
            c.current_url().await.unwrap().path(),
            "/login",
            "logged out for real"
        );

        // An admin: create a user, see the dashboard.
        login(&c, &base, "boss").await;
        c.goto(&format!("{base}/admin/users")).await.unwrap();
        c.find(Locator::Id("nu-name"))
            .await
            .unwrap()
            .send_keys("gina")
            .await
            .unwrap();
        c.find(Locator::Id("nu-pass"))
            .await
            .unwrap()
            .send_keys("a very long password")
            .await
            .unwrap();
        c.find(Locator::Css("#create-user button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(text(&c, "#notice").await, "User created.");
        assert!(c.find(Locator::Id("user-gina")).await.is_ok());
        shot(&c, "04-admin-users").await;
        c.goto(&format!("{base}/admin")).await.unwrap();
        assert_eq!(text(&c, "#count-delivered").await, "3");
        assert!(
            c.find(Locator::Css("#chart rect.bar-delivered"))
                .await
                .is_ok(),
            "chart drawn"
        );
        shot(&c, "05-admin-dashboard").await;

        // Clients and certificates: issue alice-app's first certificate.
        c.goto(&format!("{base}/admin/clients")).await.unwrap();
        c.find(Locator::Css(
            "form[action='/admin/clients/alice-app/issue'] button[type=submit]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        let issued = text(&c, "#issued").await;
        assert!(
            issued.contains("Certificate issued for alice-app") && issued.contains("Serial"),
            "issued: {issued}"
        );
        assert!(c
            .find(Locator::Css(
                "form[action='/admin/clients/alice-app/bundle'] button"
            ))
            .await
            .is_ok());
        let certs = text(&c, "section[aria-labelledby='client-alice-app'] table").await;
        assert!(
            certs.contains("active"),
            "the new certificate is listed: {certs}"
        );
        shot(&c, "06-admin-clients").await;

        // API tokens: a read token for alice, shown once.
        c.goto(&format!("{base}/admin/tokens")).await.unwrap();
        c.find(Locator::Css("#nt-user option[value='alice']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Id("nt-name"))
            .await
            .unwrap()
            .send_keys("reporting script")
            .await
            .unwrap();
        c.find(Locator::Css("#create-token button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .for_element(Locator::Id("new-token"))
            .await
            .unwrap();
        let raw = c
            .find(Locator::Id("token-value"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(raw.len() >= 32, "the new token is shown once");
        let tokens = text(&c, "#tokens").await;
        assert!(
            tokens.contains("reporting script")
                && tokens.contains("alice")
                && tokens.contains("read")
                && tokens.contains("active"),
            "tokens: {tokens}"
        );
        shot(&c, "09-admin-tokens").await;
        // The token works against the JSON API, for alice's messages only.
        let listed = app
            .http
            .get(format!("{base}/api/v1/messages"))
            .bearer_auth(&raw)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), reqwest::StatusCode::OK);
        let listed = listed.text().await.unwrap();
        assert!(listed.contains(&second.to_string()) && !listed.contains(&app.bob_msg.to_string()));

        // Every client's messages.
        c.goto(&format!("{base}/admin/messages")).await.unwrap();
        let all = text(&c, "#messages").await;
        for id in [app.alice_msg, app.bob_msg, second] {
            assert!(all.contains(&id.to_string()), "admin sees {id}");
        }
        shot(&c, "10-admin-messages").await;

        // Maintenance: the failed message, then "Retry now".
        c.goto(&format!("{base}/admin/maintenance")).await.unwrap();
        let failed = text(&c, "#failed").await;
        assert!(
            failed.contains(&failed_id.to_string())
                && failed.contains("carol-app")
                && failed.contains("main server unreachable"),
            "failed: {failed}"
        );
        shot(&c, "07-admin-maintenance").await;
        c.find(Locator::Css(&format!(
            "#failed form input[name=id][value='{failed_id}'] ~ button"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        assert_eq!(
            text(&c, "#notice").await,
            "Failed messages put back into the queue."
        );
        c.find(Locator::Id("no-failed")).await.unwrap();
        let again = queue
            .lease("browser-test", 1, Duration::from_secs(60))
            .await
            .expect("lease");
        assert_eq!(
            again.iter().map(|l| l.id).collect::<Vec<_>>(),
            vec![failed_id],
            "the retried message is due again"
        );
        c.goto(&format!("{base}/docs/")).await.unwrap();
        c.wait()
            .for_element(Locator::Css(".swagger-ui .info"))
            .await
            .unwrap();
        shot(&c, "08-api-docs").await;
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    result.unwrap();
}
