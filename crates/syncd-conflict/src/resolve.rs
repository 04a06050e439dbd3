//! The conflict decision: what the device holding `local` does when `global` is the version
//! to install (spec sync-semantics §2.1, §2.2, §2.5).

use syncd_types::{FileKind, ShortId};

use crate::names::{MaxConflicts, is_conflict_copy};
use crate::order::{Candidate, needs};
use crate::vector::VersionVector;

/// What happens to the path on this device, decided by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// The device has the global version (equal or newer vector) or the global is invalid:
    /// nothing changes here. A conflict winner keeps its file; the losers make the copies.
    KeepLocal,
    /// Install the global version. First do what [`LocalFate`] says with the existing local
    /// item; afterwards the local record takes the global record with `adopt_version`.
    TakeRemote {
        /// What happens to the existing local item.
        fate: LocalFate,
        /// The version the local record adopts:
        /// - the global vector unchanged when the local one was older;
        /// - after a conflict (concurrent vectors) with the same content (both deleted, both
        ///   directories, or equal known `blocks_hash`): the merge of both vectors;
        /// - after a conflict with different content: the merge of both, bumped by this
        ///   device at `now` — a new version of the winning content unique to this device.
        ///
        /// Deliberate deviation from spec §2.2, which adopts the winner's vector unchanged.
        /// Ranking is not transitive (a superseded record can win a tie-break against the
        /// winner — under [`DeleteRule::V1`](crate::DeleteRule::V1) a live file beats a
        /// delete; under V2 a newer mtime beats an older one), so a loser that "forgets" the
        /// versions it had seen can be flipped back by a stale announcement still in flight,
        /// and the cluster cycles forever. Merging fixes that (the loser's record dominates
        /// all it had seen, as Syncthing 1.x's resurrect-merge did). With different content
        /// the merge alone lets two devices resolving crosswise from stale views reach the
        /// same vector with different content and silently diverge, hence the bump; with the
        /// same content a bump would make three devices outbid each other forever, hence
        /// none. All three failures were found by this crate's model test. Cost: the other
        /// devices see a newer vector (a metadata-only update when the content matches,
        /// which stock Syncthing peers accept as an ordinary index update). For symlinks the
        /// engine should put a hash of the target in `blocks_hash` so equal links compare
        /// equal.
        adopt_version: VersionVector,
    },
}

/// What happens to the existing local item before the global version is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalFate {
    /// Nothing exists locally (no record or a tombstone): just install.
    Absent,
    /// Same content (equal block-list hashes): update metadata only, transfer no data.
    MetadataOnly,
    /// The remote version supersedes the local one (or was based on exactly the local
    /// content), or the local item is a directory/symlink, which are never conflict-copied:
    /// replace it normally (the versioner may archive a regular file).
    Overwrite,
    /// A real conflict: move the local (losing) file to
    /// [`conflict_copy_name`](crate::conflict_copy_name)`(path, winner_modified_by, now)`, then
    /// install. The copy is then scanned as a new file with its own fresh version.
    ConflictCopy {
        /// The winning version's `modified_by`: the ID in the copy's name.
        winner_modified_by: ShortId,
    },
    /// A real conflict, but no copy is kept: delete the local file, then install.
    Discard {
        /// Why no copy is made.
        reason: DiscardReason,
    },
}

/// Why a conflicting local file is deleted instead of copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscardReason {
    /// The local file is itself a conflict copy ("not copying again"; no nesting).
    AlreadyConflictCopy,
    /// `maxConflicts` is 0.
    CopiesDisabled,
}

/// Whether installing `incoming` over the local `existing` record is a conflict (Syncthing's
/// `InConflictWith`): the incoming vector does not contain the existing one, unless the
/// incoming version was based on exactly the existing content (its `previous_blocks_hash`
/// equals the existing `blocks_hash`, both known).
///
/// ```
/// use syncd_conflict::*;
/// use syncd_types::FileKind;
///
/// let base = VersionVector::new().updated(ShortId(1), 10);
/// let (ours, theirs) = (base.updated(ShortId(1), 20), base.updated(ShortId(2), 20));
/// let cand = |version, blocks_hash, previous_blocks_hash| Candidate {
///     device: DeviceId::EMPTY, version, invalid: false, deleted: false, kind: FileKind::File,
///     modified_s: 20, modified_ns: 0, modified_by: ShortId(2), blocks_hash, previous_blocks_hash,
/// };
/// assert!(!in_conflict(&cand(&ours, b"x", b""), &cand(&base, b"y", b"")));
/// assert!(in_conflict(&cand(&theirs, b"z", b"w"), &cand(&ours, b"x", b"")));
/// // Their edit started from exactly our content: no conflict.
/// assert!(!in_conflict(&cand(&theirs, b"z", b"x"), &cand(&ours, b"x", b"")));
/// ```
pub fn in_conflict(incoming: &Candidate<'_>, existing: &Candidate<'_>) -> bool {
    if incoming
        .version
        .compare(existing.version)
        .is_greater_or_equal()
    {
        return false;
    }
    incoming.previous_blocks_hash.is_empty()
        || existing.blocks_hash.is_empty()
        || incoming.previous_blocks_hash != existing.blocks_hash
}

/// True when two records hold the same thing: both deleted, both live directories, or both
/// live files (or symlinks) with equal, known `blocks_hash`.
fn same_content(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    match (a.deleted, b.deleted) {
        (true, true) => true,
        (false, false) if a.kind == b.kind => {
            a.kind == FileKind::Directory
                || (!a.blocks_hash.is_empty() && a.blocks_hash == b.blocks_hash)
        }
        _ => false,
    }
}

/// See [`Resolution::TakeRemote`]'s `adopt_version`.
fn adopted_version(
    local: Option<&Candidate<'_>>,
    global: &Candidate<'_>,
    here: &LocalContext<'_>,
) -> VersionVector {
    match local {
        Some(local) if local.version.compare(global.version).is_concurrent() => {
            let merged = global.version.merged(local.version);
            if same_content(local, global) {
                merged
            } else {
                merged.updated(here.device, here.now_unix_secs)
            }
        }
        _ => global.version.clone(),
    }
}

/// What [`resolve`] needs to know about the deciding device and the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalContext<'a> {
    /// The path (relative, `/`-separated), to recognise existing conflict copies.
    pub path: &'a str,
    /// The deciding device's short ID (bumps the adopted version after a conflict).
    pub device: ShortId,
    /// The current time, unix seconds (for that bump).
    pub now_unix_secs: u64,
    /// The folder's `maxConflicts`.
    pub max_conflicts: MaxConflicts,
}

/// The conflict decision for one path on the device holding `local` (`None` = no record),
/// where `global` is the record [`select_global`](crate::select_global) chose from all
/// records of the path (including `local`). The delete rule already acted when the global
/// was chosen.
///
/// - The device does not [`needs`](crate::needs) the global (its version is equal or newer,
///   or the global is invalid) → [`Resolution::KeepLocal`]. The winner of a conflict never
///   copies anything.
/// - Otherwise the global version is taken ([`Resolution::TakeRemote`]) and the local item's
///   fate is, in order:
///   1. no live local item → [`LocalFate::Absent`];
///   2. both live regular files with equal, known `blocks_hash` → [`LocalFate::MetadataOnly`]
///      (identical content never makes a copy);
///   3. local is a directory or symlink, or not [`in_conflict`] → [`LocalFate::Overwrite`];
///   4. local is a regular file in conflict (whatever the global is: a file, a directory, a
///      symlink, or under [`DeleteRule::V2`](crate::DeleteRule::V2) a newer delete) →
///      [`LocalFate::ConflictCopy`] named after the global's `modified_by`, or
///      [`LocalFate::Discard`] when the path is already a conflict copy or
///      `max_conflicts` is 0.
///
/// A local record concurrent with the global one always takes it: it lost the ranking (it
/// may even win a pairwise tie-break against the global while being superseded by a third
/// record — ranking is decided over the whole set, never pairwise).
///
/// ```
/// use syncd_conflict::*;
/// use syncd_types::FileKind;
///
/// let base = VersionVector::new().updated(ShortId(1), 10);
/// let (ours, theirs) = (base.updated(ShortId(1), 20), base.updated(ShortId(2), 30));
/// let cand = |device: u8, version, modified_s, blocks_hash: &'static [u8]| Candidate {
///     device: DeviceId::from_bytes([device; 32]), version, invalid: false, deleted: false,
///     kind: FileKind::File, modified_s, modified_ns: 0, modified_by: ShortId(u64::from(device)),
///     blocks_hash, previous_blocks_hash: &[],
/// };
/// let rows = [cand(1, &ours, 20, b"ours"), cand(2, &theirs, 30, b"theirs")];
/// let g = select_global(&rows, DeleteRule::V2).unwrap_or_default();
/// assert_eq!(g, 1); // newer mtime wins
/// let here = |device| LocalContext {
///     path: "notes.txt", device, now_unix_secs: 40, max_conflicts: MaxConflicts::default(),
/// };
/// // On device 1 the local file loses and is moved aside, named after the winner.
/// assert_eq!(resolve(Some(&rows[0]), &rows[g], &here(ShortId(1))),
///            Resolution::TakeRemote {
///                fate: LocalFate::ConflictCopy { winner_modified_by: ShortId(2) },
///                // Different content: merged and bumped by device 1.
///                adopt_version: theirs.merged(&ours).updated(ShortId(1), 40),
///            });
/// // On device 2 nothing happens.
/// assert_eq!(resolve(Some(&rows[1]), &rows[g], &here(ShortId(2))), Resolution::KeepLocal);
/// ```
pub fn resolve(
    local: Option<&Candidate<'_>>,
    global: &Candidate<'_>,
    here: &LocalContext<'_>,
) -> Resolution {
    if !needs(local, global) {
        return Resolution::KeepLocal;
    }
    let take = |fate| Resolution::TakeRemote {
        fate,
        adopt_version: adopted_version(local, global, here),
    };
    let Some(local) = local else {
        return take(LocalFate::Absent);
    };
    if local.deleted {
        return take(LocalFate::Absent);
    }
    if local.is_live_file()
        && global.is_live_file()
        && !local.blocks_hash.is_empty()
        && local.blocks_hash == global.blocks_hash
    {
        return take(LocalFate::MetadataOnly);
    }
    if !local.is_live_file() || !in_conflict(global, local) {
        return take(LocalFate::Overwrite);
    }
    let fate = if is_conflict_copy(here.path) {
        LocalFate::Discard {
            reason: DiscardReason::AlreadyConflictCopy,
        }
    } else if here.max_conflicts == MaxConflicts::Keep(0) {
        LocalFate::Discard {
            reason: DiscardReason::CopiesDisabled,
        }
    } else {
        LocalFate::ConflictCopy {
            winner_modified_by: global.modified_by,
        }
    };
    take(fate)
}
