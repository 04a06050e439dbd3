//! The ranking of candidate records for one path, the global version and need
//! (spec sync-semantics §1.3–§1.4).

use std::cmp::{Ordering, Reverse};

use syncd_types::{DeviceId, FileKind, ShortId};

use crate::vector::{VersionOrdering, VersionVector};

/// How a delete competes with a concurrent edit. The whole cluster sharing a folder must use one
/// rule, or devices pick different winners and never converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteRule {
    /// Syncthing 1.x: in a conflict a live (not deleted) version always beats a delete; the
    /// deleting device gets the file back.
    #[default]
    V1,
    /// Syncthing 2.x: a delete is an ordinary version whose modification time is the time the
    /// delete was detected; the newer of delete and edit wins, and a winning delete turns the
    /// losing edit into a conflict copy.
    V2,
}

impl DeleteRule {
    /// The rule a folder must use: [`DeleteRule::V1`] while any device sharing it runs
    /// Syncthing 1.x (or its version is unknown), else [`DeleteRule::V2`].
    ///
    /// ```
    /// use syncd_conflict::DeleteRule;
    /// assert_eq!(DeleteRule::for_cluster(true), DeleteRule::V1);
    /// assert_eq!(DeleteRule::for_cluster(false), DeleteRule::V2);
    /// ```
    pub fn for_cluster(any_device_runs_v1: bool) -> Self {
        if any_device_runs_v1 {
            DeleteRule::V1
        } else {
            DeleteRule::V2
        }
    }
}

/// A borrowed view of one device's record for one path: the only fields that decide which
/// version wins. The index keeps its own record type and lends these fields.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The device holding (announcing) this record; for the local row, our own ID.
    pub device: DeviceId,
    /// The record's version vector.
    pub version: &'a VersionVector,
    /// Ignored, unsupported, receive-only-changed, must-rescan or announced invalid: can
    /// never be global while a valid record exists, and nobody pulls it.
    pub invalid: bool,
    /// A tombstone.
    pub deleted: bool,
    /// File, directory or symlink.
    pub kind: FileKind,
    /// Modification time, seconds (for a delete: when it was detected).
    pub modified_s: i64,
    /// Nanoseconds added to `modified_s` (taken as given, not range-checked).
    pub modified_ns: i32,
    /// The device that made this version.
    pub modified_by: ShortId,
    /// Hash of the block list; empty when unknown. Compared for equality only, so both sides
    /// must be computed the same way (see `bep-wire` §7.6: 1.19 and 2.x hash differently;
    /// the engine should recompute it from the block lists). For a symlink, a hash of its
    /// target, so identical links count as the same content.
    pub blocks_hash: &'a [u8],
    /// Hash of the block list this version replaced; empty when unknown.
    pub previous_blocks_hash: &'a [u8],
}

impl Candidate<'_> {
    /// Modification time in nanoseconds since the epoch (no overflow for any field values).
    fn mtime_ns(&self) -> i128 {
        i128::from(self.modified_s) * 1_000_000_000 + i128::from(self.modified_ns)
    }

    /// A live regular file (the only thing that is ever conflict-copied).
    pub fn is_live_file(&self) -> bool {
        !self.deleted && self.kind == FileKind::File
    }
}

/// The tie-break among records whose vectors are equal or concurrent: valid first; under
/// [`DeleteRule::V1`] live before deleted; newer modification time first; the vector that is
/// larger at the lowest differing short ID first (the `ConcurrentGreater` side); finally the
/// lower device ID (only reached for equal vectors, where the content is the same version).
fn concurrent_key<'a>(
    c: &Candidate<'a>,
    rule: DeleteRule,
) -> (bool, bool, Reverse<i128>, Reverse<LexVector<'a>>, DeviceId) {
    let deleted_loses = rule == DeleteRule::V1 && c.deleted;
    (
        c.invalid,
        deleted_loses,
        Reverse(c.mtime_ns()),
        Reverse(LexVector(c.version)),
        c.device,
    )
}

/// A vector ordered by [`VersionVector::cmp_lexicographic`].
#[derive(PartialEq, Eq)]
struct LexVector<'a>(&'a VersionVector);

impl PartialOrd for LexVector<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LexVector<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_lexicographic(other.0)
    }
}

/// Ranks two records for the same path; [`Ordering::Less`] means `a` ranks before (wins over)
/// `b`.
///
/// 1. A vector that supersedes the other ranks first, whatever its validity or deletion.
/// 2. Otherwise (equal or concurrent vectors): valid before invalid; under
///    [`DeleteRule::V1`] live before deleted; newer modification time (s + ns) first; then the
///    `ConcurrentGreater` side; for equal vectors finally the lower device ID.
///
/// Antisymmetric: `compare_candidates(a, b, r) == compare_candidates(b, a, r).reverse()`.
///
/// ```
/// use std::cmp::Ordering;
/// use syncd_conflict::*;
/// use syncd_types::FileKind;
///
/// let base = VersionVector::new().updated(ShortId(1), 10);
/// let (edit, delete) = (base.updated(ShortId(1), 20), base.updated(ShortId(2), 30));
/// let cand = |device: u8, version, deleted, modified_s| Candidate {
///     device: DeviceId::from_bytes([device; 32]), version, invalid: false, deleted,
///     kind: FileKind::File, modified_s, modified_ns: 0, modified_by: ShortId(u64::from(device)),
///     blocks_hash: &[], previous_blocks_hash: &[],
/// };
/// let (e, d) = (cand(1, &edit, false, 20), cand(2, &delete, true, 30));
/// // Syncthing 1.x: the concurrent edit beats the (newer) delete.
/// assert_eq!(compare_candidates(&e, &d, DeleteRule::V1), Ordering::Less);
/// // Syncthing 2.x: the newer delete wins.
/// assert_eq!(compare_candidates(&e, &d, DeleteRule::V2), Ordering::Greater);
/// ```
pub fn compare_candidates(a: &Candidate<'_>, b: &Candidate<'_>, rule: DeleteRule) -> Ordering {
    match a.version.compare(b.version) {
        VersionOrdering::Greater => Ordering::Less,
        VersionOrdering::Lesser => Ordering::Greater,
        VersionOrdering::Equal
        | VersionOrdering::ConcurrentGreater
        | VersionOrdering::ConcurrentLesser => {
            concurrent_key(a, rule).cmp(&concurrent_key(b, rule))
        }
    }
}

/// Index of the global (winning) candidate: the best-ranked valid one; `None` if `candidates`
/// is empty. When every candidate is invalid the best-ranked of them is returned (Syncthing
/// keeps such a global, but nobody [`needs`] it).
///
/// The result depends only on the set of candidates, never on their order, even for inputs
/// where pairwise ranking is not transitive (a dominated version that wins a concurrent
/// tie-break against a third): candidates superseded by another valid candidate are dropped
/// first, and the survivors — pairwise equal or concurrent — are totally ordered by
/// [`compare_candidates`]. For consistent inputs this is exactly "the first valid row in rank
/// order" of the spec.
///
/// ```
/// use syncd_conflict::*;
/// use syncd_types::FileKind;
///
/// let (old, new) = (VersionVector::new().updated(ShortId(1), 5), VersionVector::new().updated(ShortId(1), 6));
/// let cand = |device: u8, version, invalid| Candidate {
///     device: DeviceId::from_bytes([device; 32]), version, invalid, deleted: false,
///     kind: FileKind::File, modified_s: 0, modified_ns: 0, modified_by: ShortId(1),
///     blocks_hash: &[], previous_blocks_hash: &[],
/// };
/// // The newest version is ignored on device 2, so the valid older one is global.
/// let rows = [cand(2, &new, true), cand(3, &old, false)];
/// assert_eq!(select_global(&rows, DeleteRule::V2), Some(1));
/// assert_eq!(select_global(&[], DeleteRule::V2), None);
/// ```
pub fn select_global(candidates: &[Candidate<'_>], rule: DeleteRule) -> Option<usize> {
    let any_valid = candidates.iter().any(|c| !c.invalid);
    let pool = || {
        candidates
            .iter()
            .enumerate()
            .filter(move |(_, c)| !any_valid || !c.invalid)
    };
    pool()
        .filter(|(_, c)| {
            !pool().any(|(_, other)| other.version.compare(c.version) == VersionOrdering::Greater)
        })
        .min_by(|(_, a), (_, b)| compare_candidates(a, b, rule))
        .map(|(i, _)| i)
}

/// Whether the device holding `local` (`None` = it has no record for the path) needs
/// `global`, the candidate [`select_global`] chose from a set that includes `local`.
///
/// Not needed when `global` is invalid, or when the device "has it": its vector is equal to
/// or supersedes the global one (even if the local record is invalid, e.g. ignored), or it
/// has no record and the global is a delete. A local record concurrent with the global one
/// lost the ranking (or is invalid), so it is needed. The caller still skips locally ignored
/// paths when listing what to pull.
///
/// ```
/// use syncd_conflict::*;
/// use syncd_types::FileKind;
///
/// let v = VersionVector::new().updated(ShortId(9), 5);
/// let global = Candidate {
///     device: DeviceId::from_bytes([9; 32]), version: &v, invalid: false, deleted: true,
///     kind: FileKind::File, modified_s: 5, modified_ns: 0, modified_by: ShortId(9),
///     blocks_hash: &[], previous_blocks_hash: &[],
/// };
/// assert!(!needs(None, &global)); // nothing to delete
/// ```
pub fn needs(local: Option<&Candidate<'_>>, global: &Candidate<'_>) -> bool {
    if global.invalid {
        return false;
    }
    match local {
        None => !global.deleted,
        Some(local) => !local.version.compare(global.version).is_greater_or_equal(),
    }
}

/// Whether a remote device that announced `remote` (`None` = nothing) still needs `global`,
/// for its completion percentage: a valid live global whose exact version it does not
/// announce, or a valid deleted global where it announces a valid live record.
///
/// ```
/// use syncd_conflict::*;
/// use syncd_types::FileKind;
///
/// let v = VersionVector::new().updated(ShortId(9), 5);
/// let global = Candidate {
///     device: DeviceId::from_bytes([9; 32]), version: &v, invalid: false, deleted: false,
///     kind: FileKind::File, modified_s: 5, modified_ns: 0, modified_by: ShortId(9),
///     blocks_hash: &[], previous_blocks_hash: &[],
/// };
/// assert!(remote_needs(None, &global));
/// assert!(!remote_needs(Some(&global), &global));
/// ```
pub fn remote_needs(remote: Option<&Candidate<'_>>, global: &Candidate<'_>) -> bool {
    if global.invalid {
        return false;
    }
    if global.deleted {
        return remote.is_some_and(|r| !r.invalid && !r.deleted);
    }
    remote.is_none_or(|r| r.version != global.version)
}
