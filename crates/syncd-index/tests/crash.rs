//! Crash test: a child process (this test binary re-executed) applies batches and is killed
//! with SIGKILL at random moments; every reopen must succeed and hold exactly some prefix of
//! the batches, with the need set and counts consistent.
//!
//! Batch `i` writes 40 local records and 40 records of one peer, on names chosen from a pool
//! of 300 by `i`, each record's size encoding `(i, j)`. Since every batch assigns exactly 40
//! local sequences, the local sequence after reopening tells how many batches committed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use syncd_conflict::{Counter, VersionVector};
use syncd_index::{Block, FileRecord, Index, RemoteBatch};
use syncd_types::{DeviceId, FileKind, FolderId, RelPath};

const PER_BATCH: u64 = 40;
const POOL: u64 = 300;
const CHILD_ENV: &str = "SYNCD_INDEX_CRASH_DB";

fn me() -> DeviceId {
    DeviceId::from_bytes([1; 32])
}
fn peer() -> DeviceId {
    DeviceId::from_bytes([2; 32])
}
fn folder() -> FolderId {
    FolderId::new("crash").unwrap()
}

fn name(n: u64) -> RelPath {
    RelPath::new(format!("d{}/sub{}/file-{n}.bin", n % 7, n % 3)).unwrap()
}

/// `(name number, size)` of the j-th local and remote record of batch i.
fn local_rec(i: u64, j: u64) -> (u64, u64) {
    ((i * 17 + j * 7) % POOL, i * 1000 + j + 1)
}
fn remote_rec(i: u64, j: u64) -> (u64, u64) {
    ((i * 29 + j * 11 + 5) % POOL, i * 1000 + j + 1)
}

fn record(n: u64, size: u64, by: DeviceId, counter: u64, seq: u64) -> FileRecord {
    let mut f = FileRecord::new(name(n), FileKind::File);
    f.size = size;
    f.sequence = seq;
    f.version = VersionVector::from_counters([Counter {
        id: by.short(),
        value: counter,
    }]);
    f.modified_by = by.short();
    f.blocks = vec![Block {
        offset: 0,
        size: size as u32,
        hash: [(size % 251) as u8; 32],
    }];
    f
}

fn apply_batch(index: &Index, i: u64) {
    let mut w = index.write(&folder()).unwrap();
    w.apply_local((0..PER_BATCH).map(|j| {
        let (n, size) = local_rec(i, j);
        record(n, size, me(), i + 1, 0)
    }))
    .unwrap();
    let batch = if i == 0 {
        RemoteBatch::Full
    } else {
        RemoteBatch::Update
    };
    w.apply_remote(
        peer(),
        batch,
        (0..PER_BATCH).map(|j| {
            let (n, size) = remote_rec(i, j);
            record(n, size, peer(), i + 1, i * PER_BATCH + j + 1)
        }),
    )
    .unwrap();
    w.commit().unwrap();
}

/// Reopens and checks the index holds exactly batches `0..k` for some k; returns k.
fn verify(path: &std::path::Path) -> u64 {
    let index = Index::open(path, me()).expect("reopen after SIGKILL");
    let r = index.read(&folder()).unwrap();
    let seq = r.local_sequence();
    assert_eq!(
        seq % PER_BATCH,
        0,
        "a partial batch is visible (local sequence {seq})"
    );
    let k = seq / PER_BATCH;
    let mut want_local = vec![None; POOL as usize];
    let mut want_remote = vec![None; POOL as usize];
    for i in 0..k {
        for j in 0..PER_BATCH {
            let (n, s) = local_rec(i, j);
            want_local[n as usize] = Some(s);
            let (n, s) = remote_rec(i, j);
            want_remote[n as usize] = Some(s);
        }
    }
    for n in 0..POOL {
        let l = r.get(me(), &name(n)).unwrap().map(|f| f.size);
        let p = r.get(peer(), &name(n)).unwrap().map(|f| f.size);
        assert_eq!(
            l, want_local[n as usize],
            "local record of {n} after {k} batches"
        );
        assert_eq!(
            p, want_remote[n as usize],
            "peer record of {n} after {k} batches"
        );
    }
    let streamed = r.need().unwrap().filter(|x| x.is_ok()).count() as u64;
    let counts = r.counts().unwrap();
    assert_eq!(
        streamed,
        counts.need.entries(),
        "need set and need counts agree"
    );
    let locals = r.local_since(0).unwrap().count() as u64;
    assert_eq!(locals, want_local.iter().flatten().count() as u64);
    k
}

/// The child: continues from whatever is committed, forever, reporting each commit.
#[test]
#[ignore = "child process of the crash tests"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let index = Index::open(&path, me()).unwrap();
    let mut i = index.read(&folder()).unwrap().local_sequence() / PER_BATCH;
    loop {
        apply_batch(&index, i);
        println!("committed {}", i + 1);
        i += 1;
    }
}

fn run_iterations(iterations: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = (Instant::now().elapsed().as_nanos() as u64)
        ^ 0x9e37_79b9_7f4a_7c15
        ^ u64::from(std::process::id());
    let mut total = 0;
    for it in 0..iterations {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(20 + rng % 300);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.strip_prefix("committed ")
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .max()
                .unwrap_or(0)
        });
        std::thread::sleep(delay);
        // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no chance to finish.
        child.kill().unwrap();
        child.wait().unwrap();
        let reported = reader.join().unwrap();
        let k = verify(&path);
        assert!(
            k >= reported.max(total),
            "iteration {it}: lost committed batches ({k} < {reported})"
        );
        total = k;
    }
    eprintln!("{iterations} kills, {total} batches committed in all");
}

#[test]
fn sigkilled_writer_reopens_at_a_committed_prefix() {
    run_iterations(4);
}

/// Run by `cargo xtask index-crash`.
#[test]
#[ignore = "slow: 50+ kills, run by cargo xtask index-crash"]
fn sigkilled_writer_reopens_at_a_committed_prefix_many_times() {
    let n = std::env::var("SYNCD_INDEX_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    run_iterations(n);
}
