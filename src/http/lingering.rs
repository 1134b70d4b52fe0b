//! A TCP connection that ends the way RFC 9112 9.6 asks, so the last answer reaches the client.
//! A socket closed while the client is still sending (the rest of a body refused with 413 or
//! 408, frames after a WebSocket Close) has unread input, and the kernel then answers with a reset
//! instead of a FIN; a reset can overtake the answer in flight, and the client reports "connection
//! reset" or "broken pipe" instead of the 413 (measured: curl lost one 413 in three for a chunked
//! 3 MB upload). So the shutdown here is a lingering close: FIN first, then what the client still
//! sends is read and dropped until it closes too, or goes quiet for `QUIET`, for `LINGER` at most
//! (nginx's lingering_timeout and lingering_time, shorter).
//!
//! hyper shuts a connection down through this when it ends it, and a WebSocket through its
//! upgraded connection, so every way a connection ends goes through the same close.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Longest a closing connection keeps reading for its client's FIN; the connection keeps its
/// `--max-connections` slot meanwhile, so this bounds what a client that never closes can hold.
const LINGER: Duration = Duration::from_secs(2);
/// A client silent this long after the FIN is taken to have stopped sending: an idle keep-alive
/// connection closed by a drain need not wait the whole `LINGER` for a client that ignores FINs.
const QUIET: Duration = Duration::from_millis(500);

pub(crate) struct LingeringClose {
    stream: TcpStream,
    /// Set once the FIN is sent: until when the client may still be sending.
    lingering: Option<Linger>,
}

struct Linger {
    until: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Linger {
    fn start() -> Linger {
        let now = Instant::now();
        Linger { until: now + LINGER, timer: Box::pin(tokio::time::sleep_until(now + QUIET)) }
    }

    /// More came: another `QUIET` (within `LINGER`).
    fn heard(&mut self) {
        let deadline = (Instant::now() + QUIET).min(self.until);
        self.timer.as_mut().reset(deadline);
    }
}

impl LingeringClose {
    pub(crate) fn new(stream: TcpStream) -> LingeringClose {
        LingeringClose { stream, lingering: None }
    }
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// FIN, then read and drop until the client's FIN, an error, `QUIET` or `LINGER`; never an
    /// error itself (the connection is over either way).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.lingering.is_none() && ready!(Pin::new(&mut this.stream).poll_shutdown(cx)).is_err() {
            return Poll::Ready(Ok(()));
        }
        let linger = this.lingering.get_or_insert_with(Linger::start);
        let mut discard = [0u8; 4096];
        loop {
            if linger.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut discard);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => linger.heard(),
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}
