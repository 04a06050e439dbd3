//! The conflict decision: what the device holding `local` does when `remote` is the version
//! to install (spec sync-semantics §2.1, §2.2, §2.5).

use syncd_types::ShortId;

use crate::names::{MaxConflicts, is_conflict_copy};
use crate::order::{Candidate, DeleteRule, compare_candidates};
use crate::vector::VersionVector;

/// What happens to the path on this device, decided by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// The local record ranks at or before the remote one (or has that version already):
    /// nothing changes here. If the versions conflict, the other device makes the copy.
    KeepLocal,
    /// Install the remote version. First do what [`LocalFate`] says with the existing local
    /// item; afterwards the local record takes the remote record with `adopt_version`.
    TakeRemote {
        /// What happens to the existing local item.
        fate: LocalFate,
        /// The version the local record adopts: the winner's vector, unchanged (no merge,
        /// no bump; Syncthing PR #6995), so the resolution needs no further round trip.
        adopt_version: VersionVector,
    },
}

/// What happens to the existing local item before the remote version is installed.
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

/// The conflict decision for one path on the device holding `local` (`None` = no record),
/// when `remote` is another device's record (normally the global one) and `local_path` the
/// path's name (relative, `/`-separated).
///
/// - `local` ranks at or before `remote` under `rule` (see
///   [`compare_candidates`]) → [`Resolution::KeepLocal`]. The winner never copies anything.
/// - Otherwise the remote version is taken ([`Resolution::TakeRemote`]) and the local item's
///   fate is, in order:
///   1. no live local item → [`LocalFate::Absent`];
///   2. both live regular files with equal, known `blocks_hash` → [`LocalFate::MetadataOnly`]
///      (identical content never makes a copy);
///   3. local is a directory or symlink, or not [`in_conflict`] → [`LocalFate::Overwrite`];
///   4. local is a regular file in conflict (whatever the remote is: a file, a directory, a
///      symlink, or under [`DeleteRule::V2`] a newer delete) → [`LocalFate::ConflictCopy`]
///      named after the remote's `modified_by`, or [`LocalFate::Discard`] when `local_path`
///      is already a conflict copy or `max_conflicts` is 0.
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
/// let local = cand(1, &ours, 20, b"ours");
/// let remote = cand(2, &theirs, 30, b"theirs"); // newer mtime: remote wins
/// let got = resolve(Some(&local), &remote, DeleteRule::V2, "notes.txt", MaxConflicts::default());
/// assert_eq!(got, Resolution::TakeRemote {
///     fate: LocalFate::ConflictCopy { winner_modified_by: ShortId(2) },
///     adopt_version: theirs.clone(),
/// });
/// // On the other device the same pair resolves the other way round: it keeps its version.
/// assert_eq!(resolve(Some(&remote), &local, DeleteRule::V2, "notes.txt", MaxConflicts::default()),
///            Resolution::KeepLocal);
/// ```
pub fn resolve(
    local: Option<&Candidate<'_>>,
    remote: &Candidate<'_>,
    rule: DeleteRule,
    local_path: &str,
    max_conflicts: MaxConflicts,
) -> Resolution {
    let take = |fate| Resolution::TakeRemote {
        fate,
        adopt_version: remote.version.clone(),
    };
    let Some(local) = local else {
        return take(LocalFate::Absent);
    };
    let local_keeps = if remote.invalid {
        // An invalid record is never installed: nobody pulls it.
        true
    } else {
        local.version.compare(remote.version).is_greater_or_equal()
            || compare_candidates(local, remote, rule).is_le()
    };
    if local_keeps {
        return Resolution::KeepLocal;
    }
    if local.deleted {
        return take(LocalFate::Absent);
    }
    if local.is_live_file()
        && remote.is_live_file()
        && !local.blocks_hash.is_empty()
        && local.blocks_hash == remote.blocks_hash
    {
        return take(LocalFate::MetadataOnly);
    }
    if !local.is_live_file() || !in_conflict(remote, local) {
        return take(LocalFate::Overwrite);
    }
    let fate = if is_conflict_copy(local_path) {
        LocalFate::Discard {
            reason: DiscardReason::AlreadyConflictCopy,
        }
    } else if max_conflicts == MaxConflicts::Keep(0) {
        LocalFate::Discard {
            reason: DiscardReason::CopiesDisabled,
        }
    } else {
        LocalFate::ConflictCopy {
            winner_modified_by: remote.modified_by,
        }
    };
    take(fate)
}
