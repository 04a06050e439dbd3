//! Raw message throughput over one TLS 1.3 connection on loopback: a requester pipelines
//! Requests for 128 KiB blocks, a responder answers each with a 128 KiB Response (uncompressed,
//! as in the default `metadata` compression mode). Prints MB/s and CPU seconds per GB (both ends
//! of the connection run in this process, so CPU covers encrypt + decrypt).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use syncd_proto::{Message, bep};
use syncd_transport::{
    Connection, DeviceConfig, Endpoint, EndpointConfig, Event, Identity, PeerAddress,
};

const BLOCK: usize = 128 * 1024;
/// Requests in flight (like a puller's window).
const WINDOW: i32 = 64;

struct Pair {
    requester: Connection,
    _eps: (Endpoint, Endpoint),
}

async fn connected(events: &mut tokio::sync::mpsc::Receiver<Event>) -> Connection {
    loop {
        if let Some(Event::Connected(c)) = events.recv().await {
            return c;
        }
    }
}

async fn setup() -> Pair {
    let ia = Identity::generate().unwrap();
    let ib = Identity::generate().unwrap();
    let mut ca = EndpointConfig::new(ia.clone(), "responder");
    ca.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    ca.devices = vec![DeviceConfig::new(ib.device_id())];
    ca.queue_depth = 16;
    let (a, mut ea) = Endpoint::start(ca).await.unwrap();
    let mut cb = EndpointConfig::new(ib, "requester");
    cb.listen = None;
    cb.queue_depth = 16;
    let addr = PeerAddress::parse(&format!("tcp://{}", a.local_addr().unwrap())).unwrap();
    cb.devices = vec![DeviceConfig::new(ia.device_id()).with_address(addr)];
    let (b, mut eb) = Endpoint::start(cb).await.unwrap();
    let mut responder = connected(&mut ea).await;
    let requester = connected(&mut eb).await;
    let cc = Message::ClusterConfig(bep::ClusterConfig::default());
    responder.sender.send(cc.clone()).await.unwrap();
    requester.sender.send(cc).await.unwrap();
    // The responder: answer every Request with a block of the requested size.
    tokio::spawn(async move {
        let block = vec![0x5a_u8; BLOCK];
        while let Ok(m) = responder.receiver.recv().await {
            if let Message::Request(r) = m {
                let resp = bep::Response {
                    id: r.id,
                    data: block.clone(),
                    code: 0,
                };
                if responder
                    .sender
                    .send(Message::Response(resp))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    let mut pair = Pair {
        requester,
        _eps: (a, b),
    };
    // Skip the responder's ClusterConfig.
    let _ = pair.requester.receiver.recv().await.unwrap();
    pair
}

/// Fetches `blocks` blocks with WINDOW requests in flight; returns payload bytes received.
async fn transfer(pair: &mut Pair, blocks: i32, next_id: &mut i32) -> u64 {
    let mut sent = 0;
    let mut received = 0;
    let mut bytes = 0u64;
    while received < blocks {
        while sent < blocks && sent - received < WINDOW {
            let req = bep::Request {
                id: *next_id,
                folder: "bench".into(),
                name: "file".into(),
                size: BLOCK as i32,
                hash: vec![0; 32],
                ..Default::default()
            };
            *next_id = next_id.wrapping_add(1);
            pair.requester
                .sender
                .send(Message::Request(req))
                .await
                .unwrap();
            sent += 1;
        }
        if let Message::Response(r) = pair.requester.receiver.recv().await.unwrap() {
            bytes += r.data.len() as u64;
            received += 1;
        }
    }
    bytes
}

/// User + system CPU seconds of this process (Linux /proc; None elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm field; 100 ticks/s.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut pair = rt.block_on(setup());
    let mut next_id = 0;

    // Headline figures from one 1 GiB run.
    let blocks = 8192; // 1 GiB
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let bytes = rt.block_on(transfer(&mut pair, blocks, &mut next_id));
    let wall = t0.elapsed().as_secs_f64();
    let mb_s = bytes as f64 / 1e6 / wall;
    eprintln!(
        "transport throughput: {bytes} bytes of 128 KiB Responses in {wall:.2} s = {mb_s:.0} MB/s"
    );
    if let (Some(a), Some(b)) = (cpu0, cpu_seconds()) {
        let gb = bytes as f64 / 1e9;
        eprintln!(
            "transport CPU: {:.2} s for {gb:.2} GB = {:.2} CPU s/GB (both TLS ends in this process)",
            b - a,
            (b - a) / gb
        );
    }

    let mut group = c.benchmark_group("tls_loopback");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.warm_up_time(Duration::from_secs(1));
    let per_iter = 256; // 32 MiB
    group.throughput(Throughput::Bytes(per_iter as u64 * BLOCK as u64));
    group.bench_function("response_128k", |b| {
        b.iter(|| rt.block_on(transfer(&mut pair, per_iter, &mut next_id)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
