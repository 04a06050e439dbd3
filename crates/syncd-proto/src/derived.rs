//! The bytes of syncd's derived records (`docs/protocol.md`, "Derived records"): an
//! `IndexUpdate` between syncd peers may carry records the receiver rebuilds from what it
//! already holds of the sender, as a few bytes per name ([`bep::SyncdDerived`] groups and a
//! digest).
//!
//! This module owns the format only: a [`Group`] to and from its wire struct (front-coded
//! names, zig-zag sequence deltas, the shared version and modifier), the paths its names
//! stand for ([`Group::bases`], [`Group::copy_names`]), and the [`Digest`] over the rebuilt
//! FileInfos. Deciding which records to derive, and rebuilding them from an index, is the
//! engine's job.
//!
//! Every fault in received bytes is a [`DerivedError`]; nothing a peer sends panics here,
//! and a group can make the receiver build at most [`MAX_NAMES`] names of at most
//! [`MAX_NAME_BYTES`] bytes each.

use prost::encoding::{decode_varint, encode_varint};
use sha2::Sha256;
use syncd_types::RelPath;

use crate::bep;
pub use crate::error::{DerivedError, Records};

/// ClusterConfig `syncd_features` bit: "send me derived records".
pub const FEATURE_DERIVED: u32 = 1;
/// Names in one received group at most (a bound on what a peer can make us build).
pub const MAX_NAMES: usize = 1 << 20;
/// Bytes of one name at most.
pub const MAX_NAME_BYTES: usize = 64 * 1024;

/// One derived group: names relative to the prefix `from`, each standing for a base record
/// the receiver holds (`from/name`), and what to build from each base: a copy named
/// `to/name`, a deletion of the base name, or both.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// Prefix of the base names ("" = folder root).
    pub from: String,
    /// Names relative to `from` (and to [`Copies::to`]), strictly ascending.
    pub names: Vec<String>,
    /// The copies, one per name, if the group has them.
    pub copies: Option<Copies>,
    /// The deletions, one per name, if the group has them.
    pub deletions: Option<Deletions>,
}

/// What the copies of a group share, and their sequences.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Copies {
    /// Prefix of the copies' names.
    pub to: String,
    /// Every copy's version.
    pub version: bep::Vector,
    /// Every copy's `modified_by`.
    pub modified_by: u64,
    /// Every copy's `previous_blocks_hash`.
    pub previous_blocks_hash: Vec<u8>,
    /// One sequence per name, in name order (each above 0).
    pub sequences: Vec<u64>,
}

/// What the deletions of a group share, and their sequences.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deletions {
    /// Every deletion's version.
    pub version: bep::Vector,
    /// Every deletion's `modified_s`.
    pub modified_s: i64,
    /// Every deletion's `modified_by`.
    pub modified_by: u64,
    /// One sequence per name, in name order (each above 0).
    pub sequences: Vec<u64>,
}

impl Group {
    /// The wire form. `names` must be strictly ascending and each sequence list must have
    /// one entry per name (the receiver refuses the group otherwise).
    pub fn encode(&self) -> bep::SyncdDerived {
        let mut g = bep::SyncdDerived {
            from: self.from.clone(),
            names: encode_names(self.names.iter().map(String::as_str)),
            ..Default::default()
        };
        if let Some(c) = &self.copies {
            g.to.clone_from(&c.to);
            g.copy_version = Some(c.version.clone());
            g.copy_modified_by = c.modified_by;
            g.copy_previous_blocks_hash
                .clone_from(&c.previous_blocks_hash);
            g.copy_sequences = deltas(&c.sequences);
        }
        if let Some(d) = &self.deletions {
            g.delete_version = Some(d.version.clone());
            g.delete_modified_s = d.modified_s;
            g.delete_modified_by = d.modified_by;
            g.delete_sequences = deltas(&d.sequences);
        }
        g
    }

    /// Reads a received group: its names (see [`decode_names`]), its sequences (each above
    /// 0, one per name), at least one of copies and deletions. The names are checked as
    /// paths when read as paths ([`Group::bases`], [`Group::copy_names`]).
    pub fn decode(g: &bep::SyncdDerived) -> Result<Group, DerivedError> {
        let names = decode_names(&g.names)?;
        let copies = undelta(&g.copy_sequences, Records::Copies)?;
        let deletions = undelta(&g.delete_sequences, Records::Deletions)?;
        for (what, n) in [
            (Records::Copies, copies.len()),
            (Records::Deletions, deletions.len()),
        ] {
            if n != 0 && n != names.len() {
                return Err(DerivedError::SequenceCount {
                    what,
                    sequences: n,
                    names: names.len(),
                });
            }
        }
        if copies.is_empty() && deletions.is_empty() {
            return Err(DerivedError::Empty);
        }
        Ok(Group {
            from: g.from.clone(),
            names,
            copies: (!copies.is_empty()).then(|| Copies {
                to: g.to.clone(),
                version: g.copy_version.clone().unwrap_or_default(),
                modified_by: g.copy_modified_by,
                previous_blocks_hash: g.copy_previous_blocks_hash.clone(),
                sequences: copies,
            }),
            deletions: (!deletions.is_empty()).then(|| Deletions {
                version: g.delete_version.clone().unwrap_or_default(),
                modified_s: g.delete_modified_s,
                modified_by: g.delete_modified_by,
                sequences: deletions,
            }),
        })
    }

    /// The base names (`from/name`), in name order; a name that is not a canonical path is
    /// an error.
    pub fn bases(&self) -> Result<Vec<RelPath>, DerivedError> {
        self.names
            .iter()
            .map(|n| path(&join(&self.from, n)))
            .collect()
    }

    /// The copies' names (`to/name`), in name order; empty without copies.
    pub fn copy_names(&self) -> Result<Vec<RelPath>, DerivedError> {
        match &self.copies {
            Some(c) => self.names.iter().map(|n| path(&join(&c.to, n))).collect(),
            None => Ok(Vec::new()),
        }
    }
}

fn path(s: &str) -> Result<RelPath, DerivedError> {
    RelPath::from_wire(s).map_err(|source| DerivedError::InvalidName {
        name: s.to_owned(),
        source,
    })
}

/// The name `rel` stands for below `prefix`: `prefix/rel`, `prefix` when `rel` is empty,
/// `rel` when `prefix` is empty.
pub fn join(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}/{rel}"),
    }
}

/// The `names` field: per name, a varint count of bytes shared with the previous name, a
/// varint count of new bytes, the new bytes. `names` should be strictly ascending.
pub fn encode_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: &[u8] = &[];
    for n in names {
        let n = n.as_bytes();
        let shared = prev.iter().zip(n).take_while(|(a, b)| a == b).count();
        let rest = n.get(shared..).unwrap_or_default();
        encode_varint(shared as u64, &mut out);
        encode_varint(rest.len() as u64, &mut out);
        out.extend_from_slice(rest);
        prev = n;
    }
    out
}

/// Reads the `names` field: strictly ascending, valid UTF-8, each at most
/// [`MAX_NAME_BYTES`], at most [`MAX_NAMES`] of them.
pub fn decode_names(names: &[u8]) -> Result<Vec<String>, DerivedError> {
    let mut buf = names;
    let mut out: Vec<String> = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while !buf.is_empty() {
        let index = out.len();
        if index >= MAX_NAMES {
            return Err(DerivedError::TooManyNames);
        }
        let varint = |buf: &mut &[u8]| {
            let offset = names.len() - buf.len();
            decode_varint(buf).map_err(|_| DerivedError::NameVarint { offset })
        };
        let shared = varint(&mut buf)?;
        let len = varint(&mut buf)?;
        let shared_ok = usize::try_from(shared).ok().filter(|s| *s <= prev.len());
        let Some(shared) = shared_ok else {
            return Err(DerivedError::SharedTooLong {
                index,
                shared,
                previous: prev.len(),
            });
        };
        let len_ok = usize::try_from(len)
            .ok()
            .filter(|l| shared.saturating_add(*l) <= MAX_NAME_BYTES);
        let Some(len) = len_ok else {
            return Err(DerivedError::NameTooLong {
                index,
                len: (shared as u64).saturating_add(len),
            });
        };
        let rest = buf
            .get(..len)
            .ok_or(DerivedError::NamesTruncated { index })?;
        buf = buf.get(len..).unwrap_or_default();
        let mut name = prev.get(..shared).unwrap_or_default().to_vec();
        name.extend_from_slice(rest);
        if index > 0 && name <= prev {
            return Err(DerivedError::NotAscending { index });
        }
        let s = String::from_utf8(name.clone()).map_err(|_| DerivedError::NotUtf8 { index })?;
        out.push(s);
        prev = name;
    }
    Ok(out)
}

/// Sequences as zig-zag deltas, the first from 0 (a sequence above `i64::MAX` is sent as
/// `i64::MAX`).
fn deltas(sequences: &[u64]) -> Vec<i64> {
    let mut prev = 0i64;
    sequences
        .iter()
        .map(|s| {
            let s = i64::try_from(*s).unwrap_or(i64::MAX);
            let d = s.wrapping_sub(prev);
            prev = s;
            d
        })
        .collect()
}

fn undelta(d: &[i64], what: Records) -> Result<Vec<u64>, DerivedError> {
    let mut prev = 0i64;
    d.iter()
        .enumerate()
        .map(|(index, x)| {
            prev = prev
                .checked_add(*x)
                .ok_or(DerivedError::SequenceOverflow { what, index })?;
            u64::try_from(prev)
                .ok()
                .filter(|s| *s > 0)
                .ok_or(DerivedError::BadSequence {
                    what,
                    index,
                    sequence: prev,
                })
        })
        .collect()
}

/// The `syncd_digest` of a message's derived records: SHA-256 over each rebuilt FileInfo's
/// encoded length (u64 little-endian) and encoding, in rebuild order (a group's copies in
/// name order, then its deletions); the first 8 bytes, read little-endian.
#[derive(Debug, Clone, Default)]
pub struct Digest(Sha256);

impl Digest {
    /// An empty digest.
    pub fn new() -> Digest {
        Digest::default()
    }

    /// Adds the next rebuilt record, as the FileInfo its sender would announce in full.
    pub fn add(&mut self, f: &bep::FileInfo) {
        use prost::Message as _;
        use sha2::Digest as _;
        let bytes = f.encode_to_vec();
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(&bytes);
    }

    /// The value of the `syncd_digest` field.
    pub fn value(self) -> u64 {
        use sha2::Digest as _;
        let d = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn vector(id: u64, value: u64) -> bep::Vector {
        bep::Vector {
            counters: vec![bep::Counter { id, value }],
        }
    }

    /// `d/a`, `d/b` moved to `n/a`, `n/b`: their copies and the old names' deletions.
    fn moved_group() -> Group {
        Group {
            from: "d".into(),
            names: vec!["a".into(), "b".into()],
            copies: Some(Copies {
                to: "n".into(),
                version: vector(7, 5),
                modified_by: 7,
                previous_blocks_hash: vec![0xab; 2],
                sequences: vec![10, 12],
            }),
            deletions: Some(Deletions {
                version: vector(7, 6),
                modified_s: 1_800_000_000,
                modified_by: 7,
                sequences: vec![11, 13],
            }),
        }
    }

    #[test]
    fn names_round_trip_through_front_coding() {
        let names = [
            "a",
            "a/b",
            "a/b/c.txt",
            "a/bc",
            "d0001/f000100.txt",
            "d0001/f000101.txt",
        ];
        let coded = encode_names(names.iter().copied());
        assert_eq!(decode_names(&coded).unwrap(), names);
        // Shared bytes are not repeated: "d0001/f000101.txt" costs 1 + 1 + 5 bytes.
        assert!(coded.len() < names.iter().map(|n| n.len()).sum::<usize>());
    }

    #[test]
    fn a_group_has_a_fixed_encoding() {
        use prost::Message as _;
        let wire = moved_group().encode();
        assert_eq!(
            hex::encode(wire.encode_to_vec()),
            // from "d", to "n", names (0 shared, "a") (0 shared, "b"), copy version {7: 5},
            // modifier 7, previous blocks hash abab, copy sequences 10, 12 as zig-zag deltas
            // 10, 2; deletion version {7: 6}, time, modifier 7, sequences 11, 13.
            "0a0164 12016e 1a06000161000162 22060a0408071005 2807 3202abab 3a021404 \
             42060a0408071006 4880a4a7da06 5007 5a021604"
                .replace(char::is_whitespace, "")
        );
        assert_eq!(wire.copy_sequences, [10, 2]);
        assert_eq!(wire.delete_sequences, [11, 2]);
    }

    #[test]
    fn a_group_round_trips_and_names_its_paths() {
        let g = moved_group();
        let back = Group::decode(&g.encode()).unwrap();
        assert_eq!(back, g);
        let names = |v: Vec<RelPath>| v.iter().map(|p| p.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(back.bases().unwrap()), ["d/a", "d/b"]);
        assert_eq!(names(back.copy_names().unwrap()), ["n/a", "n/b"]);

        // Deletions only: the names are the deleted names themselves.
        let only = Group {
            from: String::new(),
            names: vec!["x".into()],
            copies: None,
            deletions: Some(Deletions {
                sequences: vec![20],
                ..g.deletions.clone().unwrap()
            }),
        };
        let back = Group::decode(&only.encode()).unwrap();
        assert_eq!(back, only);
        assert_eq!(names(back.bases().unwrap()), ["x"]);
        assert!(back.copy_names().unwrap().is_empty());
    }

    #[test]
    fn hostile_names_are_typed_errors() {
        // Shares more bytes than the previous name has.
        assert!(matches!(
            decode_names(&[5, 1, b'a']),
            Err(DerivedError::SharedTooLong { index: 0, .. })
        ));
        assert!(matches!(
            decode_names(&[0, 9, b'a']),
            Err(DerivedError::NamesTruncated { index: 0 })
        ));
        assert!(matches!(
            decode_names(&[0, 1, b'b', 0, 1, b'a']),
            Err(DerivedError::NotAscending { index: 1 })
        ));
        assert!(matches!(
            decode_names(&[0, 1, b'a', 1, 0]),
            Err(DerivedError::NotAscending { index: 1 })
        ));
        assert!(matches!(
            decode_names(&[0, 1, 0xff]),
            Err(DerivedError::NotUtf8 { index: 0 })
        ));
        assert!(matches!(
            decode_names(&[0, 0x80]),
            Err(DerivedError::NameVarint { offset: 1 })
        ));
        // Longer than a name may be.
        let mut huge = vec![0];
        encode_varint(1 << 40, &mut huge);
        assert!(matches!(
            decode_names(&huge),
            Err(DerivedError::NameTooLong { index: 0, .. })
        ));
    }

    #[test]
    fn hostile_sequences_and_shapes_are_typed_errors() {
        assert!(matches!(
            undelta(&[5, -10], Records::Copies),
            Err(DerivedError::BadSequence {
                index: 1,
                sequence: -5,
                ..
            })
        ));
        assert!(matches!(
            undelta(&[0], Records::Deletions),
            Err(DerivedError::BadSequence { index: 0, .. })
        ));
        assert!(matches!(
            undelta(&[i64::MAX, 1], Records::Copies),
            Err(DerivedError::SequenceOverflow { index: 1, .. })
        ));
        let mut g = moved_group().encode();
        g.delete_sequences.pop();
        assert!(matches!(
            Group::decode(&g),
            Err(DerivedError::SequenceCount {
                what: Records::Deletions,
                sequences: 1,
                names: 2
            })
        ));
        g.copy_sequences.clear();
        g.delete_sequences.clear();
        assert!(matches!(Group::decode(&g), Err(DerivedError::Empty)));
        // A name that leaves the folder is refused when read as a path.
        let mut bad = moved_group();
        bad.from = "..".into();
        let back = Group::decode(&bad.encode()).unwrap();
        assert!(matches!(
            back.bases(),
            Err(DerivedError::InvalidName { .. })
        ));
        assert!(back.copy_names().is_ok());
    }

    #[test]
    fn join_names_the_prefix_itself_for_an_empty_name() {
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", ""), "a");
        assert_eq!(join("a", "x"), "a/x");
    }

    #[test]
    fn the_digest_is_sha256_of_lengths_and_encodings() {
        use prost::Message as _;
        use sha2::Digest as _;
        let f = bep::FileInfo {
            name: "a.txt".into(),
            deleted: true,
            sequence: 3,
            ..Default::default()
        };
        let mut d = Digest::new();
        d.add(&f);
        let bytes = f.encode_to_vec();
        let mut h = Sha256::new();
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
        let want = u64::from_le_bytes(h.finalize()[..8].try_into().unwrap());
        assert_eq!(d.value(), want);
        assert_ne!(Digest::new().value(), want);
    }
}
