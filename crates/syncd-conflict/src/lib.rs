//! `syncd-conflict`: decides which version of a file wins, whether a device needs it, and what
//! happens to a losing local file — with Syncthing's rules, so that every device of a mixed
//! syncd/Syncthing cluster picks the same winner from the same announcements.
//!
//! Key items:
//! - [`VersionVector`] / [`Counter`] / [`VersionOrdering`]: version vectors, their update rule
//!   (`max(old + 1, now)`), merge and five-way comparison (spec sync-semantics §1.2).
//! - [`Candidate`]: a borrowed view of one device's record for a path; [`compare_candidates`],
//!   [`select_global`], [`needs`] and [`remote_needs`] rank candidates, pick the global version
//!   and decide need (§1.3–§1.4), under a [`DeleteRule`] (Syncthing 1.x: a concurrent edit
//!   always beats a delete; 2.x: a delete is an ordinary version).
//! - [`resolve`] (with a [`LocalContext`]) → [`Resolution`] / [`LocalFate`]: the conflict
//!   decision on the device holding a losing local record: keep, overwrite, metadata only,
//!   conflict copy or discard, and the version the local record adopts (§2.1, §2.2, §2.5; see [`Resolution::TakeRemote`] for
//!   why a conflict loser merges and bumps instead of adopting the winner's vector as is).
//! - [`conflict_copy_name`], [`is_conflict_copy`], [`conflicts_to_remove`], [`MaxConflicts`],
//!   [`LocalTime`]: conflict-copy names and `maxConflicts` pruning (§2.3–§2.4).
//!
//! Invariants:
//! - Pure: no IO, no clock, no time zone database. Times are arguments (`now_unix_secs`,
//!   [`LocalTime`]).
//! - Deterministic: [`select_global`] depends only on the set of candidates, not their order;
//!   [`compare_candidates`] is antisymmetric. Two devices holding the same announcements
//!   compute the same global version and the same conflict-copy name.
//! - Vectors keep their counters sorted by short ID with no zero counters.
//!
//! Not here: storing records (`syncd-index`), comparing block lists or touching files
//! (`syncd-engine`), choosing the [`DeleteRule`] from peers' client versions (the engine, via
//! [`DeleteRule::for_cluster`]).
//!
//! ```
//! use syncd_conflict::*;
//! use syncd_types::FileKind;
//!
//! // Two devices edit the same file on a common base; equal mtimes.
//! let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
//! let base = VersionVector::new().updated(a.short(), 1_000);
//! let (va, vb) = (base.updated(a.short(), 2_000), base.updated(b.short(), 2_000));
//! let cand = |device: DeviceId, version, blocks_hash| Candidate {
//!     device, version, invalid: false, deleted: false, kind: FileKind::File,
//!     modified_s: 2_000, modified_ns: 0, modified_by: device.short(),
//!     blocks_hash, previous_blocks_hash: &[],
//! };
//! let (ca, cb) = (cand(a, &va, b"A"), cand(b, &vb, b"B"));
//! let global = select_global(&[ca, cb], DeleteRule::V2);
//! assert_eq!(global, Some(0)); // `a` has the lower short ID: ConcurrentGreater
//!
//! // On device b the local file loses and is moved aside, named after the winner.
//! let Resolution::TakeRemote { fate: LocalFate::ConflictCopy { winner_modified_by }, .. } =
//!     resolve(Some(&cb), &ca, &LocalContext {
//!         path: "notes.txt", device: b.short(), now_unix_secs: 3_000,
//!         max_conflicts: MaxConflicts::default(),
//!     })
//! else { panic!("expected a conflict copy") };
//! let now = LocalTime::from_unix(1_767_366_245, 0);
//! assert_eq!(conflict_copy_name("notes.txt", winner_modified_by, now).as_deref(),
//!            Some("notes.sync-conflict-20260102-150405-AEAQCAI.txt"));
//! ```

// The README's example runs as a doctest, so the published front page stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod names;
mod order;
mod resolve;
mod vector;

pub use names::{
    CONFLICT_MARKER, ConflictCopyName, LocalTime, MaxConflicts, conflict_copy_name,
    conflicts_to_remove, is_conflict_copy, is_conflict_copy_of, parse_conflict_copy,
};
pub use order::{Candidate, DeleteRule, compare_candidates, needs, remote_needs, select_global};
pub use resolve::{DiscardReason, LocalContext, LocalFate, Resolution, in_conflict, resolve};
pub use syncd_types::{DeviceId, ShortId};
pub use vector::{Counter, VersionOrdering, VersionVector};
