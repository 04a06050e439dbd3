//! Engine benchmarks on loopback with real TLS and real temp folders (fsync on, as always):
//!
//! - **initial sync**: a tree of `SYNCD_BENCH_FILES` files / `SYNCD_BENCH_MB` MiB of
//!   incompressible data is generated once (not timed). Each run starts two fresh engines
//!   (new homes, so the source side hashes everything again) with the tree on one side and an
//!   empty folder on the other, and times engine start → both report in sync
//!   (`wait_until_synced`). The copy is then verified against the source (not timed). Prints
//!   MB/s, files/s, the time to the source's first scan, CPU seconds of the process (both
//!   engines), peak RSS (both engines, one process; reset before each run) and the load
//!   average (the machine may be shared).
//! - **change latency**: with both engines in sync and watchers on (50 ms delay), write a file
//!   on one side (no explicit scan) and time until the peer holds identical bytes; p50/p90/max
//!   over `SYNCD_BENCH_CHANGES` edits. Target: p50 ≤ 100 ms.
//!
//! The defaults are small so `cargo bench -p syncd-engine` stays within a few minutes; the
//! issue's figure is `SYNCD_BENCH_MB=1024 SYNCD_BENCH_FILES=20000 cargo bench -p syncd-engine`.
//! `SYNCD_BENCH_RUNS` repeats the initial sync (default 1).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use syncd_engine::{
    DeviceConfig, Engine, EngineConfig, EngineHandle, Event, FolderConfig, FolderId,
    device_id_for_home,
};

/// A failure bound for one initial sync, not a timing claim.
const SYNC_PATIENCE: Duration = Duration::from_secs(3600);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the process's peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// User + system CPU seconds of this process so far (all threads, finished ones included).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of proc(5) (utime, stime) are at 11 and 12 after the command name;
    // clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Deterministic incompressible bytes.
struct Rng(u64);

impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// Writes `files` files totalling `total` bytes (sizes spread between 0.5 and 1.5 times the
/// mean) in a two-level directory tree; returns the exact byte count.
fn generate(root: &Path, files: usize, total: usize) -> u64 {
    let mean = (total / files.max(1)).max(1);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut written = 0u64;
    let mut buf = Vec::new();
    for i in 0..files {
        let size = mean / 2 + (i * 7919) % (mean + 1);
        buf.resize(size, 0);
        rng.fill(&mut buf);
        let p = root.join(format!("d{:02}/e{:02}/f{i}.bin", i % 50, (i / 50) % 20));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &buf).unwrap();
        written += size as u64;
    }
    written
}

/// Two fresh engines: `src` (holding `src_root`) dials `dst` (empty `dst_root`).
async fn start_pair(
    work: &Path,
    folder: &FolderId,
    src_root: &Path,
    dst_root: &Path,
) -> (EngineHandle, EngineHandle) {
    let (hs, hd) = (work.join("src-home"), work.join("dst-home"));
    let (ids, idd) = (
        device_id_for_home(&hs).unwrap(),
        device_id_for_home(&hd).unwrap(),
    );
    let folder_cfg = |root: &Path, peer| {
        let mut f = FolderConfig::new(folder.clone(), root);
        f.devices = vec![peer];
        f
    };
    let dst = Engine::start(EngineConfig {
        home: hd,
        device_name: "dst".into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![DeviceConfig::new(ids)],
        folders: vec![folder_cfg(dst_root, ids)],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    let mut dst_dev = DeviceConfig::new(idd);
    dst_dev.addresses = vec![format!("tcp://{}", dst.listen_addrs()[0])];
    let src = Engine::start(EngineConfig {
        home: hs,
        device_name: "src".into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![dst_dev],
        folders: vec![folder_cfg(src_root, idd)],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    (src, dst)
}

struct Run {
    wall: Duration,
    first_scan: Option<Duration>,
    cpu: f64,
    peak_rss_mib: u64,
}

fn one_initial_sync(rt: &tokio::runtime::Runtime, src: &common::Dir, work: &Path) -> Run {
    let folder = FolderId::new("bench").unwrap();
    let _ = std::fs::remove_dir_all(work);
    let dst = common::Dir::new(work.join("dst"));
    reset_peak_rss();
    let cpu0 = cpu_seconds();
    let (wall, first_scan) = rt.block_on(async {
        let start = Instant::now();
        let (a, b) = start_pair(work, &folder, &src.root, &dst.root).await;
        let mut events = a.subscribe();
        let scan_watch = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::ScanFinished { .. }) => return Some(start.elapsed()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return None,
                }
            }
        });
        for (name, e) in [("src", &a), ("dst", &b), ("src", &a)] {
            if let Err(err) = e.wait_until_synced(&folder, SYNC_PATIENCE).await {
                panic!("{name} not in sync: {err:?}");
            }
        }
        let wall = start.elapsed();
        let first_scan = tokio::time::timeout(Duration::from_millis(1), scan_watch)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        a.shutdown().await;
        b.shutdown().await;
        (wall, first_scan)
    });
    let cpu = cpu_seconds() - cpu0;
    let peak_rss_mib = proc_status_kib("VmHWM:") / 1024;
    // Not timed: the copy must be complete and identical, or the figure means nothing.
    common::assert_same(src, &dst);
    Run {
        wall,
        first_scan,
        cpu,
        peak_rss_mib,
    }
}

fn initial_sync(_c: &mut Criterion) {
    let files = env_or("SYNCD_BENCH_FILES", 2000);
    let mib = env_or("SYNCD_BENCH_MB", 128);
    let runs = env_or("SYNCD_BENCH_RUNS", 1).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = common::Dir::new(tmp.path().join("src"));
    let t = Instant::now();
    let bytes = generate(&src.root, files, mib * 1024 * 1024);
    eprintln!(
        "generated {files} files, {:.1} MB in {:.1} s (not timed)",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let work: PathBuf = tmp.path().join("run");
    for i in 0..runs {
        let load0 = loadavg();
        let r = one_initial_sync(&rt, &src, &work);
        let secs = r.wall.as_secs_f64();
        eprintln!(
            "initial sync run {}/{runs}: {files} files, {:.1} MB in {secs:.2} s = {:.1} MB/s, {:.0} files/s; \
             source's first scan done at {}; CPU {:.1} s (both engines; {:.2} cores busy on average); \
             peak RSS {} MiB (both engines, one process); load average {load0} -> {}",
            i + 1,
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs,
            files as f64 / secs,
            r.first_scan
                .map_or_else(|| "?".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            r.cpu,
            r.cpu / secs,
            r.peak_rss_mib,
            loadavg(),
        );
    }
}

fn change_latency(_c: &mut Criterion) {
    let changes = env_or("SYNCD_BENCH_CHANGES", 40).max(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut lat: Vec<Duration> = rt.block_on(async {
        let p = common::pair().await;
        p.synced().await;
        let mut lat = Vec::new();
        for i in 0..changes {
            let body = format!("change {i}\n");
            let start = Instant::now();
            p.da.write("edit.txt", &body);
            loop {
                if std::fs::read(p.db.path("edit.txt")).is_ok_and(|b| b == body.as_bytes()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "change {i} did not arrive within 60 s"
                );
            }
            lat.push(start.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p.a.shutdown().await;
        p.b.shutdown().await;
        lat
    });
    lat.sort();
    let n = lat.len();
    eprintln!(
        "change latency (write -> identical on the peer, watcher delay 50 ms): p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms over {n} edits; load average {}",
        lat[n / 2].as_secs_f64() * 1e3,
        lat[n * 9 / 10].as_secs_f64() * 1e3,
        lat[n - 1].as_secs_f64() * 1e3,
        loadavg(),
    );
}

criterion_group!(benches, initial_sync, change_latency);
criterion_main!(benches);
