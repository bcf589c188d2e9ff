//! The TLS accept loop shared by every listener (proxy, internal API, portal). Each phase of a
//! connection has a deadline (see [`ListenerLimits`]), open connections are capped in total and
//! per IP, and every answer is finished before the connection or stream goes away.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::body::GuardedBody;
use crate::limits::{ConnEvent, ConnEvents, ListenerLimits, Slots};
use crate::linger::LingeringStream;
use crate::server::peer_info;

/// How long shutdown waits for open connections before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After the watchdog or shutdown asks a connection to close gracefully, how long it may take.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How one listener is run: its limits, and where its connection events go (metrics).
#[derive(Clone, Default)]
pub struct ServeOptions {
    pub limits: ListenerLimits,
    pub events: Option<ConnEvents>,
    /// Serials (lowercase hex) of client certificates revoked since the listener started: the
    /// handshake checks the CRL in the config, but a connection opened before a revocation
    /// must not keep working, so every request is checked against this set too.
    pub revoked_serials: Option<Arc<ArcSwap<HashSet<String>>>>,
}

impl ServeOptions {
    fn emit(&self, e: ConnEvent) {
        if let Some(f) = &self.events {
            f(e);
        }
    }
}

/// When a connection last had something to do, and how much it has now.
struct Activity {
    in_flight: AtomicUsize,
    /// Time the last request finished (or the connection became ready); `None` while serving.
    idle_since: Mutex<Instant>,
    requests: AtomicUsize,
}

impl Activity {
    fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(&self) {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// When the connection counts as idle past its limit, if nothing is in flight.
    fn idle_deadline(&self, limits: &ListenerLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        // Until the first request, the client only gets the header timeout to send one.
        let limit = if self.requests.load(Ordering::Relaxed) == 0 {
            limits.header_read_timeout
        } else {
            limits.idle_timeout
        };
        Some(*self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) + limit)
    }
}

/// Counts a request in flight until dropped (also when the response future is cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Accept loop: each connection uses the config current at accept time (so a CRL swap applies to
/// new handshakes without restart), and serves `router` over HTTP/1.1 or HTTP/2 with
/// [`crate::PeerInfo`] (and axum's `ConnectInfo<SocketAddr>`) in every request's extensions.
/// On `shutdown` it stops accepting and waits up to 10 s for open connections to finish.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: Arc<ArcSwap<ServerConfig>>,
    router: axum::Router,
    shutdown: CancellationToken,
    opts: ServeOptions,
) {
    let limits = opts.limits.clone();
    let slots = Slots::new(&limits, opts.events.clone());
    let tracker = TaskTracker::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's timeouts are silently off without a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_concurrent_streams(limits.h2_max_concurrent_streams);
    let builder = Arc::new(builder);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let (tcp, remote_addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match slots.acquire(remote_addr.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                opts.emit(why);
                // One line per second at most: a flood must not become a flood of log lines.
                if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_refusal_log = Some(Instant::now());
                    tracing::warn!(
                        reason = why.as_str(),
                        open = slots.open(),
                        "connection refused: listener full"
                    );
                }
                // Closed at once, before any TLS work.
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(config.load_full());
        let conn = Conn {
            router: router.clone(),
            builder: builder.clone(),
            opts: opts.clone(),
            shutdown: shutdown.clone(),
            remote_addr,
        };
        tracker.spawn(conn.run(LingeringStream::new(tcp, slot), acceptor));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "open TLS connections did not finish within {DRAIN_TIMEOUT:?}; dropping them"
        );
    }
}

/// One accepted connection.
struct Conn {
    router: axum::Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    opts: ServeOptions,
    shutdown: CancellationToken,
    remote_addr: SocketAddr,
}

impl Conn {
    async fn run(self, stream: LingeringStream, acceptor: TlsAcceptor) {
        let Conn {
            router,
            builder,
            opts,
            shutdown,
            remote_addr,
        } = self;
        let limits = &opts.limits;
        let tls =
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    opts.emit(ConnEvent::HandshakeFailed);
                    tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    opts.emit(ConnEvent::HandshakeTimeout);
                    tracing::debug!(%remote_addr, "TLS handshake timed out");
                    return;
                }
            };
        let peer = peer_info(tls.get_ref().1, remote_addr);
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            requests: AtomicUsize::new(0),
        });
        let service = {
            let activity = activity.clone();
            let (body_timeout, request_timeout, drain_max) = (
                limits.body_read_timeout,
                limits.request_timeout,
                limits.drain_max_bytes,
            );
            let opts = opts.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                activity.start();
                let in_flight = InFlight(activity.clone());
                let expects_continue = req
                    .headers()
                    .get(header::EXPECT)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                let mut req =
                    req.map(|b| GuardedBody::new(b, body_timeout, expects_continue, drain_max));
                req.extensions_mut().insert(peer.clone());
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote_addr));
                let router = router.clone();
                let opts = opts.clone();
                let revoked = match (&opts.revoked_serials, &peer.serial_hex) {
                    (Some(set), Some(serial)) => set.load().contains(&**serial),
                    _ => false,
                };
                async move {
                    let _in_flight = in_flight;
                    if revoked {
                        return Ok(problem(
                            StatusCode::FORBIDDEN,
                            "revoked",
                            "this certificate has been revoked",
                            None,
                        ));
                    }
                    match tokio::time::timeout(request_timeout, router.oneshot(req)).await {
                        Ok(resp) => resp,
                        Err(_) => {
                            opts.emit(ConnEvent::RequestTimeout);
                            let detail = format!(
                                "the request was not answered within {} s; retry later",
                                request_timeout.as_secs()
                            );
                            Ok(problem(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "request-timeout",
                                &detail,
                                Some(1),
                            ))
                        }
                    }
                }
            })
        };
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let mut closing: Option<Instant> = None;
        loop {
            let next_check = match closing {
                Some(deadline) => deadline,
                None => activity
                    .idle_deadline(limits)
                    .unwrap_or_else(|| Instant::now() + limits.idle_timeout),
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + CLOSE_GRACE);
                }
                _ = tokio::time::sleep_until(next_check) => {
                    if closing.is_some() {
                        tracing::debug!(%remote_addr, "connection did not close in time; dropping it");
                        return;
                    }
                    if activity.idle_deadline(limits).is_some_and(|d| d <= Instant::now()) {
                        opts.emit(ConnEvent::IdleClosed);
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
            }
        }
    }
}

/// A problem+json answer given by the listener itself (the roles' `Problem` type lives above us).
fn problem(status: StatusCode, slug: &str, detail: &str, retry_after: Option<u32>) -> Response {
    let body = format!(
        r#"{{"type":"https://msgrelay.dev/problems/{slug}","title":"{}","status":{},"detail":"{detail}"}}"#,
        status.canonical_reason().unwrap_or("Error"),
        status.as_u16()
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
