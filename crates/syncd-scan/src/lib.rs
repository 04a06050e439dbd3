//! `syncd-scan`: from bytes on disk to local index records — the walker, the hasher and the
//! watcher of one folder.
//!
//! Key types:
//! - [`Scanner`]: walks a folder root (or given sub-paths), prunes with `syncd-ignore`
//!   (an ignored directory that [`syncd_ignore::Match::can_skip_dir`] allows is never opened),
//!   compares every entry with its local record in `syncd-index` (kind, size, mtime ns,
//!   permissions, symlink target, inode — 0 is unknown: equal means not read), hashes what
//!   changed on a rayon pool (a full scan hashes each file as soon as the walk finds it),
//!   bumps versions through `syncd-conflict` and commits **one batch
//!   per scan**. Missing entries become deletion records; newly ignored ones become invalid.
//!   An entry that is equivalent to the folder's global record (e.g. a file the puller has
//!   renamed into place but not yet committed) takes the global's version instead of a bump:
//!   nothing is needed.
//! - [`hash::hash_file`]: one bounded-buffer pass producing the BEP block list (sizes from
//!   `syncd-proto`'s table), the blocks hash and the FastCDC v2020 chunk list
//!   (`syncd_proto::cdc` parameters), SHA-256 each; stat before and after, so a file that
//!   changes while it is read is reported for retry, never announced with a torn hash.
//!   A large file's two lists are built in two overlapping stages on the pool (both cores
//!   busy even on one file).
//! - [`FolderWatcher`]: inotify (via `notify`, non-recursive watches, one per non-ignored
//!   directory, asking for changes and close-after-write but no opens or read-only closes,
//!   so reading a file costs the watcher nothing), debounced and coalesced into paths to
//!   rescan, overflow → full rescan, a watch cap with a one-time warning and periodic
//!   fallback, periodic full rescans.
//! - [`case::CaseResolver`]: the on-disk case of names, for folders on a case-insensitive
//!   filesystem (a cached directory-listing lookup; Syncthing's case-conflict error).
//! - [`CounterSnapshot`]: directories opened, files read, bytes hashed, progress totals.
//!
//! Invariants: symlinks are recorded (with their target bytes), never followed — not while
//! walking, not while opening a file (`O_NOFOLLOW`), not through a symlinked parent of a
//! rescanned path. Names are NFC `RelPath`s; a name that cannot be synced is an
//! [`EntryError`], never a record. Internal names (`.stfolder`, `.stignore`, temp files) are
//! never recorded. No whole-file buffers: memory per hashing thread is bounded.
//!
//! It does NOT pull, resolve conflicts, detect renames, or talk to peers; it does not
//! decide what peers need (the index does).
//!
//! ```no_run
//! use std::sync::Arc;
//! use syncd_scan::{ScanConfig, Scanner};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let index = Arc::new(syncd_index::Index::open("/tmp/idx.redb", syncd_types::DeviceId::EMPTY)?);
//! let folder: syncd_types::FolderId = "default".parse()?;
//! let scanner = Scanner::new("/srv/sync", folder, index, ScanConfig::default())?;
//! let report = scanner.scan()?;
//! println!("{} records, {} errors", report.committed, report.errors.len());
//! # Ok(()) }
//! ```

// The README's example runs as a doctest, so the published front page stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod adopt;
pub use adopt::equivalent;
pub mod case;
pub mod hash;
mod params;
mod scan;
pub mod stat;
pub mod verify;
mod watch;

pub use scan::{
    CommitHook, CounterSnapshot, Counters, EntryError, ScanConfig, ScanError, ScanReport, Scanner,
    default_hashers,
};
pub use watch::{FolderWatcher, WatchBackend, WatchConfig, WatchError, WatchStats};
