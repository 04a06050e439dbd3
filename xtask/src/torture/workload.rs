//! The workload: seeded writes, overwrites, deletes and renames in one side's folder, each
//! recorded in the oracle. Every write is staged beside the folder and renamed into place, so
//! a daemon can never read a half-written version from the workload itself (a torn file in
//! a tree is then always the daemon's doing).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::oracle::{self, Oracle, Side};
use crate::bench::rng::Rng;

/// Locks the shared oracle (a panicked holder cannot leave it half-updated: each update is
/// one call).
pub(crate) fn lock(o: &Mutex<Oracle>) -> MutexGuard<'_, Oracle> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one random operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// A new file.
    Create,
    /// New content for an existing file.
    Overwrite,
    /// A file removed.
    Delete,
    /// A file moved to a new name.
    Rename,
}

/// Content of version `seq` written on `side`: a unique header, then seeded random bytes,
/// `size` bytes in all (an empty file when `size` is 0).
pub(crate) fn content(rng: &mut Rng, side: Side, seq: u64, size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    let mut data = format!("syncd torture side={} seq={seq}\n", side.tag()).into_bytes();
    let header = data.len();
    data.resize(size.max(header), 0);
    rng.fill(data.get_mut(header..).unwrap_or_default());
    data.truncate(size);
    data
}

/// A file size: mostly 0–256 KiB, one in `big_one_in` between 1 and 4 MiB.
pub(crate) fn random_size(rng: &mut Rng, big_one_in: u64) -> usize {
    if big_one_in > 0 && rng.range(1, big_one_in) == 1 {
        rng.range(1 << 20, 4 << 20) as usize
    } else {
        rng.range(0, 256 * 1024) as usize
    }
}

/// Where one side's workload writes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Which side.
    pub side: Side,
    /// The folder root.
    pub folder: PathBuf,
    /// The staging directory (same filesystem as the folder).
    pub stage: PathBuf,
}

/// Writes `data` at `rel` atomically (stage, fsync, rename) and records it.
pub(crate) fn write(
    t: &Target,
    rel: &str,
    data: &[u8],
    seq: u64,
    oracle: &Mutex<Oracle>,
) -> Result<(), String> {
    let dest = t.folder.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let staged = t.stage.join(format!("w{seq}"));
    fs::write(&staged, data).map_err(|e| format!("{}: {e}", staged.display()))?;
    fs::rename(&staged, &dest).map_err(|e| {
        let _ = fs::remove_file(&staged);
        format!("rename into {}: {e}", dest.display())
    })?;
    lock(oracle).wrote(t.side, rel, oracle::hash_bytes(data));
    Ok(())
}

/// Regular files under `<folder>/<ns>` that the workload may touch (no conflict copies, no
/// temp files), as folder-relative paths.
pub(crate) fn own_files(folder: &Path, ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(folder.join(ns), ns.to_string())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("{rel}/{name}");
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push((e.path(), path));
            } else if ft.is_file()
                && !name.contains(".sync-conflict-")
                && !oracle::syncd_temp_name(&name)
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A workload generator for one or both sides.
#[derive(Debug)]
pub(crate) struct Workload {
    rng: Rng,
    seq: Arc<AtomicU64>,
    /// One new or rewritten file in this many is 1–4 MiB (0: never).
    pub big_one_in: u64,
    /// Subdirectories per namespace.
    pub dirs: u64,
    /// Relative weights of create, overwrite, delete, rename.
    pub weights: [u64; 4],
}

impl Workload {
    /// A generator; `seq` numbers versions across every generator of the run.
    pub(crate) fn new(seed: u64, seq: Arc<AtomicU64>) -> Workload {
        Workload {
            rng: Rng::new(seed),
            seq,
            big_one_in: 40,
            dirs: 4,
            weights: [40, 30, 15, 15],
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Creates a file of `size` bytes in namespace `ns`.
    pub(crate) fn create(
        &mut self,
        t: &Target,
        ns: &str,
        size: usize,
        oracle: &Mutex<Oracle>,
    ) -> Result<String, String> {
        let seq = self.next_seq();
        let d = self.rng.range(0, self.dirs.saturating_sub(1));
        let rel = format!("{ns}/d{d}/f{}{seq}.dat", t.side.tag());
        let data = content(&mut self.rng, t.side, seq, size);
        write(t, &rel, &data, seq, oracle)?;
        Ok(rel)
    }

    /// One random operation in namespace `ns` of side `t`.
    pub(crate) fn step(
        &mut self,
        t: &Target,
        ns: &str,
        oracle: &Mutex<Oracle>,
    ) -> Result<Op, String> {
        let files = own_files(&t.folder, ns);
        let [c, o, d, _] = self.weights;
        let total: u64 = self.weights.iter().sum();
        let roll = self.rng.range(0, total.saturating_sub(1));
        let pick = self.rng.pick(&files).cloned();
        let kind = if roll < c {
            Op::Create
        } else if roll < c + o {
            Op::Overwrite
        } else if roll < c + o + d {
            Op::Delete
        } else {
            Op::Rename
        };
        match (kind, pick) {
            (Op::Create, _) | (_, None) => {
                let size = random_size(&mut self.rng, self.big_one_in);
                self.create(t, ns, size, oracle).map(|_| Op::Create)
            }
            (Op::Overwrite, Some(rel)) => {
                let seq = self.next_seq();
                let size = random_size(&mut self.rng, self.big_one_in);
                let data = content(&mut self.rng, t.side, seq, size);
                write(t, &rel, &data, seq, oracle).map(|()| Op::Overwrite)
            }
            (Op::Delete, Some(rel)) => {
                let p = t.folder.join(&rel);
                match fs::remove_file(&p) {
                    Ok(()) => {
                        lock(oracle).deleted(t.side, &rel);
                        Ok(Op::Delete)
                    }
                    Err(e) => Err(format!("delete {}: {e}", p.display())),
                }
            }
            (Op::Rename, Some(rel)) => {
                let seq = self.next_seq();
                let d = self.rng.range(0, self.dirs.saturating_sub(1));
                let to = format!("{ns}/d{d}/r{}{seq}.dat", t.side.tag());
                let from_p = t.folder.join(&rel);
                let to_p = t.folder.join(&to);
                if let Some(parent) = to_p.parent() {
                    fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                let h =
                    oracle::hash_file(&from_p).map_err(|e| format!("{}: {e}", from_p.display()))?;
                fs::rename(&from_p, &to_p)
                    .map_err(|e| format!("rename {}: {e}", from_p.display()))?;
                lock(oracle).renamed(t.side, &rel, &to, h);
                Ok(Op::Rename)
            }
        }
    }
}

/// A background edit stream: each side edits its own namespace every few tens of ms until
/// stopped.
#[derive(Debug)]
pub(crate) struct Stream {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(u64, Vec<String>)>>,
}

impl Stream {
    /// Starts editing `targets` (each in namespace `ns_of(side)`), pausing `gap_ms` between
    /// operations.
    pub(crate) fn start(
        mut w: Workload,
        targets: Vec<(Target, String)>,
        gap_ms: (u64, u64),
        oracle: Arc<Mutex<Oracle>>,
    ) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut ops = 0u64;
            let mut errors = Vec::new();
            let mut turn = 0usize;
            while !s2.load(Ordering::SeqCst) {
                if let Some((t, ns)) = targets.get(turn % targets.len().max(1)) {
                    match w.step(t, ns, &oracle) {
                        Ok(_) => ops += 1,
                        Err(e) => errors.push(e),
                    }
                }
                turn += 1;
                let gap = w.rng.range(gap_ms.0, gap_ms.1);
                std::thread::sleep(Duration::from_millis(gap));
            }
            (ops, errors)
        });
        Stream {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the stream; returns the operations done and the errors met.
    pub(crate) fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_unique_per_version_and_sized() {
        let mut r = Rng::new(1);
        let a = content(&mut r, Side::A, 1, 1000);
        let b = content(&mut r, Side::A, 2, 1000);
        assert_eq!(a.len(), 1000);
        assert_ne!(a, b);
        assert!(content(&mut r, Side::B, 3, 0).is_empty());
        assert_eq!(content(&mut r, Side::B, 3, 5).len(), 5);
    }

    #[test]
    fn every_operation_is_recorded_and_the_tree_matches_the_oracle() {
        let dir = super::super::cluster::Scratch::new("workload-test").unwrap();
        let folder = dir.path().join("folder");
        let stage = dir.path().join("stage");
        fs::create_dir_all(&folder).unwrap();
        fs::create_dir_all(&stage).unwrap();
        let t = Target {
            side: Side::A,
            folder: folder.clone(),
            stage,
        };
        let oracle = Mutex::new(Oracle::new());
        let mut w = Workload::new(5, Arc::new(AtomicU64::new(0)));
        w.big_one_in = 0;
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..60 {
            kinds.insert(w.step(&t, "ns", &oracle).unwrap());
        }
        assert_eq!(kinds.len(), 4, "all four kinds happen: {kinds:?}");
        let tree = oracle::scan_tree(&folder).unwrap();
        let f = lock(&oracle).check(&tree);
        assert!(f.clean(), "{f:?}");
        assert!(own_files(&folder, "ns").len() == tree.files.len());
    }
}
