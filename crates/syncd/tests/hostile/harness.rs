//! The hostile suite's harness: a real `syncd` daemon in a temp dir with one folder shared with
//! a device whose identity the test holds, one folder not shared with it, and a canary
//! directory outside both; a raw BEP peer over real TLS that can send any bytes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use syncd::config::{Config, DeviceEntry, FolderEntry};
use syncd_proto::bep::{self, FileInfoType};
use syncd_proto::{CompressionPolicy, Decoder, Message, encode_message};
use syncd_transport::{Identity, hello, tls};
use syncd_types::{DeviceId, FolderId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BIN: &str = env!("CARGO_BIN_EXE_syncd");

/// The folder shared with the hostile device.
pub const SHARED: &str = "shared";
/// A folder the daemon has but does not share with the hostile device.
pub const PRIVATE: &str = "private";
/// Content of `hello.txt` in the shared folder.
pub const HELLO: &[u8] = b"hello world\n";
/// Content of the ignored `secret.txt` in the shared folder.
pub const SECRET: &[u8] = b"ignored secret\n";
/// Content of `p.txt` in the private folder.
pub const PRIVATE_DATA: &[u8] = b"private data\n";
/// Content of the canary file outside every folder.
pub const CANARY: &[u8] = b"canary: must never change\n";

/// SHA-256 of `data`.
pub fn sha(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// A running daemon and the directories around it. Killed by PID on drop.
pub struct Daemon {
    pub child: Child,
    pub rest: SocketAddr,
    pub listen: SocketAddr,
    pub id: DeviceId,
    /// The configured peer the test plays.
    pub peer: Identity,
    /// Every line the daemon wrote to stderr.
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
    pub shared: PathBuf,
    pub private: PathBuf,
    /// Outside every folder: `canary.txt` and `elsewhere/f`.
    pub outside: PathBuf,
    pub api_key: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon configured with extra devices (id, address) besides the hostile peer.
pub fn start_daemon(extra_devices: &[(DeviceId, &str)]) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let user = dir.path().join("user");
    let shared = dir.path().join(SHARED);
    let private = dir.path().join(PRIVATE);
    let outside = dir.path().join("outside");
    for d in [&home, &user, &shared, &private, &outside.join("elsewhere")] {
        std::fs::create_dir_all(d).unwrap();
    }
    for root in [&shared, &private] {
        std::fs::create_dir_all(root.join(".stfolder")).unwrap();
    }
    std::fs::write(shared.join("hello.txt"), HELLO).unwrap();
    std::fs::write(shared.join("secret.txt"), SECRET).unwrap();
    std::fs::write(shared.join(".stignore"), "secret*\n").unwrap();
    std::fs::write(private.join("p.txt"), PRIVATE_DATA).unwrap();
    std::fs::write(outside.join("canary.txt"), CANARY).unwrap();
    std::fs::write(outside.join("elsewhere").join("f"), CANARY).unwrap();

    let ident = Identity::generate().unwrap();
    ident.save(&home).unwrap();
    let peer = Identity::generate().unwrap();
    let api_key = "hostilesuitekey0123456789abcdefX".to_owned();
    let mut config = Config::new_with_key(api_key.clone());
    config.options.listen = vec!["tcp://127.0.0.1:0".into()];
    config.gui.address = "127.0.0.1:0".into();
    config.devices.push(DeviceEntry::new(peer.device_id()));
    for (id, addr) in extra_devices {
        let mut d = DeviceEntry::new(*id);
        d.addresses = vec![(*addr).to_owned()];
        config.devices.push(d);
    }
    let mut f = FolderEntry::new(FolderId::new(SHARED).unwrap(), shared.clone());
    f.devices = vec![peer.device_id()];
    config.folders.push(f);
    config.folders.push(FolderEntry::new(
        FolderId::new(PRIVATE).unwrap(),
        private.clone(),
    ));
    config.save(&home).unwrap();

    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--no-browser",
            "--no-discovery",
            "--gui-address",
            "127.0.0.1:0",
            "--listen",
            "tcp://127.0.0.1:0",
            "--home",
        ])
        .arg(&home)
        .env("HOME", &user)
        .env_remove("XDG_CONFIG_HOME")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let log2 = log.clone();
    let echo = std::env::var_os("HOSTILE_ECHO_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("daemon: {line}");
            }
            log2.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Keep draining after the receiver is gone: the daemon's stdout stays open.
            let _ = tx.send(line);
        }
    });
    let (mut rest, mut listen) = (None, None);
    while rest.is_none() || listen.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(90)) else {
            let _ = child.kill();
            panic!(
                "daemon did not print its addresses; stderr: {:?}",
                log.lock().unwrap()
            );
        };
        if let Some(a) = line.strip_prefix("REST API: http://") {
            rest = Some(a.trim().parse().unwrap());
        }
        if let Some(a) = line.strip_prefix("Listening for devices on: tcp://") {
            listen = Some(a.split(',').next().unwrap().trim().parse().unwrap());
        }
    }
    Daemon {
        child,
        rest: rest.unwrap(),
        listen: listen.unwrap(),
        id: ident.device_id(),
        peer,
        log,
        dir,
        shared,
        private,
        outside,
        api_key,
    }
}

/// An HTTP/1.1 request by hand (so that headers, including Host, are exactly ours).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: std::io::Error| format!("{what}: {err}")
    };
    let mut s = std::net::TcpStream::connect(addr).map_err(e("connect"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(e("timeout"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    let mut body = "";
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("body") {
            body = v;
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).map_err(e("write"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(e("read"))?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {resp:?}"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

impl Daemon {
    /// The daemon process is alive and `/rest/noauth/health` answers OK.
    pub fn healthy(&mut self) -> bool {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return false;
        }
        matches!(http(self.rest, "GET", "/rest/noauth/health", &[]), Ok((200, b)) if b.contains("OK"))
    }

    /// Number of log lines so far (a case's mark).
    pub fn log_mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits (up to 30 s) for a log line after `mark` that names `device` (full or short ID)
    /// and contains every one of `words` (case-insensitive). Returns it.
    pub fn wait_log(&self, mark: usize, device: DeviceId, words: &[&str]) -> Option<String> {
        let full = device.to_string();
        let short = device.short().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let log = self.log.lock().unwrap();
                for line in log.iter().skip(mark) {
                    let lower = line.to_lowercase();
                    if (line.contains(&full) || line.contains(&short))
                        && words.iter().all(|w| lower.contains(&w.to_lowercase()))
                    {
                        return Some(line.clone());
                    }
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether a log line after `mark` already contains every one of `words` (any device).
    pub fn wait_log_now(&self, mark: usize, words: &[&str]) -> bool {
        let log = self.log.lock().unwrap();
        log.iter().skip(mark).any(|line| {
            let lower = line.to_lowercase();
            words.iter().all(|w| lower.contains(&w.to_lowercase()))
        })
    }

    /// Everything outside the two folders' contents that the test watches: the temp dir's
    /// top-level names, the canary tree and the private folder (path -> content or link).
    pub fn outside_snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            out.insert(format!("top:{name}"), String::new());
        }
        walk(&self.outside, "outside", &mut out);
        walk(&self.private, "private", &mut out);
        out
    }

    /// Names in the shared folder that are neither expected nor syncd temp files.
    pub fn unexpected_in_shared(&self, allowed: &[&str]) -> Vec<String> {
        let mut all = BTreeMap::new();
        walk(&self.shared, "", &mut all);
        all.keys()
            .map(|k| k.trim_start_matches('/').to_owned())
            .filter(|k| !k.starts_with(".stfolder"))
            .filter(|k| {
                let base = k.rsplit('/').next().unwrap_or(k);
                !syncd_types::names::is_temp_name(base)
            })
            .filter(|k| !allowed.contains(&k.as_str()))
            .collect()
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let e = e.unwrap();
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(e.path()).unwrap();
            out.insert(name, format!("link:{}", t.display()));
        } else if meta.is_dir() {
            out.insert(name.clone(), "dir".into());
            walk(&e.path(), &name, out);
        } else {
            let data = std::fs::read(e.path()).unwrap_or_default();
            out.insert(name, format!("file:{}", hex(&sha(&data))));
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What reading from the peer connection produced.
#[derive(Debug)]
pub enum Recv {
    Msg(Box<Message>),
    /// EOF, a TLS/IO error or an undecodable stream: the daemon closed the connection.
    Closed(String),
    Timeout,
}

/// A raw BEP peer over real TLS.
pub struct Peer {
    pub stream: TlsStream<TcpStream>,
    pub dec: Decoder,
    pub me: DeviceId,
}

impl Peer {
    /// TLS + Hello with `ident`. `Err` when the daemon drops us before Hello completes.
    pub async fn connect(addr: SocketAddr, ident: &Identity) -> Result<Peer, String> {
        Peer::connect_named(addr, ident, "hostile").await
    }

    /// TLS + Hello with `ident`, announcing `name` in Hello.
    pub async fn connect_named(
        addr: SocketAddr,
        ident: &Identity,
        name: &str,
    ) -> Result<Peer, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let cfg = tls::client_config(ident).map_err(|e| e.to_string())?;
        let mut stream = TlsConnector::from(cfg)
            .connect(tls::dial_server_name(addr.ip()), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let ours = hello::our_hello(name, "v0.0.1");
        let (_, leftover) =
            tokio::time::timeout(Duration::from_secs(30), hello::exchange(&mut stream, &ours))
                .await
                .map_err(|_| "hello timeout".to_owned())?
                .map_err(|e| e.to_string())?;
        let mut dec = Decoder::new();
        dec.feed(&leftover);
        Ok(Peer {
            stream,
            dec,
            me: ident.device_id(),
        })
    }

    pub async fn send(&mut self, m: &Message) {
        let mut out = Vec::new();
        encode_message(m, CompressionPolicy::Never, &mut out).unwrap();
        self.send_raw(&out).await;
    }

    /// Writes bytes; a write error (the daemon already closed) is not the test's failure.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    pub async fn recv(&mut self, within: Duration) -> Recv {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.dec.next_message() {
                Ok(Some(m)) => return Recv::Msg(Box::new(m)),
                Ok(None) => {}
                Err(e) => return Recv::Closed(format!("undecodable: {e}")),
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return Recv::Timeout,
                Ok(Ok(0)) => return Recv::Closed("eof".into()),
                Ok(Ok(n)) => self.dec.feed(buf.get(..n).unwrap_or_default()),
                Ok(Err(e)) => return Recv::Closed(e.to_string()),
            }
        }
    }

    /// Reads until the daemon closes (Close message, EOF or error) or `within` passes
    /// with the connection still open. Requests from the daemon get an error Response.
    pub async fn closed_within(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Recv::Msg(m) => match *m {
                    Message::Close(c) => return Some(format!("Close{{{}}}", c.reason)),
                    Message::Request(r) => {
                        self.send(&Message::Response(bep::Response {
                            id: r.id,
                            data: Vec::new(),
                            code: bep::ErrorCode::NoSuchFile as i32,
                        }))
                        .await;
                    }
                    _ => {}
                },
                Recv::Closed(why) => return Some(why),
                Recv::Timeout => return None,
            }
        }
    }

    /// Receives the daemon's ClusterConfig (its first message) and sends ours, sharing
    /// `folders` (each listing both devices). Returns the daemon's ClusterConfig.
    pub async fn cluster_config(
        &mut self,
        daemon: DeviceId,
        folders: &[&str],
    ) -> Result<bep::ClusterConfig, String> {
        let first = match self.recv(Duration::from_secs(30)).await {
            Recv::Msg(m) => *m,
            other => return Err(format!("no ClusterConfig: {other:?}")),
        };
        let Message::ClusterConfig(theirs) = first else {
            return Err(format!("first message was not ClusterConfig: {first:?}"));
        };
        let dev = |id: DeviceId, index_id: u64| bep::Device {
            id: id.as_bytes().to_vec(),
            name: String::new(),
            addresses: vec!["dynamic".into()],
            index_id,
            ..Default::default()
        };
        let cc = bep::ClusterConfig {
            folders: folders
                .iter()
                .map(|f| bep::Folder {
                    id: (*f).to_owned(),
                    label: (*f).to_owned(),
                    devices: vec![dev(daemon, 0), dev(self.me, 0x5eed)],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        self.send(&Message::ClusterConfig(cc)).await;
        Ok(theirs)
    }

    /// Waits until the daemon's Index/IndexUpdate for `folder` has announced `name`.
    pub async fn wait_announced(&mut self, folder: &str, name: &str) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Recv::Msg(m) => {
                    let files = match *m {
                        Message::Index(i) if i.folder == folder => i.files,
                        Message::IndexUpdate(i) if i.folder == folder => i.files,
                        _ => continue,
                    };
                    if files.iter().any(|f| f.name == name) {
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }

    /// Sends a Request and waits for its Response (other messages are skipped).
    pub async fn request(&mut self, req: bep::Request) -> Result<bep::Response, String> {
        let id = req.id;
        self.send(&Message::Request(req)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Recv::Msg(m) => match *m {
                    Message::Response(r) if r.id == id => return Ok(r),
                    Message::Close(c) => return Err(format!("Close{{{}}}", c.reason)),
                    _ => {}
                },
                Recv::Closed(why) => return Err(why),
                Recv::Timeout => return Err("timeout".into()),
            }
        }
    }
}

/// A request for `name` in `folder` of `size` bytes at 0 with `hash`.
pub fn request(id: i32, folder: &str, name: &str, size: i32, hash: Vec<u8>) -> bep::Request {
    bep::Request {
        id,
        folder: folder.into(),
        name: name.into(),
        offset: 0,
        size,
        hash,
        ..Default::default()
    }
}

/// A regular file record with one block holding `data`, version `{peer: value}`.
pub fn file_info(name: &str, data: &[u8], peer: DeviceId, value: u64) -> bep::FileInfo {
    let short = peer.short().0;
    bep::FileInfo {
        name: name.into(),
        r#type: FileInfoType::File as i32,
        size: i64::try_from(data.len()).unwrap(),
        permissions: 0o644,
        modified_s: 1_700_000_000,
        modified_by: short,
        version: Some(bep::Vector {
            counters: vec![bep::Counter { id: short, value }],
        }),
        sequence: i64::try_from(value).unwrap(),
        blocks: vec![bep::BlockInfo {
            offset: 0,
            size: i32::try_from(data.len()).unwrap(),
            hash: sha(data),
            weak_hash: 0,
        }],
        ..Default::default()
    }
}

/// A symlink record `name -> target`.
pub fn symlink_info(name: &str, target: &str, peer: DeviceId, value: u64) -> bep::FileInfo {
    let short = peer.short().0;
    bep::FileInfo {
        name: name.into(),
        r#type: FileInfoType::Symlink as i32,
        no_permissions: true,
        permissions: 0o666,
        modified_by: short,
        version: Some(bep::Vector {
            counters: vec![bep::Counter { id: short, value }],
        }),
        sequence: i64::try_from(value).unwrap(),
        symlink_target: target.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// An Index for `folder` holding `files`.
pub fn index(folder: &str, files: Vec<bep::FileInfo>) -> Message {
    let last = files.iter().map(|f| f.sequence).max().unwrap_or(0);
    Message::Index(bep::Index {
        folder: folder.into(),
        files,
        last_sequence: last,
    })
}

/// A frame by hand: header `{type, compression}`, then the 4-byte length and the body.
pub fn raw_frame(msg_type: u8, compressed: bool, declared_len: u32, body: &[u8]) -> Vec<u8> {
    let header: Vec<u8> = if compressed {
        vec![0x08, msg_type, 0x10, 0x01]
    } else {
        vec![0x08, msg_type]
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&declared_len.to_be_bytes());
    out.extend_from_slice(body);
    out
}
