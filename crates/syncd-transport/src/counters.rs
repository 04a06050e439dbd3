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

/// Bytes read from the socket at once when the reader asks for less. rustls asks for 4 KiB at
/// a time once its buffer is drained (a 16 KiB record took four or five `recvfrom`s); reading
/// ahead into this buffer makes one system call of up to 64 KiB serve them all. Allocated on
/// the first short read; one per connection.
const READ_AHEAD: usize = 64 * 1024;

/// A stream that adds every byte it moves to a connection's and the endpoint's counters (bytes
/// as they cross the socket), reads ahead (see [`READ_AHEAD`]) and passes vectored writes on.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    conn: Arc<ByteCounters>,
    total: Arc<ByteCounters>,
    /// Read ahead: `ahead[pos..end]` is received and not yet handed out.
    ahead: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, conn: Arc<ByteCounters>, total: Arc<ByteCounters>) -> Self {
        Self {
            inner,
            conn,
            total,
            ahead: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    fn count_out(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            self.conn.add_out(*n);
            self.total.add_out(*n);
        }
    }

    fn count_in(&self, n: usize) {
        if n > 0 {
            self.conn.add_in(n);
            self.total.add_in(n);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos >= this.end {
            if buf.remaining() >= READ_AHEAD {
                // A large read goes straight into the caller's buffer.
                let before = buf.filled().len();
                let r = Pin::new(&mut this.inner).poll_read(cx, buf);
                this.count_in(buf.filled().len().saturating_sub(before));
                return r;
            }
            if this.ahead.len() < READ_AHEAD {
                this.ahead.resize(READ_AHEAD, 0);
            }
            let mut ahead = ReadBuf::new(&mut this.ahead);
            match Pin::new(&mut this.inner).poll_read(cx, &mut ahead) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let n = ahead.filled().len();
            this.count_in(n);
            (this.pos, this.end) = (0, n);
            if n == 0 {
                // End of stream: nothing put into `buf` says so.
                return Poll::Ready(Ok(()));
            }
        }
        let have = this.ahead.get(this.pos..this.end).unwrap_or_default();
        let n = have.len().min(buf.remaining());
        buf.put_slice(have.get(..n).unwrap_or_default());
        this.pos += n;
        Poll::Ready(Ok(()))
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
        this.count_out(&r);
        r
    }

    /// Passed on: rustls hands its queued records over as one vectored write; without this
    /// the default wrote only the first (one `sendto` per 16 KiB record).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count_out(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A real socket that counts the reads made on it.
    struct Reads<S> {
        inner: S,
        reads: Arc<AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Reads<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.reads.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut this.inner).poll_read(cx, buf)
        }
    }

    async fn socket_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.unwrap(), b.unwrap().0)
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// 4 KiB reads (what rustls asks for) get every byte in order, the counters see every
    /// byte once, and far fewer reads reach the socket than were made on the stream.
    #[tokio::test]
    async fn short_reads_are_served_from_one_read_ahead_and_counted_once() {
        let (mut tx, rx) = socket_pair().await;
        let data = noise(4 << 20);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            tx.write_all(&sent).await.unwrap();
            tx.shutdown().await.unwrap();
        });
        let reads = Arc::new(AtomicUsize::new(0));
        let (conn, total) = (
            Arc::new(ByteCounters::default()),
            Arc::new(ByteCounters::default()),
        );
        let inner = Reads {
            inner: rx,
            reads: reads.clone(),
        };
        let mut s = Counted::new(inner, conn.clone(), total.clone());
        let mut got = Vec::new();
        let mut calls = 0usize;
        let mut chunk = vec![0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            calls += 1;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        writer.await.unwrap();
        assert!(got == data, "bytes differ");
        assert_eq!(conn.totals().in_bytes, data.len() as u64);
        assert_eq!(total.totals().in_bytes, data.len() as u64);
        let socket_reads = reads.load(Ordering::Relaxed);
        assert!(
            socket_reads * 4 <= calls,
            "{socket_reads} socket reads for {calls} reads of 4 KiB"
        );
    }

    /// A vectored write reaches the socket as one: more than its first slice is written.
    #[tokio::test]
    async fn vectored_writes_reach_the_socket_whole() {
        let (tx, mut rx) = socket_pair().await;
        let (conn, total) = (
            Arc::new(ByteCounters::default()),
            Arc::new(ByteCounters::default()),
        );
        let mut s = Counted::new(tx, conn.clone(), total);
        assert!(s.is_write_vectored());
        let parts = [noise(1000), noise(2000), noise(3000)];
        let slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let n = s.write_vectored(&slices).await.unwrap();
        assert!(
            n > 1000,
            "only {n} bytes of a 6,000-byte vectored write went out"
        );
        assert_eq!(conn.totals().out_bytes, n as u64);
        drop(s);
        let mut back = Vec::new();
        rx.read_to_end(&mut back).await.unwrap();
        assert_eq!(back.len(), n);
        assert!(back == parts.concat()[..n], "bytes differ");
    }
}
