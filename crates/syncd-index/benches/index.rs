//! `cargo bench -p syncd-index`: the figures on a synthetic tree.
//!
//! SYNCD_INDEX_BENCH_FILES files (default 1,000,000; average path ~60 bytes, 1-3 blocks):
//! ingest a full remote index in Index-message batches (1,000 records) coalesced 10 per
//! transaction; apply 10,000 local updates; iterate the need set; look up 100,000 block
//! hashes; compact. Prints ingest records/s, need records/s, lookups/s, peak RSS and
//! bytes/file after compact(). SYNCD_INDEX_BENCH_CACHE_MB overrides the cache size (default
//! 16 MiB, the one the targets are for). SYNCD_INDEX_BENCH_ORDER=name ingests in name order
//! (how a peer that has just scanned its tree numbers its records) instead of the default
//! file-number order, which scatters each batch over the whole key space. One pass (not criterion sampling): the whole run is the
//! measurement, and 1M files take a couple of minutes on a 2-core box.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a panic is a failure

use std::time::Instant;

use syncd_conflict::{Counter, VersionVector};
use syncd_index::{Block, DEFAULT_CACHE_SIZE, FileRecord, Index, IndexOptions, RemoteBatch};
use syncd_types::{DeviceId, FileKind, FolderId, RelPath};

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash(file: u64, block: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, c) in h.chunks_mut(8).enumerate() {
        c.copy_from_slice(&mix(file * 4 + block + ((i as u64) << 56)).to_le_bytes());
    }
    h
}

fn name(i: u64) -> RelPath {
    // ~60 bytes: three directory levels and a file name.
    RelPath::new(format!(
        "src/module-{:03}/component-{:04}/file-{i:08}-{:06x}.rs",
        i % 997,
        (i / 997) % 1009,
        mix(i) & 0xff_ffff
    ))
    .unwrap()
}

fn record(i: u64, by: DeviceId, seq: u64) -> FileRecord {
    let mut f = FileRecord::new(name(i), FileKind::File);
    let nblocks = 1 + mix(i) % 3;
    f.size = (nblocks - 1) * 131_072 + 1000 + mix(i) % 100_000;
    f.modified_s = 1_700_000_000 + (mix(i) % 1_000_000) as i64;
    f.permissions = 0o644;
    f.sequence = seq;
    f.version = VersionVector::from_counters([Counter {
        id: by.short(),
        value: 1_700_000_000 + i,
    }]);
    f.modified_by = by.short();
    f.blocks = (0..nblocks)
        .map(|b| Block {
            offset: b * 131_072,
            size: if b + 1 == nblocks {
                (f.size - b * 131_072) as u32
            } else {
                131_072
            },
            hash: hash(i, b),
        })
        .collect();
    f.blocks_hash = hash(i, 99).to_vec();
    f
}

/// The file number of the `k`-th name in name order. `name(i)` sorts by module `i % 997`,
/// then component `i / 997` (below 1009 while `n` ≤ 997 × 1009), then `i`; so the names in
/// order are, module by module, `i = component × 997 + module`. Larger `n` falls back to file
/// number order.
fn name_order(k: u64, n: u64) -> u64 {
    if n > 997 * 1009 {
        return k;
    }
    // With n = 997q + r, modules below r hold q + 1 names and the others q.
    let (q, r) = (n / 997, n % 997);
    let (m, c) = if k < r * (q + 1) {
        (k / (q + 1), k % (q + 1))
    } else {
        let k = k - r * (q + 1);
        (r + k / q.max(1), k % q.max(1))
    };
    c * 997 + m
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (clock ticks of
/// 1/100 s): on a shared, loaded box the wall clock includes time spent waiting for a core, so
/// both figures are printed.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Seconds the main thread has spent runnable but waiting for a core (second field of
/// /proc/self/schedstat): the share of the wall clock that the machine's load, not the index,
/// accounts for. The rest of wall − CPU − this is time blocked (fsync, disk).
fn runqueue_wait_s() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Read and write system calls this process has made (`syscr`, `syscw` of /proc/self/io): redb
/// reads a page it does not have cached with one `pread`, so the read count is the page-cache
/// misses.
fn syscalls() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("syscr:"), field("syscw:"))
}

/// Wall-clock and CPU time since a start point.
struct Clock {
    wall: Instant,
    cpu: f64,
    wait: f64,
    calls: (u64, u64),
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_s(),
            wait: runqueue_wait_s(),
            calls: syscalls(),
        }
    }

    /// "`n` in W s = R/s wall (C s CPU = R/s per CPU second; Q s waiting for a core)".
    fn report(&self, n: u64) -> String {
        let w = self.wall.elapsed().as_secs_f64();
        let c = (cpu_s() - self.cpu).max(1e-9);
        let q = runqueue_wait_s() - self.wait;
        let (r, wr) = syscalls();
        format!(
            "{n} in {w:.2} s = {:.0}/s wall ({c:.2} s CPU = {:.0}/s per CPU second; \
             {q:.2} s waiting for a core; {} reads, {} writes)",
            n as f64 / w,
            n as f64 / c,
            r - self.calls.0,
            wr - self.calls.1
        )
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("SYNCD_INDEX_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir =
        tempfile::tempdir_in(std::env::var("SYNCD_INDEX_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let path = dir.path().join("bench.redb");
    let me = DeviceId::from_bytes([1; 32]);
    let peer = DeviceId::from_bytes([2; 32]);
    let folder = FolderId::new("bench").unwrap();
    // SYNCD_INDEX_BENCH_CACHE_MB: another cache size, to see what it buys (the targets are
    // for the default).
    let cache_size = std::env::var("SYNCD_INDEX_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(DEFAULT_CACHE_SIZE, |mb| mb << 20);
    let mut index = Index::open_with(&path, me, IndexOptions { cache_size }).unwrap();
    eprintln!(
        "syncd-index bench: {n} files, cache {} MiB{}",
        cache_size >> 20,
        if cache_size == DEFAULT_CACHE_SIZE {
            " (the default)"
        } else {
            ""
        }
    );

    // 1. Full remote index: messages of 1,000 records, 10 messages per transaction. By default
    //    in file-number order, which scatters consecutive records over 997 directories (as a
    //    long-lived peer's sequence order does); SYNCD_INDEX_BENCH_ORDER=name sends them in name
    //    order instead, as a peer that has just scanned its tree does.
    let by_name = std::env::var("SYNCD_INDEX_BENCH_ORDER").is_ok_and(|v| v == "name");
    let file_at = |k: u64| if by_name { name_order(k, n) } else { k };
    eprintln!(
        "ingest order: {}",
        if by_name {
            "name (SYNCD_INDEX_BENCH_ORDER=name)"
        } else {
            "file number (scattered over directories)"
        }
    );
    let t = Clock::start();
    let mut i = 0;
    while i < n {
        let mut w = index.write(&folder).unwrap();
        for m in 0..10 {
            if i >= n {
                break;
            }
            let end = (i + 1000).min(n);
            let batch = if i == 0 && m == 0 {
                RemoteBatch::Full
            } else {
                RemoteBatch::Update
            };
            w.apply_remote(
                peer,
                batch,
                (i..end).map(|k| record(file_at(k), peer, k + 1)),
            )
            .unwrap();
            i = end;
        }
        w.commit().unwrap();
    }
    eprintln!("ingest: {} (target >= 100,000)", t.report(n));

    // 2. 10,000 local updates: the local device now has the first 10k files (same content).
    let local = 10_000.min(n);
    let t = Clock::start();
    let mut k = 0;
    while k < local {
        let end = (k + 1000).min(local);
        let mut w = index.write(&folder).unwrap();
        w.apply_local((k..end).map(|x| record(x, peer, 0))).unwrap();
        w.commit().unwrap();
        k = end;
    }
    eprintln!("local updates: {}", t.report(local));

    // 3. Need iteration (streamed).
    let r = index.read(&folder).unwrap();
    let counts = r.counts().unwrap();
    let t = Clock::start();
    let mut needed = 0u64;
    let mut bytes = 0u64;
    for item in r.need().unwrap() {
        let item = item.unwrap();
        needed += 1;
        bytes += item.global.size;
    }
    let report = t.report(needed);
    assert_eq!(needed, counts.need.entries());
    assert_eq!(bytes, counts.need.bytes);
    eprintln!("need iteration: {report} (target >= 1,000,000)");

    // 4. 100,000 block lookups: hashes of local files' blocks (hits) and of remote-only files
    //    (misses, the index maps local data only).
    let t = Clock::start();
    let mut hits = 0u64;
    for q in 0..100_000u64 {
        let file = mix(q) % (2 * local.max(1));
        if !r.find_block(&hash(file, 0), 1).unwrap().is_empty() {
            hits += 1;
        }
    }
    eprintln!("block lookups: {} ({hits} hits)", t.report(100_000));
    drop(r);

    // 5. Size after compact().
    while index.compact().unwrap() {}
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "file size after compact(): {size} bytes = {:.0} bytes/file (target <= 600)",
        size as f64 / n as f64
    );
    eprintln!("peak RSS: {} MB (target <= 100)", peak_rss_kb() / 1024);
}
