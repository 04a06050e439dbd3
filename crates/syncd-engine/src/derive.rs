//! Derived records (`docs/protocol.md`, "Derived records"): between syncd peers, a moved
//! directory's records and a batch of deletions travel as a few bytes per name instead of a
//! whole FileInfo each. The receiver rebuilds every record from its copy of the sender's
//! index, checks the rebuilt set against the sender's digest, and applies it like any
//! IndexUpdate.
//!
//! The sender ([`encode`]) derives a record only when it knows what the receiver will
//! rebuild, from records the receiver holds (sent before the window):
//! - a copy (a new name whose content equals an old one's): the old name's record is live and
//!   unchanged since it was sent, or was replaced by a deletion of ours that remembers it
//!   ([`FileRecord::replaced`]: sent before the window, same content fingerprint);
//! - a deletion: one that remembers the record it replaced, sent before the window.
//!
//! The receiver checks what it rebuilt against the sender's digest: on a mismatch (a bug, or
//! a fingerprint collision) it applies nothing, closes the connection and does not ask for
//! derived records on the next one (the peer then resends the same records in full).
//!
//! The bytes (front-coded names, sequence deltas, the digest) are `syncd_proto::derived`'s;
//! this module decides what to derive and rebuilds records from the index.

use std::collections::{BTreeMap, HashMap};

use syncd_conflict::VersionVector;
use syncd_index::{FileRecord, FolderReader, IndexError};
use syncd_proto::bep;
use syncd_proto::derived::{self, Copies, Deletions, Digest, Group, join};
use syncd_types::{DeviceId, FileKind, RelPath, ShortId};

use crate::convert;

pub(crate) use syncd_proto::derived::FEATURE_DERIVED;

/// Derivable records worth less than this in a window (a record counts 1, plus 1 per block
/// and per chunk it carries): send them in full (little to gain).
const MIN_WORTH: usize = 16;
/// Block-map lookups per window while looking for moved files' old names.
const MAX_LOOKUPS: usize = 64;
/// Deletions read beyond a window to find where its new files came from.
const LATER_DELETIONS: usize = 8192;

/// A window of our records, split into what goes in full and what the peer rebuilds.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    /// Records sent in full, in sequence order.
    pub(crate) plain: Vec<FileRecord>,
    /// The derived groups.
    pub(crate) groups: Vec<bep::SyncdDerived>,
    /// Digest over the derived records as the peer will rebuild them.
    pub(crate) digest: u64,
    /// Records derived.
    pub(crate) derived: usize,
    /// The window's highest sequence (0 for an empty window).
    pub(crate) last: u64,
}

/// Why a received group could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeriveError {
    #[error("malformed derived group: {0}")]
    Malformed(#[from] derived::DerivedError),
    #[error("derived record's base {0:?} is not a live record of the sender")]
    NoBase(String),
    #[error("derived records do not match the sender's digest")]
    Digest,
    #[error("index: {0}")]
    Index(#[from] IndexError),
}

/// The key a copy shares with the other copies of its group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CopyKey {
    from: String,
    to: String,
    version: Vec<(u64, u64)>,
    modified_by: u64,
    previous_blocks_hash: Vec<u8>,
}

/// The key a deletion shares with the other deletions of its group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DeleteKey {
    version: Vec<(u64, u64)>,
    modified_s: i64,
    modified_by: u64,
}

/// One name of a group: the relative name, the window index of its copy and of its deletion.
type Item = (String, Option<usize>, Option<usize>);

/// Splits `window` (our records with sequence > `sent`, in sequence order) for a peer that
/// holds every record of ours up to `sent`. `reader` is a snapshot that includes the window.
pub(crate) fn encode(
    window: Vec<FileRecord>,
    sent: u64,
    reader: &FolderReader,
    local: DeviceId,
) -> Result<Encoded, IndexError> {
    if window.iter().map(worth).sum::<usize>() < MIN_WORTH {
        return Ok(Encoded::plain(window));
    }
    let by_name: HashMap<&str, usize> = window
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let pairs = move_pairs(&window, &by_name, sent, reader, local)?;
    // The window's names in order: the names under a prefix are one run of it.
    let mut sorted: Vec<(&str, usize)> = by_name.iter().map(|(n, i)| (*n, *i)).collect();
    sorted.sort_unstable();

    let mut used = vec![false; window.len()];
    let mut groups: BTreeMap<(Option<CopyKey>, Option<DeleteKey>), Vec<Item>> = BTreeMap::new();
    for (from, to) in &pairs {
        let start = sorted.partition_point(|(n, _)| *n < to.as_str());
        let under = sorted
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|(n, _)| n.starts_with(to.as_str()));
        for &(_, i) in under {
            let Some(c) = window.get(i) else { continue };
            if used.get(i).copied().unwrap_or(true) || c.deleted || c.invalid {
                continue;
            }
            let Some(rel) = strip(c.name.as_str(), to) else {
                continue;
            };
            let src = join(from, rel);
            let del = match by_name.get(src.as_str()) {
                // The old name's deletion is in this window: derivable when it remembers a
                // record the peer holds with this content.
                Some(&j) => {
                    let Some(d) = window.get(j) else { continue };
                    let moved_here = !used.get(j).copied().unwrap_or(true)
                        && d.kind == c.kind
                        && deletion_key(d, sent).is_some()
                        && d.replaced
                            .is_some_and(|r| r.fingerprint == c.content_fingerprint());
                    if !moved_here {
                        continue;
                    }
                    Some(j)
                }
                // Otherwise the peer's record of the old name is ours as we have it (live,
                // sent) or as our later deletion remembers it.
                None => {
                    let Ok(name) = RelPath::from_wire(&src) else {
                        continue;
                    };
                    match reader.get(local, &name)? {
                        Some(b) if b.sequence <= sent && b.same_content(c) => None,
                        // (A deletion already sent left the peer without the base.)
                        Some(b)
                            if b.kind == c.kind
                                && b.sequence > sent
                                && b.replaced.is_some_and(|r| {
                                    r.sequence <= sent && r.fingerprint == c.content_fingerprint()
                                }) =>
                        {
                            None
                        }
                        _ => continue,
                    }
                }
            };
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            let dkey = match del {
                Some(j) => {
                    if let Some(u) = used.get_mut(j) {
                        *u = true;
                    }
                    window.get(j).and_then(|d| deletion_key(d, sent))
                }
                None => None,
            };
            let ckey = CopyKey {
                from: from.clone(),
                to: to.clone(),
                version: counters(&c.version),
                modified_by: c.modified_by.get(),
                previous_blocks_hash: c.previous_blocks_hash.clone(),
            };
            groups
                .entry((Some(ckey), dkey))
                .or_default()
                .push((rel.to_owned(), Some(i), del));
        }
    }
    // Deletions of names the peer holds live (their previous record went out before).
    for (i, d) in window.iter().enumerate() {
        if used.get(i).copied().unwrap_or(true) {
            continue;
        }
        if let Some(k) = deletion_key(d, sent) {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            groups.entry((None, Some(k))).or_default().push((
                d.name.as_str().to_owned(),
                None,
                Some(i),
            ));
        }
    }
    let derived: usize = groups
        .values()
        .flatten()
        .map(|(_, c, d)| usize::from(c.is_some()) + usize::from(d.is_some()))
        .sum();
    let worth: usize = groups
        .values()
        .flatten()
        .flat_map(|(_, c, d)| [*c, *d])
        .flatten()
        .filter_map(|i| window.get(i))
        .map(worth)
        .sum();
    if worth < MIN_WORTH {
        return Ok(Encoded::plain(window));
    }

    let mut digest = Digest::new();
    let mut out = Vec::with_capacity(groups.len());
    let mut is_derived = vec![false; window.len()];
    for ((ckey, dkey), mut items) in groups {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let sequences = |pick: fn(&Item) -> Option<usize>| -> Vec<u64> {
            items
                .iter()
                .filter_map(pick)
                .filter_map(|i| window.get(i))
                .map(|r| r.sequence)
                .collect()
        };
        let (from, copies) = match ckey {
            Some(k) => (
                k.from,
                Some(Copies {
                    to: k.to,
                    version: wire_vector(&k.version),
                    modified_by: k.modified_by,
                    previous_blocks_hash: k.previous_blocks_hash,
                    sequences: sequences(|(_, c, _)| *c),
                }),
            ),
            None => (String::new(), None),
        };
        let deletions = dkey.map(|k| Deletions {
            version: wire_vector(&k.version),
            modified_s: k.modified_s,
            modified_by: k.modified_by,
            sequences: sequences(|(_, _, d)| *d),
        });
        let group = Group {
            from,
            names: items.iter().map(|(n, _, _)| n.clone()).collect(),
            copies,
            deletions,
        };
        for i in items
            .iter()
            .filter_map(|(_, c, _)| *c)
            .chain(items.iter().filter_map(|(_, _, d)| *d))
        {
            if let (Some(r), Some(flag)) = (window.get(i), is_derived.get_mut(i)) {
                *flag = true;
                add_to_digest(&mut digest, &as_received(r));
            }
        }
        out.push(group.encode());
    }
    let last = window.last().map_or(0, |r| r.sequence);
    let plain = window
        .into_iter()
        .zip(is_derived)
        .filter_map(|(r, d)| (!d).then_some(r))
        .collect();
    Ok(Encoded {
        plain,
        groups: out,
        digest: digest.value(),
        derived,
        last,
    })
}

/// What sending a record in full costs beyond a derived one, roughly: 1, plus 1 per block
/// and per chunk it carries.
fn worth(r: &FileRecord) -> usize {
    1 + r.blocks.len() + r.chunks.len()
}

impl Encoded {
    /// The whole window in full.
    pub(crate) fn plain(window: Vec<FileRecord>) -> Encoded {
        Encoded {
            last: window.last().map_or(0, |r| r.sequence),
            plain: window,
            ..Encoded::default()
        }
    }
}

/// The (old prefix, new prefix) pairs of the moves in `window`: a new file whose content
/// equals that of a name deleted in the window, or of a live name the peer holds (found
/// through the block map), gives the longest pair of prefixes with the same remainder.
fn move_pairs(
    window: &[FileRecord],
    by_name: &HashMap<&str, usize>,
    sent: u64,
    reader: &FolderReader,
    local: DeviceId,
) -> Result<Vec<(String, String)>, IndexError> {
    let deleted_content: HashMap<&[u8], &str> = window
        .iter()
        .filter(|d| d.deleted && !d.invalid && !d.previous_blocks_hash.is_empty())
        .map(|d| (d.previous_blocks_hash.as_slice(), d.name.as_str()))
        .collect();
    // Deletions committed after the window (the puller deletes a move's old names after it
    // has copied their data to the new ones): the newest records, read back to the first
    // that is not a deletion. Read once, when a new file's source is not found otherwise.
    let mut later_deleted: Option<HashMap<Vec<u8>, String>> = None;
    let window_end = window.last().map_or(sent, |r| r.sequence);
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut lookups = 0;
    for c in window {
        if c.deleted || c.invalid || c.kind != FileKind::File || c.blocks_hash.is_empty() {
            continue;
        }
        if pairs
            .iter()
            .any(|(_, to)| strip(c.name.as_str(), to).is_some())
        {
            continue;
        }
        let mut src = deleted_content
            .get(c.blocks_hash.as_slice())
            .map(|s| (*s).to_owned());
        if src.is_none() {
            let later = match &mut later_deleted {
                Some(l) => l,
                None => later_deleted.insert(later_deletions(reader, window_end)?),
            };
            src = later.get(&c.blocks_hash).cloned();
        }
        if src.is_none()
            && lookups < MAX_LOOKUPS
            && let Some(first) = c.blocks.first()
        {
            lookups += 1;
            for loc in reader.find_block(&first.hash, 4)? {
                if loc.name == c.name || by_name.contains_key(loc.name.as_str()) {
                    continue;
                }
                if let Some(b) = reader.get(local, &loc.name)?
                    && b.sequence <= sent
                    && b.same_content(c)
                {
                    src = Some(loc.name.as_str().to_owned());
                    break;
                }
            }
        }
        if let Some(src) = src {
            let pair = prefixes(&src, c.name.as_str());
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
    Ok(pairs)
}

/// Newest local deletions after sequence `after` that remember a replaced record, by that
/// record's blocks hash: read from the newest record back to the first that is not such a
/// deletion, at most [`LATER_DELETIONS`] of them.
fn later_deletions(
    reader: &FolderReader,
    after: u64,
) -> Result<HashMap<Vec<u8>, String>, IndexError> {
    let mut out = HashMap::new();
    for r in reader.local_since(after)?.rev().take(LATER_DELETIONS) {
        let r = r?;
        if !r.deleted || r.replaced.is_none() {
            break;
        }
        if !r.previous_blocks_hash.is_empty() {
            out.insert(r.previous_blocks_hash, r.name.as_str().to_owned());
        }
    }
    Ok(out)
}

/// The prefixes of `old` and `new` left when their longest common run of trailing
/// components is removed (`a/x/f`, `b/x/f` → `a`, `b`).
fn prefixes(old: &str, new: &str) -> (String, String) {
    let (mut o, mut n): (Vec<&str>, Vec<&str>) =
        (old.split('/').collect(), new.split('/').collect());
    while o.len() > 1 && n.len() > 1 && o.last() == n.last() {
        o.pop();
        n.pop();
    }
    (o.join("/"), n.join("/"))
}

/// `name` relative to `prefix` ("" for the prefix itself), if it is the prefix or below it.
fn strip<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(name);
    }
    let rest = name.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

/// The group key of a deletion the peer can rebuild: one that remembers the live record it
/// replaced, sent before the window (so the peer holds it), and that has the shape the
/// scanner and the puller give a deletion (only version, time and modifier set).
fn deletion_key(d: &FileRecord, sent: u64) -> Option<DeleteKey> {
    let rebuildable = d.deleted
        && !d.invalid
        && d.replaced.is_some_and(|r| r.sequence <= sent)
        && d.size == 0
        && d.modified_ns == 0
        && d.permissions == 0
        && !d.no_permissions
        && d.symlink_target.is_empty()
        && d.blocks.is_empty()
        && d.chunks.is_empty()
        && d.blocks_hash.is_empty();
    rebuildable.then(|| DeleteKey {
        version: counters(&d.version),
        modified_s: d.modified_s,
        modified_by: d.modified_by.get(),
    })
}

fn wire_vector(v: &[(u64, u64)]) -> bep::Vector {
    bep::Vector {
        counters: v
            .iter()
            .map(|&(id, value)| bep::Counter { id, value })
            .collect(),
    }
}

fn counters(v: &VersionVector) -> Vec<(u64, u64)> {
    v.counters().iter().map(|c| (c.id.get(), c.value)).collect()
}

/// The record as a peer stores it after receiving it in full (what a rebuilt record must
/// equal). A record that would not pass validation stays as it is (and so cannot match).
fn as_received(r: &FileRecord) -> FileRecord {
    convert::wire_to_record(convert::record_to_wire(r, true)).unwrap_or_else(|_| r.clone())
}

/// Adds a rebuilt record to the digest as the FileInfo a syncd peer announces.
fn add_to_digest(h: &mut Digest, r: &FileRecord) {
    h.add(&convert::record_to_wire(r, true));
}

/// Rebuilds the records of `groups` from what `reader` holds of `sender`'s index and checks
/// them against `digest`.
pub(crate) fn expand(
    groups: &[bep::SyncdDerived],
    digest: u64,
    reader: &FolderReader,
    sender: DeviceId,
) -> Result<Vec<FileRecord>, DeriveError> {
    let mut out = Vec::new();
    let mut h = Digest::new();
    for g in groups {
        let g = Group::decode(g)?;
        let mut bases = Vec::with_capacity(g.names.len());
        for name in g.bases()? {
            match reader.get(sender, &name)? {
                Some(b) if !b.deleted && !b.invalid => bases.push(b),
                _ => return Err(DeriveError::NoBase(name.as_str().to_owned())),
            }
        }
        let mut built = Vec::new();
        if let Some(c) = &g.copies {
            let version = convert::wire_version(Some(&c.version));
            for ((name, base), seq) in g.copy_names()?.into_iter().zip(&bases).zip(&c.sequences) {
                let mut r = base.clone();
                r.name = name;
                r.version = version.clone();
                r.modified_by = ShortId(c.modified_by);
                r.previous_blocks_hash.clone_from(&c.previous_blocks_hash);
                r.sequence = *seq;
                r.inode = 0;
                built.push(r);
            }
        }
        if let Some(d) = &g.deletions {
            let version = convert::wire_version(Some(&d.version));
            for (base, seq) in bases.iter().zip(&d.sequences) {
                let mut r = FileRecord::new(base.name.clone(), base.kind);
                r.version = version.clone();
                r.modified_by = ShortId(d.modified_by);
                r.deleted = true;
                r.modified_s = d.modified_s;
                r.previous_blocks_hash.clone_from(&base.blocks_hash);
                r.sequence = *seq;
                built.push(r);
            }
        }
        for r in &built {
            add_to_digest(&mut h, r);
        }
        out.append(&mut built);
    }
    if h.value() != digest {
        return Err(DeriveError::Digest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncd_index::{Block, Index, RemoteBatch};
    use syncd_types::FolderId;

    const A: DeviceId = DeviceId::from_bytes([1; 32]);
    const B: DeviceId = DeviceId::from_bytes([2; 32]);

    /// A sender's index (device A) and a receiver's (device B) in real redb files, and what
    /// the receiver holds of the sender (everything up to `sent`).
    struct Link {
        _dir: tempfile::TempDir,
        a: Index,
        b: Index,
        folder: FolderId,
        sent: u64,
    }

    impl Link {
        fn new() -> Link {
            let dir = tempfile::tempdir().unwrap();
            let a = Index::open(dir.path().join("a.redb"), A).unwrap();
            let b = Index::open(dir.path().join("b.redb"), B).unwrap();
            Link {
                _dir: dir,
                a,
                b,
                folder: FolderId::new("f").unwrap(),
                sent: 0,
            }
        }

        fn local(&self, records: Vec<FileRecord>) {
            let mut w = self.a.write(&self.folder).unwrap();
            w.apply_local(records).unwrap();
            w.commit().unwrap();
        }

        /// Sends A's unsent records to B as the index sender would; returns the number of
        /// derived records.
        fn send(&mut self) -> usize {
            self.send_at_most(8192)
        }

        /// Like [`Link::send`], with a window of at most `n` records.
        fn send_at_most(&mut self, n: usize) -> usize {
            let r = self.a.read(&self.folder).unwrap();
            let window = r.local_batch(self.sent, n).unwrap();
            let max = window.iter().map(|r| r.sequence).max().unwrap_or(self.sent);
            let e = encode(window, self.sent, &r, A).unwrap();
            let mut records: Vec<FileRecord> = e.plain.iter().map(as_received).collect();
            if !e.groups.is_empty() {
                let rb = self.b.read(&self.folder).unwrap();
                records.extend(expand(&e.groups, e.digest, &rb, A).unwrap());
            }
            assert_eq!(records.len() - e.plain.len(), e.derived);
            let mut w = self.b.write(&self.folder).unwrap();
            w.apply_remote(A, RemoteBatch::Update, records).unwrap();
            w.commit().unwrap();
            self.sent = max;
            e.derived
        }

        /// B's copy of every A record equals A's record as B would have received it in full.
        fn assert_same(&self) {
            let (ra, rb) = (
                self.a.read(&self.folder).unwrap(),
                self.b.read(&self.folder).unwrap(),
            );
            for rec in ra.local_since(0).unwrap() {
                let mine = as_received(&rec.unwrap());
                let held = rb.get(A, &mine.name).unwrap();
                assert_eq!(held.as_ref(), Some(&mine), "{}", mine.name);
            }
        }
    }

    fn file(name: &str, seed: u8, version: u64) -> FileRecord {
        file_of(name, seed, version, 3)
    }

    fn file_of(name: &str, seed: u8, version: u64, blocks: u8) -> FileRecord {
        let mut r = FileRecord::new(RelPath::new(name).unwrap(), FileKind::File);
        r.size = u64::from(blocks) * 131_072;
        r.modified_s = 1_700_000_000 + i64::from(seed);
        r.modified_ns = 1000 * i32::from(seed);
        r.permissions = 0o644;
        r.version = VersionVector::new().updated(A.short(), version);
        r.modified_by = A.short();
        r.blocks = (0..blocks)
            .map(|i| Block {
                offset: u64::from(i) * 131_072,
                size: 131_072,
                hash: [seed.wrapping_mul(3).wrapping_add(i); 32],
            })
            .collect();
        let wire: Vec<bep::BlockInfo> = r
            .blocks
            .iter()
            .map(|b| bep::BlockInfo {
                hash: b.hash.to_vec(),
                ..Default::default()
            })
            .collect();
        r.blocks_hash = syncd_proto::blocks_hash(&wire).to_vec();
        r
    }

    fn dir(name: &str) -> FileRecord {
        let mut r = FileRecord::new(RelPath::new(name).unwrap(), FileKind::Directory);
        r.modified_s = 1_700_000_000;
        r.permissions = 0o755;
        r.version = VersionVector::new().updated(A.short(), 1);
        r.modified_by = A.short();
        r
    }

    /// The scanner's deletion of `old`.
    fn deletion(old: &FileRecord, version: u64) -> FileRecord {
        let mut d = FileRecord::new(old.name.clone(), old.kind);
        d.version = old.version.updated(A.short(), version);
        d.modified_by = A.short();
        d.deleted = true;
        d.modified_s = 1_800_000_000;
        d.previous_blocks_hash = old.blocks_hash.clone();
        d
    }

    /// The scanner's record of `old`'s content found under `name`.
    fn moved(old: &FileRecord, name: &str, version: u64) -> FileRecord {
        let mut c = old.clone();
        c.name = RelPath::new(name).unwrap();
        c.version = VersionVector::new().updated(A.short(), version);
        c
    }

    #[test]
    fn a_moved_directory_and_deletions_rebuild_exactly_and_only_from_what_was_sent() {
        let mut l = Link::new();
        let mut old = vec![dir("d")];
        old.extend((0..20u8).map(|i| file(&format!("d/f{i:02}"), i, 1)));
        l.local(old.clone());
        assert_eq!(l.send(), 0, "new files are sent in full");

        // d -> n, as the scanner commits it: the new names, then the deletions.
        let mut batch: Vec<FileRecord> = old
            .iter()
            .map(|r| moved(r, &r.name.as_str().replacen('d', "n", 1), 5))
            .collect();
        batch.extend(old.iter().map(|r| deletion(r, 5)));
        l.local(batch);
        assert_eq!(l.send(), 42, "every copy and deletion is derived");
        l.assert_same();

        // Two files moved s -> s2, the first one's deletion sent before its new name: the peer
        // no longer holds that old record, so that new name goes in full; the other one's
        // copy and deletion are derived.
        let (x, y) = (file_of("s/x", 50, 1, 20), file_of("s/y", 51, 1, 20));
        l.local(vec![x.clone(), y.clone()]);
        l.send();
        l.local(vec![deletion(&x, 6)]);
        assert_eq!(l.send(), 0, "one deletion alone is not worth deriving");
        l.local(vec![
            moved(&x, "s2/x", 7),
            moved(&y, "s2/y", 7),
            deletion(&y, 7),
        ]);
        assert_eq!(l.send(), 2, "s2/y and the deletion of s/y; s2/x in full");
        l.assert_same();

        // The puller's order: the new names committed (and read by the sender) first, the
        // old names' deletions after them; the window of new names finds their source
        // among the deletions beyond it.
        let w: Vec<FileRecord> = (0..20u8)
            .map(|i| file(&format!("w/f{i:02}"), 70 + i, 1))
            .collect();
        l.local(w.clone());
        l.send();
        l.local(
            w.iter()
                .map(|r| moved(r, &r.name.as_str().replacen('w', "w2", 1), 12))
                .collect(),
        );
        l.local(w.iter().map(|r| deletion(r, 12)).collect());
        assert_eq!(
            l.send_at_most(20),
            20,
            "the new names, from the deletions after them"
        );
        assert_eq!(l.send(), 20, "the deletions");
        l.assert_same();

        // Deletions of records the peer holds are derived; deletions of records it never got
        // (created and deleted between two sends) are not.
        let sent: Vec<FileRecord> = (0..20u8)
            .map(|i| file(&format!("t{i:02}"), 100 + i, 1))
            .collect();
        l.local(sent.clone());
        l.send();
        l.local(sent.iter().map(|r| deletion(r, 8)).collect());
        assert_eq!(l.send(), 20);
        let unsent: Vec<FileRecord> = (0..20u8)
            .map(|i| file(&format!("u{i:02}"), 150 + i, 1))
            .collect();
        l.local(unsent.clone());
        l.local(unsent.iter().map(|r| deletion(r, 9)).collect());
        assert_eq!(l.send(), 0);
        l.assert_same();

        // New files repeating live, sent files (a copy, not a move): one with the same mtime
        // is derived from the live record; one with another mtime would rebuild wrong and
        // goes in full.
        let (pa, pb) = (file_of("p/a", 60, 1, 20), file_of("p/b", 61, 1, 20));
        l.local(vec![pa.clone(), pb.clone()]);
        l.send();
        let mut qb = moved(&pb, "q/b", 11);
        qb.modified_ns += 1;
        l.local(vec![moved(&pa, "q/a", 11), qb]);
        assert_eq!(l.send(), 1, "q/a is derived, q/b is not");
        l.assert_same();
    }

    #[test]
    fn prefixes_keep_the_longest_common_remainder() {
        assert_eq!(
            prefixes("delta/dir/d0001/f1.txt", "delta/moved/dir/d0001/f1.txt"),
            ("delta".into(), "delta/moved".into())
        );
        assert_eq!(prefixes("a/x", "b/y"), ("a/x".into(), "b/y".into()));
        assert_eq!(prefixes("x", "a/x"), ("x".into(), "a/x".into()));
        assert_eq!(strip("a/b/c", "a/b"), Some("c"));
        assert_eq!(strip("a/b", "a/b"), Some(""));
        assert_eq!(strip("a/bc", "a/b"), None);
    }
    /// Taken from the encoder before the byte format moved to `syncd_proto::derived`.
    const SNAPSHOT: &str = concat!(
        "508ece080833753d ",
        "1a0a00027430010131010132420e0a0c088182848890a0c0800110064880a4a7da06508182848890",
        "a0c080015a0486010202",
        " ",
        "0a016412016e1a410000000366303002013102013202013302013402013502013602013702013802",
        "013901023130020131020132020133020134020135020136020137020138020139220e0a0c088182",
        "848890a0c080011005288182848890a0c080013a1532020202020202020202020202020202020202",
        "0202420e0a0c088182848890a0c0800110054880a4a7da06508182848890a0c080015a155c020202",
        "0202020202020202020202020202020202",
    );

    /// The bytes a moved directory and deletions go out as (a snapshot: the byte format is
    /// `syncd_proto::derived`'s, the choice of groups this module's).
    #[test]
    fn a_moved_directory_goes_out_as_these_bytes() {
        use prost::Message as _;
        let mut l = Link::new();
        let mut old = vec![dir("d")];
        old.extend((0..20u8).map(|i| file(&format!("d/f{i:02}"), i, 1)));
        let gone: Vec<FileRecord> = (0..3u8)
            .map(|i| file(&format!("t{i}"), 40 + i, 1))
            .collect();
        old.extend(gone.iter().cloned());
        l.local(old.clone());
        l.send();
        let mut batch: Vec<FileRecord> = old
            .iter()
            .take(21)
            .map(|r| moved(r, &r.name.as_str().replacen('d', "n", 1), 5))
            .collect();
        batch.extend(old.iter().take(21).map(|r| deletion(r, 5)));
        batch.extend(gone.iter().map(|r| deletion(r, 6)));
        l.local(batch);
        let r = l.a.read(&l.folder).unwrap();
        let window = r.local_batch(l.sent, 8192).unwrap();
        let e = encode(window, l.sent, &r, A).unwrap();
        let bytes: Vec<String> = e
            .groups
            .iter()
            .map(|g| hex::encode(g.encode_to_vec()))
            .collect();
        let got = format!("{:016x} {}", e.digest, bytes.join(" "));
        assert_eq!(got, SNAPSHOT);
    }
}
