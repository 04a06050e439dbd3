//! Model-based test: random local updates, remote full and delta indexes, index-ID resets,
//! delete-rule switches, aborted batches and reopenings, checked after every step against a
//! recomputation from a plain in-memory model (a `BTreeMap` of records).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)] // test code: a panic is a failure

use std::collections::BTreeMap;

use proptest::prelude::*;
use syncd_conflict::{
    Candidate, Counter, DeleteRule, VersionVector, needs, remote_needs, select_global,
};
use syncd_index::{Block, Counts, FileRecord, FolderWriter, Index, RemoteBatch};
use syncd_types::{DeviceId, FileKind, FolderId, RelPath, ShortId};

const NAMES: [&str; 8] = ["a", "a/b", "a/b/c", "a.b", "b", "b/x", "c/d/e", "ab"];

fn dev(i: usize) -> DeviceId {
    DeviceId::from_bytes([i as u8 + 1; 32])
}

#[derive(Debug, Clone)]
struct Rec {
    name: usize,
    kind: u8,
    size: u64,
    mtime: i64,
    version: [u64; 3],
    deleted: bool,
    invalid: bool,
    seq: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Local(Vec<Rec>),
    Remote {
        peer: usize,
        full: bool,
        recs: Vec<Rec>,
    },
    IndexId {
        peer: usize,
        id: u64,
    },
    Rule(bool),
    Abort(Vec<Rec>),
    Reopen,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0..NAMES.len(),
        0u8..3,
        0u64..5,
        0i64..3,
        [0u64..3, 0u64..3, 0u64..3],
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.1),
        1u64..100,
    )
        .prop_map(
            |(name, kind, size, mtime, version, deleted, invalid, seq)| Rec {
                name,
                kind,
                size,
                mtime,
                version,
                deleted,
                invalid,
                seq,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(rec(), 1..5).prop_map(Op::Local),
        4 => (1usize..3, prop::bool::weighted(0.2), prop::collection::vec(rec(), 0..5))
            .prop_map(|(peer, full, recs)| Op::Remote { peer, full, recs }),
        1 => (1usize..3, 0u64..3).prop_map(|(peer, id)| Op::IndexId { peer, id }),
        1 => any::<bool>().prop_map(Op::Rule),
        1 => prop::collection::vec(rec(), 1..3).prop_map(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

fn to_record(r: &Rec) -> FileRecord {
    let kind = [FileKind::File, FileKind::Directory, FileKind::Symlink][r.kind as usize];
    let mut f = FileRecord::new(RelPath::new(NAMES[r.name]).unwrap(), kind);
    f.size = if r.deleted { 0 } else { r.size };
    f.modified_s = r.mtime;
    f.deleted = r.deleted;
    f.invalid = r.invalid;
    f.sequence = r.seq;
    f.version =
        VersionVector::from_counters(r.version.iter().enumerate().filter(|(_, v)| **v > 0).map(
            |(i, v)| Counter {
                id: dev(i).short(),
                value: *v,
            },
        ));
    f.modified_by = ShortId(1);
    if kind == FileKind::File && !r.deleted {
        f.blocks = vec![Block {
            offset: 0,
            size: r.size as u32,
            hash: [r.size as u8; 32],
        }];
    }
    f
}

/// The model: records by (device, name), per-peer index IDs and max sequences.
#[derive(Default, Clone)]
struct Model {
    records: BTreeMap<(usize, usize), FileRecord>,
    index_id: [u64; 3],
    max_seq: [u64; 3],
    registered: [bool; 3],
    rule: DeleteRule,
}

impl Model {
    fn drop_device(&mut self, d: usize) {
        self.records.retain(|(dd, _), _| *dd != d);
    }
}

fn check(index: &Index, folder: &FolderId, m: &Model) {
    let r = index.read(folder).unwrap();
    assert_eq!(r.delete_rule(), m.rule);
    let mut global = Counts::default();
    let mut have = [Counts::default(); 3];
    let mut need = [Counts::default(); 3];
    let mut changes = Vec::new();
    let mut deletes = Vec::new();
    let mut local_seqs = Vec::new();
    for (ni, name) in NAMES.iter().enumerate() {
        let recs: Vec<(usize, &FileRecord)> = (0..3)
            .filter_map(|d| m.records.get(&(d, ni)).map(|r| (d, r)))
            .collect();
        for d in 0..3 {
            let got = r.get(dev(d), &RelPath::new(name).unwrap()).unwrap();
            assert_eq!(got.as_ref(), m.records.get(&(d, ni)), "record {d} {name}");
        }
        let cands: Vec<Candidate<'_>> = recs.iter().map(|(d, f)| f.candidate(dev(*d))).collect();
        for (d, f) in &recs {
            if !f.invalid {
                add(&mut have[*d], f);
            }
            if *d == 0 {
                local_seqs.push(f.sequence);
            }
        }
        let Some(gi) = select_global(&cands, m.rule) else {
            continue;
        };
        let (gd, g) = recs[gi];
        if !g.invalid {
            add(&mut global, g);
        }
        let gc = g.candidate(dev(gd));
        for d in 0..3 {
            if !m.registered[d] {
                continue;
            }
            let mine = m.records.get(&(d, ni)).map(|f| f.candidate(dev(d)));
            let n = if d == 0 {
                needs(mine.as_ref(), &gc)
            } else {
                remote_needs(mine.as_ref(), &gc)
            };
            if n {
                add(&mut need[d], g);
                if d == 0 {
                    if g.deleted {
                        deletes.push(*name)
                    } else {
                        changes.push(*name)
                    }
                }
            }
        }
    }
    let counts = r.counts().unwrap();
    assert_eq!(counts.global, global, "global counts");
    assert_eq!(counts.local, have[0], "local counts");
    assert_eq!(counts.need, need[0], "need counts");
    for d in 1..3 {
        let st = r.device(dev(d)).unwrap();
        if m.registered[d] {
            let st = st.unwrap();
            assert_eq!(st.have, have[d], "have counts of {d}");
            assert_eq!(st.need, need[d], "need counts of {d}");
            assert_eq!(st.index_id, m.index_id[d]);
            assert_eq!(st.max_sequence, m.max_seq[d]);
        } else {
            assert!(st.is_none());
        }
    }
    changes.sort();
    deletes.sort();
    deletes.reverse();
    let expected: Vec<&str> = changes.into_iter().chain(deletes).collect();
    let got: Vec<String> = r
        .need()
        .unwrap()
        .map(|n| n.unwrap().global.name.as_str().to_owned())
        .collect();
    assert_eq!(got, expected, "need order");
    local_seqs.sort();
    let got: Vec<u64> = r
        .local_since(0)
        .unwrap()
        .map(|f| f.unwrap().sequence)
        .collect();
    assert_eq!(got, local_seqs, "local records by sequence");
    assert_eq!(r.local_sequence(), m.max_seq[0]);
}

fn add(c: &mut Counts, f: &FileRecord) {
    let o = Counts::of(f);
    c.files += o.files;
    c.directories += o.directories;
    c.symlinks += o.symlinks;
    c.deleted += o.deleted;
    c.bytes += o.bytes;
}

/// Applies one writer operation to `w` and to the model.
fn apply(w: &mut FolderWriter<'_>, op: &Op, m: &mut Model) {
    match op {
        Op::Local(recs) => {
            let recs: Vec<FileRecord> = recs.iter().map(to_record).collect();
            for mut f in recs.clone() {
                m.max_seq[0] += 1;
                f.sequence = m.max_seq[0];
                let ni = NAMES.iter().position(|n| *n == f.name.as_str()).unwrap();
                // A deletion of a live local record of the same kind whose blocks hash it
                // names as its previous one records what it replaced.
                let old = m.records.get(&(0, ni));
                f.replaced = match old {
                    Some(o)
                        if f.deleted
                            && !o.deleted
                            && !o.invalid
                            && o.kind == f.kind
                            && o.blocks_hash == f.previous_blocks_hash =>
                    {
                        Some(syncd_index::Replaced {
                            sequence: o.sequence,
                            fingerprint: o.content_fingerprint(),
                        })
                    }
                    _ => None,
                };
                m.records.insert((0, ni), f);
            }
            let last = w.apply_local(recs).unwrap();
            assert_eq!(last, m.max_seq[0]);
        }
        Op::Remote { peer, full, recs } => {
            let peer = *peer;
            let batch = if *full {
                RemoteBatch::Full
            } else {
                RemoteBatch::Update
            };
            if *full {
                m.drop_device(peer);
                m.max_seq[peer] = 0;
            }
            let recs: Vec<FileRecord> = recs.iter().map(to_record).collect();
            for f in &recs {
                m.max_seq[peer] = m.max_seq[peer].max(f.sequence);
                let ni = NAMES.iter().position(|n| *n == f.name.as_str()).unwrap();
                m.records.insert((peer, ni), f.clone());
            }
            w.apply_remote(dev(peer), batch, recs).unwrap();
        }
        Op::IndexId { peer, id } => {
            let (peer, id) = (*peer, *id);
            let reset = id == 0 || m.index_id[peer] != id;
            assert_eq!(w.set_remote_index_id(dev(peer), id).unwrap(), reset);
            if reset {
                m.drop_device(peer);
                m.index_id[peer] = id;
                m.max_seq[peer] = 0;
            }
        }
        Op::Rule(v2) => {
            let rule = if *v2 { DeleteRule::V2 } else { DeleteRule::V1 };
            w.set_delete_rule(rule).unwrap();
            m.rule = rule;
        }
        Op::Abort(_) | Op::Reopen => unreachable!("not a writer operation"),
    }
}

/// Runs `ops`; writer operations share one writer until an operation flagged `true` (or an
/// abort or reopen) commits it. The index is checked against the model after every commit.
fn run(ops: Vec<(Op, bool)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let folder = FolderId::new("f").unwrap();
    let mut index = Some(Index::open(&path, dev(0)).unwrap());
    let mut m = Model {
        registered: [true, false, false],
        ..Model::default()
    };
    {
        // Number peers 1 and 2 in a fixed order, as the model assumes.
        let mut w = index.as_ref().unwrap().write(&folder).unwrap();
        w.add_device(dev(1)).unwrap();
        w.add_device(dev(2)).unwrap();
        w.commit().unwrap();
        m.registered = [true, true, true];
    }
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        // One writer for a run of writer operations.
        {
            let idx = index.as_ref().unwrap();
            let mut w = None;
            while let Some((op, commit)) =
                ops.next_if(|(op, _)| !matches!(op, Op::Abort(_) | Op::Reopen))
            {
                apply(
                    w.get_or_insert_with(|| idx.write(&folder).unwrap()),
                    &op,
                    &mut m,
                );
                if commit {
                    w.take().unwrap().commit().unwrap();
                    check(idx, &folder, &m);
                }
            }
            if let Some(w) = w {
                w.commit().unwrap();
                check(idx, &folder, &m);
            }
        }
        match ops.next() {
            Some((Op::Abort(recs), _)) => {
                let mut w = index.as_ref().unwrap().write(&folder).unwrap();
                w.apply_local(recs.iter().map(to_record)).unwrap();
                w.apply_remote(dev(1), RemoteBatch::Full, recs.iter().map(to_record))
                    .unwrap();
                drop(w);
            }
            Some((Op::Reopen, _)) => {
                drop(index.take());
                index = Some(Index::open(&path, dev(0)).unwrap());
            }
            _ => continue,
        }
        check(index.as_ref().unwrap(), &folder, &m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn index_matches_recomputation_from_model(ops in prop::collection::vec(op(), 1..25)) {
        run(ops.into_iter().map(|op| (op, true)).collect());
    }

    /// Several operations in one writer (coalesced Index messages, held back and applied in
    /// key order, interleaved with local changes, index-ID resets and rule switches).
    #[test]
    fn coalesced_batches_match_recomputation_from_model(
        ops in prop::collection::vec((op(), prop::bool::weighted(0.25)), 1..30)
    ) {
        run(ops);
    }
}
