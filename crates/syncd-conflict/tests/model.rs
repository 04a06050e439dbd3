//! Model test: 2–4 simulated devices make random edits, deletes and renames, and exchange
//! announcements over links that partition and heal, in random orders. Each device keeps its
//! own record per path plus the last record announced by each peer, and "pulls" with
//! `select_global` + `resolve` exactly as the engine will. After every message is delivered
//! all devices must agree on every path, and no edit may be lost: every content ever written
//! is either the global content of some path (possibly a conflict copy) or was replaced by a
//! later edit or delete made by a device that had it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use syncd_conflict::*;
use syncd_types::FileKind;

const PATHS: [&str; 4] = ["a.txt", "b", "d/c.tar.gz", ".env"];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    version: VersionVector,
    deleted: bool,
    /// Which edit's content the file holds (0 for a tombstone).
    content: u64,
    mtime: i64,
    modified_by: ShortId,
    blocks: Vec<u8>,
    previous: Vec<u8>,
}

impl Rec {
    fn cand(&self, holder: DeviceId) -> Candidate<'_> {
        Candidate {
            device: holder,
            version: &self.version,
            invalid: false,
            deleted: self.deleted,
            kind: FileKind::File,
            modified_s: self.mtime,
            modified_ns: 0,
            modified_by: self.modified_by,
            blocks_hash: &self.blocks,
            previous_blocks_hash: &self.previous,
        }
    }
}

struct Device {
    id: DeviceId,
    skew: i64,
    local: BTreeMap<String, Rec>,
    /// Last record announced by each peer, by peer index.
    remote: Vec<BTreeMap<String, Rec>>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `backdate`: the new file carries an mtime older than the clock (a copied file that
    /// kept its mtime), which makes ranking by mtime disagree with vector order.
    Edit {
        dev: usize,
        path: usize,
        backdate: bool,
    },
    Delete {
        dev: usize,
        path: usize,
    },
    Rename {
        dev: usize,
        from: usize,
        to: usize,
    },
    Deliver {
        from: usize,
        to: usize,
        count: usize,
    },
    Toggle {
        a: usize,
        b: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..4;
    prop_oneof![
        4 => (i(), i(), prop::bool::weighted(0.2))
            .prop_map(|(dev, path, backdate)| Op::Edit { dev, path, backdate }),
        2 => (i(), i()).prop_map(|(dev, path)| Op::Delete { dev, path }),
        1 => (i(), i(), i()).prop_map(|(dev, from, to)| Op::Rename { dev, from, to }),
        5 => (i(), i(), 1usize..4).prop_map(|(from, to, count)| Op::Deliver { from, to, count }),
        1 => (i(), i()).prop_map(|(a, b)| Op::Toggle { a, b }),
    ]
}

struct World {
    rule: DeleteRule,
    devices: Vec<Device>,
    /// Per directed link, announcements in flight (FIFO, as over one BEP connection).
    queues: BTreeMap<(usize, usize), VecDeque<(String, Rec)>>,
    up: BTreeSet<(usize, usize)>,
    tick: i64,
    next_content: u64,
    written: BTreeSet<u64>,
    superseded: BTreeSet<u64>,
}

impl World {
    fn new(rule: DeleteRule, ids: &[u8], skews: &[i64]) -> Self {
        let n = ids.len();
        let devices = ids
            .iter()
            .zip(skews)
            .enumerate()
            .map(|(i, (&b, &skew))| {
                let mut bytes = [i as u8; 32];
                bytes[0] = b;
                Device {
                    id: DeviceId::from_bytes(bytes),
                    skew,
                    local: BTreeMap::new(),
                    remote: vec![BTreeMap::new(); n],
                }
            })
            .collect();
        let mut up = BTreeSet::new();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    up.insert((a, b));
                }
            }
        }
        World {
            rule,
            devices,
            queues: BTreeMap::new(),
            up,
            tick: 0,
            next_content: 1,
            written: BTreeSet::new(),
            superseded: BTreeSet::new(),
        }
    }

    /// Device `d`'s wall clock in unix seconds: skewed, strictly increasing per device, and
    /// never equal across devices (so two devices never resolve in the same second; equal
    /// names from different devices are Syncthing's one inherent collision).
    fn wall(&self, d: usize) -> i64 {
        1_700_000_000 + 10 * (self.tick + self.devices[d].skew) + d as i64
    }

    /// Device `d`'s file mtime: coarser than the clock, so concurrent edits tie often.
    fn mtime(&self, d: usize) -> i64 {
        1_000 + self.tick / 2 + self.devices[d].skew
    }

    fn now(&self, d: usize) -> u64 {
        u64::try_from(self.wall(d)).unwrap_or(0)
    }

    fn announce(&mut self, d: usize, path: &str) {
        let Some(rec) = self.devices[d].local.get(path).cloned() else {
            return;
        };
        for peer in 0..self.devices.len() {
            if peer != d {
                self.queues
                    .entry((d, peer))
                    .or_default()
                    .push_back((path.to_owned(), rec.clone()));
            }
        }
    }

    fn live(&self, d: usize, path: &str) -> Option<&Rec> {
        self.devices[d].local.get(path).filter(|r| !r.deleted)
    }

    fn write(&mut self, d: usize, path: &str, content: u64, previous: Vec<u8>, backdate: i64) {
        let short = self.devices[d].id.short();
        let base = self.devices[d]
            .local
            .get(path)
            .map(|r| r.version.clone())
            .unwrap_or_default();
        let rec = Rec {
            version: base.updated(short, self.now(d)),
            deleted: false,
            content,
            mtime: self.mtime(d) - backdate,
            modified_by: short,
            blocks: content.to_be_bytes().to_vec(),
            previous,
        };
        self.devices[d].local.insert(path.to_owned(), rec);
        self.announce(d, path);
    }

    fn delete(&mut self, d: usize, path: &str) {
        let short = self.devices[d].id.short();
        let (now, mtime) = (self.now(d), self.mtime(d));
        if let Some(rec) = self.devices[d].local.get_mut(path) {
            rec.version = rec.version.updated(short, now);
            rec.deleted = true;
            rec.content = 0;
            rec.mtime = mtime;
            rec.modified_by = short;
            rec.blocks.clear();
            rec.previous.clear();
        }
        self.announce(d, path);
    }

    fn apply(&mut self, op: Op) {
        self.tick += 1;
        let n = self.devices.len();
        match op {
            Op::Edit {
                dev,
                path,
                backdate,
            } => {
                let (d, path) = (dev % n, PATHS[path % PATHS.len()]);
                let previous = match self.live(d, path) {
                    Some(r) => {
                        let (c, b) = (r.content, r.blocks.clone());
                        self.superseded.insert(c);
                        b
                    }
                    None => Vec::new(),
                };
                let c = self.next_content;
                self.next_content += 1;
                self.written.insert(c);
                self.write(d, path, c, previous, if backdate { 7 } else { 0 });
            }
            Op::Delete { dev, path } => {
                let (d, path) = (dev % n, PATHS[path % PATHS.len()]);
                if let Some(c) = self.live(d, path).map(|r| r.content) {
                    self.superseded.insert(c);
                    self.delete(d, path);
                }
            }
            Op::Rename { dev, from, to } => {
                let d = dev % n;
                let (from, to) = (PATHS[from % PATHS.len()], PATHS[to % PATHS.len()]);
                if from == to || self.live(d, to).is_some() {
                    return;
                }
                if let Some(c) = self.live(d, from).map(|r| r.content) {
                    // A rename is a delete of the old name and a new file with the same
                    // content: the content is moved, not superseded.
                    self.delete(d, from);
                    self.write(d, to, c, Vec::new(), 0);
                }
            }
            Op::Deliver { from, to, count } => {
                let (from, to) = (from % n, to % n);
                if from != to && self.up.contains(&(from, to)) {
                    for _ in 0..count {
                        self.deliver_one(from, to);
                    }
                }
            }
            Op::Toggle { a, b } => {
                let (a, b) = (a % n, b % n);
                if a != b {
                    if self.up.contains(&(a, b)) {
                        self.up.remove(&(a, b));
                        self.up.remove(&(b, a));
                    } else {
                        self.up.insert((a, b));
                        self.up.insert((b, a));
                    }
                }
            }
        }
    }

    fn deliver_one(&mut self, from: usize, to: usize) -> bool {
        let Some((path, rec)) = self
            .queues
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return false;
        };
        self.tick += 1;
        self.devices[to].remote[from].insert(path.clone(), rec);
        self.pull(to, &path);
        true
    }

    /// The global record of `path` as device `d` sees it.
    fn global(&self, d: usize, path: &str) -> Option<Rec> {
        let dev = &self.devices[d];
        let mut rows: Vec<(DeviceId, &Rec)> = Vec::new();
        if let Some(r) = dev.local.get(path) {
            rows.push((dev.id, r));
        }
        for (peer, map) in dev.remote.iter().enumerate() {
            if let Some(r) = map.get(path) {
                rows.push((self.devices[peer].id, r));
            }
        }
        let cands: Vec<Candidate<'_>> = rows.iter().map(|(id, r)| r.cand(*id)).collect();
        select_global(&cands, self.rule).map(|g| rows[g].1.clone())
    }

    fn pull(&mut self, d: usize, path: &str) {
        let Some(global) = self.global(d, path) else {
            return;
        };
        let me = self.devices[d].id;
        let local = self.devices[d].local.get(path).cloned();
        let (short, now) = (self.devices[d].id.short(), self.now(d));
        let here = LocalContext {
            path,
            device: short,
            now_unix_secs: now,
            max_conflicts: MaxConflicts::Unlimited,
        };
        let res = resolve(
            local.as_ref().map(|r| r.cand(me)).as_ref(),
            &global.cand(DeviceId::EMPTY),
            &here,
        );
        let Resolution::TakeRemote {
            fate,
            adopt_version,
        } = res
        else {
            return;
        };
        let expect = match &local {
            Some(l) if l.version.compare(&global.version).is_concurrent() => {
                let same = (l.deleted && global.deleted)
                    || (!l.deleted && !global.deleted && l.content == global.content);
                let merged = global.version.merged(&l.version);
                if same {
                    merged
                } else {
                    merged.updated(short, now)
                }
            }
            _ => global.version.clone(),
        };
        assert_eq!(adopt_version, expect);
        match fate {
            LocalFate::ConflictCopy { winner_modified_by } => {
                assert_eq!(winner_modified_by, global.modified_by);
                let Some(local) = local else {
                    panic!("a conflict copy needs a local file")
                };
                let time = LocalTime::from_unix(self.wall(d), 0);
                let Some(name) = conflict_copy_name(path, winner_modified_by, time) else {
                    panic!("{path} is not a conflict copy")
                };
                assert!(
                    self.live(d, &name).is_none(),
                    "conflict copy name {name} already taken"
                );
                let base = self.devices[d]
                    .local
                    .get(&name)
                    .map(|r| r.version.clone())
                    .unwrap_or_default();
                let copy = Rec {
                    version: base.updated(short, self.now(d)),
                    deleted: false,
                    content: local.content,
                    mtime: local.mtime,
                    modified_by: short,
                    blocks: local.blocks.clone(),
                    previous: Vec::new(),
                };
                self.devices[d].local.insert(name.clone(), copy);
                self.announce(d, &name);
            }
            LocalFate::Discard { reason } => {
                // Never expected here: only the base paths are ever edited, so a conflict
                // copy has a single writer and cannot conflict. The loss check would also
                // catch the discarded content.
                panic!("{path}: discarded local content ({reason:?})");
            }
            _ => {}
        }
        let adopted = Rec {
            version: adopt_version,
            ..global
        };
        self.devices[d].local.insert(path.to_owned(), adopted);
        self.announce(d, path);
    }

    /// Heals every link and delivers until nothing is in flight.
    fn settle(&mut self) {
        let n = self.devices.len();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    self.up.insert((a, b));
                }
            }
        }
        for _round in 0..500 {
            let mut moved = false;
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        moved |= self.deliver_one(a, b);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("announcements never stopped: no convergence");
    }

    fn all_paths(&self) -> BTreeSet<String> {
        self.devices
            .iter()
            .flat_map(|d| d.local.keys().cloned())
            .collect()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let mut global_content: BTreeMap<String, u64> = BTreeMap::new();
        for path in self.all_paths() {
            let g0 = self.global(0, &path);
            for d in 0..self.devices.len() {
                let g = self.global(d, &path);
                prop_assert_eq!(&g, &g0, "device {} disagrees on the global of {}", d, path);
                let local = self.devices[d].local.get(&path);
                let live = |r: Option<&Rec>| r.filter(|r| !r.deleted).map(|r| r.content);
                prop_assert_eq!(
                    live(local),
                    live(g.as_ref()),
                    "device {} content of {}",
                    d,
                    path
                );
                if let (Some(l), Some(g)) = (local, &g) {
                    prop_assert_eq!(&l.version, &g.version, "device {} version of {}", d, path);
                }
            }
            if let Some(g) = g0.filter(|g| !g.deleted) {
                global_content.insert(path, g.content);
            }
        }
        let present: BTreeSet<u64> = global_content.values().copied().collect();
        for c in &self.written {
            prop_assert!(
                present.contains(c) || self.superseded.contains(c),
                "edit {} was lost; final state {:?}",
                c,
                global_content
            );
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("SYNCD_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

fn scenario() -> impl Strategy<Value = (Vec<u8>, Vec<i64>, Vec<Op>)> {
    (2usize..=4).prop_flat_map(|n| {
        (
            prop::collection::vec(any::<u8>(), n),
            prop::collection::vec(-3i64..=3, n),
            prop::collection::vec(op(), 5..80),
        )
    })
}

fn run(rule: DeleteRule, ids: &[u8], skews: &[i64], ops: &[Op]) -> Result<(), TestCaseError> {
    let mut world = World::new(rule, ids, skews);
    for &op in ops {
        world.apply(op);
    }
    world.settle();
    world.check()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn devices_converge_without_losing_edits_v1((ids, skews, ops) in scenario()) {
        run(DeleteRule::V1, &ids, &skews, &ops)?;
    }

    #[test]
    fn devices_converge_without_losing_edits_v2((ids, skews, ops) in scenario()) {
        run(DeleteRule::V2, &ids, &skews, &ops)?;
    }
}

#[test]
fn concurrent_edits_make_exactly_one_conflict_copy() {
    // TestConflictsDefault: two devices edit the same file while partitioned.
    for rule in [DeleteRule::V1, DeleteRule::V2] {
        let ops = [
            Op::Edit {
                dev: 0,
                path: 0,
                backdate: false,
            },
            Op::Deliver {
                from: 0,
                to: 1,
                count: 1,
            },
            Op::Toggle { a: 0, b: 1 },
            Op::Edit {
                dev: 0,
                path: 0,
                backdate: false,
            },
            Op::Edit {
                dev: 1,
                path: 0,
                backdate: false,
            },
        ];
        let mut world = World::new(rule, &[10, 20], &[0, 0]);
        for op in ops {
            world.apply(op);
        }
        world.settle();
        world.check().unwrap_or_else(|e| panic!("{e}"));
        let copies: Vec<String> = world
            .all_paths()
            .into_iter()
            .filter(|p| is_conflict_copy(p))
            .collect();
        assert_eq!(copies.len(), 1, "{rule:?}: {copies:?}");
        assert!(is_conflict_copy_of("a.txt", &copies[0]));
    }
}

#[test]
fn edit_versus_delete_depends_on_the_rule() {
    // Device 0 edits, device 1 deletes later while partitioned.
    let ops = [
        Op::Edit {
            dev: 0,
            path: 0,
            backdate: false,
        },
        Op::Deliver {
            from: 0,
            to: 1,
            count: 1,
        },
        Op::Toggle { a: 0, b: 1 },
        Op::Edit {
            dev: 0,
            path: 0,
            backdate: false,
        },
        Op::Delete { dev: 1, path: 0 },
        Op::Delete { dev: 1, path: 1 }, // no-op, advances the clock
        Op::Delete { dev: 1, path: 1 },
    ];
    let outcome = |rule| {
        let mut world = World::new(rule, &[10, 20], &[0, 0]);
        for op in ops {
            world.apply(op);
        }
        world.settle();
        world.check().unwrap_or_else(|e| panic!("{e}"));
        let a = world.global(0, "a.txt").map(|g| g.deleted);
        let copies = world
            .all_paths()
            .into_iter()
            .filter(|p| is_conflict_copy(p))
            .count();
        (a, copies)
    };
    // 1.x: the edit survives at its name, nothing copied.
    assert_eq!(outcome(DeleteRule::V1), (Some(false), 0));
    // 2.x: the later delete wins and the edit lives on as a conflict copy.
    assert_eq!(outcome(DeleteRule::V2), (Some(true), 1));
}
