//! Exhaustion without credentials: slow connections (slowloris at every phase: TLS handshake,
//! request headers, request body), connection floods from one address, and client input aimed at
//! the metrics. Each listener must keep serving legitimate clients and close what the timeouts say.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::support::{metrics, wait_for, TestRelay, SENDER};

/// Slow connections per listener.
const SLOW: usize = 2000;
/// The slow clients send one byte this often: never silent, always too slow.
const TRICKLE: Duration = Duration::from_secs(2);
/// Timeouts of the relay under attack: short, so the test takes seconds.
const TIMEOUT_SECS: &str = "4";

/// A rustls client config trusting `ca` (PEM), optionally with a client identity.
pub fn client_config(
    ca: &[u8],
    identity: Option<(&[u8], &[u8])>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in msgrelay_tls::load_certs_pem(ca).expect("CA PEM") {
        roots.add(c).expect("add root");
    }
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut cfg = match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(
                msgrelay_tls::load_certs_pem(cert).unwrap(),
                msgrelay_tls::load_key_pem(key).unwrap(),
            )
            .expect("client identity"),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Connects from `source` (any 127.x address) to `addr`.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(source, 0))?;
    s.connect(addr).await
}

/// Sends `bytes` one at a time every [`TRICKLE`] until the server closes the connection; true when
/// it did (EOF or reset), i.e. the connection is gone from the server.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(stream: S, bytes: &[u8]) -> bool {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let reader = async {
        let mut buf = [0u8; 512];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // e.g. a 408 before the close
            }
        }
    };
    let writer = async {
        for b in bytes.iter().cycle() {
            if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                // Writing failed: closed. Let the reader see it too.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(TRICKLE).await;
        }
    };
    tokio::select! {
        _ = reader => true,
        _ = writer => false,
    }
}

/// What kind of slowness a connection shows.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// A ClientHello a byte at a time: needs no credentials.
    Handshake,
    /// A finished handshake, then request headers a byte at a time.
    Headers,
    /// Complete headers, then the body a byte at a time.
    Body,
}

struct Storm {
    /// Connections established (TCP for `Handshake`, TLS for the others).
    connected: AtomicUsize,
    /// Connections the server closed.
    closed: AtomicUsize,
}

/// Opens `n` slow connections of each kind in `kinds` (round robin) against `addr`, from
/// 127.0.0.1; returns at once, the connections run in the background.
fn storm(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
    kinds: &[Slow],
    n: usize,
) -> (Arc<Storm>, tokio::task::JoinSet<()>) {
    let stats = Arc::new(Storm {
        connected: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
    });
    let gate = Arc::new(Semaphore::new(200));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let kind = kinds[i % kinds.len()];
        let (stats, gate, tls) = (stats.clone(), gate.clone(), tls.clone());
        set.spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let Ok(tcp) = connect_from("127.0.0.1".parse().unwrap(), addr).await else { return };
            let closed = match kind {
                Slow::Handshake => {
                    drop(permit);
                    stats.connected.fetch_add(1, Ordering::SeqCst);
                    // A TLS record header announcing a ClientHello that never completes.
                    trickle(tcp, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).await
                }
                Slow::Headers | Slow::Body => {
                    let connector = tokio_rustls::TlsConnector::from(tls);
                    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(30), connector.connect(name, tcp)).await else {
                        return;
                    };
                    drop(permit);
                    stats.connected.fetch_add(1, Ordering::SeqCst);
                    if let Slow::Headers = kind {
                        trickle(s, format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").as_bytes()).await
                    } else {
                        let head = format!(
                            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                        );
                        if s.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        trickle(s, b"{\"sender_number\":\"").await
                    }
                }
            };
            if closed {
                stats.closed.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    (stats, set)
}

/// Resident memory of a process in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A labelled sample's value, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn relay_under_short_timeouts() -> TestRelay {
    TestRelay::up(&[
        ("MSGRELAY_HTTP__TLS_HANDSHAKE_TIMEOUT_SECS", TIMEOUT_SECS),
        ("MSGRELAY_HTTP__HEADER_READ_TIMEOUT_SECS", TIMEOUT_SECS),
        ("MSGRELAY_HTTP__BODY_READ_TIMEOUT_SECS", TIMEOUT_SECS),
        ("MSGRELAY_HTTP__IDLE_TIMEOUT_SECS", TIMEOUT_SECS),
        ("MSGRELAY_HTTP__MAX_CONNECTIONS_PER_IP", "10000"),
    ])
    .await
}

/// Runs the storm against one listener while a legitimate client uses it; returns the figures.
async fn slow_connections_against(
    relay: &TestRelay,
    listener: &str,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
) {
    let pid = relay.up.as_ref().unwrap().pid();
    let ops = relay.up.as_ref().unwrap().addr("ops");
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let (stats, mut set) = storm(
        addr,
        tls,
        path,
        &[Slow::Handshake, Slow::Headers, Slow::Body],
        SLOW,
    );
    let open_series = format!("msgrelay_connections_open{{listener=\"{listener}\"}}");

    // While they are connected and trickling, a legitimate client is served.
    let (mut peak_open, mut peak_rss) = (0.0f64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.connected.load(Ordering::SeqCst) + stats.closed.load(Ordering::SeqCst)
        < SLOW * 9 / 10
    {
        assert!(
            Instant::now() < deadline,
            "the slow connections did not connect within 120 s"
        );
        peak_open = peak_open.max(sample(&metrics(ops).await, &open_series));
        peak_rss = peak_rss.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak_open = peak_open.max(sample(&metrics(ops).await, &open_series));
    peak_rss = peak_rss.max(rss_kib(pid));
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        match listener {
            "proxy" => {
                let (status, json) = relay.send(SENDER, "legitimate", None).await;
                assert_eq!(
                    status,
                    StatusCode::ACCEPTED,
                    "the proxy refused a legitimate client during the storm: {json}"
                );
            }
            _ => {
                let (status, json) = relay.portal_get(None, "/api/v1/health").await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "the portal did not serve a legitimate client during the storm: {json}"
                );
            }
        }
        latencies.push(t.elapsed());
    }

    // Every slow connection is closed by the server, although each keeps sending.
    let all_closed = tokio::time::timeout(Duration::from_secs(120), async {
        while set.join_next().await.is_some() {}
    })
    .await;
    assert!(
        all_closed.is_ok(),
        "slow connections still open after 120 s: {} of {SLOW} closed",
        stats.closed.load(Ordering::SeqCst)
    );
    let closed = stats.closed.load(Ordering::SeqCst);
    assert!(
        closed >= SLOW * 9 / 10,
        "only {closed} of {SLOW} slow connections were closed by the server"
    );
    let m = metrics(ops).await;
    let event = |e: &str| {
        sample(
            &m,
            &format!("msgrelay_connection_events_total{{listener=\"{listener}\",event=\"{e}\"}}"),
        )
    };
    assert!(
        event("handshake_timeout") >= (SLOW / 3 * 9 / 10) as f64,
        "handshake timeouts: {}\n{m}",
        event("handshake_timeout")
    );
    let open_after = wait_for(
        "the open-connection gauge to fall back",
        Duration::from_secs(30),
        || async {
            let v = sample(&metrics(ops).await, &open_series);
            (v < 10.0).then_some(v)
        },
    )
    .await;
    latencies.sort();
    eprintln!(
        "[figures] {listener}: {SLOW} slow connections ({closed} closed by the server) in {:.1} s; peak open {peak_open}, after {open_after}; \
         RSS before {} MiB, during {} MiB, after {} MiB; legitimate request latency min {:?} max {:?}",
        started.elapsed().as_secs_f64(),
        rss_before / 1024,
        peak_rss / 1024,
        rss_kib(pid) / 1024,
        latencies[0],
        latencies[latencies.len() - 1],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_proxy_and_the_portal_is_cut_off_while_clients_are_served() {
    let relay = relay_under_short_timeouts().await;
    relay.send_ok("control").await;
    let identity = (
        relay.read("clients/demo/client.crt"),
        relay.read("clients/demo/client.key"),
    );
    let proxy_tls = client_config(
        &relay.read("clients/demo/ca.crt"),
        Some((&identity.0, &identity.1)),
        &[b"http/1.1"],
    );
    slow_connections_against(
        &relay,
        "proxy",
        relay.proxy_addr(),
        proxy_tls,
        "/api/v1/messages",
    )
    .await;
    let portal_tls = client_config(&relay.read("pki/internal-ca.crt"), None, &[b"http/1.1"]);
    slow_connections_against(
        &relay,
        "portal",
        relay.portal_addr(),
        portal_tls,
        "/api/v1/auth/login",
    )
    .await;
}

#[tokio::test]
async fn connection_flood_from_one_address_is_refused_at_the_cap() {
    let relay = TestRelay::up(&[
        ("MSGRELAY_HTTP__MAX_CONNECTIONS_PER_IP", "5"),
        ("MSGRELAY_HTTP__MAX_CONNECTIONS", "8"),
        ("MSGRELAY_HTTP__TLS_HANDSHAKE_TIMEOUT_SECS", "300"),
    ])
    .await;
    let ops = relay.up.as_ref().unwrap().addr("ops");
    let from = |ip: &str| -> IpAddr { ip.parse().unwrap() };
    let client_from = |ip: IpAddr| {
        msgrelay_tls::client::mtls_client_builder(
            &relay.read("clients/demo/ca.crt"),
            &relay.read("clients/demo/client.crt"),
            &relay.read("clients/demo/client.key"),
            Duration::from_secs(10),
        )
        .unwrap()
        .resolve("localhost", relay.proxy_addr())
        .local_address(ip)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
    };
    let send = |client: reqwest::Client| {
        let url = relay.messages_url();
        async move {
            client
                .post(url)
                .json(&serde_json::json!({"sender_number": SENDER, "message_body": "hi"}))
                .send()
                .await
                .map(|r| r.status())
        }
    };
    assert_eq!(
        send(client_from(from("127.0.0.1"))).await.unwrap(),
        StatusCode::ACCEPTED
    );

    // The control's connection is gone (after its lingering close) before the flood starts.
    wait_for(
        "the control connection to close",
        Duration::from_secs(30),
        || async {
            (sample(
                &metrics(ops).await,
                "msgrelay_connections_open{listener=\"proxy\"}",
            ) == 0.0)
                .then_some(())
        },
    )
    .await;
    // Five silent connections from 127.0.0.1 fill its share; three from 127.0.0.2 fill the listener.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            connect_from(from("127.0.0.1"), relay.proxy_addr())
                .await
                .unwrap(),
        );
    }
    wait_for("5 connections open", Duration::from_secs(10), || async {
        (sample(
            &metrics(ops).await,
            "msgrelay_connections_open{listener=\"proxy\"}",
        ) >= 5.0)
            .then_some(())
    })
    .await;
    assert!(
        send(client_from(from("127.0.0.1"))).await.is_err(),
        "a sixth connection from one address was served"
    );
    assert_eq!(
        send(client_from(from("127.0.0.2"))).await.unwrap(),
        StatusCode::ACCEPTED,
        "another address is still served"
    );
    wait_for(
        "the second control connection to close",
        Duration::from_secs(30),
        || async {
            (sample(
                &metrics(ops).await,
                "msgrelay_connections_open{listener=\"proxy\"}",
            ) == 5.0)
                .then_some(())
        },
    )
    .await;
    for _ in 0..3 {
        held.push(
            connect_from(from("127.0.0.2"), relay.proxy_addr())
                .await
                .unwrap(),
        );
    }
    wait_for("8 connections open", Duration::from_secs(10), || async {
        (sample(
            &metrics(ops).await,
            "msgrelay_connections_open{listener=\"proxy\"}",
        ) >= 8.0)
            .then_some(())
    })
    .await;
    assert!(
        send(client_from(from("127.0.0.3"))).await.is_err(),
        "a connection past the listener's cap was served"
    );
    let m = metrics(ops).await;
    assert!(
        sample(
            &m,
            "msgrelay_connection_events_total{listener=\"proxy\",event=\"refused_per_ip_limit\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "msgrelay_connection_events_total{listener=\"proxy\",event=\"refused_total_limit\"}"
        ) >= 1.0,
        "{m}"
    );

    // Once the flood stops, everyone is served again.
    drop(held);
    wait_for(
        "the flood's connections to be released",
        Duration::from_secs(30),
        || {
            let c = client_from(from("127.0.0.1"));
            let s = send(c);
            async move { s.await.ok().filter(|s| *s == StatusCode::ACCEPTED) }
        },
    )
    .await;
}

#[tokio::test]
async fn field_name_crafted_as_a_metric_line_leaves_metrics_well_formed() {
    let relay = TestRelay::up(&[]).await;
    let ops = relay.up.as_ref().unwrap().addr("ops");
    let evil = "a\"} 1\nfake_metric 1";
    let mut body = serde_json::Map::new();
    body.insert("sender_number".into(), SENDER.into());
    body.insert("message_body".into(), "hi".into());
    body.insert(evil.into(), 1.into());
    let resp = relay
        .demo_client()
        .post(relay.messages_url())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        problem["field"], evil,
        "the problem still names the field for the client"
    );

    let text = metrics(ops).await;
    assert!(
        !text.contains("fake_metric"),
        "client input reached /metrics:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "msgrelay_messages_rejected_total{reason=\"unknown_field\"}"
        ),
        1.0,
        "{text}"
    );
    // Prometheus text format: comments, or `name{labels} value` with a numeric value.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("malformed line {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "malformed value in {line:?}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.starts_with("msgrelay_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(
                labels.ends_with('}') && !labels[1..labels.len() - 1].contains(['{', '}', '\n']),
                "bad labels in {line:?}"
            );
        }
    }
}
