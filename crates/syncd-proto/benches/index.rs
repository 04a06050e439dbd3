#![allow(missing_docs)] // criterion_group! generates an undocumented function.
#![allow(clippy::unwrap_used)] // bench set-up on data we generate.
//! Encode and decode an Index of 10,000 realistic FileInfos, compressed and uncompressed.
//! Prints MB/s (of framed bytes) and messages/s; criterion reports the same as throughput.

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use syncd_proto::{CompressionPolicy, Decoder, Message, bep, encode_message};

/// 10,000 files shaped like a source tree: nested names, one to a few blocks with real SHA-256
/// and Adler-like weak hashes, a two-device version vector.
fn realistic_index() -> bep::Index {
    let files = (0..10_000u32)
        .map(|i| {
            let size = i64::from((i * 7919) % 400_000 + 1);
            let nblocks = (size + 131_071) / 131_072;
            let blocks = (0..nblocks)
                .map(|b| {
                    let offset = b * 131_072;
                    bep::BlockInfo {
                        offset,
                        size: i32::try_from((size - offset).min(131_072)).unwrap_or(0),
                        hash: Sha256::digest(format!("{i}/{b}")).to_vec(),
                        weak_hash: i.wrapping_mul(2_654_435_761),
                    }
                })
                .collect();
            bep::FileInfo {
                name: format!("src/module_{:03}/sub_{:02}/file_{i:05}.rs", i % 97, i % 13),
                size,
                permissions: 0o644,
                modified_s: 1_700_000_000 + i64::from(i),
                modified_ns: i32::try_from(i * 1000).unwrap_or(0),
                version: Some(bep::Vector {
                    counters: vec![
                        bep::Counter {
                            id: 0x3f90_a65e_25ac_447c,
                            value: 1_795_815_649,
                        },
                        bep::Counter {
                            id: 0xcdd6_ca1c_37bd_6cec,
                            value: u64::from(i) + 1,
                        },
                    ],
                }),
                sequence: i64::from(i) + 1,
                modified_by: 0xcdd6_ca1c_37bd_6cec,
                block_size: 131_072,
                blocks,
                ..Default::default()
            }
        })
        .collect();
    bep::Index {
        folder: "workspaces".into(),
        files,
        last_sequence: 10_000,
    }
}

fn report(label: &str, bytes: usize, iters: u32, secs: f64) {
    let mb_s = bytes as f64 * f64::from(iters) / secs / 1e6;
    let msg_s = f64::from(iters) / secs;
    eprintln!(
        "{label}: {mb_s:.0} MB/s, {msg_s:.1} messages/s (10,000 FileInfos each, {bytes} framed bytes)"
    );
}

fn bench(c: &mut Criterion) {
    let msg = Message::Index(realistic_index());
    let mut group = c.benchmark_group("index_10k");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(5));
    for (name, policy) in [
        ("uncompressed", CompressionPolicy::Never),
        ("lz4", CompressionPolicy::Always),
    ] {
        let mut wire = Vec::new();
        encode_message(&msg, policy, &mut wire).unwrap_or_default();
        group.throughput(Throughput::Bytes(wire.len() as u64));

        // Plain timing loops for the closing-note figures, then criterion's own measurement.
        let iters = 10;
        let t = Instant::now();
        for _ in 0..iters {
            let mut out = Vec::with_capacity(wire.len());
            encode_message(&msg, policy, &mut out).unwrap_or_default();
            std::hint::black_box(out);
        }
        report(
            &format!("encode {name}"),
            wire.len(),
            iters,
            t.elapsed().as_secs_f64(),
        );
        let t = Instant::now();
        for _ in 0..iters {
            let mut d = Decoder::new();
            d.feed(&wire);
            std::hint::black_box(d.next_message().ok());
        }
        report(
            &format!("decode {name}"),
            wire.len(),
            iters,
            t.elapsed().as_secs_f64(),
        );

        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(wire.len());
                encode_message(&msg, policy, &mut out).unwrap_or_default();
                out
            })
        });
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| {
                let mut d = Decoder::new();
                d.feed(&wire);
                d.next_message().ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
