//! `cargo xtask bench`: whole-system benchmarks of syncd against Syncthing on one machine in
//! one run (issue 12). See `docs/benchmarks.md` for what each scenario measures.
//!
//! Pieces: [`workspace`] generates the seeded developer workspace, [`daemon`] runs one
//! Syncthing or syncd on loopback, [`scenarios`] drives a pair through scenarios 1-5 and
//! measures from `/proc` and the REST counters, [`report`] writes Markdown and SVG.
//! Std only: [`http`] is a tiny HTTP/1.1 client, [`json`] a small JSON reader, [`rng`] a
//! SplitMix64.

pub(crate) mod daemon;
pub(crate) mod json;
pub(crate) mod procfs;
mod report;
pub(crate) mod rng;
mod scenarios;
mod workspace;

use std::path::{Path, PathBuf};
use std::process::Command;

use report::{Pairing, Scenario};
use scenarios::{PairingResults, Settings};
use workspace::Spec;

const USAGE: &str = "usage: cargo xtask bench [options]

  --quick             smoke run: ~50 MB / 2,000 files, 5,000 small files, 20 MB delta file
  --size BYTES        workspace size (suffix k/M/G, decimal; default 1G)
  --files N           synced files in the workspace (default 20000)
  --small-files N     files of scenario 5 (default 100000)
  --seed N            workspace seed (default 12)
  --scenarios LIST    e.g. 1,3 (default 1,2,3,4,5)
  --pairs LIST        st,syncd,mixed,st-syncd (default st,syncd,mixed; mixed = syncd
                      sending to Syncthing, st-syncd = Syncthing sending to syncd)
  --latency-samples N samples for syncd (default 100; Syncthing: 10 at 10 s, 20 at 1 s)
  --syncthing PATH    Syncthing binary (default: syncthing on PATH)
  --syncd PATH        syncd binary (default: $SYNCD_BIN, else build `cargo build --release -p syncd`)
  --no-build          do not build syncd; use the binary in the target dir if it is there
  --data-dir DIR      scratch data (default target/bench/data; removed when done)
  --keep              keep the scratch data
  --versioning TYPE   syncd folders keep file versions (trashcan, simple, staggered);
                      default off. Run once with and once without to see its cost
";

/// The pairings run without `--pairs`: the three of issue 12 (Syncthing→syncd on request).
const DEFAULT_PAIRS: [Pairing; 3] = [
    Pairing::SyncthingPair,
    Pairing::SyncdPair,
    Pairing::SyncdToSyncthing,
];

struct Options {
    settings: Settings,
    pairs: Vec<Pairing>,
    keep: bool,
    out_dir: PathBuf,
    command: String,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let (n, suf) = s.split_at(i);
            let m = match suf
                .trim_end_matches(['B', 'b'])
                .to_ascii_lowercase()
                .as_str()
            {
                "" => 1,
                "k" => 1_000,
                "m" => 1_000_000,
                "g" => 1_000_000_000,
                _ => return Err(format!("bad size suffix in {s:?}")),
            };
            (n, m)
        }
        None => (s, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|e| format!("bad size {s:?}: {e}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("bad size {s:?}"));
    }
    Ok((v * mult as f64) as u64)
}

fn parse_args(root: &Path, args: &[String]) -> Result<Options, String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut spec = if quick { Spec::QUICK } else { Spec::DEFAULT };
    let mut settings = Settings {
        spec,
        small_files: if quick { 5_000 } else { 100_000 },
        delta_bytes: if quick { 20_000_000 } else { 200_000_000 },
        delta_dir_files: 1_000,
        latency_syncd: 100,
        latency_st_default: 10,
        latency_st_min: 20,
        idle_settle_s: if quick { 5 } else { 10 },
        scenarios: vec![1, 2, 3, 4, 5],
        data_dir: root.join("target/bench/data"),
        syncthing: PathBuf::from("syncthing"),
        syncd: Err("not resolved".into()),
        versioning: None,
    };
    let mut pairs = DEFAULT_PAIRS.to_vec();
    let mut keep = false;
    let mut syncd: Option<PathBuf> = std::env::var_os("SYNCD_BIN").map(PathBuf::from);
    let mut build = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n\n{USAGE}"))
        };
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--quick" => {}
            "--size" => spec.total_bytes = parse_size(&val()?)?,
            "--files" => spec.files = num(val()?)?.max(10),
            "--small-files" => settings.small_files = num(val()?)?,
            "--seed" => spec.seed = num(val()?)?,
            "--latency-samples" => settings.latency_syncd = num(val()?)?.max(1) as usize,
            "--scenarios" => {
                settings.scenarios = val()?
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<u8>()
                            .ok()
                            .filter(|n| (1..=5).contains(n))
                            .ok_or(format!("bad scenario {x:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--pairs" => {
                pairs = val()?
                    .split(',')
                    .map(|x| match x.trim() {
                        "st" | "syncthing" => Ok(Pairing::SyncthingPair),
                        "syncd" => Ok(Pairing::SyncdPair),
                        "mixed" => Ok(Pairing::SyncdToSyncthing),
                        "st-syncd" => Ok(Pairing::SyncthingToSyncd),
                        other => Err(format!(
                            "bad pairing {other:?} (st, syncd, mixed, st-syncd)"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--syncthing" => settings.syncthing = PathBuf::from(val()?),
            "--syncd" => syncd = Some(PathBuf::from(val()?)),
            "--no-build" => build = false,
            "--data-dir" => settings.data_dir = PathBuf::from(val()?),
            "--keep" => keep = true,
            "--versioning" => settings.versioning = Some(val()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    settings.spec = spec;
    let needs_syncd = pairs.iter().any(|p| *p != Pairing::SyncthingPair);
    settings.syncd = if needs_syncd {
        let build = if build { Build::Always } else { Build::Never };
        find_syncd_binary(root, syncd, true, build, |m| eprintln!("bench: {m}"))
    } else {
        Err("not asked for".into())
    };
    Ok(Options {
        settings,
        pairs,
        keep,
        out_dir: root.join("target/bench"),
        command: format!("cargo xtask bench {}", args.join(" "))
            .trim_end()
            .to_string(),
    })
}

/// When [`find_syncd_binary`] runs `cargo build -p syncd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// Always (cargo does nothing when it is fresh).
    Always,
    /// Only when the binary is not there yet.
    IfMissing,
    /// Never: use what is there.
    Never,
}

/// The syncd binary: `given` (which must exist), else `<target>/<release|debug>/syncd`
/// (`CARGO_TARGET_DIR` honoured), built first as `build` says (`announce` tells the user).
/// The error is the reason shown in the report.
pub(crate) fn find_syncd_binary(
    root: &Path,
    given: Option<PathBuf>,
    release: bool,
    build: Build,
    announce: impl Fn(&str),
) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("no syncd binary at {}", p.display()))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("syncd");
    if build == Build::Always || (build == Build::IfMissing && !bin.is_file()) {
        let mut args = vec!["build"];
        if release {
            args.push("--release");
        }
        args.extend(["--quiet", "-p", "syncd"]);
        let shown = format!("cargo {}", args.join(" ").replace(" --quiet", ""));
        announce(&format!("building syncd ({shown})"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(&args)
            .current_dir(root)
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            eprint!("{err}");
            let first = err
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or("see cargo output");
            return Err(format!("`{shown}` failed: {first}"));
        }
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "no syncd binary at {} (build it, or pass --syncd)",
            bin.display()
        ))
    }
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Vec<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| procfs::parse_status_kb(&t, "MemTotal"))
        .map(|kb| format!("{:.1} GB RAM", kb as f64 / 1e6))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    vec![
        format!(
            "Machine: {cpu}, {} cores, {mem}; {}",
            shell("nproc", &[]),
            shell("uname", &["-srm"])
        ),
        format!(
            "Load average at start: {} (shared machine: other builds run alongside)",
            load.join(" ")
        ),
    ]
}

const ABOUT: [(&str, &str); 5] = [
    (
        "1. Initial sync",
        "A full side and an empty side start together with the clock running (no scan off the clock), page cache dropped, fsync on for both. Done when the receiver's `/rest/db/status` shows every file with nothing needed and its disk holds the same file count and bytes. CPU = utime+stime and peak RSS = VmHWM of each daemon process at that moment; idle RSS = VmRSS after a pause.",
    ),
    (
        "2. Cold start and rescan of an unchanged tree",
        "Both daemons stopped, page cache dropped, restarted on their synced trees. Time from spawn until `POST /rest/db/scan` (which queues behind the start-up scan) has returned and the folder is idle, per side.",
    ),
    (
        "3. Propagation latency",
        "A small new file is written on the sending side; the receiving side's file is polled every 2 ms until its content matches. p50/p99 by nearest rank.",
    ),
    (
        "4. Delta efficiency",
        "Changes on the sending side, timed until the receiving side has the same result; bytes on the wire = growth of both daemons' `/rest/system/connections` `total.outBytesTotal` (read 1 s after completion so trailing index updates count).",
    ),
    (
        "5. Many small files",
        "Initial sync (as in 1) of a tree of 1–4 KB files, 100 per directory; peak RSS during it and idle RSS after.",
    ),
];

/// Runs `cargo xtask bench`.
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let opts = parse_args(root, args)?;
    let s = &opts.settings;
    std::fs::create_dir_all(&s.data_dir).map_err(|e| format!("{}: {e}", s.data_dir.display()))?;
    // Every pair's data stays until the run ends (see `scenarios::Pair`), then goes at once.
    let _cleanup = RemoveOnDrop {
        dir: s.data_dir.clone(),
        keep: opts.keep,
    };
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    let mut preamble = vec![
        format!("Date: {}", shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        format!(
            "Command: `{}` (commit {})",
            opts.command,
            shell(
                "git",
                &[
                    "-C",
                    &root.to_string_lossy(),
                    "rev-parse",
                    "--short",
                    "HEAD"
                ]
            )
        ),
    ];
    preamble.extend(machine());
    preamble.push(format!(
        "Syncthing: {}",
        shell(&s.syncthing.to_string_lossy(), &["--version"])
    ));
    let syncd_asked = opts.pairs.iter().any(|p| *p != Pairing::SyncthingPair);
    preamble.push(match &s.syncd {
        _ if !syncd_asked => "syncd: not run (`--pairs` left it out)".to_string(),
        Ok(p) => format!("syncd: {}", p.display()),
        Err(e) => format!("syncd daemon not available: {e}"),
    });
    preamble.push(format!(
        "Workspace: seed {}, ~{} MB in {} synced files (+ ignored trees); scenario 5: {} files; delta file {} MB",
        s.spec.seed,
        s.spec.total_bytes / 1_000_000,
        s.spec.files,
        s.small_files,
        s.delta_bytes / 1_000_000
    ));
    let mut results: Vec<(Pairing, PairingResults)> = Vec::new();
    for p in &opts.pairs {
        results.push((*p, scenarios::run_pairing(s, *p)));
    }
    let mut scenarios_out = Vec::new();
    for (i, (title, about)) in ABOUT.iter().enumerate() {
        let n = i as u8 + 1;
        if !s.scenarios.contains(&n) {
            continue;
        }
        let mut sc = Scenario {
            title: title.to_string(),
            about: about.to_string(),
            ..Scenario::default()
        };
        for (p, r) in &results {
            if let Some((_, o)) = r.outcomes.iter().find(|(k, _)| *k == n) {
                sc.results.push((*p, o.clone()));
            }
        }
        if n == 3 {
            sc.notes.push(format!(
                "Samples: syncd {}; Syncthing {} at its default 10 s watcher delay and {} at its 1 s minimum.",
                s.latency_syncd, s.latency_st_default, s.latency_st_min
            ));
        }
        scenarios_out.push(sc);
    }
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    preamble.push(format!(
        "Load average at the end: {} (each scenario's table also shows the 1-minute load when it finished)",
        load_end.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));
    let mut notes: Vec<String> = Vec::new();
    for n in results.iter().flat_map(|(_, r)| r.notes.iter()) {
        if !notes.contains(n) {
            notes.push(n.clone());
        }
    }
    preamble.extend(notes);
    let md = report::report_markdown(&preamble, &scenarios_out);
    let latency: Vec<(String, Vec<f64>)> = results
        .iter()
        .flat_map(|(_, r)| r.latency.clone())
        .collect();
    let throughput: Vec<(String, Option<f64>)> = results
        .iter()
        .filter(|_| s.scenarios.contains(&1))
        .map(|(p, r)| (p.label().to_string(), r.throughput))
        .collect();
    let svg = report::chart_svg(&latency, &throughput);
    let md_path = opts.out_dir.join("report.md");
    let svg_path = opts.out_dir.join("chart.svg");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    println!("{md}");
    eprintln!(
        "bench: wrote {} and {}",
        md_path.display(),
        svg_path.display()
    );
    Ok(())
}

/// Removes the run's data directory when the run ends, however it ends (unless `--keep`).
struct RemoveOnDrop {
    dir: PathBuf,
    keep: bool,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A scratch directory removed on drop (tests only; xtask has no tempfile dependency).
#[cfg(test)]
pub struct TempDir(PathBuf);

#[cfg(test)]
impl TempDir {
    /// Creates `$TMPDIR/xtask-bench-<tag>-<pid>-<nanos>`.
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("xtask-bench-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_suffixes() {
        for (text, want) in [
            ("1G", 1_000_000_000),
            ("50MB", 50_000_000),
            ("1.5k", 1_500),
            ("123", 123),
        ] {
            assert_eq!(parse_size(text).unwrap(), want, "{text}");
        }
        for bad in ["", "x", "-1G", "1T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quick_mode_shrinks_everything_and_flags_override_it() {
        let root = Path::new("/nonexistent");
        let args: Vec<String> = ["--quick", "--files", "300", "--pairs", "st"]
            .map(String::from)
            .to_vec();
        let o = parse_args(root, &args).unwrap();
        assert_eq!(o.settings.spec.total_bytes, Spec::QUICK.total_bytes);
        assert_eq!(o.settings.spec.files, 300);
        assert_eq!(o.pairs, vec![Pairing::SyncthingPair]);
        assert!(
            o.settings.syncd.is_err(),
            "syncd is not looked for when no pairing needs it"
        );
    }
}
