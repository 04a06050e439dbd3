//! A fault-injecting TCP proxy on loopback, std threads only.
//!
//! The dialling daemon is configured with the proxy's port as its peer's address; the proxy
//! forwards each accepted connection to the real listener. On command it cuts every live
//! connection (mid-message when data is flowing), stalls forwarding for a while (bytes are
//! held, not lost), delays every chunk for a while, truncates (forwards a prefix of the next
//! chunk, then closes both ends), or partitions (cuts everything and refuses new
//! connections until healed). Faults are counted only when they hit a live connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Timed {
    stall_until: Option<Instant>,
    delay: Option<(Duration, Instant)>,
}

#[derive(Debug)]
struct State {
    target: SocketAddr,
    stop: AtomicBool,
    partitioned: AtomicBool,
    truncate_pending: AtomicBool,
    truncated: AtomicU64,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    next_id: AtomicU64,
    conns: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    timed: Mutex<Timed>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub(crate) struct Proxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub(crate) fn start(target: SocketAddr) -> Result<Proxy, String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy bind: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let state = Arc::new(State {
            target,
            stop: AtomicBool::new(false),
            partitioned: AtomicBool::new(false),
            truncate_pending: AtomicBool::new(false),
            truncated: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            timed: Mutex::new(Timed::default()),
        });
        let st = state.clone();
        let acceptor = std::thread::Builder::new()
            .name("torture-proxy".into())
            .spawn(move || accept_loop(&l, &st))
            .map_err(|e| e.to_string())?;
        Ok(Proxy {
            port,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// Live connections.
    pub(crate) fn live(&self) -> usize {
        lock(&self.state.conns).len()
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far (both directions).
    pub(crate) fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// Truncations applied so far.
    pub(crate) fn truncated(&self) -> u64 {
        self.state.truncated.load(Ordering::SeqCst)
    }

    /// Cuts every live connection (both directions, at once); returns how many.
    pub(crate) fn cut(&self) -> usize {
        cut_all(&self.state)
    }

    /// Holds every byte for `d` (connections stay open); returns the live connections.
    pub(crate) fn stall(&self, d: Duration) -> usize {
        lock(&self.state.timed).stall_until = Some(Instant::now() + d);
        self.live()
    }

    /// Delays every forwarded chunk by `per_chunk` for the next `span`; returns the live
    /// connections.
    pub(crate) fn delay(&self, per_chunk: Duration, span: Duration) -> usize {
        lock(&self.state.timed).delay = Some((per_chunk, Instant::now() + span));
        self.live()
    }

    /// Arms a truncation: the next chunk either way is forwarded only in part, then both ends
    /// are closed. Waits up to `wait` for traffic to trigger it; true when it happened.
    pub(crate) fn truncate(&self, wait: Duration) -> bool {
        let before = self.truncated();
        self.state.truncate_pending.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.truncated() > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.state.truncate_pending.store(false, Ordering::SeqCst);
        self.truncated() > before
    }

    /// Partitions: cuts everything and refuses new connections until [`Proxy::heal`].
    pub(crate) fn partition(&self) -> usize {
        self.state.partitioned.store(true, Ordering::SeqCst);
        cut_all(&self.state)
    }

    /// Ends a partition.
    pub(crate) fn heal(&self) {
        self.state.partitioned.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        cut_all(&self.state);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn cut_all(st: &State) -> usize {
    let conns: Vec<_> = lock(&st.conns).drain(..).collect();
    for (_, a, b) in &conns {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    }
    conns.len()
}

fn accept_loop(l: &TcpListener, st: &Arc<State>) {
    while !st.stop.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((client, _)) => {
                if st.partitioned.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&st.target, Duration::from_secs(2))
                else {
                    continue;
                };
                st.accepted.fetch_add(1, Ordering::SeqCst);
                let id = st.next_id.fetch_add(1, Ordering::SeqCst);
                let clones = (client.try_clone(), server.try_clone());
                let (Ok(c2), Ok(s2)) = clones else { continue };
                let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                lock(&st.conns).push((id, c3, s3));
                for (from, to) in [(client, server), (s2, c2)] {
                    let st2 = st.clone();
                    let (f2, t2) = (from.try_clone(), to.try_clone());
                    let spawned = std::thread::Builder::new()
                        .name("torture-pump".into())
                        .spawn(move || pump(from, to, id, &st2));
                    if spawned.is_err() {
                        for s in [f2, t2].into_iter().flatten() {
                            let _ = s.shutdown(Shutdown::Both);
                        }
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn close(st: &State, id: u64, a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
    lock(&st.conns).retain(|(i, _, _)| *i != id);
}

/// Forwards `from` to `to` until either end closes, applying the armed faults per chunk.
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, st: &State) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if st.stop.load(Ordering::SeqCst) {
            close(st, id, &from, &to);
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                close(st, id, &from, &to);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                close(st, id, &from, &to);
                return;
            }
        };
        // Stall: hold the bytes until the stall ends (or the proxy stops).
        loop {
            let until = lock(&st.timed).stall_until;
            match until {
                Some(t) if Instant::now() < t && !st.stop.load(Ordering::SeqCst) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        let delay = lock(&st.timed).delay;
        if let Some((d, until)) = delay
            && Instant::now() < until
        {
            std::thread::sleep(d);
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if st.truncate_pending.swap(false, Ordering::SeqCst) {
            let keep = (n / 2).max(1).min(n.saturating_sub(1));
            let _ = to.write_all(chunk.get(..keep).unwrap_or_default());
            let _ = to.flush();
            st.truncated.fetch_add(1, Ordering::SeqCst);
            st.forwarded.fetch_add(keep as u64, Ordering::SeqCst);
            close(st, id, &from, &to);
            return;
        }
        if to.write_all(chunk).is_err() {
            close(st, id, &from, &to);
            return;
        }
        st.forwarded.fetch_add(n as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback; returns its address.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        addr
    }

    fn connect(p: &Proxy) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn wait_live(p: &Proxy, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.live() != n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(p.live(), n);
    }

    #[test]
    fn forwards_both_ways() {
        let p = Proxy::start(echo()).unwrap();
        let mut s = connect(&p);
        s.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        // The pump counts a chunk after writing it, so the client can read the echo a moment
        // before the second direction's 5 bytes are counted.
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.forwarded() < 10 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(p.forwarded(), 10);
    }

    #[test]
    fn cut_closes_live_connections() {
        let p = Proxy::start(echo()).unwrap();
        let mut s = connect(&p);
        wait_live(&p, 1);
        assert_eq!(p.cut(), 1);
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    }

    #[test]
    fn truncate_forwards_a_strict_prefix_then_closes() {
        let p = Proxy::start(echo()).unwrap();
        let mut s = connect(&p);
        wait_live(&p, 1);
        p.state.truncate_pending.store(true, Ordering::SeqCst);
        s.write_all(&[7u8; 100]).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.len() < 100, "got {} bytes", got.len());
        assert_eq!(p.truncated(), 1);
    }

    #[test]
    fn a_partition_refuses_new_connections_until_healed() {
        let p = Proxy::start(echo()).unwrap();
        let _s = connect(&p);
        wait_live(&p, 1);
        assert_eq!(p.partition(), 1);
        let mut refused = connect(&p);
        let mut b = [0u8; 1];
        let _ = refused.write_all(b"x");
        assert!(matches!(refused.read(&mut b), Ok(0) | Err(_)));
        p.heal();
        let mut ok = connect(&p);
        ok.write_all(b"y").unwrap();
        ok.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"y");
    }
}
