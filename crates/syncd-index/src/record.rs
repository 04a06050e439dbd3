//! [`FileRecord`], the index's own stored file entry, and its byte encoding (described byte by
//! byte in `docs/index-format.md`).

use crate::codec::{Reader, put_bytes, put_ivarint, put_uvarint};
use crate::error::DecodeError;
use syncd_conflict::{Counter, VersionVector};
use syncd_types::{FileKind, RelPath, ShortId};

/// Version byte that opens every stored entry (the per-name value of the `files` table).
pub(crate) const ENTRY_FORMAT: u8 = 1;

/// One block or chunk of a file's content: where it lies and the SHA-256 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub size: u32,
    /// SHA-256 of the bytes.
    pub hash: [u8; 32],
}

/// What one device announced (or the local device has) for one path in one folder.
///
/// This is the index's own type, not the wire `FileInfo`: the engine converts at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Path relative to the folder root.
    pub name: RelPath,
    /// File, directory or symlink.
    pub kind: FileKind,
    /// Size in bytes (0 for deleted entries).
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub modified_s: i64,
    /// Nanosecond part of the modification time.
    pub modified_ns: i32,
    /// Unix permission bits.
    pub permissions: u32,
    /// The version vector.
    pub version: VersionVector,
    /// For local records, assigned by the index on apply (the value passed in is ignored); for
    /// remote records, the sender's sequence.
    pub sequence: u64,
    /// Deleted entry (tombstone).
    pub deleted: bool,
    /// Invalid entry (ignored, unsupported, announced invalid by a peer): never global while a
    /// valid one exists, needed by nobody.
    pub invalid: bool,
    /// Permissions are not to be applied.
    pub no_permissions: bool,
    /// Symlink target bytes (empty unless a symlink).
    pub symlink_target: Vec<u8>,
    /// Short ID of the device that last modified the entry.
    pub modified_by: ShortId,
    /// The BEP fixed-size block list.
    pub blocks: Vec<Block>,
    /// syncd's content-defined chunk list (empty when unknown, e.g. from a Syncthing peer).
    pub chunks: Vec<Block>,
    /// Hash over the block list (empty when unknown).
    pub blocks_hash: Vec<u8>,
    /// `blocks_hash` of the version this one was edited from (empty when unknown).
    pub previous_blocks_hash: Vec<u8>,
    /// The file's inode (file ID on Windows) when the scanner last saw it, for change
    /// detection; 0 = unknown. Local records only: [`crate::FolderWriter::apply_remote`] stores
    /// 0 whatever it is given, and it is never sent on the wire.
    pub inode: u64,
    /// Local deletions only: what the deletion replaced, when it was a live local record of
    /// the same kind whose blocks hash is the deletion's `previous_blocks_hash` (set by
    /// [`crate::FolderWriter::apply_local`]; `None` otherwise, for remote records, and for
    /// records stored before format version 4). Never sent on the wire: it tells the sender
    /// of an index whether a peer holding its records up to some sequence holds the replaced
    /// record, and what that record's content was.
    pub replaced: Option<Replaced>,
    /// A local change in a receive-only folder (Syncthing's `FlagLocalReceiveOnly`): such a
    /// record is also [`FileRecord::invalid`], so it never becomes global while a valid record
    /// exists, yet it describes what is on disk, and the scanner treats it as live. Local
    /// records only: [`crate::FolderWriter::apply_remote`] stores `false`; on the wire it is
    /// an invalid record with an empty version.
    pub receive_only: bool,
}

/// The live local record a local deletion replaced (see [`FileRecord::replaced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    /// Its sequence.
    pub sequence: u64,
    /// Its [`FileRecord::content_fingerprint`].
    pub fingerprint: u64,
}

impl FileRecord {
    /// A record with the given name and kind and every other field empty or zero.
    pub fn new(name: RelPath, kind: FileKind) -> Self {
        FileRecord {
            name,
            kind,
            size: 0,
            modified_s: 0,
            modified_ns: 0,
            permissions: 0,
            version: VersionVector::new(),
            sequence: 0,
            deleted: false,
            invalid: false,
            no_permissions: false,
            symlink_target: Vec::new(),
            modified_by: ShortId(0),
            blocks: Vec::new(),
            chunks: Vec::new(),
            blocks_hash: Vec::new(),
            previous_blocks_hash: Vec::new(),
            inode: 0,
            replaced: None,
            receive_only: false,
        }
    }

    /// Whether this local record describes an entry on disk: not deleted, and valid or a
    /// receive-only change (invalid toward peers, but live here).
    pub fn is_live_local(&self) -> bool {
        !self.deleted && (!self.invalid || self.receive_only)
    }

    /// Whether `other` repeats this live record's content under another name: the fields
    /// [`FileRecord::content_fingerprint`] covers are equal.
    pub fn same_content(&self, other: &FileRecord) -> bool {
        !self.deleted
            && !self.invalid
            && self.kind == other.kind
            && self.size == other.size
            && self.modified_s == other.modified_s
            && self.modified_ns == other.modified_ns
            && self.permissions == other.permissions
            && self.no_permissions == other.no_permissions
            && self.symlink_target == other.symlink_target
            && self.blocks == other.blocks
            && self.chunks == other.chunks
            && self.blocks_hash == other.blocks_hash
    }

    /// A stable 64-bit FNV-1a hash of what a copy of this record under another name keeps:
    /// kind, size, modification time, permissions, symlink target, blocks, chunks and blocks
    /// hash (not the name, version, sequence, modifier, flags of deletion or validity, or the
    /// previous blocks hash). Equal records give equal fingerprints, in every release.
    pub fn content_fingerprint(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.write(&[match self.kind {
            FileKind::File => 0,
            FileKind::Directory => 1,
            FileKind::Symlink => 2,
        }]);
        h.write(&self.size.to_le_bytes());
        h.write(&self.modified_s.to_le_bytes());
        h.write(&self.modified_ns.to_le_bytes());
        h.write(&self.permissions.to_le_bytes());
        h.write(&[u8::from(self.no_permissions)]);
        for part in [&self.symlink_target, &self.blocks_hash] {
            h.write(&(part.len() as u64).to_le_bytes());
            h.write(part);
        }
        for list in [&self.blocks, &self.chunks] {
            h.write(&(list.len() as u64).to_le_bytes());
            for b in list {
                h.write(&b.offset.to_le_bytes());
                h.write(&b.size.to_le_bytes());
                h.write(&b.hash);
            }
        }
        h.0
    }

    /// The view of this record that `syncd-conflict` ranks.
    pub fn candidate(&self, device: syncd_types::DeviceId) -> syncd_conflict::Candidate<'_> {
        syncd_conflict::Candidate {
            device,
            version: &self.version,
            invalid: self.invalid,
            deleted: self.deleted,
            kind: self.kind,
            modified_s: self.modified_s,
            modified_ns: self.modified_ns,
            modified_by: self.modified_by,
            blocks_hash: &self.blocks_hash,
            previous_blocks_hash: &self.previous_blocks_hash,
        }
    }

    /// Appends the encoding of everything but the name (which lives in the key).
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let flags = u8::from(self.deleted)
            | u8::from(self.invalid) << 1
            | u8::from(self.no_permissions) << 2
            | u8::from(self.inode != 0) << 3
            | u8::from(self.replaced.is_some()) << 4
            | u8::from(self.receive_only) << 5;
        out.push(flags);
        out.push(match self.kind {
            FileKind::File => 0,
            FileKind::Directory => 1,
            FileKind::Symlink => 2,
        });
        put_uvarint(out, self.size);
        put_ivarint(out, self.modified_s);
        put_ivarint(out, i64::from(self.modified_ns));
        put_uvarint(out, u64::from(self.permissions));
        put_uvarint(out, self.sequence);
        if self.inode != 0 {
            put_uvarint(out, self.inode);
        }
        if let Some(r) = self.replaced {
            put_uvarint(out, r.sequence);
            out.extend_from_slice(&r.fingerprint.to_be_bytes());
        }
        out.extend_from_slice(&self.modified_by.0.to_be_bytes());
        let counters = self.version.counters();
        put_uvarint(out, counters.len() as u64);
        for c in counters {
            out.extend_from_slice(&c.id.0.to_be_bytes());
            put_uvarint(out, c.value);
        }
        put_bytes(out, &self.symlink_target);
        put_bytes(out, &self.blocks_hash);
        put_bytes(out, &self.previous_blocks_hash);
        encode_blocks(out, &self.blocks);
        encode_blocks(out, &self.chunks);
    }

    /// Decodes one record body (as written by [`FileRecord::encode_into`]).
    pub(crate) fn decode(name: RelPath, b: &[u8]) -> Result<FileRecord, DecodeError> {
        let mut r = Reader::new(b, "file record");
        let flags = r.u8()?;
        if flags & !0b11_1111 != 0 {
            return Err(DecodeError::OutOfRange {
                what: "file record",
                field: "flags",
                value: u64::from(flags),
            });
        }
        let kind = match r.u8()? {
            0 => FileKind::File,
            1 => FileKind::Directory,
            2 => FileKind::Symlink,
            k => {
                return Err(DecodeError::OutOfRange {
                    what: "file record",
                    field: "kind",
                    value: u64::from(k),
                });
            }
        };
        let size = r.uvarint()?;
        let modified_s = r.ivarint()?;
        let ns = r.ivarint()?;
        let modified_ns = i32::try_from(ns).map_err(|_| DecodeError::OutOfRange {
            what: "file record",
            field: "modified_ns",
            value: ns as u64,
        })?;
        let permissions = r.u32varint("permissions")?;
        let sequence = r.uvarint()?;
        let inode = if flags & 8 != 0 { r.uvarint()? } else { 0 };
        let replaced = if flags & 16 != 0 {
            Some(Replaced {
                sequence: r.uvarint()?,
                fingerprint: u64::from_be_bytes(r.array()?),
            })
        } else {
            None
        };
        let modified_by = ShortId(u64::from_be_bytes(r.array()?));
        let n = r.count("version counters", 9)?;
        let version = if n == 1 {
            // The usual single counter: one allocation instead of from_counters' collect,
            // sort and rebuild (the same vector for any nonzero value).
            let id = ShortId(u64::from_be_bytes(r.array()?));
            match r.uvarint()? {
                0 => VersionVector::new(),
                value => VersionVector::new().updated(id, value),
            }
        } else {
            let mut counters = Vec::with_capacity(n);
            for _ in 0..n {
                let id = ShortId(u64::from_be_bytes(r.array()?));
                let value = r.uvarint()?;
                counters.push(Counter { id, value });
            }
            VersionVector::from_counters(counters)
        };
        let symlink_target = r.bytes()?.to_vec();
        let blocks_hash = r.bytes()?.to_vec();
        let previous_blocks_hash = r.bytes()?.to_vec();
        let blocks = decode_blocks(&mut r)?;
        let chunks = decode_blocks(&mut r)?;
        if !r.is_empty() {
            return Err(DecodeError::Trailing {
                what: "file record",
                extra: 1,
            });
        }
        Ok(FileRecord {
            name,
            kind,
            size,
            modified_s,
            modified_ns,
            permissions,
            version,
            sequence,
            deleted: flags & 1 != 0,
            invalid: flags & 2 != 0,
            no_permissions: flags & 4 != 0,
            symlink_target,
            modified_by,
            blocks,
            chunks,
            blocks_hash,
            previous_blocks_hash,
            inode,
            replaced,
            receive_only: flags & 32 != 0,
        })
    }
}

/// FNV-1a, 64 bits: a hash whose output never changes between releases (stored in the index).
struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Offsets are stored as the gap from where the previous block ended, so contiguous lists (the
/// normal case) cost one byte per offset; any other layout still round-trips exactly.
fn encode_blocks(out: &mut Vec<u8>, blocks: &[Block]) {
    put_uvarint(out, blocks.len() as u64);
    let mut expected: u64 = 0;
    for b in blocks {
        put_uvarint(out, b.offset.wrapping_sub(expected));
        put_uvarint(out, u64::from(b.size));
        out.extend_from_slice(&b.hash);
        expected = b.offset.wrapping_add(u64::from(b.size));
    }
}

fn decode_blocks(r: &mut Reader<'_>) -> Result<Vec<Block>, DecodeError> {
    let n = r.count("blocks", 34)?;
    let mut blocks = Vec::with_capacity(n);
    let mut expected: u64 = 0;
    for _ in 0..n {
        let offset = expected.wrapping_add(r.uvarint()?);
        let size = r.u32varint("block size")?;
        let hash = r.array()?;
        blocks.push(Block { offset, size, hash });
        expected = offset.wrapping_add(u64::from(size));
    }
    Ok(blocks)
}

/// All records stored for one name: one per device, sorted by device number (the local device,
/// number 0, first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) records: Vec<(u32, FileRecord)>,
}

impl Entry {
    pub(crate) fn get(&self, device: u32) -> Option<&FileRecord> {
        self.records
            .iter()
            .find(|(d, _)| *d == device)
            .map(|(_, r)| r)
    }

    /// Replaces (or inserts, or with `None` removes) `device`'s record; returns the old one.
    pub(crate) fn set(&mut self, device: u32, record: Option<FileRecord>) -> Option<FileRecord> {
        match self.records.binary_search_by_key(&device, |(d, _)| *d) {
            Ok(i) => match record {
                Some(r) => Some(std::mem::replace(&mut self.records[i].1, r)),
                None => Some(self.records.remove(i).1),
            },
            Err(i) => {
                if let Some(r) = record {
                    self.records.insert(i, (device, r));
                }
                None
            }
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_to(&mut out, &mut Vec::with_capacity(200));
        out
    }

    /// [`Entry::encode`] into `out` (cleared first), with `body` as scratch space: a writer
    /// reuses both buffers for every name of a batch.
    pub(crate) fn encode_to(&self, out: &mut Vec<u8>, body: &mut Vec<u8>) {
        out.clear();
        out.push(ENTRY_FORMAT);
        put_uvarint(out, self.records.len() as u64);
        for (d, r) in &self.records {
            body.clear();
            r.encode_into(body);
            put_uvarint(out, u64::from(*d));
            put_bytes(out, body);
        }
    }

    pub(crate) fn decode(name: &RelPath, b: &[u8]) -> Result<Entry, DecodeError> {
        Entry::decode_owned(name.clone(), b)
    }

    /// [`Entry::decode`] taking the name by value: the last record gets it without a copy.
    pub(crate) fn decode_owned(name: RelPath, b: &[u8]) -> Result<Entry, DecodeError> {
        let mut name = Some(name);
        let mut r = Reader::new(b, "entry");
        let v = r.u8()?;
        if v != ENTRY_FORMAT {
            return Err(DecodeError::UnknownVersion {
                what: "entry",
                found: v,
            });
        }
        let n = r.count("records", 2)?;
        let mut records: Vec<(u32, FileRecord)> = Vec::with_capacity(n);
        for _ in 0..n {
            let d = r.u32varint("device")?;
            if records.last().is_some_and(|(prev, _)| *prev >= d) {
                return Err(DecodeError::OutOfRange {
                    what: "entry",
                    field: "device order",
                    value: u64::from(d),
                });
            }
            let body = r.bytes()?;
            let this_name = if records.len() + 1 == n {
                name.take()
            } else {
                name.clone()
            };
            let this_name = this_name.ok_or(DecodeError::OutOfRange {
                what: "entry",
                field: "records",
                value: n as u64,
            })?;
            records.push((d, FileRecord::decode(this_name, body)?));
        }
        if !r.is_empty() {
            return Err(DecodeError::Trailing {
                what: "entry",
                extra: 1,
            });
        }
        Ok(Entry { records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FileRecord {
        let mut f = FileRecord::new(RelPath::new("a/b.txt").unwrap(), FileKind::File);
        f.size = 300_000;
        f.modified_s = -5;
        f.modified_ns = 999_999_999;
        f.permissions = 0o755;
        f.sequence = 42;
        f.version = VersionVector::from_counters([Counter {
            id: ShortId(7),
            value: 1_700_000_000,
        }]);
        f.modified_by = ShortId(7);
        f.blocks = vec![
            Block {
                offset: 0,
                size: 131_072,
                hash: [1; 32],
            },
            Block {
                offset: 131_072,
                size: 168_928,
                hash: [2; 32],
            },
        ];
        f.chunks = vec![Block {
            offset: 7,
            size: 3,
            hash: [3; 32],
        }];
        f.blocks_hash = vec![9; 32];
        f.no_permissions = true;
        f
    }

    #[test]
    fn entry_round_trips() {
        let e = Entry {
            records: vec![(0, sample()), (3, sample())],
        };
        let name = RelPath::new("a/b.txt").unwrap();
        assert_eq!(Entry::decode(&name, &e.encode()).unwrap(), e);
    }

    #[test]
    fn inode_round_trips() {
        for inode in [1, 0x1234_5678, u64::MAX] {
            let mut f = sample();
            f.inode = inode;
            let mut body = Vec::new();
            f.encode_into(&mut body);
            assert_eq!(FileRecord::decode(f.name.clone(), &body).unwrap(), f);
        }
    }

    #[test]
    fn receive_only_round_trips_as_flag_bit_5() {
        let mut f = sample();
        f.invalid = true;
        f.receive_only = true;
        let mut body = Vec::new();
        f.encode_into(&mut body);
        assert_eq!(body[0] & 0b10_0010, 0b10_0010);
        assert_eq!(FileRecord::decode(f.name.clone(), &body).unwrap(), f);
    }

    #[test]
    fn replaced_round_trips_and_costs_nothing_when_unknown() {
        let mut f = sample();
        f.deleted = true;
        let mut without = Vec::new();
        f.encode_into(&mut without);
        f.replaced = Some(Replaced {
            sequence: 300,
            fingerprint: u64::MAX - 1,
        });
        let mut body = Vec::new();
        f.encode_into(&mut body);
        assert_eq!(body.len(), without.len() + 2 + 8);
        assert_eq!(FileRecord::decode(f.name.clone(), &body).unwrap(), f);
    }

    #[test]
    fn content_fingerprint_ignores_name_version_and_sequence_only() {
        let a = sample();
        let mut b = a.clone();
        b.name = RelPath::new("elsewhere/x").unwrap();
        b.sequence += 9;
        b.version = b.version.updated(ShortId(99), 5);
        b.modified_by = ShortId(99);
        b.previous_blocks_hash = vec![1; 32];
        assert_eq!(a.content_fingerprint(), b.content_fingerprint());
        // A fixed value: the fingerprint is stored, so it must not change between releases
        // (FNV-1a 64 over the 58 zero bytes an empty record feeds it, computed independently).
        assert_eq!(
            FileRecord::new(RelPath::new("x").unwrap(), FileKind::File).content_fingerprint(),
            0x7766_48f0_5cef_b14d
        );
        for change in [
            |r: &mut FileRecord| r.modified_ns += 1,
            |r: &mut FileRecord| r.permissions ^= 0o100,
            |r: &mut FileRecord| r.no_permissions = !r.no_permissions,
            |r: &mut FileRecord| r.size += 1,
            |r: &mut FileRecord| r.chunks.clear(),
        ] {
            let mut c = a.clone();
            change(&mut c);
            assert_ne!(a.content_fingerprint(), c.content_fingerprint());
        }
    }

    #[test]
    fn unknown_inode_costs_no_byte() {
        let mut with = sample();
        with.inode = 5;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sample().encode_into(&mut a);
        with.encode_into(&mut b);
        assert_eq!(b.len(), a.len() + 1);
    }

    #[test]
    fn contiguous_block_offsets_cost_one_byte() {
        let mut a = Vec::new();
        encode_blocks(&mut a, &sample().blocks);
        // count + 2 × (gap 1 byte + size 3 bytes + hash 32)
        assert_eq!(a.len(), 1 + 2 * (1 + 3 + 32));
    }

    #[test]
    fn unknown_entry_format_is_an_error() {
        let name = RelPath::new("x").unwrap();
        assert!(matches!(
            Entry::decode(&name, &[2, 0]),
            Err(DecodeError::UnknownVersion { found: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let name = RelPath::new("x").unwrap();
            let _ = Entry::decode(&name, &bytes);
            let _ = FileRecord::decode(name, &bytes);
        }

        #[test]
        fn truncated_entries_are_errors(cut in 0usize..200) {
            let e = Entry { records: vec![(0, sample())] }.encode();
            let name = RelPath::new("a/b.txt").unwrap();
            prop_assume!(cut < e.len());
            prop_assert!(Entry::decode(&name, &e[..cut]).is_err());
        }
    }
}
