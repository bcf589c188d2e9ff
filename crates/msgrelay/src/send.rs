//! `msgrelay send`: the Rust client. It behaves like `clients/python/send_message.py`: the same
//! flags and `MSGRELAY_*` variables, defaults, retries, messages and exit codes (0 accepted,
//! 2 refused for good, 3 gave up after the retries, 64 bad arguments or files).
//! `tests/it/client_parity.rs` runs both clients against the same cases.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

const EXIT_REJECTED: u8 = 2;
const EXIT_GAVE_UP: u8 = 3;
/// Bad local arguments or files (EX_USAGE); also what clap's own errors exit with for `send`.
pub const EXIT_USAGE: u8 = 64;

const MAX_IDEMPOTENCY_KEY: usize = 128;
const MAX_BACKOFF_SECS: f64 = 30.0;
const MAX_RETRY_AFTER_SECS: f64 = 300.0;

const AFTER_HELP: &str = "\
every flag can also come from its environment variable (shown in brackets); a flag on the
command line wins over the variable.

example (the files come from the client bundle `msgrelay certs issue-client` wrote):
  msgrelay send --url https://relay.example.com:8443 \\
      --cert client.crt --key client.key --ca ca.crt \\
      --sender +15551234567 --body \"Hello\"

  --body - reads the body from standard input (UTF-8; one trailing newline is dropped), which
  keeps it out of the process list:  echo Hello | msgrelay send ... --body -

on success only the message id is printed (standard output). Exit codes:
  0   accepted (202): the message is durably queued
  2   refused for good (4xx, or the TLS handshake was rejected): fix what the error says
  3   gave up after the retries (network, timeouts, 5xx): re-run later with the SAME
      --idempotency-key printed in the error, so the message is not sent twice
  64  bad arguments or unreadable certificate/key/CA files";

/// Values stay strings until [`SendArgs::check`], so that a bad number gets the same message
/// (and exit code 64) as in the Python client.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct SendArgs {
    /// Proxy base URL, e.g. https://relay.example.com:8443 (the command adds /api/v1/messages)
    #[arg(long, env = "MSGRELAY_URL")]
    url: Option<String>,
    /// Client certificate, PEM (client.crt); may also hold the private key
    #[arg(long, env = "MSGRELAY_CERT")]
    cert: Option<PathBuf>,
    /// Client private key, PEM, unencrypted (client.key); omit it when --cert holds the key
    #[arg(long, env = "MSGRELAY_KEY")]
    key: Option<PathBuf>,
    /// CA that signed the proxy's certificate (ca.crt)
    #[arg(long, env = "MSGRELAY_CA")]
    ca: Option<PathBuf>,
    /// Sender number, E.164 like +15551234567
    #[arg(long, env = "MSGRELAY_SENDER")]
    sender: Option<String>,
    /// Message text, or - to read it from standard input
    #[arg(long, env = "MSGRELAY_BODY")]
    body: Option<String>,
    /// At most 128 characters; a re-send with the same key within 24 h returns the same id
    /// instead of a second message (default: a new random UUID)
    #[arg(long, env = "MSGRELAY_IDEMPOTENCY_KEY")]
    idempotency_key: Option<String>,
    /// Also send metadata.client_id (must match the certificate) and metadata.timestamp
    #[arg(long, env = "MSGRELAY_CLIENT_ID")]
    client_id: Option<String>,
    /// Seconds per attempt (default 30)
    #[arg(long, env = "MSGRELAY_TIMEOUT")]
    timeout: Option<String>,
    /// Retries after the first attempt (default 5)
    #[arg(long, env = "MSGRELAY_RETRIES")]
    retries: Option<String>,
}

/// The checked arguments.
struct Request {
    url: String,
    cert: PathBuf,
    key: Option<PathBuf>,
    ca: PathBuf,
    sender: String,
    body: String,
    idempotency_key: String,
    client_id: Option<String>,
    timeout: Duration,
    retries: u32,
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl SendArgs {
    /// The Python client's checks, in its order; the error says what to do next.
    fn check(self) -> Result<Request, String> {
        let url = present(self.url);
        let sender = present(self.sender);
        let body = present(self.body);
        let cert = self.cert.filter(|p| !p.as_os_str().is_empty());
        let ca = self.ca.filter(|p| !p.as_os_str().is_empty());
        let missing: Vec<&str> = [
            ("--url (or MSGRELAY_URL)", url.is_none()),
            ("--sender (or MSGRELAY_SENDER)", sender.is_none()),
            ("--body (or MSGRELAY_BODY)", body.is_none()),
            ("--cert (or MSGRELAY_CERT)", cert.is_none()),
            ("--ca (or MSGRELAY_CA)", ca.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, absent)| absent.then_some(flag))
        .collect();
        let (Some(url), Some(sender), Some(body), Some(cert), Some(ca)) =
            (url, sender, body, cert, ca)
        else {
            return Err(format!(
                "missing {} (see --help for an example)",
                missing.join(", ")
            ));
        };
        let timeout = match present(self.timeout) {
            None => 30.0,
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => v,
                _ => return Err(format!("--timeout: '{raw}' is not a valid value")),
            },
        };
        let retries = match present(self.retries) {
            None => 5,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(v) if v <= 100 => v,
                _ => return Err(format!("--retries: '{raw}' is not a valid value")),
            },
        };
        let idempotency_key = self
            .idempotency_key
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let chars = idempotency_key.chars().count();
        if chars == 0
            || chars > MAX_IDEMPOTENCY_KEY
            || idempotency_key.chars().any(char::is_control)
        {
            return Err(format!(
                "--idempotency-key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
            ));
        }
        if !idempotency_key.is_ascii() {
            return Err(
                "--idempotency-key must be ASCII (it travels in an HTTP header)".to_owned(),
            );
        }
        let url = url.trim_end_matches('/').to_owned();
        if !url.to_ascii_lowercase().starts_with("https://") {
            return Err(
                "--url must start with https:// (the proxy only speaks mutual TLS)".to_owned(),
            );
        }
        Ok(Request {
            url,
            cert,
            key: self.key.filter(|p| !p.as_os_str().is_empty()),
            ca,
            sender,
            body,
            idempotency_key,
            client_id: present(self.client_id),
            timeout: Duration::from_secs_f64(timeout),
            retries,
        })
    }
}

/// `-` means standard input; a BOM and a single trailing newline (as echo adds) are dropped.
fn read_body(body: String) -> Result<String, String> {
    if body != "-" {
        return Ok(body);
    }
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| {
        "standard input is not UTF-8 text; save the body as UTF-8 or pass it with --body".to_owned()
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    Ok(text.to_owned())
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    if !path.is_file() {
        return Err(format!(
            "{flag} file '{}' not found: pass the path to the file from the client bundle \
             (client.crt, client.key, ca.crt)",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{flag} file '{}': {e}", path.display()))
}

/// The mutual-TLS client: the proxy is verified against `--ca` (host name checked), redirects
/// are never followed (a redirect would re-send the body somewhere else).
fn tls_client(req: &Request) -> Result<reqwest::Client, String> {
    let cert = read_file("--cert", &req.cert)?;
    let key = match &req.key {
        Some(path) => read_file("--key", path)?,
        None => cert.clone(),
    };
    let ca = read_file("--ca", &req.ca)?;
    if msgrelay_tls::client::tls_client_builder(&ca, req.timeout).is_err() {
        return Err(format!(
            "--ca '{}' is not a readable PEM CA certificate",
            req.ca.display()
        ));
    }
    let builder = msgrelay_tls::client::mtls_client_builder(&ca, &cert, &key, req.timeout)
        .map_err(|e| match &req.key {
            None => format!(
                "cannot load a certificate and private key from --cert '{}' ({e}): pass --key \
                 with client.key, or a PEM file holding both",
                req.cert.display()
            ),
            Some(key) => format!(
                "cannot load --cert '{}' with --key '{}' ({e}): check both are PEM files of the \
                 same bundle",
                req.cert.display(),
                key.display()
            ),
        })?;
    builder
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("msgrelay-send/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the TLS client: {e}"))
}

pub async fn run(args: SendArgs) -> ExitCode {
    let prepared = args.check().and_then(|mut req| {
        req.body = read_body(std::mem::take(&mut req.body))?;
        let client = tls_client(&req)?;
        Ok((req, client))
    });
    let (req, client) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let outcome = send(&client, &req).await;
    for line in &outcome.errors {
        eprintln!("{line}");
    }
    if let Some(id) = &outcome.message_id {
        println!("{id}");
    }
    ExitCode::from(outcome.code)
}

struct Outcome {
    code: u8,
    message_id: Option<String>,
    errors: Vec<String>,
}

impl Outcome {
    fn failed(code: u8, errors: Vec<String>) -> Self {
        Outcome {
            code,
            message_id: None,
            errors,
        }
    }
}

/// POSTs the message, retrying transient failures (network, timeouts, 408, 429, 5xx) with the
/// same idempotency key: 1, 2, 4 … s (at most 30 s), or what `Retry-After` asks for.
async fn send(client: &reqwest::Client, req: &Request) -> Outcome {
    let mut payload = serde_json::json!({"sender_number": req.sender, "message_body": req.body});
    if let Some(id) = &req.client_id {
        payload["metadata"] = serde_json::json!({
            "client_id": id,
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
    }
    let secrets = [req.sender.as_str(), req.body.as_str()];
    let endpoint = format!("{}/api/v1/messages", req.url);
    let attempts = req.retries + 1;
    let mut last = String::from("no attempt made");
    for attempt in 1..=attempts {
        let mut retry_after = None;
        let sent = client
            .post(&endpoint)
            .header("Accept", "application/json, application/problem+json")
            .header("Idempotency-Key", &req.idempotency_key)
            .json(&payload)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let header = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = match resp.bytes().await {
                    Ok(b) => b,
                    Err(_) if status.is_success() => {
                        return accepted_without_id(status.as_u16(), &req.idempotency_key)
                    }
                    Err(_) => Default::default(),
                };
                if status.is_success() {
                    return accepted(status.as_u16(), &body, &req.idempotency_key);
                }
                let code = status.as_u16();
                let reason = status.canonical_reason().unwrap_or("");
                let doc = problem(&body);
                if code < 500 && code != 408 && code != 429 {
                    return Outcome::failed(
                        EXIT_REJECTED,
                        problem_lines(code, reason, &doc, &secrets),
                    );
                }
                last = redact(&format!("{code} {}", title(reason, &doc)), &secrets);
                if doc["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("/saturated"))
                {
                    last.push_str(" (the relay is saturated: its queue is full)");
                }
                retry_after = header.as_deref().and_then(parse_retry_after);
            }
            Err(e) => {
                if let Some(fatal) = tls_rejection(&e) {
                    return Outcome::failed(EXIT_REJECTED, vec![fatal]);
                }
                last = describe(&e);
            }
        }
        if attempt == attempts {
            break;
        }
        let delay =
            retry_after.unwrap_or_else(|| 2f64.powi(attempt as i32 - 1).min(MAX_BACKOFF_SECS));
        eprintln!(
            "warning: attempt {attempt} of {attempts} failed ({last}); retrying in {} s",
            fmt_secs(delay)
        );
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
    }
    Outcome::failed(
        EXIT_GAVE_UP,
        vec![
            format!("error: gave up after {attempts} attempt(s); last error: {last}"),
            format!(
                "check that {} is reachable from here (DNS, firewall, proxy running; its ops \
                 endpoint /ready on the relay host says whether it can queue), then re-run with \
                 --idempotency-key {} so that a message that did arrive is not sent twice",
                req.url, req.idempotency_key
            ),
        ],
    )
}

fn accepted(status: u16, body: &[u8], idempotency_key: &str) -> Outcome {
    let id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .filter(|id| !id.is_empty());
    match id {
        Some(id) => Outcome {
            code: 0,
            message_id: Some(id),
            errors: Vec::new(),
        },
        None => accepted_without_id(status, idempotency_key),
    }
}

fn accepted_without_id(status: u16, idempotency_key: &str) -> Outcome {
    Outcome::failed(
        EXIT_GAVE_UP,
        vec![format!(
            "error: the proxy answered {status} without a readable message id; re-run with \
             --idempotency-key {idempotency_key} to get the id without sending a second message"
        )],
    )
}

fn problem(body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(doc @ Value::Object(_)) => doc,
        _ => Value::Object(Default::default()),
    }
}

fn title(reason: &str, doc: &Value) -> String {
    doc["title"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or(reason)
        .trim()
        .to_owned()
}

fn hint(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => "the proxy did not accept the client certificate: check --cert/--key belong together and are not expired or revoked",
        403 => "check that the certificate belongs to an enabled client, that the URL's host name is one of that client's domains, and that --client-id (if given) matches the certificate",
        404 => "check --url: it must be the proxy's base URL, e.g. https://relay.example.com:8443 (the command adds /api/v1/messages)",
        413 => "the message is larger than the proxy accepts (proxy.max_body_bytes)",
        415 => "the proxy expected JSON; this is a bug in the client, please report it",
        300..=399 => "the proxy never redirects; check --url (scheme, host and port of the proxy itself)",
        _ => return None,
    })
}

/// `error: <status> <title>: <detail>`, then the offending field(s) and a hint.
fn problem_lines(status: u16, reason: &str, doc: &Value, secrets: &[&str]) -> Vec<String> {
    let title = doc["title"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or(if reason.is_empty() { "error" } else { reason });
    let mut line = format!("error: {status} {title}");
    if let Some(detail) = doc["detail"].as_str().filter(|d| !d.is_empty()) {
        line.push_str(&format!(": {detail}"));
    }
    let mut lines = vec![line];
    if let Some(field) = doc["field"].as_str().filter(|f| !f.is_empty()) {
        lines.push(format!("  field: {field}"));
    }
    let errors: Vec<(String, String)> = match &doc["errors"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let pick = |keys: &[&str]| {
                    keys.iter()
                        .find_map(|k| item[*k].as_str().filter(|s| !s.is_empty()))
                        .unwrap_or_default()
                        .to_owned()
                };
                let name = pick(&["field", "pointer", "name"]);
                let name = if name.is_empty() {
                    "?".to_owned()
                } else {
                    name
                };
                (name, pick(&["detail", "message", "reason"]))
            })
            .collect(),
        _ => Vec::new(),
    };
    for (name, why) in errors {
        if why.is_empty() {
            lines.push(format!("  field: {name}"));
        } else {
            lines.push(format!("  field: {name}: {why}"));
        }
    }
    if let Some(h) = hint(status) {
        lines.push(format!("hint: {h}"));
    }
    lines.iter().map(|l| redact(l, secrets)).collect()
}

/// Belt and braces: never echo the number or body even if a server puts them in an error.
fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.chars().count() >= 3)
        .fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

/// Seconds from a Retry-After header (delta-seconds or HTTP-date), bounded; None if unreadable.
fn parse_retry_after(value: &str) -> Option<f64> {
    let value = value.trim();
    let secs = match value.parse::<f64>() {
        Ok(s) if s.is_finite() => s,
        Ok(_) => return None,
        Err(_) => {
            let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds() as f64
                / 1000.0
        }
    };
    Some(secs.clamp(0.0, MAX_RETRY_AFTER_SECS))
}

/// Like Python's `%g`: `1`, `0.5`, `30`.
fn fmt_secs(secs: f64) -> String {
    let s = format!("{secs:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn tls_rejection(e: &reqwest::Error) -> Option<String> {
    match handshake_refusal(e)? {
        HandshakeRefusal::PeerNotVerified(why) => Some(format!(
            "error: cannot verify the proxy's certificate ({why}): check that --ca is the ca.crt \
             from this relay's client bundle and that the URL's host name is one of the proxy's \
             domains"
        )),
        HandshakeRefusal::AlertReceived(alert) => Some(format!(
            "error: the proxy refused the TLS handshake ({alert}): the client certificate is \
             unknown, expired or revoked, or --cert/--key are not from this relay; ask the relay \
             admin (`msgrelay certs list`) or renew the certificate"
        )),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                std::io::ErrorKind::TimedOut => return "timed out".to_owned(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                    return "the proxy closed the TLS connection (if this persists, it does not \
                            accept the client certificate)"
                        .to_owned()
                }
                _ => {}
            }
        }
        next = err.source();
    }
    if e.is_connect() {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = s.to_string();
            source = s.source();
        }
        if text.contains("dns error") || text.contains("failed to lookup") {
            return "host name not found".to_owned();
        }
        return text;
    }
    e.to_string()
}

/// Why a TLS handshake failed for good, found in an error's source chain (a reqwest error wraps
/// hyper's, which wraps the `io::Error` that carries rustls's). Retrying cannot fix either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HandshakeRefusal {
    /// This side could not verify the proxy's certificate (wrong CA, wrong host name, expired).
    PeerNotVerified(String),
    /// The proxy sent a fatal alert: it refused our certificate (unknown, expired or revoked).
    AlertReceived(String),
}

fn handshake_refusal(err: &(dyn std::error::Error + 'static)) -> Option<HandshakeRefusal> {
    let mut next = Some(err);
    while let Some(e) = next {
        let rustls_error = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        match rustls_error {
            Some(rustls::Error::InvalidCertificate(why)) => {
                return Some(HandshakeRefusal::PeerNotVerified(format!("{why:?}")));
            }
            Some(rustls::Error::AlertReceived(alert)) => {
                return Some(HandshakeRefusal::AlertReceived(format!("{alert:?}")));
            }
            _ => {}
        }
        // Some layers keep only the text of rustls's error (its Display is stable).
        let text = e.to_string();
        if let Some(why) = text.split("invalid peer certificate: ").nth(1) {
            return Some(HandshakeRefusal::PeerNotVerified(why.to_owned()));
        }
        if let Some(alert) = text.split("received fatal alert: ").nth(1) {
            return Some(HandshakeRefusal::AlertReceived(alert.to_owned()));
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRevoked),
        );
        assert_eq!(
            handshake_refusal(&wrapped),
            Some(HandshakeRefusal::AlertReceived("CertificateRevoked".into()))
        );
        let unverified = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(matches!(
            handshake_refusal(&unverified),
            Some(HandshakeRefusal::PeerNotVerified(_))
        ));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(handshake_refusal(&refused), None);
    }

    fn args(pairs: &[(&str, &str)]) -> SendArgs {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        SendArgs {
            url: get("url"),
            cert: get("cert").map(PathBuf::from),
            key: get("key").map(PathBuf::from),
            ca: get("ca").map(PathBuf::from),
            sender: get("sender"),
            body: get("body"),
            idempotency_key: get("idempotency_key"),
            client_id: get("client_id"),
            timeout: get("timeout"),
            retries: get("retries"),
        }
    }

    const FULL: &[(&str, &str)] = &[
        ("url", "https://relay.example:8443/"),
        ("cert", "c.pem"),
        ("ca", "ca.pem"),
        ("sender", "+15551234567"),
        ("body", "hi"),
    ];

    #[test]
    fn missing_flags_are_named_with_their_variables_in_the_python_order() {
        let err = args(&[("body", "x")]).check().err().unwrap();
        assert_eq!(
            err,
            "missing --url (or MSGRELAY_URL), --sender (or MSGRELAY_SENDER), --cert (or \
             MSGRELAY_CERT), --ca (or MSGRELAY_CA) (see --help for an example)"
        );
    }

    #[test]
    fn defaults_and_checks_match_the_python_client() {
        let req = args(FULL).check().unwrap();
        assert_eq!(req.url, "https://relay.example:8443");
        assert_eq!(req.timeout, Duration::from_secs(30));
        assert_eq!(req.retries, 5);
        assert!(req.key.is_none());
        let bad = |extra: (&str, &str)| {
            let mut v = FULL.to_vec();
            v.push(extra);
            args(&v).check().err().unwrap()
        };
        assert_eq!(bad(("timeout", "0")), "--timeout: '0' is not a valid value");
        assert_eq!(
            bad(("retries", "101")),
            "--retries: '101' is not a valid value"
        );
        assert!(bad(("idempotency_key", &"k".repeat(129))).contains("1-128 printable"));
        assert!(bad(("idempotency_key", "clé")).contains("ASCII"));
        let mut plain = FULL.to_vec();
        plain[0] = ("url", "http://relay.example");
        assert!(args(&plain).check().err().unwrap().contains("https://"));
    }

    #[test]
    fn problem_lines_name_fields_hint_and_redact() {
        let doc = serde_json::json!({
            "title": "Unprocessable", "detail": "bad +15551234567", "field": "sender_number",
            "errors": [{"field": "message_body", "detail": "too long"}]
        });
        let lines = problem_lines(422, "Unprocessable Entity", &doc, &["+15551234567", "hi"]);
        assert_eq!(
            lines,
            vec![
                "error: 422 Unprocessable: bad ***",
                "  field: sender_number",
                "  field: message_body: too long"
            ]
        );
        let lines = problem_lines(403, "Forbidden", &Value::Null, &[]);
        assert!(lines[1].starts_with("hint: check that the certificate"));
    }

    #[test]
    fn retry_after_is_bounded_and_formatted_like_python() {
        assert_eq!(parse_retry_after("7"), Some(7.0));
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER_SECS));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(fmt_secs(1.0), "1");
        assert_eq!(fmt_secs(0.5), "0.5");
    }
}
