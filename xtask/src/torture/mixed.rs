//! The mixed cluster (issue 33): two syncd daemons and a stock Syncthing 1.19.2 share one
//! folder, all three dial or are dialled by each other, all three edit, and all three are
//! SIGKILLed and restarted at random moments, Syncthing included. After each round all three
//! must converge to one tree that the oracle accepts, and Syncthing's log must show no
//! protocol error about a syncd peer.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::oracle::{self, Side, Tree};
use super::phases::Ctx;
use super::workload::{self, Stream, Target};
use super::{cluster, progress};
use crate::bench::daemon::{FOLDER_ID, Kind, Node};
use crate::bench::json::{Json, Members};

/// The three daemons: A and B are syncd, C is Syncthing.
struct Trio {
    nodes: [Node; 3],
    stages: [PathBuf; 3],
}

const SIDES: [Side; 3] = [Side::A, Side::B, Side::C];

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
        Side::C => 2,
    }
}

/// Lines of a Syncthing log that speak of a broken protocol exchange with a peer.
fn protocol_errors(log: &str) -> Vec<String> {
    const SIGNS: [&str; 6] = [
        "protocol error",
        "unmarshal",
        "invalid message",
        "unknown message",
        "panic:",
        "hash mismatch",
    ];
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            SIGNS.iter().any(|s| l.contains(s))
        })
        .map(str::to_string)
        .collect()
}

fn num(j: &Json, k: &str) -> f64 {
    j.num(k).unwrap_or(-1.0)
}

impl Trio {
    fn create(ctx: &Ctx, bin: &Path, st: &Path, dir: &Path) -> Result<Trio, String> {
        let mk = |kind, b: &Path, tag: &str, seed| {
            Node::create(
                kind,
                b,
                &dir.join(format!("homes/{tag}")),
                &dir.join(format!("{tag}/folder")),
                seed,
            )
        };
        let mut a = mk(Kind::Syncd, bin, "a", ctx.seed ^ 0xA)?;
        let mut b = mk(Kind::Syncd, bin, "b", ctx.seed ^ 0xB)?;
        let mut c = mk(Kind::Syncthing, st, "c", ctx.seed ^ 0xC)?;
        // B and C dial A; B dials C (each pair has one dialler). The third device of each is
        // added through the REST API once they run, as a user adds a device to a cluster.
        a.introduce(&b.id.clone(), b.listen_port, false, 1)?;
        b.introduce(&a.id.clone(), a.listen_port, true, 1)?;
        c.introduce(&a.id.clone(), a.listen_port, true, 1)?;
        let mut stages = Vec::new();
        for tag in ["a", "b", "c"] {
            let p = dir.join(format!("{tag}/stage"));
            fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            stages.push(p);
        }
        let stages: [PathBuf; 3] = stages.try_into().map_err(|_| "three stages")?;
        Ok(Trio {
            nodes: [a, b, c],
            stages,
        })
    }

    fn target(&self, side: Side) -> Target {
        Target {
            side,
            folder: self.nodes[idx(side)].folder.clone(),
            stage: self.stages[idx(side)].clone(),
        }
    }

    fn start(&mut self, side: Side) -> Result<(), String> {
        let n = &mut self.nodes[idx(side)];
        n.start()?;
        n.wait_rest(Duration::from_secs(60))
            .map_err(|e| format!("{} did not come up: {e}\n{}", side.tag(), n.log_tail(12)))
    }

    /// Adds each node's missing third device and shares the folder with it.
    fn complete_mesh(&mut self) -> Result<(), String> {
        let ids: Vec<String> = self.nodes.iter().map(|n| n.id.clone()).collect();
        let t = Duration::from_secs(30);
        // (node, the device it lacks, the address it dials it at)
        let c_addr = format!("tcp://127.0.0.1:{}", self.nodes[2].listen_port);
        let plan = [
            (0, 2, "dynamic".to_string()),
            (1, 2, c_addr),
            (2, 1, "dynamic".to_string()),
        ];
        for (at, add, addr) in plan {
            let device = format!(
                r#"{{"deviceID": "{}", "name": "{}", "addresses": ["{addr}"], "compression": "metadata", "introducer": false, "paused": false, "autoAcceptFolders": false}}"#,
                ids[add],
                SIDES[add].tag()
            );
            let node = &self.nodes[at];
            node.rest
                .send_json(
                    "PUT",
                    &format!("/rest/config/devices/{}", ids[add]),
                    &device,
                    t,
                )
                .map_err(|e| format!("adding {} on {}: {e}", SIDES[add].tag(), SIDES[at].tag()))?;
            let others: Vec<String> = (0..3)
                .filter(|i| *i != at)
                .map(|i| format!(r#"{{"deviceID": "{}"}}"#, ids[i]))
                .collect();
            let share = format!(r#"{{"devices": [{}]}}"#, others.join(", "));
            node.rest
                .send_json(
                    "PATCH",
                    &format!("/rest/config/folders/{FOLDER_ID}"),
                    &share,
                    t,
                )
                .map_err(|e| {
                    format!(
                        "sharing with {} on {}: {e}",
                        SIDES[add].tag(),
                        SIDES[at].tag()
                    )
                })?;
        }
        Ok(())
    }

    /// Every node's sequence when all three are connected to both others, idle, need nothing
    /// and agree on the global file count; else `None` with what is missing.
    fn settled(&self) -> Result<Result<Vec<f64>, String>, String> {
        let mut seqs = Vec::new();
        let mut global = None;
        for (i, n) in self.nodes.iter().enumerate() {
            for (j, peer) in self.nodes.iter().enumerate() {
                if i != j && !n.connected_to(&peer.id)? {
                    return Ok(Err(format!(
                        "{} not connected to {}",
                        SIDES[i].tag(),
                        SIDES[j].tag()
                    )));
                }
            }
            let s = n.db_status()?;
            let done = num(&s, "needTotalItems") == 0.0
                && s.str("state") == Some("idle")
                && num(&s, "localFiles") == num(&s, "globalFiles")
                && num(&s, "pullErrors") <= 0.0;
            if !done {
                return Ok(Err(format!(
                    "{}: {} need {} local {} global {} errors {}",
                    SIDES[i].tag(),
                    s.str("state").unwrap_or("?"),
                    num(&s, "needTotalItems"),
                    num(&s, "localFiles"),
                    num(&s, "globalFiles"),
                    num(&s, "pullErrors")
                )));
            }
            let g = num(&s, "globalFiles");
            if *global.get_or_insert(g) != g {
                return Ok(Err("global file counts differ".into()));
            }
            seqs.push(num(&s, "sequence"));
        }
        Ok(Ok(seqs))
    }

    /// Waits until all three agree: settled, the three trees hash-equal, and no sequence
    /// moved while the trees were compared.
    fn converge(&mut self, timeout: Duration) -> Result<(Tree, Duration), String> {
        let t0 = Instant::now();
        loop {
            for (i, n) in self.nodes.iter_mut().enumerate() {
                n.check_alive()
                    .map_err(|e| format!("{}: {e}", SIDES[i].tag()))?;
            }
            let last = match self.settled()? {
                Ok(seqs) => {
                    let trees: Vec<Tree> = self
                        .nodes
                        .iter()
                        .map(|n| oracle::scan_tree(&n.folder))
                        .collect::<Result<_, _>>()?;
                    let again = self.settled()?.ok();
                    if trees[0].files == trees[1].files
                        && trees[1].files == trees[2].files
                        && again.as_ref() == Some(&seqs)
                    {
                        let tree = trees.into_iter().next().unwrap_or_default();
                        return Ok((tree, t0.elapsed()));
                    }
                    format!(
                        "a/b: {}; a/c: {}",
                        cluster::tree_diff(&trees[0], &trees[1]),
                        cluster::tree_diff(&trees[0], &trees[2])
                    )
                }
                Err(why) => why,
            };
            if t0.elapsed() > timeout {
                return Err(format!(
                    "the mixed cluster did not converge in {timeout:?}: {last}\n--- c (Syncthing) log:\n{}",
                    self.nodes[2].log_tail(15)
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Converges and checks the tree against the oracle.
fn verify(ctx: &mut Ctx, trio: &mut Trio, phase: &str) -> Result<(), String> {
    let (tree, took) = trio.converge(ctx.plan.converge_timeout)?;
    let findings = workload::lock(&ctx.oracle).check(&tree);
    progress(&format!(
        "{phase}: all three converged in {:.1}s: {} files, {} conflict copies",
        took.as_secs_f64(),
        tree.files.len(),
        tree.conflict_copies()
    ));
    super::phases::record_findings(ctx, phase, &findings);
    workload::lock(&ctx.oracle).checkpoint();
    Ok(())
}

/// The mixed-cluster phase. `st` is the Syncthing binary.
pub(crate) fn mixed(ctx: &mut Ctx, bin: &Path, st: &Path, scratch: &Path) -> Result<(), String> {
    let dir = scratch.join("mixed");
    let mut trio = Trio::create(ctx, bin, st, &dir)?;
    for side in SIDES {
        trio.start(side)?;
    }
    trio.complete_mesh()?;
    ctx.report.config_changes += 6;
    // A seeds the folder; all three must hold it.
    let t = trio.target(Side::A);
    let mut w = ctx.workload(0x3A1);
    w.big_one_in = 0;
    for _ in 0..30 {
        let size = ctx.rng.range(0, 64 * 1024) as usize;
        w.create(&t, "m0", size, &ctx.oracle)?;
    }
    verify(ctx, &mut trio, "mixed-setup")?;
    let rounds = ctx.plan.mixed_rounds;
    for round in 1..=rounds {
        let phase = format!("mixed {round}/{rounds}");
        let mut w = ctx.workload(0x3A2 + round);
        w.big_one_in = 60;
        let targets = SIDES
            .iter()
            .map(|s| (trio.target(*s), format!("m{}", s.tag())))
            .collect();
        let stream = Stream::start(w, targets, (20, 150), ctx.oracle.clone());
        let mut killed = [0u64; 3];
        let r = (|| -> Result<(), String> {
            for k in 1..=ctx.plan.mixed_kills {
                std::thread::sleep(ctx.ms(300, 2500));
                // Syncthing every third kill, so it is always among the victims.
                let side = if k % 3 == 0 { Side::C } else { ctx.side() };
                let n = &mut trio.nodes[idx(side)];
                if n.kill9() {
                    ctx.report.kills += 1;
                    killed[idx(side)] += 1;
                }
                std::thread::sleep(ctx.ms(0, 700));
                trio.start(side)?;
                progress(&format!("{phase}: SIGKILL {k} of {}", side.tag()));
            }
            Ok(())
        })();
        let (ops, errors) = stream.finish();
        r?;
        progress(&format!(
            "{phase}: {ops} edits on all three during {} kills of a, {} of b, {} of c (Syncthing) ({} workload errors)",
            killed[0],
            killed[1],
            killed[2],
            errors.len()
        ));
        verify(ctx, &mut trio, &phase)?;
    }
    let log = fs::read_to_string(trio.nodes[2].home.join("daemon.log")).unwrap_or_default();
    let bad = protocol_errors(&log);
    if bad.is_empty() {
        progress("mixed: Syncthing's log shows no protocol error");
    } else {
        for l in bad.iter().take(5) {
            progress(&format!("mixed: Syncthing log: {l}"));
        }
        ctx.report.fail(format!(
            "mixed: Syncthing's log has {} protocol error lines",
            bad.len()
        ));
    }
    ctx.report.mixed_rounds += rounds;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_are_found_in_a_syncthing_log() {
        let log = "2026/12/07 21:00:00 INFO: Established secure connection\n\
                   2026/12/07 21:00:01 INFO: Connection to X at 127.0.0.1 closed: protocol error: unknown message type\n\
                   2026/12/07 21:00:02 INFO: Completed initial scan";
        assert_eq!(protocol_errors(log).len(), 1);
        assert!(protocol_errors("all quiet\n").is_empty());
    }
}
