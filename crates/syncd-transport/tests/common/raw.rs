//! A hand-driven BEP peer for tests: real TLS (our own configs), raw Hello and frames, so a test
//! can misbehave on purpose (stay silent, send garbage, lie about response sizes).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use syncd_proto::{CompressionPolicy, Decoder, Message, bep};
use syncd_transport::Identity;
use syncd_transport::tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub struct RawPeer {
    pub stream: TlsStream<TcpStream>,
    pub hello: bep::Hello,
    dec: Decoder,
}

pub enum Next {
    Msg(Message),
    /// The stream ended (EOF, reset or TLS error).
    End,
}

impl RawPeer {
    /// TLS-connects to `addr` as `identity` and exchanges Hello with the given client name.
    pub async fn connect(addr: SocketAddr, identity: &Identity, client_name: &str) -> RawPeer {
        let cfg = tls::client_config(identity).unwrap();
        Self::connect_with(addr, cfg, client_name).await.unwrap()
    }

    /// Like `connect` with any client config; `None` when no Hello arrives.
    pub async fn connect_with(
        addr: SocketAddr,
        cfg: Arc<rustls::ClientConfig>,
        client_name: &str,
    ) -> Option<RawPeer> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut stream = TlsConnector::from(cfg)
            .connect(tls::dial_server_name(addr.ip()), tcp)
            .await
            .ok()?;
        let hello = bep::Hello {
            device_name: "raw".into(),
            client_name: client_name.into(),
            client_version: "v1.19.2".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        syncd_proto::encode_hello(&hello, &mut out);
        stream.write_all(&out).await.ok()?;
        stream.flush().await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((hello, used)) = syncd_proto::decode_hello(&buf).unwrap() {
                let mut dec = Decoder::new();
                dec.feed(&buf[used..]);
                return Some(RawPeer { stream, hello, dec });
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub async fn send(&mut self, msg: &Message) {
        let mut out = Vec::new();
        syncd_proto::encode_message(msg, CompressionPolicy::Never, &mut out).unwrap();
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next message the endpoint sent, or `End`.
    pub async fn next(&mut self) -> Next {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.dec.next_message() {
                Ok(Some(m)) => return Next::Msg(m),
                Ok(None) => {}
                Err(e) => panic!("endpoint sent undecodable bytes: {e}"),
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Next::End,
                Ok(n) => self.dec.feed(&chunk[..n]),
            }
        }
    }

    /// Everything the endpoint sends until the stream ends.
    pub async fn drain(&mut self) -> Vec<Message> {
        let mut got = Vec::new();
        while let Next::Msg(m) = self.next().await {
            got.push(m);
        }
        got
    }
}

pub fn cluster_config() -> Message {
    Message::ClusterConfig(bep::ClusterConfig::default())
}

pub fn close_reason(msgs: &[Message]) -> Option<&str> {
    msgs.iter().find_map(|m| match m {
        Message::Close(c) => Some(c.reason.as_str()),
        _ => None,
    })
}
