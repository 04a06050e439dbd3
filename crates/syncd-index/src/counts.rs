//! Count sets: files, directories, symlinks, deleted entries and bytes, kept incrementally.

use crate::codec::{Reader, put_uvarint};
use crate::error::DecodeError;
use crate::record::FileRecord;
use syncd_types::FileKind;

/// Numbers of entries and bytes in one set (global, one device's, or one device's need), the
/// figures behind `/rest/db/status` and `/rest/db/completion`.
///
/// A deleted entry counts in `deleted` only; any other entry counts once under its kind and adds
/// its `size` to `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Regular files (not deleted).
    pub files: u64,
    /// Directories (not deleted).
    pub directories: u64,
    /// Symlinks (not deleted).
    pub symlinks: u64,
    /// Deleted entries of any kind.
    pub deleted: u64,
    /// Sum of `size` over the entries that are not deleted.
    pub bytes: u64,
}

impl Counts {
    /// The contribution of one record.
    pub fn of(record: &FileRecord) -> Counts {
        let mut c = Counts::default();
        if record.deleted {
            c.deleted = 1;
            return c;
        }
        match record.kind {
            FileKind::File => c.files = 1,
            FileKind::Directory => c.directories = 1,
            FileKind::Symlink => c.symlinks = 1,
        }
        c.bytes = record.size;
        c
    }

    /// Entries of every kind, deleted included.
    pub fn entries(&self) -> u64 {
        self.files + self.directories + self.symlinks + self.deleted
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        for v in [
            self.files,
            self.directories,
            self.symlinks,
            self.deleted,
            self.bytes,
        ] {
            put_uvarint(&mut out, v);
        }
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Counts, DecodeError> {
        let mut r = Reader::new(b, "counts");
        let c = Counts {
            files: r.uvarint()?,
            directories: r.uvarint()?,
            symlinks: r.uvarint()?,
            deleted: r.uvarint()?,
            bytes: r.uvarint()?,
        };
        if !r.is_empty() {
            return Err(DecodeError::Trailing {
                what: "counts",
                extra: b.len(),
            });
        }
        Ok(c)
    }
}

/// A signed change to a [`Counts`], accumulated over one batch before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Delta([i128; 5]);

impl Delta {
    pub(crate) fn add(&mut self, c: &Counts) {
        self.apply(c, 1);
    }

    pub(crate) fn sub(&mut self, c: &Counts) {
        self.apply(c, -1);
    }

    fn apply(&mut self, c: &Counts, sign: i128) {
        let v = [c.files, c.directories, c.symlinks, c.deleted, c.bytes];
        for (d, x) in self.0.iter_mut().zip(v) {
            *d += sign * i128::from(x);
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.iter().all(|d| *d == 0)
    }

    /// `base + self`, or the name of the first field that leaves `u64`.
    pub(crate) fn applied_to(&self, base: &Counts) -> Result<Counts, &'static str> {
        const NAMES: [&str; 5] = ["files", "directories", "symlinks", "deleted", "bytes"];
        let b = [
            base.files,
            base.directories,
            base.symlinks,
            base.deleted,
            base.bytes,
        ];
        let mut out = [0u64; 5];
        for i in 0..5 {
            let v = i128::from(b[i]) + self.0[i];
            out[i] = u64::try_from(v).map_err(|_| NAMES[i])?;
        }
        Ok(Counts {
            files: out[0],
            directories: out[1],
            symlinks: out[2],
            deleted: out[3],
            bytes: out[4],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip() {
        let c = Counts {
            files: 3,
            directories: 1,
            symlinks: 0,
            deleted: 7,
            bytes: u64::MAX,
        };
        assert_eq!(Counts::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn delta_below_zero_names_the_field() {
        let mut d = Delta::default();
        d.sub(&Counts {
            deleted: 1,
            ..Counts::default()
        });
        assert_eq!(d.applied_to(&Counts::default()), Err("deleted"));
    }
}
