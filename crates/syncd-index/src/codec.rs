//! Byte-level helpers of the on-disk format: LEB128 varints and a bounds-checked reader.
//! Every read is checked: a truncated or corrupted value yields [`DecodeError`], never a panic.

use crate::error::DecodeError;

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint, so small negative numbers stay short.
#[inline]
pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a length-prefixed byte string.
#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over an encoded value.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`; `what` names the structure in errors.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            what: self.what,
            offset: self.pos,
        }
    }

    /// True once every byte has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated())?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        // Most stored varints (flags-sized counts, small gaps) fit one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.uvarint_long()
    }

    fn uvarint_long(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(DecodeError::VarintOverflow {
                    what: self.what,
                    offset: start,
                });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow {
            what: self.what,
            offset: start,
        })
    }

    #[inline]
    pub(crate) fn ivarint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint that must fit in `u32`.
    #[inline]
    pub(crate) fn u32varint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| DecodeError::OutOfRange {
            what: self.what,
            field,
            value: v,
        })
    }

    /// A count of items each at least `min_item_bytes` long: bounded by the remaining bytes, so a
    /// corrupted count cannot make us allocate gigabytes.
    #[inline]
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let v = self.uvarint()?;
        let remaining = self.buf.len().saturating_sub(self.pos);
        match usize::try_from(v) {
            Ok(n) if n.saturating_mul(min_item_bytes.max(1)) <= remaining => Ok(n),
            _ => Err(DecodeError::OutOfRange {
                what: self.what,
                field,
                value: v,
            }),
        }
    }

    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.count("length", 1)?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_edge_values() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(Reader::new(&out, "t").uvarint().unwrap(), v, "{v}");
        }
    }

    #[test]
    fn ivarint_round_trips_negative_values() {
        for v in [0, -1, 1, i64::MIN, i64::MAX, -1_000_000] {
            let mut out = Vec::new();
            put_ivarint(&mut out, v);
            assert_eq!(Reader::new(&out, "t").ivarint().unwrap(), v, "{v}");
        }
    }

    #[test]
    fn eleven_byte_varint_is_an_error() {
        let bytes = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&bytes, "t").uvarint(),
            Err(DecodeError::VarintOverflow { .. })
        ));
    }

    #[test]
    fn huge_count_is_rejected_before_allocating() {
        let mut out = Vec::new();
        put_uvarint(&mut out, u64::MAX);
        assert!(matches!(
            Reader::new(&out, "t").count("n", 1),
            Err(DecodeError::OutOfRange { .. })
        ));
    }
}
