//! Table tests for every ranking, need and conflict rule of sync-semantics §1.3–§2.5, under
//! both delete rule sets.

use std::cmp::Ordering;

use syncd_conflict::*;
use syncd_types::FileKind;

/// An owned record, lending a [`Candidate`].
#[derive(Clone, Debug)]
struct Rec {
    device: u8,
    version: VersionVector,
    invalid: bool,
    deleted: bool,
    kind: FileKind,
    mtime: (i64, i32),
    modified_by: u64,
    blocks: Vec<u8>,
    previous: Vec<u8>,
}

fn v(c: &[(u64, u64)]) -> VersionVector {
    VersionVector::from_counters(c.iter().map(|&(id, value)| Counter {
        id: ShortId(id),
        value,
    }))
}

/// A live regular file on `device` with version `c`, mtime `s`, content `blocks`.
fn file(device: u8, c: &[(u64, u64)], s: i64, blocks: &str) -> Rec {
    Rec {
        device,
        version: v(c),
        invalid: false,
        deleted: false,
        kind: FileKind::File,
        mtime: (s, 0),
        modified_by: u64::from(device),
        blocks: blocks.as_bytes().to_vec(),
        previous: Vec::new(),
    }
}

impl Rec {
    fn cand(&self) -> Candidate<'_> {
        Candidate {
            device: DeviceId::from_bytes([self.device; 32]),
            version: &self.version,
            invalid: self.invalid,
            deleted: self.deleted,
            kind: self.kind,
            modified_s: self.mtime.0,
            modified_ns: self.mtime.1,
            modified_by: ShortId(self.modified_by),
            blocks_hash: &self.blocks,
            previous_blocks_hash: &self.previous,
        }
    }
    fn invalid(mut self) -> Self {
        self.invalid = true;
        self
    }
    fn deleted(mut self) -> Self {
        self.deleted = true;
        self.blocks.clear();
        self
    }
    fn ns(mut self, ns: i32) -> Self {
        self.mtime.1 = ns;
        self
    }
    fn kind(mut self, kind: FileKind) -> Self {
        self.kind = kind;
        self.blocks.clear();
        self
    }
    fn previous(mut self, p: &str) -> Self {
        self.previous = p.as_bytes().to_vec();
        self
    }
}

const BOTH: [DeleteRule; 2] = [DeleteRule::V1, DeleteRule::V2];

/// Checks `a` ranks before `b` under `rule`, and the mirror.
fn assert_wins(a: &Rec, b: &Rec, rule: DeleteRule, why: &str) {
    assert_eq!(
        compare_candidates(&a.cand(), &b.cand(), rule),
        Ordering::Less,
        "{why} ({rule:?})"
    );
    assert_eq!(
        compare_candidates(&b.cand(), &a.cand(), rule),
        Ordering::Greater,
        "{why} mirrored ({rule:?})"
    );
    let pair = [b.cand(), a.cand()];
    assert_eq!(
        select_global(&pair, rule),
        Some(1),
        "{why}: global ({rule:?})"
    );
}

#[test]
fn superseding_vector_wins_regardless_of_validity_deletion_or_mtime() {
    let old = file(1, &[(1, 10)], 500, "old");
    for newer in [
        file(2, &[(1, 10), (2, 5)], 1, "new"),
        file(2, &[(1, 10), (2, 5)], 1, "new").deleted(),
    ] {
        for rule in BOTH {
            assert_wins(&newer, &old, rule, "greater vector");
        }
    }
    // Even an invalid newer vector ranks first (it is just not global).
    let newer_invalid = file(2, &[(1, 11)], 1, "new").invalid();
    for rule in BOTH {
        assert_eq!(
            compare_candidates(&newer_invalid.cand(), &old.cand(), rule),
            Ordering::Less
        );
    }
}

#[test]
fn equal_vectors_rank_valid_before_invalid() {
    let valid = file(2, &[(1, 10)], 5, "x");
    let invalid = file(1, &[(1, 10)], 5, "x").invalid();
    for rule in BOTH {
        assert_wins(&valid, &invalid, rule, "equal vectors");
    }
}

#[test]
fn concurrent_valid_beats_invalid_even_when_older() {
    let valid = file(1, &[(1, 10)], 5, "x");
    let invalid = file(2, &[(2, 10)], 900, "y").invalid();
    for rule in BOTH {
        assert_wins(&valid, &invalid, rule, "valid over invalid");
    }
}

#[test]
fn concurrent_newer_mtime_wins_at_nanosecond_precision() {
    let table = [
        (
            file(2, &[(2, 10)], 101, "new"),
            file(1, &[(1, 10)], 100, "old"),
        ),
        (
            file(2, &[(2, 10)], 100, "new").ns(2),
            file(1, &[(1, 10)], 100, "old").ns(1),
        ),
        // Nanoseconds out of range are taken as given: 99 s + 2e9 ns is 101 s.
        (
            file(2, &[(2, 10)], 99, "new").ns(2_000_000_000),
            file(1, &[(1, 10)], 100, "old"),
        ),
    ];
    for (newer, older) in &table {
        for rule in BOTH {
            assert_wins(newer, older, rule, "newer mtime");
        }
    }
}

#[test]
fn concurrent_equal_mtime_concurrent_greater_wins() {
    // Upstream TestWinsConflict: {42:2,43:1} beats {42:1,43:2}.
    let a = file(9, &[(42, 2), (43, 1)], 100, "a");
    let b = file(1, &[(42, 1), (43, 2)], 100, "b");
    for rule in BOTH {
        assert_wins(&a, &b, rule, "ConcurrentGreater tie-break");
    }
}

#[test]
fn newer_delete_beats_older_edit_only_under_v2() {
    let edit = file(1, &[(1, 10), (5, 1)], 100, "edit");
    let delete = file(2, &[(2, 20), (5, 1)], 200, "").deleted();
    assert_wins(&delete, &edit, DeleteRule::V2, "newer delete");
    assert_wins(
        &edit,
        &delete,
        DeleteRule::V1,
        "v1: edit always beats delete",
    );
}

#[test]
fn older_delete_loses_to_newer_edit_under_both() {
    let edit = file(1, &[(1, 10), (5, 1)], 300, "edit");
    let delete = file(2, &[(2, 20), (5, 1)], 200, "").deleted();
    for rule in BOTH {
        assert_wins(&edit, &delete, rule, "newer edit");
    }
}

#[test]
fn v1_edit_beats_delete_even_when_delete_has_concurrent_greater_sign() {
    // Equal mtimes; the delete's vector is ConcurrentGreater, which decides only under V2.
    let delete = file(1, &[(1, 20)], 100, "").deleted();
    let edit = file(2, &[(2, 20)], 100, "edit");
    assert_wins(&edit, &delete, DeleteRule::V1, "v1");
    assert_wins(&delete, &edit, DeleteRule::V2, "v2 tie-break");
}

#[test]
fn concurrent_deletes_rank_by_mtime_under_both() {
    let a = file(1, &[(1, 20)], 100, "").deleted();
    let b = file(2, &[(2, 20)], 101, "").deleted();
    for rule in BOTH {
        assert_wins(&b, &a, rule, "newer delete of two");
    }
}

#[test]
fn global_is_the_best_valid_candidate() {
    let newest_ignored = file(1, &[(1, 30)], 30, "i").invalid();
    let middle = file(2, &[(1, 20)], 20, "m");
    let oldest = file(3, &[(1, 10)], 10, "o");
    let rows = [oldest.cand(), newest_ignored.cand(), middle.cand()];
    for rule in BOTH {
        assert_eq!(select_global(&rows, rule), Some(2), "{rule:?}");
    }
}

#[test]
fn global_of_only_invalid_candidates_is_the_best_invalid_one() {
    let a = file(1, &[(1, 30)], 30, "a").invalid();
    let b = file(2, &[(1, 20)], 20, "b").invalid();
    for rule in BOTH {
        assert_eq!(select_global(&[b.cand(), a.cand()], rule), Some(1));
    }
}

#[test]
fn global_of_nothing_is_none() {
    for rule in BOTH {
        assert_eq!(select_global(&[], rule), None);
    }
}

#[test]
fn global_ignores_dominated_versions_even_if_they_win_a_tie_break() {
    // `stale` is superseded by `newer`; `stale` would beat `other` on mtime, `other` beats
    // `newer` on mtime. The superseded one must never be global.
    let newer = file(1, &[(1, 2)], 10, "n");
    let stale = file(2, &[(1, 1)], 30, "s");
    let other = file(3, &[(3, 1)], 20, "o");
    for rule in BOTH {
        let rows = [stale.cand(), newer.cand(), other.cand()];
        assert_eq!(select_global(&rows, rule), Some(2), "{rule:?}");
    }
}

#[test]
fn delete_after_conflict_becomes_global() {
    // Upstream TestDeletedAfterConflict: the loser adopts the winner's vector, then deletes;
    // the delete supersedes everything and the old conflicting version cannot resurface.
    for rule in BOTH {
        let a = file(1, &[(1, 10)], 100, "a");
        let b = file(2, &[(2, 10)], 200, "b");
        let Resolution::TakeRemote { adopt_version, .. } =
            decide(Some(&a), &b, rule, "f", MaxConflicts::default())
        else {
            panic!("b is newer and must win ({rule:?})");
        };
        assert_eq!(
            adopt_version,
            b.version.merged(&a.version).updated(ShortId(1), NOW)
        );
        let mut deleted = file(1, &[], 300, "").deleted();
        deleted.version = adopt_version.updated(ShortId(1), 300);
        let rows = [a.cand(), b.cand(), deleted.cand()];
        assert_eq!(select_global(&rows, rule), Some(2), "{rule:?}");
    }
}

#[test]
fn need_rules() {
    let global = file(9, &[(1, 10), (9, 20)], 20, "g");
    let global_deleted = file(9, &[(1, 10), (9, 20)], 20, "").deleted();
    let global_invalid = file(9, &[(1, 10), (9, 20)], 20, "g").invalid();
    let same = file(1, &[(1, 10), (9, 20)], 20, "g");
    let same_ignored = file(1, &[(1, 10), (9, 20)], 20, "").invalid();
    let older = file(1, &[(1, 10)], 10, "o");
    let older_deleted = file(1, &[(1, 10)], 10, "").deleted();
    let newer_ignored = file(1, &[(1, 11), (9, 20)], 30, "").invalid();
    let concurrent_loser = file(1, &[(1, 11)], 5, "c");
    let table: [(&str, Option<&Rec>, &Rec, bool); 13] = [
        ("nothing, live global", None, &global, true),
        ("nothing, deleted global", None, &global_deleted, false),
        ("nothing, invalid global", None, &global_invalid, false),
        ("equal version", Some(&same), &global, false),
        (
            "equal version, ignored locally",
            Some(&same_ignored),
            &global,
            false,
        ),
        ("older version", Some(&older), &global, true),
        ("older tombstone", Some(&older_deleted), &global, true),
        (
            "stale live file, deleted global",
            Some(&older),
            &global_deleted,
            true,
        ),
        ("newer ignored local", Some(&newer_ignored), &global, false),
        ("concurrent loser", Some(&concurrent_loser), &global, true),
        (
            "older version, invalid global",
            Some(&older),
            &global_invalid,
            false,
        ),
        (
            "equal tombstone",
            Some(&global_deleted.clone()),
            &global_deleted,
            false,
        ),
        (
            "directory like files",
            Some(&older.clone().kind(FileKind::Directory)),
            &global.clone().kind(FileKind::Directory),
            true,
        ),
    ];
    for (why, local, global, want) in table {
        let local = local.map(Rec::cand);
        assert_eq!(needs(local.as_ref(), &global.cand()), want, "{why}");
    }
}

#[test]
fn remote_need_rules() {
    let global = file(9, &[(9, 20)], 20, "g");
    let global_deleted = file(9, &[(9, 30)], 30, "").deleted();
    let global_invalid = file(9, &[(9, 20)], 20, "g").invalid();
    let has = file(2, &[(9, 20)], 20, "g");
    let old = file(2, &[(9, 10)], 10, "o");
    let old_invalid = file(2, &[(9, 10)], 10, "o").invalid();
    let old_deleted = file(2, &[(9, 10)], 10, "").deleted();
    let table: [(&str, Option<&Rec>, &Rec, bool); 9] = [
        ("announces nothing", None, &global, true),
        ("announces the exact version", Some(&has), &global, false),
        ("announces an older version", Some(&old), &global, true),
        (
            "announces nothing, global deleted",
            None,
            &global_deleted,
            false,
        ),
        (
            "announces live file, global deleted",
            Some(&old),
            &global_deleted,
            true,
        ),
        (
            "announces invalid, global deleted",
            Some(&old_invalid),
            &global_deleted,
            false,
        ),
        (
            "announces tombstone, global deleted",
            Some(&old_deleted),
            &global_deleted,
            false,
        ),
        ("global invalid", None, &global_invalid, false),
        (
            "global invalid, old file",
            Some(&old),
            &global_invalid,
            false,
        ),
    ];
    for (why, remote, global, want) in table {
        let remote = remote.map(Rec::cand);
        assert_eq!(remote_needs(remote.as_ref(), &global.cand()), want, "{why}");
    }
}

fn take(fate: LocalFate, remote: &Rec) -> Resolution {
    Resolution::TakeRemote {
        fate,
        adopt_version: remote.version.clone(),
    }
}

fn copy_named_after(remote: &Rec) -> LocalFate {
    LocalFate::ConflictCopy {
        winner_modified_by: ShortId(remote.modified_by),
    }
}

/// `(why, local, remote, path, expected)` rows of the conflict decision, for one rule set.
/// One row of the conflict-decision table: `(why, local, remote, path, expected)`.
type Row = (&'static str, Option<Rec>, Rec, &'static str, Resolution);

/// The deciding device's clock in the conflict-decision tables.
const NOW: u64 = 1_000;

/// The version a device adopts when taking `remote` over `local`: the remote one, or after a
/// conflict the merge of both bumped by the local device.
fn adopted(local: Option<&Rec>, remote: &Rec) -> VersionVector {
    match local {
        Some(l) if l.version.compare(&remote.version).is_concurrent() => {
            let merged = remote.version.merged(&l.version);
            let same = (l.deleted && remote.deleted)
                || (!l.deleted
                    && !remote.deleted
                    && l.kind == remote.kind
                    && (l.kind == FileKind::Directory
                        || (!l.blocks.is_empty() && l.blocks == remote.blocks)));
            if same {
                merged
            } else {
                merged.updated(ShortId(u64::from(l.device)), NOW)
            }
        }
        _ => remote.version.clone(),
    }
}

/// The decision on the device holding `local` when the only other record is `remote`: the
/// global is chosen from both under `rule`, then resolved.
fn decide(
    local: Option<&Rec>,
    remote: &Rec,
    rule: DeleteRule,
    path: &str,
    max: MaxConflicts,
) -> Resolution {
    let rows: Vec<Candidate<'_>> = local
        .iter()
        .map(|r| r.cand())
        .chain([remote.cand()])
        .collect();
    let Some(g) = select_global(&rows, rule) else {
        panic!("two candidates have a global")
    };
    let here = LocalContext {
        path,
        device: ShortId(local.map_or(0, |l| u64::from(l.device))),
        now_unix_secs: NOW,
        max_conflicts: max,
    };
    resolve(local.map(Rec::cand).as_ref(), &rows[g], &here)
}

/// Checks the adopted version is the merge of both, then replaces it by the remote's version
/// so table rows can state only the fate.
fn fate_only(got: Resolution, local: Option<&Rec>, remote: &Rec) -> Resolution {
    match got {
        Resolution::TakeRemote {
            fate,
            adopt_version,
        } => {
            assert_eq!(adopt_version, adopted(local, remote), "adopted version");
            take(fate, remote)
        }
        other => other,
    }
}

fn check_resolutions(rule: DeleteRule, rows: &[Row]) {
    for (why, local, remote, path, want) in rows {
        let got = decide(local.as_ref(), remote, rule, path, MaxConflicts::default());
        let got = fate_only(got, local.as_ref(), remote);
        assert_eq!(&got, want, "{why} ({rule:?})");
    }
}

/// Rows whose outcome is the same under both rules.
fn common_rows() -> Vec<Row> {
    let base = &[(5u64, 1u64)][..];
    let ours = &[(1u64, 10u64), (5, 1)][..];
    let theirs = &[(2u64, 10u64), (5, 1)][..];
    let newer_theirs = file(2, theirs, 200, "theirs");
    let mut rows = vec![
        (
            "no local record",
            None,
            newer_theirs.clone(),
            "f.txt",
            take(LocalFate::Absent, &newer_theirs),
        ),
        (
            "local tombstone",
            Some(file(1, base, 50, "").deleted()),
            file(2, &[(2, 1), (5, 1)], 10, "x"),
            "f.txt",
            take(LocalFate::Absent, &file(2, &[(2, 1), (5, 1)], 10, "x")),
        ),
        (
            "ordinary update",
            Some(file(1, base, 50, "old")),
            file(2, &[(2, 10), (5, 1)], 10, "new"),
            "f.txt",
            take(
                LocalFate::Overwrite,
                &file(2, &[(2, 10), (5, 1)], 10, "new"),
            ),
        ),
        (
            "ordinary update, same content",
            Some(file(1, base, 50, "same")),
            file(2, &[(2, 10), (5, 1)], 10, "same"),
            "f.txt",
            take(
                LocalFate::MetadataOnly,
                &file(2, &[(2, 10), (5, 1)], 10, "same"),
            ),
        ),
        (
            "concurrent, same content",
            Some(file(1, ours, 100, "same")),
            file(2, theirs, 200, "same"),
            "f.txt",
            take(LocalFate::MetadataOnly, &file(2, theirs, 200, "same")),
        ),
        (
            "concurrent, remote newer: local becomes the conflict copy",
            Some(file(1, ours, 100, "ours")),
            newer_theirs.clone(),
            "f.txt",
            take(copy_named_after(&newer_theirs), &newer_theirs),
        ),
        (
            "concurrent, remote based on exactly our content",
            Some(file(1, ours, 100, "ours")),
            file(2, theirs, 200, "theirs").previous("ours"),
            "f.txt",
            take(LocalFate::Overwrite, &newer_theirs),
        ),
        (
            "concurrent, remote based on other content",
            Some(file(1, ours, 100, "ours")),
            file(2, theirs, 200, "theirs").previous("base"),
            "f.txt",
            take(copy_named_after(&newer_theirs), &newer_theirs),
        ),
        (
            "concurrent, local blocks hash unknown",
            Some(file(1, ours, 100, "")),
            file(2, theirs, 200, "theirs").previous("ours"),
            "f.txt",
            take(copy_named_after(&newer_theirs), &newer_theirs),
        ),
        (
            "concurrent, local newer: local wins, nothing happens here",
            Some(file(1, ours, 300, "ours")),
            newer_theirs.clone(),
            "f.txt",
            Resolution::KeepLocal,
        ),
        (
            "local supersedes remote",
            Some(file(1, &[(1, 10), (2, 10), (5, 1)], 1, "ours")),
            newer_theirs.clone(),
            "f.txt",
            Resolution::KeepLocal,
        ),
        (
            "same version",
            Some(file(1, theirs, 200, "theirs")),
            newer_theirs.clone(),
            "f.txt",
            Resolution::KeepLocal,
        ),
        (
            "same version, ignored locally",
            Some(file(1, theirs, 200, "").invalid()),
            newer_theirs.clone(),
            "f.txt",
            Resolution::KeepLocal,
        ),
        (
            "remote invalid is never installed",
            Some(file(1, base, 50, "old")),
            file(2, &[(2, 10), (5, 1)], 10, "new").invalid(),
            "f.txt",
            Resolution::KeepLocal,
        ),
        (
            "receive-only local change modified by the cluster",
            Some(file(1, ours, 300, "local change").invalid()),
            newer_theirs.clone(),
            "f.txt",
            take(copy_named_after(&newer_theirs), &newer_theirs),
        ),
        (
            "local file already a conflict copy is discarded",
            Some(file(1, ours, 100, "ours")),
            newer_theirs.clone(),
            "d/f.sync-conflict-20260102-150405-AAAAAAA.txt",
            take(
                LocalFate::Discard {
                    reason: DiscardReason::AlreadyConflictCopy,
                },
                &newer_theirs,
            ),
        ),
    ];
    // §2.5 shapes: a directory or symlink replacing a conflicting regular file copies it.
    for kind in [FileKind::Directory, FileKind::Symlink] {
        let remote = file(2, theirs, 200, "").kind(kind);
        rows.push((
            "directory or symlink over a conflicting file",
            Some(file(1, ours, 100, "ours")),
            remote.clone(),
            "f.txt",
            take(copy_named_after(&remote), &remote),
        ));
    }
    // Directories and symlinks being replaced are never copied.
    for local_kind in [FileKind::Directory, FileKind::Symlink] {
        for remote_kind in [FileKind::File, FileKind::Directory, FileKind::Symlink] {
            let mut remote = file(2, theirs, 200, "theirs");
            if remote_kind != FileKind::File {
                remote = remote.kind(remote_kind);
            }
            rows.push((
                "concurrent directory or symlink replaced without a copy",
                Some(file(1, ours, 100, "").kind(local_kind)),
                remote.clone(),
                "f.txt",
                take(LocalFate::Overwrite, &remote),
            ));
        }
    }
    rows
}

#[test]
fn conflict_decisions_common_to_both_rules() {
    let rows = common_rows();
    for rule in BOTH {
        check_resolutions(rule, &rows);
    }
}

#[test]
fn conflict_decisions_for_deletes_v1() {
    let edit = file(1, &[(1, 10), (5, 1)], 100, "edit");
    let newer_delete = file(2, &[(2, 20), (5, 1)], 200, "").deleted();
    let older_delete = file(2, &[(2, 20), (5, 1)], 50, "").deleted();
    check_resolutions(
        DeleteRule::V1,
        &[
            (
                "edit beats newer delete",
                Some(edit.clone()),
                newer_delete.clone(),
                "f",
                Resolution::KeepLocal,
            ),
            (
                "edit beats older delete",
                Some(edit.clone()),
                older_delete.clone(),
                "f",
                Resolution::KeepLocal,
            ),
            (
                "deleting side resurrects the edit",
                Some(newer_delete.clone()),
                edit.clone(),
                "f",
                take(LocalFate::Absent, &edit),
            ),
        ],
    );
}

#[test]
fn conflict_decisions_for_deletes_v2() {
    let edit = file(1, &[(1, 10), (5, 1)], 100, "edit");
    let newer_delete = file(2, &[(2, 20), (5, 1)], 200, "").deleted();
    let older_delete = file(2, &[(2, 20), (5, 1)], 50, "").deleted();
    check_resolutions(
        DeleteRule::V2,
        &[
            (
                "winning delete moves the edit to a conflict copy named after the deleter",
                Some(edit.clone()),
                newer_delete.clone(),
                "f",
                take(copy_named_after(&newer_delete), &newer_delete),
            ),
            (
                "edit beats older delete",
                Some(edit.clone()),
                older_delete.clone(),
                "f",
                Resolution::KeepLocal,
            ),
            (
                "deleting side gets the newer edit back",
                Some(older_delete.clone()),
                edit.clone(),
                "f",
                take(LocalFate::Absent, &edit),
            ),
            (
                "delete newer than edit stays",
                Some(newer_delete.clone()),
                edit.clone(),
                "f",
                Resolution::KeepLocal,
            ),
        ],
    );
}

#[test]
fn max_conflicts_zero_discards_the_losing_file() {
    let local = file(1, &[(1, 10)], 100, "ours");
    let remote = file(2, &[(2, 10)], 200, "theirs");
    for rule in BOTH {
        let got = fate_only(
            decide(Some(&local), &remote, rule, "f", MaxConflicts::Keep(0)),
            Some(&local),
            &remote,
        );
        assert_eq!(
            got,
            take(
                LocalFate::Discard {
                    reason: DiscardReason::CopiesDisabled
                },
                &remote
            )
        );
        let got = fate_only(
            decide(Some(&local), &remote, rule, "f", MaxConflicts::Unlimited),
            Some(&local),
            &remote,
        );
        assert_eq!(got, take(copy_named_after(&remote), &remote));
    }
}

#[test]
fn in_conflict_follows_in_conflict_with() {
    let base = file(1, &[(1, 10)], 1, "base");
    let table = [
        ("greater", file(2, &[(1, 10), (2, 1)], 1, "x"), &base, false),
        ("equal", file(2, &[(1, 10)], 1, "base"), &base, false),
        ("lesser", file(2, &[(1, 9)], 1, "x"), &base, true),
        (
            "concurrent, no previous hash",
            file(2, &[(2, 1)], 1, "x"),
            &base,
            true,
        ),
        (
            "concurrent, previous matches",
            file(2, &[(2, 1)], 1, "x").previous("base"),
            &base,
            false,
        ),
        (
            "concurrent, previous differs",
            file(2, &[(2, 1)], 1, "x").previous("zzz"),
            &base,
            true,
        ),
        (
            "concurrent delete",
            file(2, &[(2, 1)], 1, "").deleted(),
            &base,
            true,
        ),
    ];
    for (why, incoming, existing, want) in table {
        assert_eq!(
            in_conflict(&incoming.cand(), &existing.cand()),
            want,
            "{why}"
        );
    }
}
