//! What a pull pass does with each needed item, and in which order. Pure: no filesystem, no
//! runtime, no clock (the time is a parameter).
//!
//! [`plan`] sorts the need set into the pass's three phases, keeping the need set's own order
//! within each (the index streams parents before children, deletions deepest first):
//! 1. [`First`]: ignored items (recorded as invalid local rows, the disk untouched),
//!    directories and symlinks, one after the other;
//! 2. the regular files, pulled concurrently;
//! 3. the deletions, after the files (a file moved out of a deleted directory has arrived
//!    before the directory goes).
//!
//! [`decide`] is the conflict decision for one item, taken when the item is started (its
//! `now` is the time the version bump after a conflict carries).

use std::time::SystemTime;

use syncd_conflict::{LocalContext, MaxConflicts, Resolution, VersionVector};
use syncd_ignore::IgnoreSet;
use syncd_index::{FileRecord, Needed};
use syncd_types::{DeviceId, FileKind};

use crate::fsutil;

/// An item of the pass's first phase, in need order.
#[derive(Debug)]
pub(crate) enum First {
    /// Ignored here: the global version becomes this invalid local row (so it is not needed,
    /// spec sync-semantics §1.5), without touching the disk.
    Ignored(FileRecord),
    /// A directory to create or update.
    Dir(Needed),
    /// A symlink to create or replace.
    Symlink(Needed),
}

/// A pull pass: what happens to each needed item, phase by phase (see the module docs).
#[derive(Debug)]
pub(crate) struct Plan {
    /// Ignored items, directories and symlinks, in need order.
    pub(crate) first: Vec<First>,
    /// Regular files to pull, in need order. The need set's own allocation: a copy of a full
    /// pass was the largest part of the receiver's peak memory.
    pub(crate) files: Vec<Needed>,
    /// Deletions, in need order (deepest first).
    pub(crate) deletes: Vec<Needed>,
}

/// Sorts `needed` into the phases of a pass; `ignores` is the folder's ignore set.
pub(crate) fn plan(mut needed: Vec<Needed>, ignores: Option<&IgnoreSet>) -> Plan {
    let ignored = |n: &Needed| is_ignored(ignores, n);
    let others: Vec<Needed> = needed
        .extract_if(.., |n| {
            n.global.deleted || !n.global.kind.is_file() || ignored(n)
        })
        .collect();
    let mut first = Vec::new();
    let mut deletes = Vec::new();
    for n in others {
        if ignored(&n) {
            first.push(First::Ignored(ignored_row(n.global)));
        } else if n.global.deleted {
            deletes.push(n);
        } else if n.global.kind.is_dir() {
            first.push(First::Dir(n));
        } else {
            first.push(First::Symlink(n));
        }
    }
    Plan {
        first,
        files: needed,
        deletes,
    }
}

/// Whether the folder's ignore set ignores `n`.
pub(crate) fn is_ignored(ignores: Option<&IgnoreSet>, n: &Needed) -> bool {
    ignores.is_some_and(|i| {
        i.matched(n.global.name.as_str(), n.global.kind.is_dir())
            .is_ignored()
    })
}

/// The invalid local row that records an ignored global version.
fn ignored_row(global: FileRecord) -> FileRecord {
    let mut r = global;
    r.invalid = true;
    r.blocks.clear();
    r.chunks.clear();
    r
}

/// Who decides: this device and its folder's `maxConflicts`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here {
    pub(crate) me: DeviceId,
    pub(crate) max_conflicts: MaxConflicts,
}

/// The conflict decision for one needed item at `now`: keep the local version, or take the
/// global one (with what happens to the local item and the version the local record adopts).
/// The global version is attributed to the first device announcing it.
pub(crate) fn decide(n: &Needed, here: Here, now: SystemTime) -> Resolution {
    let local = n.local.as_ref().map(|l| l.candidate(here.me));
    let global = n
        .global
        .candidate(n.available.first().copied().unwrap_or(DeviceId::EMPTY));
    let ctx = LocalContext {
        path: n.global.name.as_str(),
        device: here.me.short(),
        now_unix_secs: u64::try_from(fsutil::split_time(now).0).unwrap_or(0),
        max_conflicts: here.max_conflicts,
    };
    syncd_conflict::resolve(local.as_ref(), &global, &ctx)
}

/// The local record after installing `global` with `version`.
pub(crate) fn installed(global: &FileRecord, version: VersionVector) -> FileRecord {
    let mut r = global.clone();
    r.version = version;
    r.invalid = false;
    r
}

/// The kind a deletion reports: what is being deleted (the local item's kind when known).
pub(crate) fn deleted_kind(n: &Needed) -> FileKind {
    n.local.as_ref().map_or(n.global.kind, |l| l.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncd_conflict::{LocalFate, ShortId};
    use syncd_types::RelPath;

    const ME: DeviceId = DeviceId::from_bytes([1; 32]);
    const PEER: DeviceId = DeviceId::from_bytes([2; 32]);

    /// A needed item written as `"<kind> <name>"`: `dir`, `file`, `link`, or `del-dir` /
    /// `del-file` for a deletion.
    fn item(spec: &str) -> Needed {
        let (kind, name) = spec.split_once(' ').unwrap();
        let (deleted, kind) = match kind {
            "dir" => (false, FileKind::Directory),
            "file" => (false, FileKind::File),
            "link" => (false, FileKind::Symlink),
            "del-dir" => (true, FileKind::Directory),
            "del-file" => (true, FileKind::File),
            other => panic!("unknown kind {other}"),
        };
        let mut global = FileRecord::new(RelPath::new(name).unwrap(), kind);
        global.deleted = deleted;
        global.blocks = vec![syncd_index::Block {
            offset: 0,
            size: 1,
            hash: [7; 32],
        }];
        Needed {
            global,
            local: None,
            available: vec![PEER],
        }
    }

    fn ignores(text: &str) -> IgnoreSet {
        let none = |_: &str| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        IgnoreSet::parse(text, &none, syncd_ignore::Options::default()).unwrap()
    }

    /// The plan as lines: `<phase>: <what> <name>`.
    fn show(p: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        for f in &p.first {
            out.push(match f {
                First::Ignored(r) => {
                    assert!(r.invalid && r.blocks.is_empty() && r.chunks.is_empty());
                    format!("first: ignore {}", r.name.as_str())
                }
                First::Dir(n) => format!("first: mkdir {}", n.global.name.as_str()),
                First::Symlink(n) => format!("first: symlink {}", n.global.name.as_str()),
            });
        }
        for n in &p.files {
            out.push(format!("files: pull {}", n.global.name.as_str()));
        }
        for n in &p.deletes {
            out.push(format!("last: delete {}", n.global.name.as_str()));
        }
        out
    }

    fn check(need: &[&str], stignore: &str, want: &[&str]) {
        let ignores = (!stignore.is_empty()).then(|| ignores(stignore));
        let p = plan(need.iter().map(|s| item(s)).collect(), ignores.as_ref());
        assert_eq!(show(&p), want, "need {need:?}, .stignore {stignore:?}");
    }

    #[test]
    fn phases_keep_the_need_order_within_each() {
        check(
            &[
                "dir a",
                "file a/1",
                "link a/l",
                "dir a/b",
                "file a/b/2",
                "del-file old/x",
                "del-dir old",
                "file z",
            ],
            "",
            &[
                "first: mkdir a",
                "first: symlink a/l",
                "first: mkdir a/b",
                "files: pull a/1",
                "files: pull a/b/2",
                "files: pull z",
                "last: delete old/x",
                "last: delete old",
            ],
        );
    }

    #[test]
    fn ignored_items_are_recorded_first_whatever_their_kind_even_deletions() {
        check(
            &[
                "dir build",
                "file build/out.o",
                "del-file build/old.o",
                "link build/l",
                "file src/main.rs",
                "del-file src/gone.rs",
            ],
            "build\n",
            &[
                "first: ignore build",
                "first: ignore build/out.o",
                "first: ignore build/old.o",
                "first: ignore build/l",
                "files: pull src/main.rs",
                "last: delete src/gone.rs",
            ],
        );
    }

    #[test]
    fn a_negated_pattern_keeps_what_a_later_pattern_would_ignore() {
        check(
            &["file a.log", "file important.log", "file x/b.log"],
            "!important.log\n*.log\n",
            &[
                "first: ignore a.log",
                "first: ignore x/b.log",
                "files: pull important.log",
            ],
        );
    }

    #[test]
    fn an_empty_need_set_plans_nothing() {
        check(&[], "*\n", &[]);
    }

    #[test]
    fn a_deletion_reports_the_kind_of_the_local_item() {
        let mut n = item("del-file x");
        assert_eq!(deleted_kind(&n), FileKind::File);
        n.local = Some(FileRecord::new(
            RelPath::new("x").unwrap(),
            FileKind::Directory,
        ));
        assert_eq!(deleted_kind(&n), FileKind::Directory);
    }

    // The conflict decision, one row per case: local version (by short id, counter), global
    // version, whether the contents are the same → the decision.

    fn v(counters: &[(u64, u64)]) -> VersionVector {
        counters.iter().fold(VersionVector::new(), |v, &(id, n)| {
            v.updated(ShortId(id), n)
        })
    }

    fn with_local(mut n: Needed, version: VersionVector, same_content: bool) -> Needed {
        let mut l = n.global.clone();
        l.version = version;
        l.blocks_hash = vec![1];
        l.modified_by = ME.short();
        n.global.blocks_hash = vec![if same_content { 1 } else { 2 }];
        n.local = Some(l);
        n
    }

    fn decided(n: &Needed) -> String {
        let here = Here {
            me: ME,
            max_conflicts: MaxConflicts::default(),
        };
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5_000);
        match decide(n, here, now) {
            Resolution::KeepLocal => "keep local".to_owned(),
            Resolution::TakeRemote {
                fate,
                adopt_version,
            } => {
                let fate = match fate {
                    LocalFate::Absent => "absent".to_owned(),
                    LocalFate::MetadataOnly => "metadata only".to_owned(),
                    LocalFate::Overwrite => "overwrite".to_owned(),
                    LocalFate::ConflictCopy { winner_modified_by } => {
                        format!("conflict copy, winner {}", winner_modified_by.0)
                    }
                    other => format!("{other:?}"),
                };
                let local = n.local.as_ref().map(|l| &l.version);
                let adopted = if adopt_version == n.global.version {
                    "global version".to_owned()
                } else if local.is_some_and(|l| adopt_version == n.global.version.merged(l)) {
                    "merged versions".to_owned()
                } else {
                    format!("version {adopt_version:?}")
                };
                format!("take remote ({fate}), {adopted}")
            }
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn decisions() {
        let me = ME.short().0;
        let peer = PEER.short().0;
        let global = |g: VersionVector| {
            let mut n = item("file f");
            n.global.version = g;
            n.global.modified_by = PEER.short();
            n
        };
        let cases: Vec<(&str, Needed, &str)> = vec![
            (
                "nothing here",
                global(v(&[(peer, 1)])),
                "take remote (absent), global version",
            ),
            (
                "local is older",
                with_local(global(v(&[(me, 1), (peer, 2)])), v(&[(me, 1)]), false),
                "take remote (overwrite), global version",
            ),
            (
                "local is older, same content",
                with_local(global(v(&[(me, 1), (peer, 2)])), v(&[(me, 1)]), true),
                "take remote (metadata only), global version",
            ),
            (
                "local is equal",
                with_local(global(v(&[(peer, 2)])), v(&[(peer, 2)]), false),
                "keep local",
            ),
            (
                "concurrent edit, same content",
                with_local(global(v(&[(peer, 3)])), v(&[(me, 3)]), true),
                "take remote (metadata only), merged versions",
            ),
            (
                "local is newer",
                with_local(global(v(&[(peer, 2)])), v(&[(peer, 2), (me, 1)]), false),
                "keep local",
            ),
        ];
        for (case, n, want) in cases {
            assert_eq!(decided(&n), want, "{case}");
        }
    }

    #[test]
    fn a_concurrent_edit_with_an_older_local_mtime_is_moved_aside_and_bumped_at_now() {
        let (me, peer) = (ME.short().0, PEER.short().0);
        let mut n = item("file f");
        n.global.version = v(&[(peer, 3)]);
        n.global.modified_by = PEER.short();
        n.global.modified_s = 10;
        let mut n = with_local(n, v(&[(me, 3)]), false);
        if let Some(l) = n.local.as_mut() {
            l.modified_s = 5;
        }
        let here = Here {
            me: ME,
            max_conflicts: MaxConflicts::default(),
        };
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5_000);
        assert_eq!(
            decide(&n, here, now),
            Resolution::TakeRemote {
                fate: LocalFate::ConflictCopy {
                    winner_modified_by: PEER.short()
                },
                adopt_version: v(&[(peer, 3)])
                    .merged(&v(&[(me, 3)]))
                    .updated(ShortId(me), 5_000),
            }
        );
    }
}
