//! `cargo xtask torture [--short]`: the reliability suite of issue 13. Two syncd daemons on
//! loopback are SIGKILLed at random moments, cut off, stalled, delayed and truncated by a
//! proxy, partitioned while both sides edit, and run out of disk; an oracle that recorded
//! every version the workload wrote then checks that nothing was lost or torn. The hostile
//! peer suite (`crates/syncd/tests/hostile.rs`) runs last. See `docs/reliability.md`.
//!
//! The last line printed is always the summary:
//! `torture: kills=<n> faults=<n> config_changes=<n> index_damages=<n> mixed_rounds=<n>
//! hostile_inputs=<n> files_lost=<n> -> PASS|FAIL`; the exit status is non-zero on any loss, any unverified phase,
//! or when fewer kills, faults, settings changes or damaged-index restarts than the plan's
//! minimum actually happened.

mod cluster;
mod mixed;
mod oracle;
mod phases;
mod proxy;
pub(crate) mod soak;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::bench::{self, Build};
use cluster::{Pair, Scratch};
use phases::Ctx;

const USAGE: &str = "usage: cargo xtask torture [options]

  --short           the few-minute form CI runs (>= 10 kills); default: the long form (>= 100)
  --seed N          seed of every random choice (default 13)
  --syncd PATH      the syncd binary (default: $SYNCD_BIN, else <target>/debug/syncd, else
                    build it with `cargo build -p syncd`)
  --data-dir DIR    where scratch data goes (default: $TMPDIR); removed when done
  --keep            keep the scratch data
  --no-hostile      skip the hostile-peer suite (says so loudly)
  --only P[,P...]   run only these phases (crash-initial, crash-edits, network, partition,
                    churn, versioning, index-damage, disk-full, mixed, hostile); the pair is
                    started first; the form's minimums are not checked (a partial run)
";

/// How much of everything to do.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `short` or `long`.
    pub name: &'static str,
    /// Small files on the full side of the initial sync.
    pub initial_files: u64,
    /// Multi-MiB files on the full side of the initial sync.
    pub initial_big: u64,
    /// Kills during the initial sync.
    pub kills_initial: u64,
    /// Kills during the edit stream.
    pub kills_edits: u64,
    /// Kills between two verified convergences in the edit stream.
    pub kills_per_round: u64,
    /// Faults of each network kind.
    pub faults_each: u64,
    /// Partition rounds.
    pub partitions: u64,
    /// Seconds each partition lasts.
    pub partition_s: u64,
    /// How long a convergence may take.
    pub converge_timeout: Duration,
    /// Kills that must actually have happened.
    pub min_kills: u64,
    /// Faults that must actually have happened.
    pub min_faults: u64,
    /// How long the hostile suite may take (its build included).
    pub hostile_timeout: Duration,
    /// Settings changes made through the REST API during the churn phase.
    pub churn_changes: u64,
    /// Restarts over a damaged index (truncated, garbage pages, deleted, in turn).
    pub index_damages: u64,
    /// Rounds of edits and kills in the mixed cluster (two syncd, one Syncthing).
    pub mixed_rounds: u64,
    /// Kills per mixed round (every third one Syncthing's).
    pub mixed_kills: u64,
}

impl Plan {
    /// The CI form: a few minutes on a quiet two-core machine.
    pub(crate) const SHORT: Plan = Plan {
        name: "short",
        initial_files: 200,
        initial_big: 5,
        kills_initial: 6,
        kills_edits: 6,
        kills_per_round: 6,
        faults_each: 2,
        partitions: 1,
        partition_s: 8,
        converge_timeout: Duration::from_secs(180),
        min_kills: 10,
        min_faults: 8,
        hostile_timeout: Duration::from_secs(15 * 60),
        churn_changes: 24,
        index_damages: 1,
        mixed_rounds: 1,
        mixed_kills: 6,
    };

    /// The long form.
    pub(crate) const LONG: Plan = Plan {
        name: "long",
        initial_files: 500,
        initial_big: 25,
        kills_initial: 50,
        kills_edits: 60,
        kills_per_round: 10,
        faults_each: 10,
        partitions: 3,
        partition_s: 30,
        converge_timeout: Duration::from_secs(600),
        min_kills: 100,
        min_faults: 40,
        hostile_timeout: Duration::from_secs(30 * 60),
        churn_changes: 200,
        index_damages: 6,
        mixed_rounds: 3,
        mixed_kills: 12,
    };
}

/// The tally the summary line reports.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// SIGKILLs that hit a running daemon.
    pub kills: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Hostile inputs the hostile suite tried.
    pub hostile_inputs: u64,
    /// Settings changes applied through the REST API while the daemons synced.
    pub config_changes: u64,
    /// Restarts over a damaged index.
    pub index_damages: u64,
    /// Verified rounds of the mixed cluster.
    pub mixed_rounds: u64,
    /// Versions lost or torn.
    pub files_lost: u64,
    /// Conflict copies in the last converged tree.
    pub conflict_copies: usize,
    /// Stale temp files on disk after the last convergence.
    pub temps_left: usize,
    /// Why the run fails.
    pub failures: Vec<String>,
    /// Phases that could not run here.
    pub skipped: Vec<String>,
}

impl Report {
    /// Records a failure (printed at once).
    pub(crate) fn fail(&mut self, why: String) {
        progress(&format!("FAILURE: {why}"));
        self.failures.push(why);
    }

    /// Counts one injected fault.
    pub(crate) fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Prints one progress line with the time since the run started.
pub(crate) fn progress(msg: &str) {
    println!("[{:>6.1}s] {msg}", started().elapsed().as_secs_f64());
}

struct Options {
    plan: Plan,
    seed: u64,
    syncd: Option<PathBuf>,
    data_dir: PathBuf,
    keep: bool,
    hostile: bool,
    /// `--only`: the phases to run (`None`: all).
    only: Option<Vec<String>>,
}

/// The phases `--only` accepts.
const PHASES: [&str; 10] = [
    "crash-initial",
    "crash-edits",
    "network",
    "partition",
    "churn",
    "versioning",
    "index-damage",
    "disk-full",
    "mixed",
    "hostile",
];

impl Options {
    fn runs(&self, phase: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|p| p == phase))
    }
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        plan: Plan::LONG,
        seed: 13,
        syncd: std::env::var_os("SYNCD_BIN").map(PathBuf::from),
        data_dir: std::env::temp_dir(),
        keep: false,
        hostile: true,
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n\n{USAGE}"))
        };
        match a.as_str() {
            "--short" => o.plan = Plan::SHORT,
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--syncd" => o.syncd = Some(PathBuf::from(val()?)),
            "--data-dir" => o.data_dir = PathBuf::from(val()?),
            "--keep" => o.keep = true,
            "--no-hostile" => o.hostile = false,
            "--only" => {
                let list: Vec<String> = val()?.split(',').map(str::to_string).collect();
                if let Some(bad) = list.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    return Err(format!("--only: no phase {bad:?}\n\n{USAGE}"));
                }
                o.only = Some(list);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    Ok(o)
}

/// Runs every phase; failures are recorded in the report. Every daemon, proxy, mount and
/// scratch directory is owned by a guard inside, so all are gone when this returns.
fn run_phases(root: &Path, o: &Options, report: Report) -> Report {
    let mut ctx = Ctx {
        plan: o.plan.clone(),
        rng: crate::bench::rng::Rng::new(o.seed),
        seed: o.seed,
        seq: Arc::new(AtomicU64::new(0)),
        oracle: Arc::new(Mutex::new(oracle::Oracle::new())),
        report,
        partial: o.only.is_some(),
    };
    // Given, else `<target>/debug/syncd` if built (CI's test step built it), else built now.
    let bin =
        match bench::find_syncd_binary(root, o.syncd.clone(), false, Build::IfMissing, progress) {
            Ok(b) => b,
            Err(e) => {
                ctx.report.fail(format!("no syncd binary: {e}"));
                return ctx.report;
            }
        };
    progress(&format!(
        "torture ({} form), seed {}, syncd {}",
        ctx.plan.name,
        o.seed,
        bin.display()
    ));
    let scratch = match Scratch::under(&o.data_dir, "run", o.keep) {
        Ok(s) => s,
        Err(e) => {
            ctx.report.fail(format!("scratch directory: {e}"));
            return ctx.report;
        }
    };
    {
        let dir = scratch.path();
        let pair = Pair::create(
            &bin,
            &dir.join("homes"),
            &dir.join("a/folder"),
            &dir.join("b/folder"),
            true,
            o.seed,
        );
        match pair {
            Err(e) => ctx.report.fail(format!("setting up the pair: {e}")),
            Ok(mut pair) => {
                type Phase = fn(&mut Ctx, &mut Pair) -> Result<(), String>;
                let list: [(&str, Phase); 7] = [
                    ("crash-initial", phases::crash_initial),
                    ("crash-edits", phases::crash_edits),
                    ("network", phases::network),
                    ("partition", phases::partitions),
                    ("churn", phases::churn),
                    ("versioning", phases::versioning),
                    ("index-damage", phases::index_damage),
                ];
                // A partial run that leaves out the initial sync starts the pair itself.
                if !o.runs("crash-initial")
                    && let Err(e) = pair.start()
                {
                    ctx.report.fail(format!("starting the pair: {e}"));
                }
                for (name, phase) in list {
                    if !o.runs(name) || !ctx.report.failures.is_empty() {
                        continue;
                    }
                    progress(&format!("=== {name}"));
                    if let Err(e) = phase(&mut ctx, &mut pair) {
                        ctx.report.fail(format!(
                            "{name}: {e}\n(the remaining phases on this pair are skipped)"
                        ));
                        break;
                    }
                }
            }
        }
    }
    if o.runs("disk-full") {
        progress("=== disk-full");
        if let Err(e) = phases::disk_full(&mut ctx, &bin, scratch.path()) {
            ctx.report.fail(format!("disk-full: {e}"));
        }
    }
    if o.runs("mixed") {
        progress("=== mixed");
    }
    match syncd_testkit::syncthing_on_path().filter(|_| o.runs("mixed")) {
        Some(st) => {
            if let Err(e) = mixed::mixed(&mut ctx, &bin, &st, scratch.path()) {
                ctx.report.fail(format!("mixed: {e}"));
            }
        }
        None if !o.runs("mixed") => {}
        None if std::env::var_os("SYNCD_REQUIRE_SYNCTHING").is_some_and(|v| v == "1") => {
            ctx.report.fail(
                "mixed: no `syncthing` on PATH and SYNCD_REQUIRE_SYNCTHING=1 (apt-get install syncthing)"
                    .to_string(),
            );
        }
        None => {
            let msg =
                "SKIPPED mixed: no `syncthing` on PATH (apt-get install syncthing)".to_string();
            println!("!!!!!!!! {msg} !!!!!!!!");
            ctx.report.skipped.push(msg);
        }
    }
    drop(scratch);
    if !o.runs("hostile") {
        return ctx.report;
    }
    progress("=== hostile");
    if o.hostile {
        if let Err(e) = phases::hostile(&mut ctx, root) {
            ctx.report.fail(e);
        }
    } else {
        let msg = "SKIPPED hostile: --no-hostile".to_string();
        println!("!!!!!!!! {msg} !!!!!!!!");
        ctx.report.skipped.push(msg);
    }
    ctx.report
}

/// `cargo xtask torture`: runs the suite; the summary is the last line printed.
pub(crate) fn run(root: &Path, args: &[String]) -> ExitCode {
    started();
    let o = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut report = run_phases(root, &o, Report::default());
    let faults = report.total_faults();
    if let Some(only) = &o.only {
        progress(&format!(
            "a partial run (--only {}): the {} form's minimums are not checked",
            only.join(","),
            o.plan.name
        ));
    }
    let full = o.only.is_none();
    if full && report.kills < o.plan.min_kills {
        report.fail(format!(
            "only {} kills were injected (the {} form needs {})",
            report.kills, o.plan.name, o.plan.min_kills
        ));
    }
    if full && faults < o.plan.min_faults {
        report.fail(format!(
            "only {faults} faults were injected (the {} form needs {})",
            o.plan.name, o.plan.min_faults
        ));
    }
    if full && report.config_changes < o.plan.churn_changes {
        report.fail(format!(
            "only {} settings changes were applied (the {} form needs {})",
            report.config_changes, o.plan.name, o.plan.churn_changes
        ));
    }
    if full && report.index_damages < o.plan.index_damages {
        report.fail(format!(
            "only {} restarts over a damaged index (the {} form needs {})",
            report.index_damages, o.plan.name, o.plan.index_damages
        ));
    }
    if report.files_lost > 0 {
        report.fail(format!("{} versions lost or torn", report.files_lost));
    }
    let kinds: Vec<String> = report
        .faults
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    progress(&format!(
        "faults by kind: {}; conflict copies at the end: {}; stale temp files: {}",
        kinds.join(", "),
        report.conflict_copies,
        report.temps_left
    ));
    for s in &report.skipped {
        progress(s);
    }
    if !report.failures.is_empty() {
        progress(&format!("{} failures:", report.failures.len()));
        for f in &report.failures {
            println!("  - {}", f.lines().next().unwrap_or_default());
        }
    }
    let pass = report.failures.is_empty();
    println!(
        "torture: kills={} faults={faults} config_changes={} index_damages={} mixed_rounds={} hostile_inputs={} files_lost={} -> {}",
        report.kills,
        report.config_changes,
        report.index_damages,
        report.mixed_rounds,
        report.hostile_inputs,
        report.files_lost,
        if pass { "PASS" } else { "FAIL" }
    );
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_meets_its_own_minimums_by_plan() {
        let p = Plan::SHORT;
        assert!(p.kills_initial + p.kills_edits >= p.min_kills);
        assert!(p.faults_each * 4 + p.partitions >= p.min_faults);
        let l = Plan::LONG;
        assert!(l.kills_initial + l.kills_edits >= 100 && l.min_kills >= 100);
    }

    #[test]
    fn options_select_the_form_and_reject_unknown_flags() {
        let o = parse_args(&["--short".into(), "--seed".into(), "7".into()]).unwrap();
        assert_eq!((o.plan.name, o.seed), ("short", 7));
        assert_eq!(parse_args(&[]).unwrap().plan.name, "long");
        assert!(parse_args(&["--bogus".into()]).is_err());
        let o = parse_args(&["--only".into(), "churn,mixed".into()]).unwrap();
        assert!(o.runs("churn") && o.runs("mixed") && !o.runs("crash-initial"));
        assert!(parse_args(&["--only".into(), "churn,nope".into()]).is_err());
        assert!(parse_args(&[]).unwrap().runs("hostile"));
    }
}
