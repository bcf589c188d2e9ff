//! `msgrelay send`: the Rust client. Same flags, environment variables, retries and exit codes
//! as `clients/python/send_message.py`: 0 sent, 2 refused (4xx), 3 gave up after retries,
//! 64 bad local arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Args)]
pub struct SendArgs {
    /// Proxy base URL, e.g. https://localhost:8443
    #[arg(long, env = "MSGRELAY_URL")]
    url: String,
    /// Client certificate (PEM)
    #[arg(long, env = "MSGRELAY_CERT")]
    cert: PathBuf,
    /// Client private key (PEM)
    #[arg(long, env = "MSGRELAY_KEY")]
    key: PathBuf,
    /// CA that signed the proxy's certificate (the bundle's ca.crt)
    #[arg(long, env = "MSGRELAY_CA")]
    ca: PathBuf,
    /// Sender number (E.164, e.g. +15551234567)
    #[arg(long, env = "MSGRELAY_SENDER")]
    sender: String,
    /// Message body
    #[arg(long, env = "MSGRELAY_BODY")]
    body: String,
    /// Idempotency key (default: a new UUID, reused across this command's retries)
    #[arg(long, env = "MSGRELAY_IDEMPOTENCY_KEY")]
    idempotency_key: Option<String>,
    /// Also send metadata.client_id (must match the certificate)
    #[arg(long, env = "MSGRELAY_CLIENT_ID")]
    client_id: Option<String>,
    /// Retries on connection errors and 5xx
    #[arg(long, default_value_t = 5, env = "MSGRELAY_RETRIES")]
    retries: u32,
    /// Per-request timeout in seconds
    #[arg(long, default_value_t = 10, env = "MSGRELAY_TIMEOUT")]
    timeout: u64,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the {what} file {}: {e}; check the --{what} path",
            path.display()
        )
    })
}

pub async fn run(args: SendArgs) -> ExitCode {
    let files = (|| {
        Ok::<_, String>((
            read(&args.ca, "ca")?,
            read(&args.cert, "cert")?,
            read(&args.key, "key")?,
        ))
    })();
    let (ca, cert, key) = match files {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(64);
        }
    };
    let client =
        match msgrelay_tls::mtls_client(&ca, &cert, &key, Duration::from_secs(args.timeout)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}; check that --cert and --key are a matching PEM pair");
                return ExitCode::from(64);
            }
        };
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut body = serde_json::json!({"sender_number": args.sender, "message_body": args.body});
    if let Some(id) = &args.client_id {
        body["metadata"] =
            serde_json::json!({"client_id": id, "timestamp": chrono::Utc::now().to_rfc3339()});
    }
    let url = format!("{}/api/v1/messages", args.url.trim_end_matches('/'));
    let mut delay = Duration::from_secs(1);
    let mut last_error = String::new();
    for attempt in 0..=args.retries {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        let resp = client
            .post(&url)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                last_error = format!("{e}");
                continue;
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let json: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.is_success() {
            println!("{}", json["id"].as_str().unwrap_or_default());
            return ExitCode::SUCCESS;
        }
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            last_error = format!("{status}: {}", json["detail"].as_str().unwrap_or(""));
            if let Some(secs) = retry_after {
                delay = Duration::from_secs(secs.min(300));
            }
            continue;
        }
        let field = json["field"]
            .as_str()
            .map(|f| format!(" (field: {f})"))
            .unwrap_or_default();
        eprintln!(
            "error: {} {}: {}{field}",
            status.as_u16(),
            json["title"].as_str().unwrap_or(""),
            json["detail"].as_str().unwrap_or("")
        );
        return ExitCode::from(2);
    }
    eprintln!("error: gave up after {} retries: {last_error}; check that the proxy is running at {} and that its CA is --ca", args.retries, args.url);
    ExitCode::from(3)
}
