//! `syncd-index`: the on-disk truth about every file on every device, on redb.
//!
//! Per folder, the index keeps the local device's record for each path and the last record
//! each peer announced ([`FileRecord`], our own type with its own versioned encoding, see
//! `docs/index-format.md`), and derives from them, kept current on every write:
//! the **global** version of each path (ranked by `syncd-conflict`, never here), the **need
//! set** of the local device, the **counts** behind `/rest/db/status` and per-peer
//! completion, and a **block map** from block/chunk hash to local data.
//!
//! Key types:
//! - [`Index`]: the database. [`Index::open`] (16 MiB cache by default, [`IndexOptions`]).
//! - [`FolderWriter`] ([`Index::write`]): one batch = one transaction.
//!   [`FolderWriter::apply_local`] assigns local sequences; [`FolderWriter::apply_remote`]
//!   takes a peer's `Index` ([`RemoteBatch::Full`]) or `IndexUpdate`;
//!   [`FolderWriter::set_remote_index_id`] implements the delta-index reset rule;
//!   [`FolderWriter::set_delete_rule`] switches between Syncthing 1.x and 2.x delete
//!   semantics. Several Index messages may be coalesced into one writer (up to ~10,000
//!   records) before [`FolderWriter::commit`]: the writer holds remote records back and
//!   applies them in key order in one pass (sorted B-tree updates touch each page once), so
//!   an error applying them may surface at a later call or at commit.
//! - [`FolderReader`] ([`Index::read`]): a consistent snapshot. [`FolderReader::local_since`]
//!   streams local records with sequence > N (delta indexes); [`FolderReader::need`] streams
//!   the need set (changes in name order so directories precede their contents, then
//!   deletions deepest-first; a long walk reads redb pages on a thread of its own while the
//!   caller decodes, in bounded batches, joined when the iterator drops); [`FolderReader::counts`] and [`FolderReader::device`] answer
//!   status and completion without a scan; [`FolderReader::find_block`] looks up local data by
//!   hash; [`FolderReader::get`] / [`FolderReader::global`] read single paths.
//!
//! Invariants:
//! - After every committed batch, the stored need set and all counts equal a recomputation
//!   from the records (checked by the model-based test).
//! - A process killed at any point reopens at the last committed batch (redb's commit is
//!   atomic and durable), consistent.
//! - Memory: redb's page cache plus at most one batch of records (a writer holds back at most
//!   10,000 remote records); iterators stream.
//!
//! It does **not**: decide version order or conflicts (`syncd-conflict`), speak the wire
//! format (`syncd-proto`; convert at the edge), touch folder contents on disk, or bump version
//! vectors (the caller does before [`FolderWriter::apply_local`]). Blocking IO: run it on a
//! blocking thread.
//!
//! ```
//! use syncd_index::{FileRecord, Index, RemoteBatch};
//! use syncd_types::{DeviceId, FileKind, FolderId, RelPath};
//! use syncd_conflict::VersionVector;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let me = DeviceId::from_bytes([1; 32]);
//! let peer = DeviceId::from_bytes([2; 32]);
//! let folder = FolderId::new("default").unwrap();
//! let index = Index::open(dir.path().join("index.redb"), me).unwrap();
//!
//! let mut file = FileRecord::new(RelPath::new("docs/a.txt").unwrap(), FileKind::File);
//! file.size = 10;
//! file.version = VersionVector::new().updated(peer.short(), 1);
//! file.sequence = 1;
//! let mut w = index.write(&folder).unwrap();
//! w.apply_remote(peer, RemoteBatch::Full, [file]).unwrap();
//! w.commit().unwrap();
//!
//! let r = index.read(&folder).unwrap();
//! assert_eq!(r.counts().unwrap().need.files, 1);
//! let needed: Vec<_> = r.need().unwrap().collect::<Result<_, _>>().unwrap();
//! assert_eq!(needed[0].global.name.as_str(), "docs/a.txt");
//! assert_eq!(needed[0].available, vec![peer]);
//! ```

mod codec;
mod counts;
mod error;
mod keys;
mod need;
mod read;
mod record;
mod store;
mod write;

pub use counts::Counts;
pub use error::{DecodeError, IndexError, OpenError};
pub use need::NeedIter;
pub use read::{
    BlockLocation, DeviceState, FolderCounts, FolderReader, GlobalRecord, LocalSince, LocalUnder,
    Needed,
};
pub use record::{Block, FileRecord, Replaced};
pub use store::{DEFAULT_CACHE_SIZE, FORMAT_VERSION, Index, IndexOptions};
pub use write::{FolderWriter, RemoteBatch};
