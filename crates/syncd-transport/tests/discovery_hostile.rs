//! Global discovery against servers that misbehave, on 127.0.0.1: one answering garbage, one
//! that never answers, one answering 500 with `Retry-After`, one whose certificate is not the
//! pinned one, one with an oversized body, and one that knows every device (to fill the
//! cache). Each failure is a typed error in the finder's status, lookups return nothing,
//! nothing panics, and the cache stays bounded. The servers are small TLS listeners written
//! here: they are the adversary, the client under test is the real one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use syncd_transport::discovery::{DiscoveryConfig, MAX_CACHED_DEVICES};
use syncd_transport::{Endpoint, EndpointConfig, Identity};
use syncd_types::DeviceId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Mode {
    Garbage,
    Silent,
    Status500,
    Huge,
    KnowsEveryone,
}

/// Starts a TLS server answering every request per `mode`; returns its port and cert's ID.
async fn server(mode: Mode) -> (u16, DeviceId) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let id = DeviceId::from_cert_der(cert.as_ref());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(syncd_transport::tls::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let reply: Vec<u8> = match mode {
                    Mode::Garbage => b"\x00\x01 not HTTP at all\r\n\r\n".to_vec(),
                    Mode::Silent => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    Mode::Status500 => {
                        b"HTTP/1.1 500 Internal Server Error\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n".to_vec()
                    }
                    Mode::Huge => {
                        let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n{\"addresses\":[\"".to_vec();
                        r.extend(std::iter::repeat_n(b'a', 200_000));
                        r
                    }
                    Mode::KnowsEveryone => {
                        let addrs: Vec<String> =
                            (0..500).map(|i| format!("tcp://10.0.0.1:{}", i + 1)).collect();
                        let body = serde_json::json!({"seen": "2026-01-01T00:00:00Z", "addresses": addrs}).to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    }
                };
                let _ = tls.write_all(&reply).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, id)
}

async fn endpoint(servers: Vec<String>) -> Endpoint {
    let mut cfg = EndpointConfig::new(Identity::generate().unwrap(), "hostile-test");
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.listen_host = Some("localhost".to_owned());
    cfg.discovery = DiscoveryConfig {
        global_enabled: true,
        global_servers: servers,
        ..DiscoveryConfig::disabled()
    };
    Endpoint::start(cfg).await.unwrap().0
}

/// Waits until every finder has reported an error; returns them.
async fn errors(ep: &Endpoint) -> Vec<(String, String)> {
    let d = ep.discovery().unwrap();
    for _ in 0..200 {
        let s = d.status();
        if s.values().all(Option::is_some) {
            return s.into_iter().map(|(k, v)| (k, v.unwrap())).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every finder failed: {:?}", d.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_servers_give_typed_errors_and_no_addresses() {
    let (garbage, gid) = server(Mode::Garbage).await;
    let (silent, sid) = server(Mode::Silent).await;
    let (failing, fid) = server(Mode::Status500).await;
    let (huge, hid) = server(Mode::Huge).await;
    let (_, real_id) = server(Mode::Garbage).await;
    let url = |port: u16, id: DeviceId| format!("https://127.0.0.1:{port}/v2/?id={id}");
    let ep = endpoint(vec![
        url(garbage, gid),
        url(silent, sid),
        url(failing, fid),
        url(huge, hid),
        // Pinned to another server's ID: the certificate is wrong.
        format!("https://127.0.0.1:{failing}/other/?id={real_id}"),
    ])
    .await;
    let errs = errors(&ep).await;
    let err = |port: u16| -> Vec<&str> {
        errs.iter()
            .filter(|(k, _)| k.ends_with(&format!(":{port}/v2/")))
            .map(|(_, e)| e.as_str())
            .collect()
    };
    assert!(err(garbage)[0].starts_with("HTTP:"), "{errs:?}");
    assert_eq!(err(silent), ["timed out"], "{errs:?}");
    assert_eq!(err(failing)[0], "500 Internal Server Error", "{errs:?}");
    let pinned = errs
        .iter()
        .find(|(k, _)| k.ends_with("/other/"))
        .map(|(_, e)| e.as_str())
        .unwrap_or_default();
    assert!(
        pinned.starts_with("TLS:") && pinned.contains("not the pinned"),
        "{errs:?}"
    );
    assert_eq!(err(huge), ["reply body too large"], "{errs:?}");
    let peer = Identity::generate().unwrap().device_id();
    let d = ep.discovery().unwrap();
    assert!(d.lookup(peer).await.is_empty());
    assert!(d.cache().is_empty());
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_cache_is_bounded_and_addresses_are_capped() {
    let (port, id) = server(Mode::KnowsEveryone).await;
    let ep = endpoint(vec![format!(
        "https://127.0.0.1:{port}/v2/?id={id}&noannounce"
    )])
    .await;
    let d = ep.discovery().unwrap();
    let first = d.lookup(DeviceId::from_bytes([0; 32])).await;
    assert_eq!(first.len(), 64, "at most 64 addresses per answer");
    for i in 0..(MAX_CACHED_DEVICES + 20) {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let _ = d.lookup(DeviceId::from_bytes(b)).await;
    }
    let cached = d.cache().len();
    assert!(cached <= MAX_CACHED_DEVICES, "{cached} devices cached");
    ep.shutdown().await;
}
