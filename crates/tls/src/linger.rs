//! Lingering close. Closing a socket that still has unread bytes from the client makes the kernel
//! send a reset, and a reset makes the client's kernel throw away the answer it has received but
//! not yet read — so an early 413 or 415 would arrive as "connection reset". Instead, when a
//! connection ends we send FIN (after TLS close_notify) and read and discard what the client is
//! still sending, for a bounded time and amount, before closing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::limits::Slot;

/// How long a closing connection waits for the client to stop sending.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much it reads from the client at most meanwhile.
const LINGER_BYTES: usize = 1024 * 1024;

/// A TCP stream that lingers when dropped, and holds its listener slot until then.
pub(crate) struct LingeringStream {
    tcp: Option<TcpStream>,
    slot: Option<Slot>,
}

impl LingeringStream {
    pub(crate) fn new(tcp: TcpStream, slot: Slot) -> Self {
        Self {
            tcp: Some(tcp),
            slot: Some(slot),
        }
    }

    fn tcp(&mut self) -> &mut TcpStream {
        self.tcp.as_mut().expect("the stream is only taken on drop")
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.tcp()).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.tcp()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.tcp()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.tcp()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.tcp()).poll_shutdown(cx)
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let (Some(mut tcp), slot) = (self.tcp.take(), self.slot.take()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // The slot stays taken while we linger: lingering sockets count against the caps.
            let _slot = slot;
            let _ = tcp.shutdown().await;
            let discard = async {
                let mut buf = vec![0u8; 4096];
                let mut seen = 0;
                while seen < LINGER_BYTES {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, discard).await;
        });
    }
}
