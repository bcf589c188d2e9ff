//! The request body every handler sees: it fails with [`BodyReadTimeout`] when the client sends it
//! too slowly, and when a handler answers without reading it all (415, 413, 401...), the rest is
//! read and discarded in the background, within bounds, so that the answer reaches the client.
//! Without that, HTTP/1.1 closes a socket with unread bytes (the kernel then sends a reset that
//! destroys the answer in flight) and HTTP/2 resets a stream the client is still sending on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// How long the background drain may take before it gives up (and the connection or stream is
/// reset).
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The client did not send the whole request body within `http.body_read_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the body read timeout")]
pub struct BodyReadTimeout;

/// True when `err`, or any error in its source chain, is a [`BodyReadTimeout`].
pub fn is_body_read_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<BodyReadTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A request body with a read deadline that drains itself when dropped unfinished.
pub struct GuardedBody {
    inner: Option<Incoming>,
    deadline: Pin<Box<Sleep>>,
    /// The client waits for `100 Continue` before sending: if nobody asked for the body, it never
    /// comes, and there is nothing to drain.
    expects_continue: bool,
    polled: bool,
    finished: bool,
    drain_max_bytes: u64,
}

impl GuardedBody {
    pub(crate) fn new(
        inner: Incoming,
        read_timeout: Duration,
        expects_continue: bool,
        drain_max_bytes: u64,
    ) -> Self {
        Self {
            inner: Some(inner),
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + read_timeout)),
            expects_continue,
            polled: false,
            finished: false,
            drain_max_bytes,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.polled = true;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // Checked first: a client trickling a byte at a time is always "ready".
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.finished = true;
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout))));
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                // A broken body cannot be drained.
                this.finished = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        if self.finished || inner.is_end_stream() || (self.expects_continue && !self.polled) {
            return;
        }
        // A declared length past the bound will not be drained: let hyper close/reset now.
        if inner.size_hint().lower() > self.drain_max_bytes {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let max = self.drain_max_bytes;
        rt.spawn(async move {
            let drain = async {
                let mut seen = 0u64;
                while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut inner).await {
                    if let Some(data) = frame.data_ref() {
                        seen += data.len() as u64;
                        if seen > max {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}
