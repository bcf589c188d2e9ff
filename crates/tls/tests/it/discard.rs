//! Error answers read with `client::discard` keep a long-lived HTTP/2 connection usable; dropped
//! unread, the late body frames make the client's h2 give the connection up after ~1,000
//! (`too_many_internal_resets`), failing the requests in flight on it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// A small body that comes 20 ms after the headers.
struct LateBody {
    wait: Pin<Box<Sleep>>,
    sent: bool,
}

impl Body for LateBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            return Poll::Ready(None);
        }
        std::task::ready!(self.wait.as_mut().poll(cx));
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            br#"{"title":"saturated"}"#,
        )))))
    }
}

/// A cleartext HTTP/2 server answering every request 503 with headers first and the body a
/// moment later, in a frame of its own: the client has the answer before its body.
async fn slow_bodied_503_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let body = LateBody {
                        wait: Box::pin(tokio::time::sleep(Duration::from_millis(20))),
                        sent: false,
                    };
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .status(503)
                            .header("content-type", "application/problem+json")
                            .body(body)
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/")
}

/// A TCP relay to `upstream` that holds what the client sends for 100 ms (the answers go back at
/// once): the client's RST_STREAM for an answer it dropped reaches the server only after the
/// server has sent that answer's body, as happens on a busy connection.
async fn slow_uplink(upstream: String, connections: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let (delayed, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
                    let at = Instant::now() + Duration::from_millis(100);
                    if delayed.send((at, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((at, bytes)) = due.recv().await {
                    tokio::time::sleep_until(at).await;
                    if server_tx.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
            });
        }
    });
    format!("http://{addr}/")
}

/// Sends `n` requests, 64 at a time, on one HTTP/2 connection; returns how many failed in
/// transport (any answer at all counts as a success here).
async fn transport_failures(url: &str, n: usize, read_the_body: bool) -> usize {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let slots = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            match client.get(url).send().await {
                Ok(resp) => {
                    assert_eq!(resp.status(), 503);
                    if read_the_body {
                        msgrelay_tls::client::discard(resp).await;
                    }
                    0
                }
                Err(_) => 1,
            }
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_read_with_discard_keep_the_connection() {
    let connections = Arc::new(AtomicUsize::new(0));
    let url = slow_uplink(slow_bodied_503_server().await, connections.clone()).await;
    // The hazard is real: the client's h2 remembers up to 50 streams it reset, for 1 s; a body
    // arriving for any other counts toward the lifetime limit of 1,024, and then the client
    // closes the connection (ENHANCE_YOUR_CALM). Requests in flight then fail, or are retried
    // on a new connection when hyper knows they were not processed, so the sure sign is a
    // second connection. Here ~500 answers a second are dropped 20 ms before their bodies
    // come: 4,000 reach the limit.
    transport_failures(&url, 4_000, false).await;
    assert!(
        connections.swap(0, Ordering::SeqCst) > 1,
        "4,000 answers dropped unread kept one connection: h2 changed"
    );
    assert_eq!(transport_failures(&url, 2_000, true).await, 0);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the connection was lost"
    );
}
