//! Engine benchmarks on loopback with real TLS and real temp folders (fsync on):
//! - `initial_sync`: two engines, a generated tree of FILES files / TOTAL bytes on one side;
//!   time until both report in sync. Prints MB/s, files/s and the process's peak RSS.
//! - change latency: write a file on one side (no explicit scan: the watcher sees it) and
//!   time until the peer holds identical bytes; prints p50/p90 over CHANGES edits.
//!
//! Sizes are modest so `cargo bench -p syncd-engine` stays within a few minutes; set
//! `SYNCD_BENCH_MB` / `SYNCD_BENCH_FILES` for the 1 GB / 20,000-file run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn fill(dir: &common::Dir, files: usize, total: usize) {
    let per = (total / files.max(1)).max(1);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..files {
        let data: Vec<u8> = (0..per)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        dir.write(&format!("d{}/e{}/f{i}.bin", i % 20, i % 7), data);
    }
}

fn initial_sync(c: &mut Criterion) {
    let files = env_or("SYNCD_BENCH_FILES", 1000);
    let total = env_or("SYNCD_BENCH_MB", 64) * 1024 * 1024;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(total as u64));
    group.bench_function(
        format!("initial_sync_{files}_files_{}_MiB", total >> 20),
        |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    spent += rt.block_on(async {
                        let start = Instant::now();
                        let p = common::pair_with(|a, _| fill(a, files, total)).await;
                        // Scanning on the source side is part of an initial sync.
                        p.synced().await;
                        let t = start.elapsed();
                        p.a.shutdown().await;
                        p.b.shutdown().await;
                        t
                    });
                }
                spent
            });
        },
    );
    group.finish();
    // One more timed run for the derived figures.
    let t = rt.block_on(async {
        let start = Instant::now();
        let p = common::pair_with(|a, _| fill(a, files, total)).await;
        p.synced().await;
        let t = start.elapsed();
        p.a.shutdown().await;
        p.b.shutdown().await;
        t
    });
    let secs = t.as_secs_f64();
    eprintln!(
        "initial sync: {files} files, {} MiB in {secs:.2} s = {:.1} MB/s, {:.0} files/s; peak RSS {} MiB (both engines, one process)",
        total >> 20,
        total as f64 / 1e6 / secs,
        files as f64 / secs,
        peak_rss_kib() / 1024
    );
}

fn change_latency(_c: &mut Criterion) {
    const CHANGES: usize = 30;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut lat: Vec<Duration> = rt.block_on(async {
        let p = common::pair().await;
        p.synced().await;
        let mut lat = Vec::new();
        for i in 0..CHANGES {
            let body = format!("change {i}\n");
            let start = Instant::now();
            p.da.write("edit.txt", &body);
            loop {
                if std::fs::read(p.db.path("edit.txt")).is_ok_and(|b| b == body.as_bytes()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                if start.elapsed() > Duration::from_secs(30) {
                    panic!("change {i} did not arrive within 30 s");
                }
            }
            lat.push(start.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p.a.shutdown().await;
        p.b.shutdown().await;
        lat
    });
    lat.sort();
    eprintln!(
        "change latency (write -> identical on the peer, watcher delay 50 ms): p50 {:?}, p90 {:?}, max {:?} over {CHANGES} edits",
        lat[CHANGES / 2],
        lat[CHANGES * 9 / 10],
        lat[CHANGES - 1]
    );
}

criterion_group!(benches, initial_sync, change_latency);
criterion_main!(benches);
