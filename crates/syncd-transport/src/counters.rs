//! Byte counters: per connection and per endpoint, counted on the TCP stream (TLS overhead
//! included, as Syncthing reports them).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Monotonic byte totals in each direction.
#[derive(Debug, Default)]
pub struct ByteCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// A snapshot of [`ByteCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteTotals {
    /// Bytes received.
    pub in_bytes: u64,
    /// Bytes sent.
    pub out_bytes: u64,
}

impl ByteCounters {
    /// Current totals.
    pub fn totals(&self) -> ByteTotals {
        ByteTotals {
            in_bytes: self.bytes_in.load(Ordering::Relaxed),
            out_bytes: self.bytes_out.load(Ordering::Relaxed),
        }
    }

    fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A stream that adds every byte it moves to a connection's and the endpoint's counters.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    conn: Arc<ByteCounters>,
    total: Arc<ByteCounters>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, conn: Arc<ByteCounters>, total: Arc<ByteCounters>) -> Self {
        Self { inner, conn, total }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.conn.add_in(n);
            this.total.add_in(n);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.conn.add_out(n);
            this.total.add_out(n);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
