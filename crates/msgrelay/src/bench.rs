//! `msgrelay bench`: a load generator over mutual TLS. Sends `--count` messages (or for
//! `--duration`) from `--concurrency` tasks, optionally at a fixed `--rate`, shows a progress bar,
//! then waits for end-to-end delivery by reading `msgrelay_messages_delivered_total` from the
//! `--metrics-url` ops endpoints, and prints throughput and latency percentiles.
//!
//! With several `--url`s, messages go to them in turn, a URL that failed last for a few seconds
//! (what a load balancer with health checks does); with `--retries`, a failed message (transport
//! error, 429, 5xx) is sent again to the next URL with the same `Idempotency-Key`. `--accepted-ids` writes the id
//! of every 202 so a test can compare the accepted set with what was stored.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use msgrelay_core::ServerList;

#[derive(Args)]
pub struct BenchArgs {
    /// Proxy base URL (repeatable: messages are spread over them, retries go to the next one)
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Send each message up to this many more times after a transport error, 429 or 5xx, to the
    /// next --url, with the same Idempotency-Key
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Send an Idempotency-Key with every message (always on with --retries)
    #[arg(long)]
    idempotency_keys: bool,
    /// Write the id of every accepted (202) message to this file, one per line
    #[arg(long)]
    accepted_ids: Option<PathBuf>,
    /// Connect to these proxy addresses in turn instead of resolving the (one) --url's host
    /// (repeatable): one name served by several proxies, as behind DNS round-robin
    #[arg(long = "address")]
    addresses: Vec<std::net::IpAddr>,
    /// Client certificate, PEM (a client bundle's client.crt)
    #[arg(long)]
    cert: PathBuf,
    /// Its private key, PEM (client.key)
    #[arg(long)]
    key: PathBuf,
    /// CA of the proxy's certificate (ca.crt)
    #[arg(long)]
    ca: PathBuf,
    /// Concurrent senders (each keeps one HTTP/2 connection busy)
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Messages to send (ignored with --duration)
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Send for this many seconds instead of a count
    #[arg(long)]
    duration: Option<u64>,
    /// Target total rate in msgs/s (default: as fast as possible)
    #[arg(long)]
    rate: Option<f64>,
    /// Body size in characters
    #[arg(long, default_value_t = 160)]
    body_chars: usize,
    /// Ops /metrics URL(s) whose msgrelay_messages_delivered_total to sum (repeatable)
    #[arg(long = "metrics-url")]
    metrics_urls: Vec<String>,
    /// How long to wait for delivery after sending
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
}

async fn delivered(client: &reqwest::Client, urls: &[String]) -> Option<u64> {
    if urls.is_empty() {
        return None; // nothing to wait for: without --metrics-url, report ingest only
    }
    let mut total = 0.0;
    for url in urls {
        let text = client.get(url).send().await.ok()?.text().await.ok()?;
        // `name value` or `name{instance="..."} value`
        let line = text.lines().find(|l| {
            l.strip_prefix("msgrelay_messages_delivered_total")
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })?;
        total += line.rsplit_once(' ')?.1.parse::<f64>().ok()?;
    }
    Some(total as u64)
}

/// What happened to one message (after its retries).
enum Outcome {
    Accepted(Option<String>),
    Failed(String),
}

/// Where messages go: a client and a URL per proxy, with a health mark each.
struct Targets {
    each: Vec<(reqwest::Client, String)>,
    health: ServerList,
}

/// Sends one message to the healthy proxies in turn (a proxy that failed goes last for a few
/// seconds), retrying with the same key while it is worth it; pauses after each full round.
async fn send_one(
    targets: &Targets,
    payload: &serde_json::Value,
    key: Option<&str>,
    retries: u32,
    retried: &AtomicU64,
) -> Outcome {
    let mut attempt = 0u32;
    for round in 1u64.. {
        let proxies = &targets.health;
        for i in proxies.order() {
            let (client, url) = &targets.each[i];
            let mut req = client.post(url).json(payload);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let (kind, again) = match req.send().await {
                Ok(r) if r.status().as_u16() == 202 => {
                    proxies.succeeded(i);
                    let id = r
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
                    return Outcome::Accepted(id);
                }
                Ok(r) => {
                    let code = r.status().as_u16();
                    // Read, not dropped: see `discard` (dropped, the 503s of a saturated relay
                    // cost the connection every ~1,000 answers).
                    msgrelay_tls::client::discard(r).await;
                    (format!("HTTP {code}"), code == 429 || code >= 500)
                }
                Err(e) if e.is_timeout() => ("timeout".to_owned(), true),
                Err(e) if e.is_connect() => (format!("connect ({})", root_cause(&e)), true),
                Err(e) => (format!("transport ({})", root_cause(&e)), true),
            };
            if !again || attempt >= retries {
                return Outcome::Failed(kind);
            }
            proxies.failed(i);
            attempt += 1;
            retried.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(200 * round.min(10))).await;
    }
    unreachable!("the rounds end by returning")
}

/// The causes under reqwest's wrapper (whose own text only names the URL), e.g. the HTTP/2 or
/// I/O error, so the summary says why requests failed, not only that they did.
fn root_cause(e: &reqwest::Error) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if causes.last() != Some(&text) {
            causes.push(text);
        }
        next = cause.source();
    }
    if causes.is_empty() {
        "no cause given".to_owned()
    } else {
        causes.join(": ")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    // Quiet by default (the progress bar owns the terminal); `RUST_LOG=h2=debug` and the like
    // show what the HTTP stack does, e.g. why a connection failed.
    if std::env::var_os("RUST_LOG").is_some() {
        let _stdout_needs_no_guard = msgrelay_ops::telemetry::init("warn", None, 0);
    }
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let builder = || {
        msgrelay_tls::client::mtls_client_builder(
            &read(&a.ca)?,
            &read(&a.cert)?,
            &read(&a.key)?,
            Duration::from_secs(30),
        )
        .map_err(anyhow::Error::from)
    };
    let plain = reqwest::Client::new();
    let endpoint = |u: &str| format!("{}/api/v1/messages", u.trim_end_matches('/'));
    let each: Vec<(reqwest::Client, String)> = if a.addresses.is_empty() {
        let client = builder()?.build()?;
        a.urls
            .iter()
            .map(|u| (client.clone(), endpoint(u)))
            .collect()
    } else {
        let [url] = a.urls.as_slice() else {
            anyhow::bail!("--address takes exactly one --url (the name those proxies serve)");
        };
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("--url {url} has no host name"))?;
        let mut each = Vec::new();
        for addr in &a.addresses {
            let client = builder()?
                .resolve(&host, std::net::SocketAddr::new(*addr, 0))
                .build()?;
            each.push((client, endpoint(url)));
        }
        each
    };
    let labels: Vec<String> = if a.addresses.is_empty() {
        a.urls.clone()
    } else {
        a.addresses.iter().map(|x| x.to_string()).collect()
    };
    let targets = Arc::new(Targets {
        each,
        health: ServerList::new(&labels),
    });
    // Keys unique to this run, so a second run never collides with the first one's records.
    let key_prefix = (a.idempotency_keys || a.retries > 0)
        .then(|| format!("bench-{}", uuid::Uuid::new_v4().simple()));
    let ids_out = match &a.accepted_ids {
        Some(p) => Some(Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?,
        )))),
        None => None,
    };
    let retried = Arc::new(AtomicU64::new(0));
    let delivered_before = delivered(&plain, &a.metrics_urls).await;

    let total = a.duration.map(|_| u64::MAX).unwrap_or(a.count);
    let deadline = a.duration.map(|d| Instant::now() + Duration::from_secs(d));
    let bar = match a.duration {
        Some(d) => ProgressBar::new(d),
        None => ProgressBar::new(a.count),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let issued = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    // Why requests failed (HTTP status or transport error kind), for the summary.
    let error_kinds = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        u64,
    >::new()));
    let body = "x".repeat(a.body_chars.max(1));
    let interval = a
        .rate
        .map(|r| Duration::from_secs_f64(a.concurrency as f64 / r.max(0.001)));
    let started = Instant::now();
    let concurrency = a.concurrency;

    let mut tasks = Vec::new();
    for t in 0..a.concurrency {
        let (targets, key_prefix, ids_out, retried, retries) = (
            targets.clone(),
            key_prefix.clone(),
            ids_out.clone(),
            retried.clone(),
            a.retries,
        );
        let (body, issued, accepted, errors, bar) = (
            body.clone(),
            issued.clone(),
            accepted.clone(),
            errors.clone(),
            bar.clone(),
        );
        let error_kinds = error_kinds.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut tick = interval.map(|i| {
                let first = tokio::time::Instant::now() + start_offset(i, t, concurrency);
                let mut t = tokio::time::interval_at(first, i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                // n is unique per message: its sender number and Idempotency-Key derive from it.
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let payload = serde_json::json!({"sender_number": format!("+1555{:07}", n % 10_000_000), "message_body": body});
                let key = key_prefix.as_ref().map(|p| format!("{p}-{n}"));
                let sent = Instant::now();
                match send_one(&targets, &payload, key.as_deref(), retries, &retried).await {
                    Outcome::Accepted(id) => {
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        accepted.fetch_add(1, Ordering::Relaxed);
                        if let (Some(out), Some(id)) = (ids_out.as_ref(), id) {
                            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                            let _ = writeln!(out, "{id}");
                        }
                    }
                    Outcome::Failed(kind) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        *error_kinds.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
                    }
                }
                if deadline.is_none() {
                    bar.inc(1);
                }
            }
            latencies
        }));
    }
    let ticker = {
        let (bar, accepted) = (bar.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let el = started.elapsed().as_secs_f64();
                if deadline.is_some() {
                    bar.set_position(el as u64);
                }
                bar.set_message(format!(
                    "{:.0} msgs/s accepted",
                    accepted.load(Ordering::Relaxed) as f64 / el.max(0.001)
                ));
            }
        })
    };
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    ticker.abort();
    let send_secs = started.elapsed().as_secs_f64();
    bar.finish();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let ok = accepted.load(Ordering::Relaxed);
    println!(
        "sent:      {ok} accepted, {} errors in {send_secs:.2} s",
        errors.load(Ordering::Relaxed)
    );
    if let Some(out) = &ids_out {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        out.flush()
            .map_err(|e| anyhow::anyhow!("cannot write the accepted ids: {e}"))?;
    }
    if a.retries > 0 {
        println!(
            "retried:   {} sends repeated with the same Idempotency-Key",
            retried.load(Ordering::Relaxed)
        );
    }
    // Collected before the drain below awaits: the guard must not live across an await.
    let list: Vec<String> = (error_kinds.lock().unwrap_or_else(|p| p.into_inner()))
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    if !list.is_empty() {
        println!("errors:    {}", list.join(", "));
    }
    println!("accepted:  {:.0} msgs/s", ok as f64 / send_secs);
    println!(
        "latency:   p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    if let Some(before) = delivered_before {
        let drain_deadline = Instant::now() + Duration::from_secs(a.drain_timeout);
        let drain_started = Instant::now();
        let bar = ProgressBar::new(ok);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} delivered {msg}",
            )
            .expect("valid template"),
        );
        loop {
            let now = delivered(&plain, &a.metrics_urls).await.unwrap_or(before);
            let done = now.saturating_sub(before);
            bar.set_position(done.min(ok));
            bar.set_message(format!(
                "{:.0} msgs/s end to end",
                done as f64 / started.elapsed().as_secs_f64().max(0.001)
            ));
            if done >= ok || Instant::now() > drain_deadline {
                bar.finish();
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "delivered: {done} end to end in {secs:.2} s = {:.0} msgs/s",
                    done as f64 / secs
                );
                println!(
                    "drain:     {:.2} s after the load stopped",
                    drain_started.elapsed().as_secs_f64()
                );
                break;
            }
            // Each scrape samples the queue; poll gently so the measurement does not slow the relay.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    } else if !a.metrics_urls.is_empty() {
        println!(
            "delivered: unknown (cannot read {})",
            a.metrics_urls.join(", ")
        );
    }
    Ok(())
}

/// When sender `task` of `concurrency` first sends at a fixed rate, each sending once per
/// `interval`: the senders are spread evenly over the interval, so requests arrive one at a
/// time at the rate asked for, not in bursts.
fn start_offset(interval: Duration, task: usize, concurrency: usize) -> Duration {
    interval.mul_f64(task as f64 / concurrency.max(1) as f64)
}

#[cfg(test)]
mod pacing_tests {
    use super::*;

    #[test]
    fn fixed_rate_senders_are_spread_evenly_over_the_interval() {
        // 64 senders at 1,000 msgs/s: each sends every 64 ms, and one request starts every 1 ms.
        let interval = Duration::from_millis(64);
        let mut offsets: Vec<Duration> = (0..64).map(|t| start_offset(interval, t, 64)).collect();
        offsets.sort();
        offsets.dedup();
        assert_eq!(offsets.len(), 64, "two senders share a start time");
        assert!(offsets.iter().all(|o| *o < interval));
        for pair in offsets.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap.abs_diff(Duration::from_millis(1)) < Duration::from_micros(1),
                "uneven gap {gap:?}"
            );
        }
    }
}
