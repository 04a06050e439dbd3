//! Watcher races: a file replaced and then deleted in quick succession while it is read and
//! rescanned by others must end up recorded as deleted, without a manual full scan.

#![allow(clippy::unwrap_used)] // test helpers below are not #[test] functions

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Fixture;
use syncd_scan::{FolderWatcher, WatchConfig};
use syncd_types::RelPath;

/// A tiny deterministic generator (xorshift) for the delays.
struct Rng(u64);
impl Rng {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

#[test]
fn a_file_renamed_over_then_unlinked_while_read_and_rescanned_is_recorded_deleted() {
    let f = Fixture::new();
    let stage = tempfile::tempdir_in(f.root.path().parent().unwrap()).unwrap();
    f.mkdir("na/d2");
    let names: Vec<String> = (0..4).map(|i| format!("na/d2/f{i}.dat")).collect();
    for n in &names {
        f.write(n, &vec![1u8; 150_000]);
    }
    let _w = FolderWatcher::start(f.scanner.clone(), WatchConfig::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Serving Requests: opens the files read-only, over and over.
    let reader = {
        let stop = stop.clone();
        let paths: Vec<_> = names.iter().map(|n| f.path(n)).collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for p in &paths {
                    let _ = std::fs::read(p);
                }
            }
        })
    };
    // The engine's own rescans of these names (the puller finding them modified).
    let rescanner = {
        let stop = stop.clone();
        let scanner = f.scanner.clone();
        let rels: Vec<RelPath> = names.iter().map(|n| RelPath::new(n).unwrap()).collect();
        std::thread::spawn(move || {
            let mut rng = Rng(0x5eed);
            while !stop.load(Ordering::Relaxed) {
                let i = rng.range(0, rels.len() as u64) as usize;
                let _ = scanner.scan_paths(&rels[i..=i]);
                std::thread::sleep(Duration::from_millis(rng.range(5, 60)));
            }
        })
    };
    let mut rng = Rng(15);
    for round in 0..62u32 {
        let n = &names[round as usize % names.len()];
        let dest = f.path(n);
        let staged = stage.path().join(format!("s{round}"));
        let mut data = vec![0u8; 100_000 + rng.range(0, 100_000) as usize];
        data[..4].copy_from_slice(&round.to_le_bytes());
        std::fs::write(&staged, &data).unwrap();
        if dest.exists() {
            std::fs::rename(&staged, &dest).unwrap();
            std::thread::sleep(Duration::from_millis(rng.range(10, 120)));
            std::fs::remove_file(&dest).unwrap();
        } else {
            std::fs::rename(&staged, &dest).unwrap();
        }
        std::thread::sleep(Duration::from_millis(rng.range(10, 120)));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    rescanner.join().unwrap();
    let live_files = |f: &Fixture| -> Vec<String> {
        let mut v = f.live_names();
        v.retain(|n| names.contains(n));
        v
    };
    let on_disk = |f: &Fixture| -> Vec<String> {
        names
            .iter()
            .filter(|n| f.path(n).exists())
            .cloned()
            .collect()
    };
    f.eventually("the index lists exactly the files on disk", |f| {
        live_files(f) == on_disk(f)
    });
}
