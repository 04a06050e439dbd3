//! `cargo xtask soak --minutes N` (issue 33): two syncd daemons on loopback under a realistic
//! edit pattern for N minutes: editor saves (write a temp file beside the target, rename it
//! over), `git checkout`s that rewrite a hundred files at once (and write `.git` objects),
//! builds that replace an ignored `target/` tree, appends to a large log that is rotated. Every
//! `--sample-s` seconds each daemon's RSS, open file descriptors, threads, inotify watches
//! and CPU time are read from `/proc`. At the end the edits stop, both sides must converge,
//! and the report gives each measure's slope after the warm-up; growth that does not level off
//! (the second half of the post-warm-up samples above the first by more than a measure's
//! allowance) fails the run. See `docs/reliability.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cluster::{Pair, Scratch};
use super::oracle::{self, Side, Tree};
use super::progress;
use crate::bench::rng::Rng;
use crate::bench::{self, Build, procfs};

const USAGE: &str = "usage: cargo xtask soak [options]

  --minutes N       how long the edits run (default 10)
  --warmup M        minutes left out of the slopes and the growth check (default N/6, >= 1)
  --sample-s S      seconds between samples (default 60)
  --seed N          seed of every random choice (default 33)
  --syncd PATH      the syncd binary (default: $SYNCD_BIN, else <target>/debug/syncd, else
                    build it)
  --data-dir DIR    where scratch data goes (default: $TMPDIR); removed when done
  --report FILE     also write the report (markdown) there
  --keep            keep the scratch data
";

/// The `.stignore` both sides use: the runbook's build and tool trees.
const STIGNORE: &str = "node_modules\n.git\ntarget\ndist\n.venv\n";

/// Top-level names the `.stignore` ignores (left out of the tree comparison).
const IGNORED: [&str; 5] = ["node_modules", ".git", "target", "dist", ".venv"];

struct Options {
    minutes: u64,
    warmup: Option<u64>,
    sample_s: u64,
    seed: u64,
    syncd: Option<PathBuf>,
    data_dir: PathBuf,
    report: Option<PathBuf>,
    keep: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        minutes: 10,
        warmup: None,
        sample_s: 60,
        seed: 33,
        syncd: std::env::var_os("SYNCD_BIN").map(PathBuf::from),
        data_dir: std::env::temp_dir(),
        report: None,
        keep: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n\n{USAGE}"))
        };
        let num = |v: String, what: &str| v.parse::<u64>().map_err(|e| format!("{what}: {e}"));
        match a.as_str() {
            "--minutes" => o.minutes = num(val()?, "--minutes")?.max(1),
            "--warmup" => o.warmup = Some(num(val()?, "--warmup")?),
            "--sample-s" => o.sample_s = num(val()?, "--sample-s")?.max(1),
            "--seed" => o.seed = num(val()?, "--seed")?,
            "--syncd" => o.syncd = Some(PathBuf::from(val()?)),
            "--data-dir" => o.data_dir = PathBuf::from(val()?),
            "--report" => o.report = Some(PathBuf::from(val()?)),
            "--keep" => o.keep = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    Ok(o)
}

/// One reading of one daemon.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// Seconds since the edits started.
    t: f64,
    rss_mb: f64,
    fds: f64,
    threads: f64,
    watches: f64,
    cpu_s: f64,
}

/// Reads a process's open descriptors, threads and inotify watches from `/proc`.
fn read_proc(pid: u32, t: f64) -> Result<Reading, String> {
    let s = procfs::sample(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no Threads"))?;
    let fd_dir = format!("/proc/{pid}/fd");
    let fds = fs::read_dir(&fd_dir)
        .map_err(|e| format!("{fd_dir}: {e}"))?
        .count() as f64;
    // Each inotify instance lists one `inotify wd:` line per watch in its fdinfo.
    let mut watches = 0usize;
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for e in rd.flatten() {
            if let Ok(text) = fs::read_to_string(e.path()) {
                watches += text
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count();
            }
        }
    }
    Ok(Reading {
        t,
        rss_mb: s.rss as f64 / 1e6,
        fds,
        threads,
        watches: watches as f64,
        cpu_s: s.cpu_s,
    })
}

/// A measure of a reading, with the growth it may show between the two halves of the
/// post-warm-up samples before the run fails.
struct Measure {
    name: &'static str,
    unit: &'static str,
    get: fn(&Reading) -> f64,
    /// Allowed growth: absolute, and as a fraction of the first half's mean (the larger).
    allow_abs: f64,
    allow_frac: f64,
}

const MEASURES: [Measure; 4] = [
    Measure {
        name: "RSS",
        unit: "MB",
        get: |r| r.rss_mb,
        allow_abs: 16.0,
        allow_frac: 0.15,
    },
    Measure {
        name: "fds",
        unit: "",
        get: |r| r.fds,
        allow_abs: 8.0,
        allow_frac: 0.0,
    },
    Measure {
        name: "threads",
        unit: "",
        get: |r| r.threads,
        allow_abs: 4.0,
        allow_frac: 0.0,
    },
    Measure {
        name: "inotify watches",
        unit: "",
        get: |r| r.watches,
        allow_abs: 16.0,
        allow_frac: 0.05,
    },
];

/// Least-squares slope of `ys` over `xs` (per unit of x); 0 for fewer than two points.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The verdict on one measure of one daemon: slope per hour after the warm-up, the two
/// halves' means, and whether the growth stayed within the allowance.
struct Verdict {
    slope_per_h: f64,
    first: f64,
    second: f64,
    ok: bool,
}

fn judge(m: &Measure, samples: &[Reading], warmup_s: f64) -> Verdict {
    let after: Vec<&Reading> = samples.iter().filter(|r| r.t >= warmup_s).collect();
    let xs: Vec<f64> = after.iter().map(|r| r.t / 3600.0).collect();
    let ys: Vec<f64> = after.iter().map(|r| (m.get)(r)).collect();
    let half = ys.len() / 2;
    let (first, second) = (mean(&ys[..half]), mean(&ys[half..]));
    let allowance = m.allow_abs.max(first * m.allow_frac);
    Verdict {
        slope_per_h: slope(&xs, &ys),
        first,
        second,
        ok: ys.len() < 4 || second - first <= allowance,
    }
}

/// The edit pattern, run on its own thread until `stop`: side A is the laptop (editor saves,
/// checkouts), side B the agents' machine (editor saves in its own tree, builds, the log).
fn edits(folders: [PathBuf; 2], seed: u64, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) -> String {
    let mut rng = Rng::new(seed);
    let mut errors = 0u64;
    let mut last_error = String::new();
    let mut tick = 0u64;
    let mut generation = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick += 1;
        let side = if rng.range(0, 2) == 0 { 1 } else { 0 };
        let root = &folders[side];
        let tree = ["src-a", "src-b"][side];
        let r = (|| -> Result<(), String> {
            // Every tick: one editor save, rename over the old file.
            let d = rng.range(0, 19);
            let f = rng.range(0, 14);
            let dir = root.join(format!("{tree}/mod{d}"));
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let tmp = dir.join(format!(".f{f}.rs.swp"));
            let size = rng.range(200, 20_000) as usize;
            let body: Vec<u8> = (0..size).map(|_| b'a' + rng.range(0, 25) as u8).collect();
            fs::write(&tmp, &body).map_err(|e| format!("{}: {e}", tmp.display()))?;
            let dest = dir.join(format!("f{f}.rs"));
            fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            // Every 600 ticks (~2 min) on A: a checkout rewrites 120 files and writes objects.
            if tick.is_multiple_of(600) {
                generation += 1;
                let a = &folders[0];
                for i in 0..120u64 {
                    let p = a.join(format!("src-a/mod{}/f{}.rs", i % 20, i % 15));
                    if let Some(parent) = p.parent() {
                        fs::create_dir_all(parent)
                            .map_err(|e| format!("{}: {e}", parent.display()))?;
                    }
                    fs::write(&p, format!("checkout {generation} file {i}\n").repeat(40))
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    let obj = a.join(format!(".git/objects/{:02x}/{generation}-{i}", i % 256));
                    if let Some(parent) = obj.parent() {
                        fs::create_dir_all(parent)
                            .map_err(|e| format!("{}: {e}", parent.display()))?;
                    }
                    fs::write(&obj, b"blob").map_err(|e| format!("{}: {e}", obj.display()))?;
                }
                // Old objects pruned, as `git gc` would, so the ignored tree stays bounded.
                let objects = a.join(".git/objects");
                if generation.is_multiple_of(5) {
                    let _ = fs::remove_dir_all(&objects);
                }
            }
            // Every 300 ticks (~1 min) on B: a build replaces its ignored `target/` tree.
            if tick % 300 == 150 {
                let b = &folders[1];
                let target = b.join("target");
                let _ = fs::remove_dir_all(&target);
                for i in 0..300u64 {
                    let p = target.join(format!("debug/deps/unit{}/out{i}.o", i % 30));
                    if let Some(parent) = p.parent() {
                        fs::create_dir_all(parent)
                            .map_err(|e| format!("{}: {e}", parent.display()))?;
                    }
                    fs::write(&p, vec![i as u8; 4096])
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                }
            }
            // Every 50 ticks (~10 s) on B: 256 KiB appended to a log, rotated at 64 MiB.
            if tick % 50 == 25 {
                use std::io::Write;
                let b = &folders[1];
                let dir = b.join("logs");
                fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let log = dir.join("agent.log");
                if fs::metadata(&log).is_ok_and(|m| m.len() >= 64 << 20) {
                    fs::rename(&log, dir.join("agent.log.1"))
                        .map_err(|e| format!("rotate {}: {e}", log.display()))?;
                }
                let mut f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .map_err(|e| format!("{}: {e}", log.display()))?;
                let line = format!("tick {tick} generation {generation} all is well\n");
                let chunk = line.repeat((256 * 1024) / line.len());
                f.write_all(chunk.as_bytes())
                    .map_err(|e| format!("{}: {e}", log.display()))?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors += 1;
                last_error = e;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if errors == 0 {
        String::new()
    } else {
        format!("{errors} edit errors, the last: {last_error}")
    }
}

/// A tree without the ignored top-level trees.
fn synced_part(mut t: Tree) -> Tree {
    t.files.retain(|p, _| {
        !IGNORED
            .iter()
            .any(|i| p == i || p.starts_with(&format!("{i}/")))
    });
    t
}

/// Waits until both daemons say they are done and the synced parts of both trees are equal.
fn converge(pair: &mut Pair, timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        pair.alive()?;
        if let Ok(Some(_)) = pair.settled() {
            let ta = synced_part(oracle::scan_tree(&pair.a.folder)?);
            let tb = synced_part(oracle::scan_tree(&pair.b.folder)?);
            if ta.files == tb.files {
                return Ok(ta.files.len());
            }
            last = super::cluster::tree_diff(&ta, &tb);
        } else if let Ok(s) = pair.status_line() {
            last = s;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("no convergence after {timeout:?}: {last}"))
}

/// `cargo xtask soak`.
pub(crate) fn run(root: &Path, args: &[String]) -> ExitCode {
    super::started();
    let o = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match soak(root, &o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("soak: {e} -> FAIL");
            ExitCode::FAILURE
        }
    }
}

fn soak(root: &Path, o: &Options) -> Result<bool, String> {
    let bin = bench::find_syncd_binary(root, o.syncd.clone(), false, Build::IfMissing, progress)?;
    let scratch = Scratch::under(&o.data_dir, "soak", o.keep)
        .map_err(|e| format!("scratch directory: {e}"))?;
    let dir = scratch.path();
    let mut pair = Pair::create(
        &bin,
        &dir.join("homes"),
        &dir.join("a/folder"),
        &dir.join("b/folder"),
        false,
        o.seed,
    )?;
    for f in [&pair.a.folder, &pair.b.folder] {
        fs::create_dir_all(f).map_err(|e| format!("{}: {e}", f.display()))?;
        fs::write(f.join(".stignore"), STIGNORE).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    pair.start()?;
    let warmup_min = o.warmup.unwrap_or((o.minutes / 6).max(1));
    progress(&format!(
        "soak: {} minutes of edits (warm-up {warmup_min}), a sample every {} s, syncd {}",
        o.minutes,
        o.sample_s,
        bin.display()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let editor = {
        let folders = [pair.a.folder.clone(), pair.b.folder.clone()];
        let (stop, ops, seed) = (stop.clone(), ops.clone(), o.seed);
        std::thread::spawn(move || edits(folders, seed, stop, ops))
    };
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(o.minutes * 60);
    let mut samples: [Vec<Reading>; 2] = [Vec::new(), Vec::new()];
    let mut failure = None;
    loop {
        let t = t0.elapsed().as_secs_f64();
        let mut line = format!("t={:>5.0}s ops={:>6}", t, ops.load(Ordering::Relaxed));
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            let node = pair.node(side);
            if let Err(e) = node.check_alive() {
                failure = Some(format!(
                    "daemon {} died: {e}\n{}",
                    side.tag(),
                    node.log_tail(12)
                ));
                break;
            }
            let r = read_proc(node.pid().ok_or("no pid")?, t)?;
            let _ = write!(
                line,
                " | {}: rss {:.1} MB fds {} threads {} watches {} cpu {:.1} s",
                side.tag(),
                r.rss_mb,
                r.fds,
                r.threads,
                r.watches,
                r.cpu_s
            );
            samples[i].push(r);
        }
        progress(&line);
        if failure.is_some() || Instant::now() >= end {
            break;
        }
        let next = t0 + Duration::from_secs(o.sample_s * samples[0].len() as u64);
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .min(end.saturating_duration_since(Instant::now())),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let edit_errors = editor
        .join()
        .unwrap_or_else(|_| "the edit thread panicked".into());
    if !edit_errors.is_empty() {
        progress(&format!("soak: {edit_errors}"));
    }
    let files = match failure {
        Some(f) => return Err(f),
        None => converge(&mut pair, Duration::from_secs(300))?,
    };
    progress(&format!(
        "soak: converged after the edits stopped: {files} synced files equal on both sides"
    ));

    // The report.
    let warmup_s = (warmup_min * 60) as f64;
    let mut report = format!(
        "soak: {} minutes, {} edit ticks, warm-up {} min, {} samples per daemon\n\n\
         | daemon | measure | first sample | after warm-up: first half mean | second half mean | slope per hour | levels off |\n\
         |---|---|---|---|---|---|---|\n",
        o.minutes,
        ops.load(Ordering::Relaxed),
        warmup_min,
        samples[0].len()
    );
    let mut pass = true;
    for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
        for m in &MEASURES {
            let v = judge(m, &samples[i], warmup_s);
            pass &= v.ok;
            let _ = writeln!(
                report,
                "| {} | {} | {:.1}{u} | {:.1}{u} | {:.1}{u} | {:+.2}{u}/h | {} |",
                side.tag(),
                m.name,
                samples[i].first().map_or(0.0, |r| (m.get)(r)),
                v.first,
                v.second,
                v.slope_per_h,
                if v.ok { "yes" } else { "NO" },
                u = if m.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", m.unit)
                }
            );
        }
        let cpu = samples[i].last().map_or(0.0, |r| r.cpu_s);
        let _ = writeln!(
            report,
            "| {} | CPU | {cpu:.1} s in all ({:.1} % of one core) | | | | |",
            side.tag(),
            100.0 * cpu / t0.elapsed().as_secs_f64()
        );
    }
    println!("\n{report}");
    if let Some(path) = &o.report {
        fs::write(path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "soak: {} minutes, files_synced={files} -> {}",
        o.minutes,
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<Reading> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Reading {
                t: i as f64 * 60.0,
                rss_mb: *v,
                ..Reading::default()
            })
            .collect()
    }

    #[test]
    fn growth_that_levels_off_passes_and_steady_growth_fails() {
        let rss = &MEASURES[0];
        // Warm-up growth, then flat with noise.
        let flat = series(&[20.0, 40.0, 60.0, 61.0, 60.0, 62.0, 61.0, 60.0, 62.0, 61.0]);
        let v = judge(rss, &flat, 120.0);
        assert!(v.ok, "{} -> {}", v.first, v.second);
        assert!(v.slope_per_h.abs() < 10.0, "{}", v.slope_per_h);
        // A leak: 10 MB a minute, on and on.
        let leak: Vec<f64> = (0..20).map(|i| 50.0 + 10.0 * i as f64).collect();
        let v = judge(rss, &series(&leak), 120.0);
        assert!(!v.ok);
        assert!((v.slope_per_h - 600.0).abs() < 1e-6, "{}", v.slope_per_h);
    }

    #[test]
    fn options_parse_and_reject_unknown_flags() {
        let o = parse_args(&["--minutes".into(), "60".into()]).unwrap();
        assert_eq!((o.minutes, o.sample_s), (60, 60));
        assert!(parse_args(&["--bogus".into()]).is_err());
    }

    #[test]
    fn ignored_trees_are_left_out_of_the_comparison() {
        let mut t = Tree::default();
        for p in ["target/x.o", "src-a/f.rs", ".git/objects/1", "targets/y"] {
            t.files
                .insert(p.to_string(), oracle::hash_bytes(p.as_bytes()));
        }
        let kept: Vec<String> = synced_part(t).files.into_keys().collect();
        assert_eq!(kept, ["src-a/f.rs", "targets/y"]);
    }
}
