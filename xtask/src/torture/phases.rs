//! The phases: crash loops, network faults, partitions, disk full, hostile inputs. Each one
//! drives the daemons, then verifies through [`verify`]: convergence, the oracle, temp files,
//! and agreement with a fresh rescan.

use crate::bench::json::Members;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cluster::{Pair, Scratch, Tmpfs};
use super::oracle::{self, Oracle, Side};
use super::workload::{self, Stream, Target, Workload};
use super::{Plan, Report, progress};
use crate::bench::rng::Rng;

/// Everything the phases share.
pub(crate) struct Ctx {
    /// The plan (short or long).
    pub plan: Plan,
    /// The run's RNG (kill moments, victims, faults).
    pub rng: Rng,
    /// The seed the workloads derive theirs from.
    pub seed: u64,
    /// Version numbers across all workloads.
    pub seq: Arc<AtomicU64>,
    /// The manifest.
    pub oracle: Arc<Mutex<Oracle>>,
    /// The tally.
    pub report: Report,
    /// A partial run (`--only`): changes an older syncd does not offer are skipped.
    pub partial: bool,
}

impl Ctx {
    pub(crate) fn workload(&mut self, salt: u64) -> Workload {
        Workload::new(self.seed ^ salt.wrapping_mul(0x9E37_79B9), self.seq.clone())
    }

    pub(crate) fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.range(lo, hi))
    }

    pub(crate) fn side(&mut self) -> Side {
        if self.rng.range(0, 1) == 0 {
            Side::A
        } else {
            Side::B
        }
    }
}

fn target(pair: &Pair, side: Side) -> Target {
    let (folder, stage) = pair.dirs(side);
    Target {
        side,
        folder,
        stage,
    }
}

/// Prints and counts what the oracle found in a converged tree; a loss fails the run.
pub(crate) fn record_findings(ctx: &mut Ctx, phase: &str, findings: &oracle::Findings) {
    for l in findings.lost.iter().chain(findings.foreign.iter()) {
        progress(&format!("{phase}: LOST {l}"));
    }
    ctx.report.files_lost += (findings.lost.len() + findings.foreign.len()) as u64;
    if !findings.clean() {
        ctx.report.fail(format!(
            "{phase}: {} versions lost, {} files hold content that was never written",
            findings.lost.len(),
            findings.foreign.len()
        ));
    }
}

/// Converges, checks the tree against the oracle, checks temp files and the rescan, then
/// checkpoints the oracle. Losses and torn files are counted; an error means the phase could
/// not be verified (no convergence, a daemon died).
pub(crate) fn verify(ctx: &mut Ctx, pair: &mut Pair, phase: &str) -> Result<(), String> {
    let c = pair.converge(ctx.plan.converge_timeout)?;
    let findings = workload::lock(&ctx.oracle).check(&c.tree);
    let conflicts = c.tree.conflict_copies();
    progress(&format!(
        "{phase}: converged in {:.1}s: {} files, {} conflict copies, {} versions in the manifest",
        c.took.as_secs_f64(),
        c.tree.files.len(),
        conflicts,
        workload::lock(&ctx.oracle).versions()
    ));
    ctx.report.conflict_copies = ctx.report.conflict_copies.max(conflicts);
    record_findings(ctx, phase, &findings);
    let temps: Vec<String> = c
        .tree
        .temps
        .iter()
        .map(|t| format!("a:{t}"))
        .chain(c.temps_b.iter().map(|t| format!("b:{t}")))
        .collect();
    // A temp file must never be indexed or appear under a real name: `converge` already
    // required each side's index file count to equal the non-temp files on disk, and the
    // oracle that no file holds a partial version. Stale temps of pulls that a kill or a cut
    // interrupted (for paths later deleted or renamed) stay hidden; they are reported.
    ctx.report.temps_left = ctx.report.temps_left.max(temps.len());
    if !temps.is_empty() {
        progress(&format!(
            "{phase}: {} stale temp files on disk (hidden, not indexed, not synced): {}",
            temps.len(),
            temps.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Err(e) = pair.rescan_agrees(&c) {
        ctx.report.fail(format!("{phase}: {e}"));
    } else {
        progress(&format!(
            "{phase}: a fresh rescan on both sides changed nothing (sequences a {} b {})",
            c.seq.0, c.seq.1
        ));
    }
    // Killed while idle, both restart from their persisted index: nothing may change.
    for side in [Side::A, Side::B] {
        if pair.kill_and_restart(side, Duration::from_millis(100))? {
            ctx.report.kills += 1;
        }
    }
    let again = pair.converge(ctx.plan.converge_timeout)?;
    if again.seq != c.seq || again.tree.files != c.tree.files {
        ctx.report.fail(format!(
            "{phase}: SIGKILL and restart of both idle daemons changed the index or the trees: sequences {:?} -> {:?}; {}",
            c.seq,
            again.seq,
            super::cluster::tree_diff(&c.tree, &again.tree)
        ));
    } else {
        progress(&format!(
            "{phase}: SIGKILL and restart of both idle daemons changed nothing"
        ));
    }
    workload::lock(&ctx.oracle).checkpoint();
    Ok(())
}

/// Writes `files` small files and `big` multi-MiB files into namespace `ns` of `side`.
fn populate(
    ctx: &mut Ctx,
    pair: &Pair,
    side: Side,
    ns: &str,
    files: u64,
    big: u64,
) -> Result<u64, String> {
    let t = target(pair, side);
    let mut w = ctx.workload(0x1417);
    w.dirs = 8;
    let mut bytes = 0u64;
    for i in 0..files + big {
        let size = if i < big {
            ctx.rng.range(2 << 20, 6 << 20) as usize
        } else {
            ctx.rng.range(0, 256 * 1024) as usize
        };
        w.create(&t, ns, size, &ctx.oracle)?;
        bytes += size as u64;
    }
    Ok(bytes)
}

/// Kills a random side at random moments `kills` times.
fn kill_loop(
    ctx: &mut Ctx,
    pair: &mut Pair,
    phase: &str,
    kills: u64,
    gap_ms: (u64, u64),
) -> Result<(), String> {
    for i in 1..=kills {
        let gap = ctx.ms(gap_ms.0, gap_ms.1);
        std::thread::sleep(gap);
        let side = ctx.side();
        let down = ctx.ms(0, 700);
        pair.alive()?;
        if pair.kill_and_restart(side, down)? {
            ctx.report.kills += 1;
        }
        let status = pair.status_line().unwrap_or_else(|e| e);
        progress(&format!(
            "{phase}: SIGKILL {i}/{kills} of {} after {}ms (down {}ms); {status}",
            side.tag(),
            gap.as_millis(),
            down.as_millis()
        ));
    }
    Ok(())
}

/// Crash loop during an initial sync: A holds the data, B is empty.
pub(crate) fn crash_initial(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    let (files, big) = (ctx.plan.initial_files, ctx.plan.initial_big);
    let bytes = populate(ctx, pair, Side::A, "init", files, big)?;
    progress(&format!(
        "crash-initial: {} files, {:.1} MB on a; starting both daemons",
        files + big,
        bytes as f64 / 1e6
    ));
    pair.start()?;
    let kills = ctx.plan.kills_initial;
    kill_loop(ctx, pair, "crash-initial", kills, (50, 2500))?;
    verify(ctx, pair, "crash-initial")
}

/// Crash loop during a stream of edits on both sides (each in its own namespace).
pub(crate) fn crash_edits(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    let total = ctx.plan.kills_edits;
    let per_round = ctx.plan.kills_per_round.clamp(1, total.max(1));
    let rounds = total.div_ceil(per_round);
    for round in 1..=rounds {
        let kills = per_round.min(total - (round - 1) * per_round);
        let w = ctx.workload(0xED17 + round);
        let targets = vec![
            (target(pair, Side::A), "a".to_string()),
            (target(pair, Side::B), "b".to_string()),
        ];
        let stream = Stream::start(w, targets, (10, 120), ctx.oracle.clone());
        let phase = format!("crash-edits {round}/{rounds}");
        let r = kill_loop(ctx, pair, &phase, kills, (50, 2500));
        let (ops, errors) = stream.finish();
        r?;
        progress(&format!(
            "{phase}: {ops} edits made during the kills ({} workload errors)",
            errors.len()
        ));
        for e in errors.iter().take(3) {
            progress(&format!("{phase}: workload error: {e}"));
        }
        verify(ctx, pair, &phase)?;
    }
    Ok(())
}

/// Network faults through the proxy during edits and large transfers.
pub(crate) fn network(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    let w = ctx.workload(0x4E7);
    let targets = vec![
        (target(pair, Side::A), "na".to_string()),
        (target(pair, Side::B), "nb".to_string()),
    ];
    let stream = Stream::start(w, targets, (20, 150), ctx.oracle.clone());
    let mut big = ctx.workload(0xB16);
    let mut kinds: Vec<&'static str> = Vec::new();
    for _ in 0..ctx.plan.faults_each {
        kinds.extend(["cut", "stall", "delay", "truncate"]);
    }
    // Shuffle (Fisher-Yates with the run's RNG).
    for i in (1..kinds.len()).rev() {
        let j = ctx.rng.range(0, i as u64) as usize;
        kinds.swap(i, j);
    }
    let result = (|| -> Result<(), String> {
        for (i, kind) in kinds.iter().enumerate() {
            pair.alive()?;
            // A multi-MiB file in flight makes "mid-message" likely.
            let side = ctx.side();
            let size = ctx.rng.range(1 << 20, 3 << 20) as usize;
            big.create(&target(pair, side), "nbig", size, &ctx.oracle)?;
            std::thread::sleep(ctx.ms(100, 600));
            let proxy = pair.proxy.as_ref().ok_or("no proxy")?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while proxy.live() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let hit = match *kind {
                "cut" => proxy.cut() > 0,
                "stall" => {
                    let d = ctx.ms(2000, 6000);
                    let hit = proxy.stall(d) > 0;
                    std::thread::sleep(d);
                    hit
                }
                "delay" => {
                    let per = ctx.ms(20, 150);
                    let span = ctx.ms(2000, 4000);
                    let hit = proxy.delay(per, span) > 0;
                    std::thread::sleep(span);
                    hit
                }
                _ => proxy.truncate(Duration::from_secs(10)),
            };
            if hit {
                ctx.report.fault(kind);
            }
            progress(&format!(
                "network: fault {}/{} {kind}{} ({} connections so far, {:.1} MB forwarded)",
                i + 1,
                kinds.len(),
                if hit {
                    ""
                } else {
                    " MISSED (no live connection)"
                },
                proxy.accepted(),
                proxy.forwarded() as f64 / 1e6
            ));
            std::thread::sleep(ctx.ms(500, 2500));
        }
        Ok(())
    })();
    let (ops, errors) = stream.finish();
    result?;
    progress(&format!(
        "network: {ops} edits during the faults ({} workload errors)",
        errors.len()
    ));
    verify(ctx, pair, "network")
}

/// Partitions with concurrent edits, deletes and renames on both sides of one namespace.
pub(crate) fn partitions(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    populate(ctx, pair, Side::A, "shared", 24, 0)?;
    verify(ctx, pair, "partition-setup")?;
    for round in 1..=ctx.plan.partitions {
        let cut = pair.proxy.as_ref().ok_or("no proxy")?.partition();
        let deadline = Instant::now() + Duration::from_secs(30);
        while pair.b.connected_to(&pair.a.id).unwrap_or(true) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        ctx.report.fault("partition");
        progress(&format!(
            "partition {round}: cut {cut} connections; editing both sides for {}s",
            ctx.plan.partition_s
        ));
        let mut w = ctx.workload(0x9A27 + round);
        // Mostly overwrites of the shared files, so both sides often edit the same file.
        w.weights = [10, 60, 15, 15];
        let targets = vec![
            (target(pair, Side::A), "shared".to_string()),
            (target(pair, Side::B), "shared".to_string()),
        ];
        let stream = Stream::start(w, targets, (30, 200), ctx.oracle.clone());
        std::thread::sleep(Duration::from_secs(ctx.plan.partition_s));
        let (ops, errors) = stream.finish();
        pair.proxy.as_ref().ok_or("no proxy")?.heal();
        progress(&format!(
            "partition {round}: healed after {ops} edits ({} workload errors)",
            errors.len()
        ));
        verify(ctx, pair, &format!("partition {round}"))?;
    }
    Ok(())
}

/// Configuration churn: while both sides edit, settings change at random through the REST
/// API on either daemon, as a GUI or a script changes them on a running cluster (folder
/// watcher delay, rescan interval, permissions, conflicts kept, pause and resume, unshare and
/// share again, a PUT of the whole folder; device compression, pause and resume). Once the
/// churn stops (everything resumed and shared again), both sides must converge with every
/// version: on 82dc521 the first such change stopped sync for good.
pub(crate) fn churn(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    let w = ctx.workload(0xC4C4);
    let targets = vec![
        (target(pair, Side::A), "ca".to_string()),
        (target(pair, Side::B), "cb".to_string()),
    ];
    let stream = Stream::start(w, targets, (20, 150), ctx.oracle.clone());
    let folder = format!("/rest/config/folders/{}", crate::bench::daemon::FOLDER_ID);
    let t = Duration::from_secs(30);
    let mut applied = 0u64;
    let mut result = Ok(());
    let mut partitioned = false;
    for _ in 0..ctx.plan.churn_changes {
        let side = ctx.side();
        let peer = match side {
            Side::A => pair.b.id.clone(),
            Side::B | Side::C => pair.a.id.clone(),
        };
        let device = format!("/rest/config/devices/{peer}");
        // A partition/heal cycle runs under the churn: every few changes the link flips.
        if ctx.rng.range(0, 4) == 0 {
            let proxy = pair.proxy.as_ref().ok_or("no proxy")?;
            if partitioned {
                proxy.heal();
            } else {
                proxy.partition();
                ctx.report.fault("partition");
            }
            partitioned = !partitioned;
        }
        let pick = ctx.rng.range(0, 12);
        let value = ctx.rng.range(0, 2);
        let (what, method, path, body) = match pick {
            0 => {
                let s = ["0.05", "0.5", "2"][value as usize];
                (
                    "watcher delay",
                    "PATCH",
                    folder.clone(),
                    format!("{{\"fsWatcherDelayS\": {s}}}"),
                )
            }
            1 => {
                let s = [0, 60, 3600][value as usize];
                (
                    "rescan interval",
                    "PATCH",
                    folder.clone(),
                    format!("{{\"rescanIntervalS\": {s}}}"),
                )
            }
            2 => (
                "ignore perms",
                "PATCH",
                folder.clone(),
                format!("{{\"ignorePerms\": {}}}", value == 1),
            ),
            3 => {
                let n = [-1, 10, 20][value as usize];
                (
                    "max conflicts",
                    "PATCH",
                    folder.clone(),
                    format!("{{\"maxConflicts\": {n}}}"),
                )
            }
            4 => (
                "folder paused",
                "PATCH",
                folder.clone(),
                format!("{{\"paused\": {}}}", value == 0),
            ),
            5 => (
                "unshare",
                "PATCH",
                folder.clone(),
                "{\"devices\": []}".to_string(),
            ),
            6 => {
                let node = pair.node(side);
                let whole = node.get(&folder, t)?;
                ("whole folder", "PUT", folder.clone(), whole)
            }
            9 => {
                // Patterns that match nothing the workload writes (the rescan they cause is
                // the point); cleared when the churn stops.
                let p =
                    ["", "\"*.churn\"", "\"(?d)*.churn-tmp\", \"/nothing-here\""][value as usize];
                let path = format!(
                    "/rest/db/ignores?folder={}",
                    crate::bench::daemon::FOLDER_ID
                );
                (
                    "ignore patterns",
                    "POST",
                    path,
                    format!("{{\"ignore\": [{p}]}}"),
                )
            }
            10 => {
                // The peer's addresses: the one that works, plus an unreachable one or
                // `dynamic` (discovery is off, so it resolves to nothing).
                let node = pair.node(side);
                let now = node.get(&device, t)?;
                let working = first_address(&now).unwrap_or_else(|| "dynamic".to_string());
                let list = match value {
                    0 => format!("[\"{working}\"]"),
                    1 => format!("[\"{working}\", \"tcp://127.0.0.1:9\"]"),
                    _ => format!("[\"dynamic\", \"{working}\"]"),
                };
                (
                    "addresses",
                    "PATCH",
                    device.clone(),
                    format!("{{\"addresses\": {list}}}"),
                )
            }
            11 => {
                // The whole configuration read and written back, as GUIs save it.
                let node = pair.node(side);
                let whole = node.get("/rest/config", t)?;
                ("whole config", "PUT", "/rest/config".to_string(), whole)
            }
            7 => {
                let c = ["metadata", "always", "never"][value as usize];
                (
                    "compression",
                    "PATCH",
                    device.clone(),
                    format!("{{\"compression\": \"{c}\"}}"),
                )
            }
            _ => (
                "device paused",
                "PATCH",
                device.clone(),
                format!("{{\"paused\": {}}}", value == 0),
            ),
        };
        let node = pair.node(side);
        match node.rest.send_json(method, &path, &body, t) {
            Ok(_) => {}
            // An endpoint an older syncd does not have (a partial run against an old binary,
            // `--only churn --syncd OLD`): that kind of change is skipped, and a full run
            // fails on any such skip.
            Err(syncd_testkit::RestError::Status {
                status: 404 | 405, ..
            }) if ctx.partial => {
                progress(&format!(
                    "churn: {what}: {method} {path} is not offered by this syncd (404 or 405): skipped"
                ));
                continue;
            }
            Err(e) => {
                result = Err(format!("churn: {what} on {side:?}: {e}"));
                break;
            }
        }
        applied += 1;
        if what == "unshare" {
            // Shared again a moment later, as a user who unticked the wrong box.
            std::thread::sleep(Duration::from_millis(300));
            let reshare = format!("{{\"devices\": [{{\"deviceID\": \"{peer}\"}}]}}");
            if let Err(e) = node.rest.send_json("PATCH", &folder, &reshare, t) {
                result = Err(format!("churn: share again on {side:?}: {e}"));
                break;
            }
            applied += 1;
        }
        std::thread::sleep(ctx.ms(100, 800));
    }
    // The churn stops: the link healed, everything resumed and shared, no ignore patterns,
    // as a user leaves it.
    if partitioned {
        pair.proxy.as_ref().ok_or("no proxy")?.heal();
    }
    for side in [Side::A, Side::B] {
        let path = format!(
            "/rest/db/ignores?folder={}",
            crate::bench::daemon::FOLDER_ID
        );
        match pair
            .node(side)
            .rest
            .send_json("POST", &path, "{\"ignore\": []}", t)
        {
            Ok(_) => {}
            Err(syncd_testkit::RestError::Status {
                status: 404 | 405, ..
            }) if ctx.partial => {}
            Err(e) => result = result.and(Err(format!("churn: clearing ignores on {side:?}: {e}"))),
        }
    }
    for side in [Side::A, Side::B] {
        let peer = match side {
            Side::A => pair.b.id.clone(),
            Side::B | Side::C => pair.a.id.clone(),
        };
        let node = pair.node(side);
        let resume = [
            (
                folder.clone(),
                format!("{{\"paused\": false, \"devices\": [{{\"deviceID\": \"{peer}\"}}]}}"),
            ),
            (
                format!("/rest/config/devices/{peer}"),
                "{\"paused\": false}".to_string(),
            ),
        ];
        for (path, body) in resume {
            if let Err(e) = node.rest.send_json("PATCH", &path, &body, t) {
                result = result.and(Err(format!("churn: resuming on {side:?}: {e}")));
            }
        }
    }
    // Once reconnected, one more folder setting on each side, and edits after it: a change
    // that silently stopped sync would leave these behind (the verify below never converges).
    std::thread::sleep(Duration::from_secs(2));
    for side in [Side::A, Side::B] {
        let node = pair.node(side);
        let last = "{\"fsWatcherDelayS\": 0.1}";
        match node.rest.send_json("PATCH", &folder, last, t) {
            Ok(_) => applied += 1,
            Err(e) => result = result.and(Err(format!("churn: last change on {side:?}: {e}"))),
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let (ops, errors) = stream.finish();
    ctx.report.config_changes += applied;
    progress(&format!(
        "churn: {applied} settings changes applied during {ops} edits ({} workload errors)",
        errors.len()
    ));
    result?;
    verify(ctx, pair, "churn")
}

/// The first entry of a device object's `addresses` (the JSON the REST API returns).
fn first_address(device_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(device_json).ok()?;
    v.get("addresses")?
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| *a != "dynamic")
        .map(str::to_string)
}

/// Every regular file's hash under `dir`, recursively (a missing `dir` holds none).
fn hashes_under(dir: &Path) -> std::collections::HashSet<oracle::Hash> {
    let mut out = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => {
                    if let Ok(h) = oracle::hash_file(&e.path()) {
                        out.insert(h);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// File versioning on both sides (issue 30). In rounds, one side overwrites and deletes
/// files that both sides hold while the other side is SIGKILLed once; after each
/// convergence (the oracle's checks), every version that was live on both sides and is now
/// replaced or deleted must be in `.stversions` on the side that lost it (the receiving
/// side): nothing vanishes. `.stversions` is never part of the compared trees, so a version
/// that was synced or scanned would show up as a difference or a foreign file.
pub(crate) fn versioning(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    const NS: &str = "ver";
    let folder = format!("/rest/config/folders/{}", crate::bench::daemon::FOLDER_ID);
    let on = r#"{"versioning": {"type": "simple", "params": {"keep": "1000"}, "cleanupIntervalS": 0, "fsPath": "", "fsType": "basic"}}"#;
    let t = Duration::from_secs(30);
    for side in [Side::A, Side::B] {
        pair.node(side)
            .rest
            .send_json("PATCH", &folder, on, t)
            .map_err(|e| format!("turning versioning on on {side:?}: {e}"))?;
        ctx.report.config_changes += 1;
    }
    let (files, rounds) = if ctx.plan.name == "short" {
        (40, 3)
    } else {
        (120, 10)
    };
    let a = target(pair, Side::A);
    let mut w = ctx.workload(0x5E75);
    w.dirs = 3;
    for _ in 0..files {
        let size = ctx.rng.range(100, 64 * 1024) as usize;
        w.create(&a, NS, size, &ctx.oracle)?;
    }
    verify(ctx, pair, "versioning: setup")?;
    let (mut kept, mut lost) = (0u64, 0u64);
    for round in 1..=rounds {
        let live = oracle::scan_tree(&a.folder)?.files;
        let side = ctx.side();
        let other = match side {
            Side::A => Side::B,
            Side::B | Side::C => Side::A,
        };
        let t = target(pair, side);
        let mut changed = Vec::new();
        let own = workload::own_files(&t.folder, NS);
        for (i, rel) in own.iter().cloned().enumerate() {
            // About a third of the files, and at least one.
            let last_chance = i + 1 == own.len() && changed.is_empty();
            if ctx.rng.range(0, 2) != 0 && !last_chance {
                continue;
            }
            if ctx.rng.range(0, 3) == 0 {
                fs::remove_file(t.folder.join(&rel)).map_err(|e| format!("delete {rel}: {e}"))?;
                workload::lock(&ctx.oracle).deleted(side, &rel);
            } else {
                let seq = ctx.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let size = ctx.rng.range(100, 64 * 1024) as usize;
                let data = workload::content(&mut ctx.rng, side, seq, size);
                workload::write(&t, &rel, &data, seq, &ctx.oracle)?;
            }
            changed.push(rel);
        }
        let phase = format!("versioning {round}/{rounds}");
        std::thread::sleep(ctx.ms(20, 400));
        let down = ctx.ms(0, 300);
        if pair.kill_and_restart(other, down)? {
            ctx.report.kills += 1;
        }
        progress(&format!(
            "{phase}: {} files replaced or deleted on {}, {} SIGKILLed",
            changed.len(),
            side.tag(),
            other.tag()
        ));
        verify(ctx, pair, &phase)?;
        let versions = hashes_under(&pair.dirs(other).0.join(".stversions"));
        for rel in &changed {
            let Some(old) = live.get(rel) else { continue };
            if versions.contains(old) {
                kept += 1;
            } else {
                lost += 1;
                progress(&format!(
                    "{phase}: LOST {rel} ({}): not in {}'s .stversions",
                    oracle::short(old),
                    other.tag()
                ));
            }
        }
    }
    progress(&format!(
        "versioning: {kept} replaced or deleted versions kept in .stversions on the side that lost them, {lost} missing"
    ));
    ctx.report.files_lost += lost;
    if lost > 0 {
        ctx.report.fail(format!(
            "versioning: {lost} replaced or deleted versions were not kept"
        ));
    }
    Ok(())
}

/// Disk full on the receiving side: a tmpfs holds B's folder.
pub(crate) fn disk_full(ctx: &mut Ctx, bin: &Path, scratch: &Path) -> Result<(), String> {
    let mnt = scratch.join("tmpfs");
    let fs_guard = match Tmpfs::mount(&mnt, 64) {
        Ok(m) => m,
        Err(why) => {
            let msg = format!("SKIPPED disk-full: {why}");
            println!("!!!!!!!! {msg} !!!!!!!!");
            ctx.report.skipped.push(msg);
            return Ok(());
        }
    };
    let homes =
        Scratch::under(scratch, "diskfull-homes", false).map_err(|e| format!("scratch: {e}"))?;
    let folder_a = scratch.join("diskfull-a/folder");
    let folder_b = fs_guard.path().join("folder");
    let mut pair = Pair::create(
        bin,
        homes.path(),
        &folder_a,
        &folder_b,
        false,
        ctx.seed ^ 0xD15C,
    )?;
    let before = populate(ctx, &pair, Side::A, "kept", 16, 0)?;
    pair.start()?;
    let c = pair.converge(ctx.plan.converge_timeout)?;
    let kept: Vec<(String, oracle::Hash)> =
        c.tree.files.iter().map(|(p, h)| (p.clone(), *h)).collect();
    workload::lock(&ctx.oracle).checkpoint();
    progress(&format!(
        "disk-full: {} files ({:.1} MB) synced onto a 64 MiB tmpfs; filling it",
        kept.len(),
        before as f64 / 1e6
    ));
    // Fill the tmpfs to the brim, then leave 4 MiB.
    let filler = fs_guard.path().join("filler");
    let mut f = fs::File::create(&filler).map_err(|e| format!("filler: {e}"))?;
    let chunk = vec![0x5Au8; 1 << 20];
    let mut filled = 0u64;
    while f.write_all(&chunk).is_ok() {
        filled += 1 << 20;
    }
    let _ = f.flush();
    f.set_len(filled.saturating_sub(4 << 20))
        .map_err(|e| format!("filler: {e}"))?;
    drop(f);
    let mut w = ctx.workload(0xF011);
    let ta = target(&pair, Side::A);
    for _ in 0..6 {
        let size = ctx.rng.range(3 << 20, 4 << 20) as usize;
        w.create(&ta, "more", size, &ctx.oracle)?;
    }
    progress("disk-full: 6 files of 3-4 MiB written on a; waiting for b to report the failure");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut message = None;
    while Instant::now() < deadline && message.is_none() {
        pair.alive()?;
        let st = pair.b.db_status()?;
        let errs = st.num("pullErrors").unwrap_or(0.0);
        let state = st.str("state").unwrap_or("?").to_string();
        if errs > 0.0 || state == "error" {
            let listed = pair
                .b
                .rest
                .get("/rest/folder/errors?folder=bench", Duration::from_secs(10))
                .unwrap_or_default();
            message = Some(format!(
                "state {state:?}, pullErrors {errs}, error {:?}, /rest/folder/errors {}",
                st.str("error").unwrap_or(""),
                listed.chars().take(300).collect::<String>()
            ));
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let result = (|| -> Result<(), String> {
        let Some(message) = message else {
            return Err("disk-full: b never reported an error while its disk was full".into());
        };
        ctx.report.fault("disk-full");
        progress(&format!("disk-full: b reports {message}"));
        if !message.to_lowercase().contains("space") {
            ctx.report.fail(format!(
                "disk-full: the error does not say the disk is full: {message}"
            ));
        }
        let mut damaged = 0;
        for (p, h) in &kept {
            match oracle::hash_file(&folder_b.join(p)) {
                Ok(now) if now == *h => {}
                _ => {
                    damaged += 1;
                    progress(&format!(
                        "disk-full: LOST {p} was damaged while the disk was full"
                    ));
                }
            }
        }
        ctx.report.files_lost += damaged;
        if damaged > 0 {
            ctx.report.fail(format!(
                "disk-full: {damaged} previously synced files damaged"
            ));
        }
        fs::remove_file(&filler).map_err(|e| format!("filler: {e}"))?;
        progress("disk-full: space freed; waiting for sync to resume by itself");
        Ok(())
    })();
    result?;
    verify(ctx, &mut pair, "disk-full")?;
    drop(pair);
    drop(fs_guard);
    Ok(())
}

/// The hostile-peer suite (`crates/syncd/tests/hostile.rs`), run through nextest.
pub(crate) fn hostile(ctx: &mut Ctx, root: &Path) -> Result<(), String> {
    if !root.join("crates/syncd/tests/hostile.rs").is_file() {
        progress(
            "hostile: crates/syncd/tests/hostile.rs does not exist yet: hostile_inputs=0 (not counted as a failure)",
        );
        return Ok(());
    }
    progress("hostile: cargo nextest run --workspace --locked --no-capture -E 'binary(hostile)'");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Output goes to a file (no pipe to drain while waiting); the run gets its own process
    // group so that a hung suite is killed with everything it started, by that group's id.
    let log =
        std::env::temp_dir().join(format!("syncd-torture-hostile-{}.log", std::process::id()));
    let file = fs::File::create(&log).map_err(|e| format!("hostile: {}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| format!("hostile: {e}"))?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(cargo);
        // `cargo xtask` runs us through `cargo run`, which sets CARGO_PKG_*, CARGO_MANIFEST_*
        // and friends; inherited by the nested cargo they change build-script fingerprints and
        // made it rebuild ring, rustls and syncd in the middle of a run. Start it clean.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            let keep = matches!(
                k.as_ref(),
                "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_TERM_COLOR"
            ) || !k.starts_with("CARGO_");
            if !keep {
                cmd.env_remove(&key);
            }
        }
        cmd.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-capture",
            "-E",
            "binary(hostile)",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(file2))
        .process_group(0)
        .spawn()
        .map_err(|e| format!("hostile: cannot run cargo nextest: {e}"))?
    };
    let deadline = Instant::now() + ctx.plan.hostile_timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            _ => {
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = fs::read_to_string(&log).unwrap_or_default();
    // The whole log stays on disk when the suite failed: the tail below rarely holds the
    // panic message, which nextest prints before its summary.
    let failed = !matches!(status, Some(st) if st.success());
    if failed {
        progress(&format!("hostile: full output kept in {}", log.display()));
    } else {
        let _ = fs::remove_file(&log);
    }
    let Some(status) = status else {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        ctx.report.fail(format!(
            "hostile: the suite did not finish within {:?} and was killed:\n{}",
            ctx.plan.hostile_timeout,
            tail.join("\n")
        ));
        return Ok(());
    };
    let summary = hostile_summary(&text);
    if !status.success() {
        let panics = text
            .lines()
            .filter(|l| l.contains("panicked at") || l.starts_with("HOSTILE CASE"))
            .map(str::to_string);
        let tail: Vec<String> = text.lines().rev().take(15).map(str::to_string).collect();
        let tail: Vec<String> = panics.chain(tail.into_iter().rev()).collect();
        ctx.report.fail(format!(
            "hostile: the suite failed ({status}):\n{}",
            tail.join("\n")
        ));
    }
    let Some(summary) = summary else {
        ctx.report
            .fail("hostile: the suite printed no `HOSTILE SUMMARY` line".to_string());
        return Ok(());
    };
    progress(&format!(
        "hostile: HOSTILE SUMMARY inputs={} violations_logged={} files_outside_touched={} daemon_crashes={}",
        summary.inputs, summary.logged, summary.touched, summary.crashes
    ));
    ctx.report.hostile_inputs = summary.inputs;
    if summary.touched > 0 || summary.crashes > 0 {
        ctx.report.fail(format!(
            "hostile: {} files outside the folder touched, {} daemon crashes",
            summary.touched, summary.crashes
        ));
    }
    Ok(())
}

/// The hostile suite's closing line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostileSummary {
    /// Hostile inputs tried.
    pub inputs: u64,
    /// Violations the daemon logged.
    pub logged: u64,
    /// Files outside the folder read or written.
    pub touched: u64,
    /// Times the daemon died.
    pub crashes: u64,
}

/// Finds and parses the last `HOSTILE SUMMARY inputs=N violations_logged=M
/// files_outside_touched=K daemon_crashes=C` line (all four fields required).
pub(crate) fn hostile_summary(text: &str) -> Option<HostileSummary> {
    let line = text.lines().rev().find_map(|l| {
        l.find("HOSTILE SUMMARY")
            .and_then(|i| l.get(i + "HOSTILE SUMMARY".len()..))
    })?;
    let field = |k: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
    };
    Some(HostileSummary {
        inputs: field("inputs")?,
        logged: field("violations_logged")?,
        touched: field("files_outside_touched")?,
        crashes: field("daemon_crashes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hostile_summary_is_read_from_the_last_matching_line() {
        let out = "running 3 tests\ncase x ok\nHOSTILE SUMMARY inputs=1 violations_logged=1 files_outside_touched=0 daemon_crashes=0\n\
                   HOSTILE SUMMARY inputs=31 violations_logged=29 files_outside_touched=0 daemon_crashes=2\ntest result: ok";
        assert_eq!(
            hostile_summary(out),
            Some(HostileSummary {
                inputs: 31,
                logged: 29,
                touched: 0,
                crashes: 2
            })
        );
    }

    #[test]
    fn a_summary_missing_a_field_is_no_summary() {
        assert_eq!(
            hostile_summary("HOSTILE SUMMARY inputs=3 violations_logged=3"),
            None
        );
        assert_eq!(hostile_summary("nothing here"), None);
    }
}

/// How [`index_damage`] damages an index while its daemon is down.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut to half its length.
    Truncate,
    /// Eight 4 KiB pages in the middle overwritten with random bytes.
    Garbage,
    /// Deleted.
    Delete,
}

/// Damages `index` as `how` says.
fn damage(index: &Path, how: Damage, rng: &mut Rng) -> Result<(), String> {
    let err = |e: std::io::Error| format!("damaging {}: {e}", index.display());
    match how {
        Damage::Truncate => {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(index)
                .map_err(err)?;
            let len = f.metadata().map_err(err)?.len();
            f.set_len(len / 2).map_err(err)?;
            f.sync_all().map_err(err)
        }
        Damage::Garbage => {
            use std::io::{Seek, SeekFrom};
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(index)
                .map_err(err)?;
            let len = f.metadata().map_err(err)?.len();
            let start = (len / 2) & !4095;
            f.seek(SeekFrom::Start(start)).map_err(err)?;
            let garbage: Vec<u8> = (0..8 * 4096).map(|_| rng.range(0, 255) as u8).collect();
            f.write_all(&garbage).map_err(err)?;
            f.sync_all().map_err(err)
        }
        Damage::Delete => fs::remove_file(index).map_err(err),
    }
}

/// The index file under a daemon's home (found, not assumed: the engine names it).
fn index_file(home: &Path) -> Result<std::path::PathBuf, String> {
    let mut stack = vec![home.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() == "index-v1.redb" {
                return Ok(p);
            }
        }
    }
    Err(format!("no index-v1.redb under {}", home.display()))
}

/// Files named `index-v1.redb.damaged-*` (the engine's moved-aside copies) under `home`.
fn damaged_copies(home: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![home.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().contains(".damaged-") {
                n += 1;
            }
        }
    }
    n
}

/// A damaged index (issue 33): a daemon is SIGKILLed, its index truncated, overwritten with
/// garbage pages or deleted, and while it is down its user overwrites files both sides hold
/// and creates new ones. It must start, say that it rebuilds (a damaged file is moved aside),
/// and lose nothing: the edits made while the index was damaged are not overwritten by the
/// peer's older versions (the oracle: each survives as the file or a conflict copy).
pub(crate) fn index_damage(ctx: &mut Ctx, pair: &mut Pair) -> Result<(), String> {
    const NS: &str = "dmg";
    populate(ctx, pair, Side::A, NS, 30, 0)?;
    verify(ctx, pair, "index-damage-setup")?;
    let kinds = [Damage::Truncate, Damage::Garbage, Damage::Delete];
    for round in 0..ctx.plan.index_damages {
        let how = kinds[(round % 3) as usize];
        let side = ctx.side();
        let phase = format!("index-damage {}/{}", round + 1, ctx.plan.index_damages);
        let node = pair.node(side);
        if node.kill9() {
            ctx.report.kills += 1;
        }
        let index = index_file(&node.home)?;
        let before = damaged_copies(&node.home);
        damage(&index, how, &mut ctx.rng)?;
        // The user goes on working while the daemon is down: overwrites (of files the peer
        // holds too) and new files, no deletes (a delete the rebuilt index never saw comes
        // back from the peer, which loses nothing).
        let mut w = ctx.workload(0xDA3A + round);
        w.weights = [30, 70, 0, 0];
        w.big_one_in = 0;
        let t = target(pair, side);
        let edits = 12;
        for _ in 0..edits {
            w.step(&t, NS, &ctx.oracle)?;
        }
        let node = pair.node(side);
        node.start()?;
        node.wait_rest(Duration::from_secs(60)).map_err(|e| {
            format!(
                "{phase}: daemon {} did not start over a {how:?} index: {e}\n{}",
                side.tag(),
                node.log_tail(12)
            )
        })?;
        let after = damaged_copies(&node.home);
        // A truncated file is always found; garbage may land on free pages, which redb
        // never reads (then there is nothing to rebuild, and the oracle still checks).
        let aside = after == before + 1;
        if matches!(how, Damage::Truncate) && !aside {
            ctx.report.fail(format!(
                "{phase}: the truncated index was not moved aside ({before} -> {after} copies)"
            ));
        }
        ctx.report.index_damages += 1;
        progress(&format!(
            "{phase}: {how:?} index on {}{}, {edits} edits while it was down, restarted",
            side.tag(),
            if aside {
                " (found and moved aside)"
            } else {
                ""
            }
        ));
        verify(ctx, pair, &phase)?;
    }
    Ok(())
}
