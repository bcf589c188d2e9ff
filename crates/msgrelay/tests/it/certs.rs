//! The certificate lifecycle against the running relay: issue, renew, revoke without a restart,
//! OpenSSL-script certificates, per-domain SNI, `certs list --expiring-within`, a bad CRL at the
//! proxy, and the expiry metrics and `/ready` warnings. Every wait polls with a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use msgrelay_tls::Pki;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{command, metric, metrics, run, wait_for, TestRelay, BIN, SENDER};

/// How soon a revocation must reach the proxy (`proxy.revocation_refresh_secs` = 1).
const REVOCATION_DEADLINE: Duration = Duration::from_secs(10);
const FAST_REFRESH: (&str, &str) = ("MSGRELAY_PROXY__REVOCATION_REFRESH_SECS", "1");

/// A client bundle on disk: `client.crt`, `client.key`.
struct Bundle {
    dir: PathBuf,
    serial: String,
}

impl Bundle {
    fn cert(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("client.crt")).expect("client.crt")
    }
    fn key(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("client.key")).expect("client.key")
    }
}

/// Runs `msgrelay <args> --data-dir D`, which must succeed; returns its stdout.
async fn cli_ok(relay: &TestRelay, args: &[&str]) -> String {
    let out = run(relay.cli(args)).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "msgrelay {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value of a `  serial       <hex>` line of `certs issue-client|renew|register`.
fn serial_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("serial "))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| panic!("no serial in: {stdout}"))
}

/// Creates client `id` for `domain` (owner demo) and issues it a certificate into `out/<dir>`.
async fn new_client(relay: &TestRelay, id: &str, domain: &str, days: u32, dir: &str) -> Bundle {
    cli_ok(
        relay,
        &[
            "admin",
            "client",
            "create",
            "--client-id",
            id,
            "--owner",
            "demo",
            "--domain",
            domain,
        ],
    )
    .await;
    issue(relay, id, domain, days, dir).await
}

async fn issue(relay: &TestRelay, id: &str, domain: &str, days: u32, dir: &str) -> Bundle {
    let out = relay.path(&format!("out/{dir}"));
    let stdout = cli_ok(
        relay,
        &[
            "certs",
            "issue-client",
            "--client-id",
            id,
            "--domain",
            domain,
            "--days",
            &days.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    Bundle {
        dir: out,
        serial: serial_of(&stdout),
    }
}

/// Posts one valid message: the status, or the transport error (failed handshake, closed connection).
async fn post(client: &reqwest::Client, url: &str) -> Result<(StatusCode, Value), reqwest::Error> {
    let resp = client
        .post(url)
        .json(&serde_json::json!({"sender_number": SENDER, "message_body": "certs test"}))
        .send()
        .await?;
    let status = resp.status();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn accepted(relay: &TestRelay, b: &Bundle) -> bool {
    matches!(
        post(
            &relay.proxy_client(&b.cert(), &b.key()),
            &relay.messages_url()
        )
        .await,
        Ok((StatusCode::ACCEPTED, _))
    )
}

/// Waits until the proxy has picked up a newly registered certificate (registry refresh).
async fn wait_accepted(relay: &TestRelay, b: &Bundle, what: &str) {
    wait_for(what, REVOCATION_DEADLINE, || async move {
        accepted(relay, b).await.then_some(())
    })
    .await;
}

/// Waits until a fresh connection with `b` fails in the TLS handshake itself (the CRL, not only
/// the per-request registry check, refuses it).
async fn wait_handshake_refused(relay: &TestRelay, b: &Bundle, what: &str) {
    wait_for(what, REVOCATION_DEADLINE, || async move {
        post(
            &relay.proxy_client(&b.cert(), &b.key()),
            &relay.messages_url(),
        )
        .await
        .is_err()
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn issue_renew_and_revoke_take_effect_without_a_restart() {
    let relay = TestRelay::up(&[FAST_REFRESH]).await;
    relay.send_ok("control").await;

    let old = new_client(&relay, "alpha", "localhost", 825, "alpha-1").await;
    wait_accepted(&relay, &old, "the issued certificate to be accepted").await;

    let renewed_dir = relay.path("out/alpha-2");
    let stdout = cli_ok(
        &relay,
        &[
            "certs",
            "renew",
            "--client-id",
            "alpha",
            "--out",
            renewed_dir.to_str().unwrap(),
        ],
    )
    .await;
    let new = Bundle {
        dir: renewed_dir,
        serial: serial_of(&stdout),
    };
    assert_ne!(new.serial, old.serial);
    wait_accepted(&relay, &new, "the renewed certificate to be accepted").await;
    assert!(
        accepted(&relay, &old).await,
        "the old certificate stopped working on renewal"
    );

    // A connection opened before the revocation, kept alive: its next request must be refused too.
    let open = relay.proxy_client(&old.cert(), &old.key());
    assert!(matches!(
        post(&open, &relay.messages_url()).await,
        Ok((StatusCode::ACCEPTED, _))
    ));

    cli_ok(
        &relay,
        &[
            "certs",
            "revoke",
            "--serial",
            &old.serial,
            "--reason",
            "superseded",
        ],
    )
    .await;
    let (open, url) = (&open, &relay.messages_url());
    wait_for(
        "the open connection to be refused",
        REVOCATION_DEADLINE,
        || async move {
            match post(open, url).await {
                Ok((StatusCode::ACCEPTED, _)) => None,
                _ => Some(()),
            }
        },
    )
    .await;
    wait_handshake_refused(
        &relay,
        &old,
        "a new handshake with the revoked certificate to fail",
    )
    .await;

    assert!(
        accepted(&relay, &new).await,
        "the renewed certificate was refused after revoking the old one"
    );
    relay.send_ok("the demo client is unaffected").await;
    assert!(
        relay
            .up
            .as_ref()
            .expect("up")
            .output()
            .contains("CRL applied"),
        "the proxy never logged the new CRL"
    );
}

#[tokio::test]
async fn certificates_made_by_the_openssl_scripts_are_accepted_and_revoked() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let relay = TestRelay::up(&[FAST_REFRESH]).await;
    cli_ok(
        &relay,
        &[
            "admin",
            "client",
            "create",
            "--client-id",
            "acme",
            "--owner",
            "demo",
            "--domain",
            "localhost",
        ],
    )
    .await;

    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/certs");
    let data = relay.data_dir();
    let out_dir = data.join("acme");
    let mut gen = command("bash");
    gen.arg(scripts.join("generate_cert.sh"))
        .args(["--client-id", "acme", "--domain", "localhost"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out_dir)
        .env("MSGRELAY_BIN", BIN);
    let out = run(gen).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "generate_cert.sh: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The serial as msgrelay registered it (the line of `msgrelay certs register`).
    let acme = Bundle {
        dir: out_dir,
        serial: serial_of(&stdout),
    };
    wait_accepted(&relay, &acme, "the script-made certificate to be accepted").await;

    let mut revoke = command("bash");
    revoke
        .arg(scripts.join("revoke_cert.sh"))
        .args(["--serial", &acme.serial])
        .arg("--data-dir")
        .arg(&data)
        .env("MSGRELAY_BIN", BIN);
    let out = run(revoke).await;
    assert!(
        out.status.success(),
        "revoke_cert.sh: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_handshake_refused(
        &relay,
        &acme,
        "the script-revoked certificate to fail its handshake",
    )
    .await;
    relay.send_ok("the demo client is unaffected").await;
}

#[tokio::test]
async fn list_expiring_within_shows_only_certificates_due() {
    let relay = TestRelay::init().await;
    let short = new_client(&relay, "shortlived", "localhost", 10, "short").await;
    let long = issue(&relay, "shortlived", "localhost", 825, "long").await;

    let due = cli_ok(&relay, &["certs", "list", "--expiring-within", "30d"]).await;
    assert!(
        due.contains(&short.serial),
        "the 10-day certificate is missing:\n{due}"
    );
    assert!(
        !due.contains(&long.serial),
        "the 825-day certificate is listed as expiring:\n{due}"
    );
    let all = cli_ok(&relay, &["certs", "list"]).await;
    assert!(
        all.contains(&short.serial) && all.contains(&long.serial),
        "{all}"
    );
}

#[tokio::test]
async fn a_crl_signed_by_another_key_or_expired_is_refused_and_the_last_good_one_kept() {
    let relay = TestRelay::up(&[FAST_REFRESH]).await;
    relay.send_ok("control").await;
    let log = || relay.up.as_ref().expect("up").output();
    let refusals = |text: &str| text.matches("refusing a CRL").count();

    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = Pki::new(foreign_dir.path());
    foreign.init(&["localhost".to_owned()]).unwrap();
    let forged = foreign
        .write_crl(&[], Duration::from_secs(30 * 86_400))
        .unwrap();
    // The main server serves pki/client-ca.crl as it is at /internal/crl.
    std::fs::write(relay.path("pki/client-ca.crl"), forged).unwrap();
    wait_for(
        "the proxy to refuse the foreign CRL",
        REVOCATION_DEADLINE,
        || async { (refusals(&log()) > 0).then_some(()) },
    )
    .await;
    relay.send_ok("sending works with the last good CRL").await;

    let before = refusals(&log());
    let now = Utc::now();
    Pki::new(relay.path("pki"))
        .write_crl_with_times(
            &[],
            now - chrono::Duration::days(8),
            now - chrono::Duration::days(1),
        )
        .unwrap();
    wait_for(
        "the proxy to refuse the expired CRL",
        REVOCATION_DEADLINE,
        || async { (refusals(&log()) > before).then_some(()) },
    )
    .await;
    relay.send_ok("sending still works").await;
    assert!(
        log().contains("expired"),
        "the refusal does not say the CRL expired:\n{}",
        log()
    );
}

/// A reqwest client for the proxy presenting `b`, with `name` resolved to the proxy, reporting
/// the server certificate it got.
fn sni_client(relay: &TestRelay, b: &Bundle, name: &str) -> reqwest::Client {
    msgrelay_tls::client::mtls_client_builder(
        &relay.read("clients/demo/ca.crt"),
        &b.cert(),
        &b.key(),
        Duration::from_secs(10),
    )
    .expect("client identity")
    .resolve(name, relay.proxy_addr())
    .tls_info(true)
    .build()
    .expect("build client")
}

/// Like [`sni_client`] but the ClientHello carries no server name (the name is still verified).
fn no_sni_client(relay: &TestRelay, b: &Bundle, name: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for ca in msgrelay_tls::load_certs_pem(&relay.read("clients/demo/ca.crt")).unwrap() {
        roots.add(ca).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        msgrelay_tls::load_certs_pem(&b.cert()).unwrap(),
        msgrelay_tls::load_key_pem(&b.key()).unwrap(),
    )
    .unwrap();
    config.enable_sni = false;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve(name, relay.proxy_addr())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build client")
}

/// Posts with `client` to `https://<name>:<proxy port>`; the status, the body and the DER of the
/// server certificate the proxy presented.
async fn post_to(
    relay: &TestRelay,
    client: &reqwest::Client,
    name: &str,
) -> (StatusCode, Value, Vec<u8>) {
    let url = format!(
        "https://{name}:{}/api/v1/messages",
        relay.proxy_addr().port()
    );
    let resp = client
        .post(url)
        .json(&serde_json::json!({"sender_number": SENDER, "message_body": "sni"}))
        .send()
        .await
        .expect("request");
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("server certificate")
        .to_vec();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null), der)
}

fn proxy_cert_der(relay: &TestRelay, domain: &str) -> Vec<u8> {
    msgrelay_tls::load_certs_pem(&relay.read(&format!("pki/proxy-{domain}.crt")))
        .unwrap()
        .remove(0)
        .to_vec()
}

fn assert_wrong_domain(status: StatusCode, problem: &Value, what: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/wrong_domain")),
        "{what}: {problem}"
    );
}

#[tokio::test]
async fn each_domain_has_its_certificate_and_clients_are_held_to_theirs() {
    let mut relay = TestRelay::empty();
    let domains = (
        "MSGRELAY_PROXY__DOMAINS",
        "[localhost, a.example, b.example]",
    );
    let mut init = relay.cli(&[
        "init",
        "--demo",
        "--domain",
        "a.example",
        "--domain",
        "b.example",
    ]);
    init.env(domains.0, domains.1);
    let out = run(init).await;
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in ["localhost", "a.example", "b.example"] {
        assert!(
            relay.path(&format!("pki/proxy-{d}.crt")).is_file(),
            "init created no certificate for {d}"
        );
    }
    relay.env.push((domains.0.into(), domains.1.into()));
    relay
        .env
        .push((FAST_REFRESH.0.into(), FAST_REFRESH.1.into()));
    relay.start_up(&[]).await;

    // The demo client was created for the first --domain.
    let demo = Bundle {
        dir: relay.path("clients/demo"),
        serial: String::new(),
    };
    let (status, json, der) =
        post_to(&relay, &sni_client(&relay, &demo, "a.example"), "a.example").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{json}");
    assert_eq!(
        der,
        proxy_cert_der(&relay, "a.example"),
        "the proxy did not present a.example's certificate"
    );

    let (status, json, der) =
        post_to(&relay, &sni_client(&relay, &demo, "b.example"), "b.example").await;
    assert_wrong_domain(status, &json, "a.example's client under SNI b.example");
    assert_eq!(der, proxy_cert_der(&relay, "b.example"));

    // Without SNI the proxy presents, and holds clients to, the first entry of proxy.domains.
    let (status, json, der) = post_to(
        &relay,
        &no_sni_client(&relay, &demo, "localhost"),
        "localhost",
    )
    .await;
    assert_wrong_domain(status, &json, "a.example's client without SNI");
    assert_eq!(
        der,
        proxy_cert_der(&relay, "localhost"),
        "without SNI the proxy did not present the default certificate"
    );
    let local = new_client(&relay, "local", "localhost", 30, "local").await;
    let client = no_sni_client(&relay, &local, "localhost");
    let (client, relay_ref) = (&client, &relay);
    wait_for(
        "the default domain's client to be accepted without SNI",
        REVOCATION_DEADLINE,
        || async move {
            let (status, _, _) = post_to(relay_ref, client, "localhost").await;
            (status == StatusCode::ACCEPTED).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn metrics_and_ready_report_expiring_certificates_and_a_crl_close_to_expiry() {
    let mut relay = TestRelay::init().await;
    relay.start_server(&[]).await;
    new_client(&relay, "soon", "localhost", 10, "soon").await;
    let server_ops = relay.server.as_ref().expect("server").addr("ops");
    let text = metrics(server_ops).await;
    assert_eq!(
        metric(&text, "msgrelay_certificates_expiring_30d"),
        1.0,
        "{text}"
    );
    let ready: Value = reqwest::get(format!("http://{server_ops}/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        ready["warnings"]["certificates"]
            .as_str()
            .is_some_and(|w| w.contains("1 certificate")),
        "{ready}"
    );

    // A CRL with five hours left, written after the server's start-up check (it re-signs every 10 min).
    let now = Utc::now();
    Pki::new(relay.path("pki"))
        .write_crl_with_times(
            &[],
            now - chrono::Duration::days(7),
            now + chrono::Duration::hours(5),
        )
        .unwrap();
    relay.start_proxy(&[]).await;
    let proxy_ops = relay.proxy.as_ref().expect("proxy").addr("ops");
    let left = metric(
        &metrics(proxy_ops).await,
        "msgrelay_crl_seconds_until_next_update",
    );
    assert!(
        (4.0 * 3600.0..=5.0 * 3600.0).contains(&left),
        "seconds until the CRL's next update: {left}"
    );
    let resp = reqwest::get(format!("http://{proxy_ops}/ready"))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "a CRL with hours left must not fail /ready"
    );
    let ready: Value = resp.json().await.unwrap();
    assert!(
        ready["warnings"]["crl"]
            .as_str()
            .is_some_and(|w| w.starts_with("crl expires in 4h")),
        "{ready}"
    );
}

#[tokio::test]
async fn client_ca_under_an_offline_root_issues_and_revokes_online() {
    let mut relay = TestRelay::empty();
    let root = relay
        .data_dir()
        .parent()
        .expect("temp dir")
        .join("offline-root");
    let stdout = cli_ok(
        &relay,
        &["certs", "init-ca", "--offline-root", root.to_str().unwrap()],
    )
    .await;
    assert!(stdout.contains("offline storage"), "{stdout}");
    let out = run(relay.cli(&["init", "--demo"])).await;
    assert!(
        out.status.success(),
        "msgrelay init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The root key may now go away entirely: nothing below needs it.
    std::fs::remove_file(root.join("client-root-ca.key")).expect("root key");
    relay.start_up(&[FAST_REFRESH]).await;
    relay.send_ok("demo client signed by the issuing CA").await;

    let b = new_client(&relay, "offline", "localhost", 30, "offline-1").await;
    wait_accepted(
        &relay,
        &b,
        "a certificate from the issuing CA to be accepted",
    )
    .await;
    cli_ok(&relay, &["certs", "revoke", "--client-id", "offline"]).await;
    wait_handshake_refused(&relay, &b, "the revoked certificate's handshake to fail").await;
    relay.send_ok("the demo client is unaffected").await;
}
