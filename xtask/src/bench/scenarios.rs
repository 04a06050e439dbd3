//! The five scenarios of issue 12, run for one pairing at a time. Every figure comes from a
//! real run: wall clock, `/proc` of each daemon, the daemons' REST counters, and the files on
//! the receiving side (checked against what was generated before a sync counts as done).

use crate::bench::json::Members;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::daemon::{Kind, Node};
use super::procfs;
use super::report::{Metric, Outcome, Pairing, Unit};
use super::rng::Rng;
use super::workspace::{self, Manifest, Spec};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The workspace of scenarios 1-4.
    pub spec: Spec,
    /// Scenario 5's file count.
    pub small_files: u64,
    /// Size of scenario 4's big file.
    pub delta_bytes: u64,
    /// Files in scenario 4's moved directory.
    pub delta_dir_files: u64,
    /// Latency samples for syncd sending.
    pub latency_syncd: usize,
    /// Latency samples for Syncthing at its default watcher delay (10 s).
    pub latency_st_default: usize,
    /// Latency samples for Syncthing at its minimum watcher delay (1 s).
    pub latency_st_min: usize,
    /// Seconds to let daemons settle before reading idle RSS.
    pub idle_settle_s: u64,
    /// Scenarios to run (1..=5).
    pub scenarios: Vec<u8>,
    /// Where pairs keep their data.
    pub data_dir: PathBuf,
    /// The Syncthing binary.
    pub syncthing: PathBuf,
    /// File versioning of syncd's folders (`--versioning`; `None`: off).
    pub versioning: Option<String>,
    /// The syncd binary, or why there is none.
    pub syncd: Result<PathBuf, String>,
}

/// One pairing's results, one outcome per scenario that was asked for.
#[derive(Debug, Default)]
pub struct PairingResults {
    /// Outcomes by scenario number.
    pub outcomes: Vec<(u8, Outcome)>,
    /// Latency samples per series (label, seconds).
    pub latency: Vec<(String, Vec<f64>)>,
    /// Initial-sync throughput (MB/s), when measured.
    pub throughput: Option<f64>,
    /// Remarks (page cache, ...).
    pub notes: Vec<String>,
}

/// Two daemons and their data (under the run's data directory). Dropping a pair stops its daemons but leaves the
/// data: the whole data directory is removed when the run ends (`bench::run`), so no mass
/// deletion happens between timed phases. On ext4 without a journal (this machine's `/`), the
/// inode allocator skips inodes freed in the last 60 s (360 s if not yet written back), which
/// made the initial sync that followed a deletion measurably slower (10-18 % of the receiver's
/// CPU in perf).
struct Pair {
    a: Node,
    b: Node,
    expect_files: u64,
    expect_bytes: u64,
}

const FULL: &str = "sending side";
const EMPTY: &str = "receiving side";

fn slug(p: Pairing) -> &'static str {
    match p {
        Pairing::SyncthingPair => "st-st",
        Pairing::SyncdPair => "syncd-syncd",
        Pairing::SyncdToSyncthing => "syncd-st",
        Pairing::SyncthingToSyncd => "st-syncd",
    }
}

impl Pair {
    fn create(s: &Settings, pairing: Pairing, name: &str, seed: u64) -> Result<Pair, String> {
        let syncd = || {
            s.syncd
                .clone()
                .map_err(|e| format!("syncd daemon not available: {e}"))
        };
        let (ka, kb) = match pairing {
            Pairing::SyncthingPair => (
                (Kind::Syncthing, s.syncthing.clone()),
                (Kind::Syncthing, s.syncthing.clone()),
            ),
            Pairing::SyncdPair => ((Kind::Syncd, syncd()?), (Kind::Syncd, syncd()?)),
            Pairing::SyncdToSyncthing => (
                (Kind::Syncd, syncd()?),
                (Kind::Syncthing, s.syncthing.clone()),
            ),
            Pairing::SyncthingToSyncd => (
                (Kind::Syncthing, s.syncthing.clone()),
                (Kind::Syncd, syncd()?),
            ),
        };
        let dir = s.data_dir.join(format!("{name}-{}", slug(pairing)));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut a = Node::create(
            ka.0,
            &ka.1,
            &dir.join("a/home"),
            &dir.join("a/folder"),
            seed,
        )?;
        let mut b = Node::create(
            kb.0,
            &kb.1,
            &dir.join("b/home"),
            &dir.join("b/folder"),
            seed ^ 1,
        )?;
        a.versioning = s.versioning.clone();
        b.versioning = s.versioning.clone();
        // Only B dials: two Syncthings dialling each other at once can stall for 20 s.
        a.introduce(&b.id.clone(), b.listen_port, false, 10)?;
        b.introduce(&a.id.clone(), a.listen_port, true, 10)?;
        Ok(Pair {
            a,
            b,
            expect_files: 0,
            expect_bytes: 0,
        })
    }

    fn start(&mut self) -> Result<Instant, String> {
        let t0 = Instant::now();
        self.a.start()?;
        self.b.start()?;
        Ok(t0)
    }

    fn stop(&mut self) {
        self.b.stop();
        self.a.stop();
    }

    fn alive(&mut self) -> Result<(), String> {
        self.a.check_alive()?;
        self.b.check_alive()
    }

    fn wait_connected(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not connected");
        while Instant::now() < deadline {
            self.alive()?;
            match self.b.connected_to(&self.a.id) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!(
            "peers not connected after {timeout:?} ({last}); receiver log:\n{}",
            self.b.log_tail(6)
        ))
    }

    /// Waits until B's REST status says it holds the expected files with nothing needed and
    /// B's disk agrees; returns the instant the REST status first said so.
    fn wait_synced(&mut self, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            self.alive()?;
            match self.b.db_status() {
                Ok(st) => {
                    let n = |k: &str| st.num(k).unwrap_or(-1.0);
                    let done = n("globalFiles") == self.expect_files as f64
                        && n("localFiles") == self.expect_files as f64
                        && n("localBytes") == n("globalBytes")
                        && n("needTotalItems") == 0.0
                        && st.str("state") == Some("idle");
                    last = format!(
                        "state {:?}, globalFiles {}, localFiles {}, needTotalItems {}",
                        st.str("state").unwrap_or("?"),
                        n("globalFiles"),
                        n("localFiles"),
                        n("needTotalItems")
                    );
                    if done {
                        let at = Instant::now();
                        let disk =
                            workspace::count_synced(&self.b.folder).map_err(|e| e.to_string())?;
                        if disk == (self.expect_files, self.expect_bytes) {
                            return Ok(at);
                        }
                        last = format!(
                            "REST says in sync but the receiver's disk holds {disk:?} (files, bytes), expected ({}, {})",
                            self.expect_files, self.expect_bytes
                        );
                    }
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "not in sync after {timeout:?}: {last}; receiver log:\n{}",
            self.b.log_tail(8)
        ))
    }

    fn wire_total(&self) -> Result<f64, String> {
        Ok(self.a.wire_bytes()?.0 + self.b.wire_bytes()?.0)
    }

    /// CPU seconds both daemons have used so far.
    fn cpu_total(&self) -> Result<f64, String> {
        Ok(self.a.sample()?.cpu_s + self.b.sample()?.cpu_s)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sync_timeout(files: u64, bytes: u64) -> Duration {
    Duration::from_secs(180 + bytes / 2_000_000 + files / 50)
}

fn drop_caches(notes: &mut Vec<String>) {
    let n = match procfs::drop_page_cache() {
        Ok(()) => "Page cache dropped (`sync; echo 1 > /proc/sys/vm/drop_caches`) before scenarios 1, 2 and 5".to_string(),
        Err(e) => format!("Page cache NOT dropped ({e}): scenarios 1, 2 and 5 ran with a warm cache"),
    };
    if !notes.contains(&n) {
        notes.push(n);
    }
}

/// Starts both daemons (clock running) on a full A and empty B and measures until B is in sync.
fn initial_sync(
    pair: &mut Pair,
    s: &Settings,
    m: &Manifest,
    notes: &mut Vec<String>,
) -> Result<Vec<Metric>, String> {
    pair.expect_files = m.files;
    pair.expect_bytes = m.bytes;
    drop_caches(notes);
    let t0 = pair.start()?;
    pair.wait_connected(Duration::from_secs(120))?;
    let done = pair.wait_synced(sync_timeout(m.files, m.bytes))?;
    let wall = done.duration_since(t0).as_secs_f64();
    let (sa, sb) = (pair.a.sample()?, pair.b.sample()?);
    let wire = pair.wire_total()?;
    std::thread::sleep(Duration::from_secs(s.idle_settle_s));
    let (ia, ib) = (pair.a.sample()?, pair.b.sample()?);
    Ok(vec![
        Metric::new("wall time", Unit::Seconds, wall),
        Metric::new(
            "throughput",
            Unit::MegabytesPerSecond,
            m.bytes as f64 / 1e6 / wall.max(1e-9),
        ),
        Metric::new(format!("CPU, {FULL}"), Unit::Seconds, sa.cpu_s),
        Metric::new(format!("CPU, {EMPTY}"), Unit::Seconds, sb.cpu_s),
        Metric::new(format!("peak RSS, {FULL}"), Unit::Bytes, sa.peak_rss as f64),
        Metric::new(
            format!("peak RSS, {EMPTY}"),
            Unit::Bytes,
            sb.peak_rss as f64,
        ),
        Metric::new(
            format!("idle RSS {} s later, {FULL}", s.idle_settle_s),
            Unit::Bytes,
            ia.rss as f64,
        ),
        Metric::new(
            format!("idle RSS {} s later, {EMPTY}", s.idle_settle_s),
            Unit::Bytes,
            ib.rss as f64,
        ),
        Metric::new("bytes on the wire (both directions)", Unit::Bytes, wire),
    ])
}

/// Restarts both daemons on their synced, unchanged trees (page cache dropped) and times each
/// until its start-up scan and one requested scan are done.
fn cold_start(pair: &mut Pair, notes: &mut Vec<String>) -> Result<Vec<Metric>, String> {
    pair.stop();
    drop_caches(notes);
    let t0 = pair.start()?;
    let mut out = Vec::new();
    for (side, label) in [(0, FULL), (1, EMPTY)] {
        let node = if side == 0 { &mut pair.a } else { &mut pair.b };
        node.wait_rest(Duration::from_secs(120))?;
        node.scan(Duration::from_secs(600))?;
        let deadline = Instant::now() + Duration::from_secs(600);
        while node.db_status()?.str("state") != Some("idle") {
            node.check_alive()?;
            if Instant::now() > deadline {
                return Err("folder never became idle after the scan".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = t0.elapsed().as_secs_f64();
        let sample = node.sample()?;
        out.push(Metric::new(
            format!("start + rescan, {label}"),
            Unit::Seconds,
            t,
        ));
        out.push(Metric::new(
            format!("peak RSS, {label}"),
            Unit::Bytes,
            sample.peak_rss as f64,
        ));
        out.push(Metric::new(
            format!("CPU, {label}"),
            Unit::Seconds,
            sample.cpu_s,
        ));
    }
    pair.wait_connected(Duration::from_secs(120))?;
    Ok(out)
}

/// Writes small files on A and polls B until each has the same content.
fn latency(
    pair: &mut Pair,
    samples: usize,
    label: &str,
    seed: u64,
) -> Result<(Vec<Metric>, Vec<f64>), String> {
    let dir_a = pair.a.folder.join("latency");
    let dir_b = pair.b.folder.join("latency");
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let tag = label.replace(' ', "_");
    for i in 0..samples {
        let name = format!("{tag}-{i:03}.txt");
        let content = format!("latency sample {i} {:016x}\n", rng.next_u64());
        fs::create_dir_all(&dir_a).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        fs::write(dir_a.join(&name), &content).map_err(|e| e.to_string())?;
        let deadline = t0 + Duration::from_secs(90);
        loop {
            if fs::read(dir_b.join(&name)).is_ok_and(|got| got == content.as_bytes()) {
                out.push(t0.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() > deadline {
                pair.alive()?;
                return Err(format!("sample {i} ({name}) did not arrive within 90 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        pair.expect_files += 1;
        pair.expect_bytes += content.len() as u64;
        std::thread::sleep(Duration::from_millis(100));
    }
    let p50 = super::report::percentile(&out, 0.5).unwrap_or(f64::NAN);
    let p99 = super::report::percentile(&out, 0.99).unwrap_or(f64::NAN);
    let metrics = vec![
        Metric::new(format!("p50, {label}"), Unit::Seconds, p50),
        Metric::new(format!("p99, {label}"), Unit::Seconds, p99),
        Metric::new(format!("samples, {label}"), Unit::Count, out.len() as f64),
    ];
    Ok((metrics, out))
}

fn files_equal(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {
            matches!((fs::read(a), fs::read(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// What one change of scenario 4 cost.
struct ChangeCost {
    /// Wall clock from the change until the receiving side has it.
    secs: f64,
    /// Bytes sent by both daemons.
    wire: f64,
    /// CPU seconds used by both daemons meanwhile.
    cpu: f64,
}

/// Applies `op` on A and polls `done` on B.
fn change(
    pair: &mut Pair,
    op: impl FnOnce(&Path) -> std::io::Result<()>,
    done: impl Fn(&Path, &Path) -> bool,
) -> Result<ChangeCost, String> {
    let before = pair.wire_total()?;
    let cpu_before = pair.cpu_total()?;
    let t0 = Instant::now();
    op(&pair.a.folder).map_err(|e| format!("changing the sending side: {e}"))?;
    let deadline = t0 + Duration::from_secs(600);
    loop {
        if done(&pair.a.folder, &pair.b.folder) {
            break;
        }
        if Instant::now() > deadline {
            return Err("change not applied on the receiving side within 600 s".into());
        }
        pair.alive()?;
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = t0.elapsed().as_secs_f64();
    // Index updates trail the data by a moment; count them too.
    std::thread::sleep(Duration::from_secs(1));
    Ok(ChangeCost {
        secs,
        wire: pair.wire_total()? - before,
        cpu: pair.cpu_total()? - cpu_before,
    })
}

fn delta(pair: &mut Pair, s: &Settings) -> Result<Vec<Metric>, String> {
    let big_mb = s.delta_bytes as f64 / 1e6;
    let mut rng = Rng::new(s.spec.seed ^ 0xDE17A);
    // Set-up (off the clock): the big file and the directory to move, synced to B.
    let a = pair.a.folder.clone();
    let mut buf = vec![0u8; 1 << 20];
    {
        fs::create_dir_all(a.join("delta/dir")).map_err(|e| e.to_string())?;
        let mut f = fs::File::create(a.join("delta/big.bin")).map_err(|e| e.to_string())?;
        let mut left = s.delta_bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            rng.fill(chunk);
            f.write_all(chunk).map_err(|e| e.to_string())?;
            left -= n as u64;
        }
        let small = workspace::generate_small_files(
            &a.join("delta/dir"),
            s.delta_dir_files,
            s.spec.seed ^ 3,
        )
        .map_err(|e| e.to_string())?;
        pair.expect_files += 1 + small.files;
        pair.expect_bytes += s.delta_bytes + small.bytes;
    }
    pair.wait_synced(sync_timeout(s.delta_dir_files, s.delta_bytes))?;
    let mut out = Vec::new();
    let mut record = |name: &str, r: ChangeCost| {
        out.push(Metric::new(format!("{name}: time"), Unit::Seconds, r.secs));
        out.push(Metric::new(
            format!("{name}: CPU, both daemons"),
            Unit::Seconds,
            r.cpu,
        ));
        out.push(Metric::new(
            format!("{name}: bytes on the wire"),
            Unit::Bytes,
            r.wire,
        ));
    };
    let r = change(
        pair,
        |a| {
            let old = fs::read(a.join("delta/big.bin"))?;
            let mut new = Vec::with_capacity(old.len() + 1);
            new.push(b'!');
            new.extend_from_slice(&old);
            fs::write(a.join("delta/big.bin"), new)
        },
        |a, b| files_equal(&a.join("delta/big.bin"), &b.join("delta/big.bin")),
    )?;
    record(&format!("insert 1 byte at the start of {big_mb:.0} MB"), r);
    let mut mb = vec![0u8; 1_000_000];
    rng.fill(&mut mb);
    let r = change(
        pair,
        |a| {
            fs::OpenOptions::new()
                .append(true)
                .open(a.join("delta/big.bin"))?
                .write_all(&mb)
        },
        |a, b| files_equal(&a.join("delta/big.bin"), &b.join("delta/big.bin")),
    )?;
    record(&format!("append 1 MB to {big_mb:.0} MB"), r);
    let size = s.delta_bytes + 1 + 1_000_000;
    let r = change(
        pair,
        |a| fs::rename(a.join("delta/big.bin"), a.join("delta/renamed.bin")),
        |_, b| {
            fs::metadata(b.join("delta/renamed.bin")).is_ok_and(|m| m.len() == size)
                && !b.join("delta/big.bin").exists()
        },
    )?;
    record(&format!("rename a {:.0} MB file", size as f64 / 1e6), r);
    let n = s.delta_dir_files as usize;
    let r = change(
        pair,
        |a| {
            fs::create_dir_all(a.join("delta/moved"))?;
            fs::rename(a.join("delta/dir"), a.join("delta/moved/dir"))
        },
        |_, b| {
            let moved = b.join("delta/moved/dir");
            !b.join("delta/dir").exists() && subtree_files(&moved) == n
        },
    )?;
    record(&format!("move a directory of {n} files"), r);
    pair.expect_bytes += 1 + 1_000_000;
    Ok(out)
}

fn subtree_files(p: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() && !e.file_name().to_string_lossy().ends_with(".tmp") => {
                    n += 1
                }
                _ => {}
            }
        }
    }
    n
}

/// Appends the machine's 1-minute load average at the end of the scenario to its figures.
fn with_load(o: Outcome) -> Outcome {
    o.map(|mut m| {
        if let Some(l) = procfs::load_average() {
            m.push(Metric::new(
                "load average (1 min) at the end",
                Unit::Load,
                l,
            ));
        }
        m
    })
}

/// Runs the asked-for scenarios for one pairing. Failures are recorded per scenario; a failed
/// scenario 1 fails 2-4 (they need its synced tree).
pub fn run_pairing(s: &Settings, pairing: Pairing) -> PairingResults {
    let mut r = PairingResults::default();
    let want = |n: u8| s.scenarios.contains(&n);
    let fail_prefix = match pairing {
        Pairing::SyncthingPair => "Syncthing run failed",
        _ => "run failed",
    };
    let wrap = |e: String| {
        if e.starts_with("syncd daemon not available") || e.starts_with(fail_prefix) {
            e
        } else {
            format!("{fail_prefix}: {e}")
        }
    };
    if (1..=4).any(want) {
        eprintln!(
            "bench: {}: scenarios 1-4 on a {} MB / {} file workspace",
            pairing.label(),
            s.spec.total_bytes / 1_000_000,
            s.spec.files
        );
        let push_all = |r: &mut PairingResults, e: String| {
            for n in (1..=4).filter(|n| want(*n)) {
                if !r.outcomes.iter().any(|(k, _)| *k == n) {
                    r.outcomes.push((n, Err(e.clone())));
                }
            }
        };
        match Pair::create(s, pairing, "workspace", s.spec.seed) {
            Err(e) => push_all(&mut r, wrap(e)),
            Ok(mut pair) => {
                let res = (|| -> Result<(), String> {
                    let m = workspace::generate(&pair.a.folder, &s.spec)
                        .map_err(|e| format!("generating the workspace: {e}"))?;
                    let _ = fs::copy(
                        pair.a.folder.join(".stignore"),
                        pair.b.folder.join(".stignore"),
                    );
                    eprintln!(
                        "bench: generated {} files / {} bytes (+{} ignored files)",
                        m.files, m.bytes, m.ignored_files
                    );
                    let m1 = initial_sync(&mut pair, s, &m, &mut r.notes).map_err(wrap)?;
                    r.throughput = m1.iter().find(|x| x.name == "throughput").map(|x| x.value);
                    r.outcomes.push((1, with_load(Ok(m1))));
                    if want(2) {
                        eprintln!("bench: {}: cold start", pairing.label());
                        let o = with_load(cold_start(&mut pair, &mut r.notes).map_err(wrap));
                        let fatal = o.is_err();
                        r.outcomes.push((2, o));
                        if fatal {
                            return Err("not run: scenario 2 left the pair broken".into());
                        }
                    }
                    if want(4) {
                        eprintln!("bench: {}: delta", pairing.label());
                        let o = with_load(delta(&mut pair, s).map_err(wrap));
                        r.outcomes.push((4, o));
                    }
                    if want(3) {
                        let mut metrics = Vec::new();
                        let mut run_series = |pair: &mut Pair,
                                              n: usize,
                                              label: &str,
                                              r: &mut PairingResults|
                         -> Result<(), String> {
                            eprintln!("bench: {}: latency, {n} samples, {label}", pairing.label());
                            let (m, samples) = latency(pair, n, label, s.spec.seed ^ 0x1a7)?;
                            metrics.extend(m);
                            r.latency
                                .push((format!("{}, {label}", pairing.label()), samples));
                            Ok(())
                        };
                        let res = match pairing {
                            // The sender's watcher delay is what matters.
                            Pairing::SyncthingPair | Pairing::SyncthingToSyncd => run_series(
                                &mut pair,
                                s.latency_st_default,
                                "watcher delay 10 s (default)",
                                &mut r,
                            )
                            .and_then(|()| {
                                pair.stop();
                                pair.a.set_watch_delay(1)?;
                                pair.b.set_watch_delay(1)?;
                                pair.start()?;
                                pair.wait_connected(Duration::from_secs(120))?;
                                pair.wait_synced(sync_timeout(
                                    pair.expect_files,
                                    pair.expect_bytes,
                                ))?;
                                run_series(
                                    &mut pair,
                                    s.latency_st_min,
                                    "watcher delay 1 s (minimum)",
                                    &mut r,
                                )
                            }),
                            _ => run_series(
                                &mut pair,
                                s.latency_syncd,
                                "syncd default watcher",
                                &mut r,
                            ),
                        };
                        r.outcomes
                            .push((3, with_load(res.map(|()| metrics).map_err(wrap))));
                    }
                    Ok(())
                })();
                if let Err(e) = res {
                    push_all(&mut r, wrap(e));
                }
            }
        }
    }
    if want(5) {
        eprintln!("bench: {}: {} small files", pairing.label(), s.small_files);
        let o = Pair::create(s, pairing, "small", s.spec.seed ^ 5).and_then(|mut pair| {
            let m = workspace::generate_small_files(&pair.a.folder, s.small_files, s.spec.seed ^ 5)
                .map_err(|e| e.to_string())?;
            initial_sync(&mut pair, s, &m, &mut r.notes)
        });
        r.outcomes.push((5, with_load(o.map_err(wrap))));
    }
    r
}
