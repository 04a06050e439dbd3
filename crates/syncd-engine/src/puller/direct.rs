//! Direct (`O_DIRECT`) writes of the fetched pieces of large files, on Linux.
//!
//! A buffered write copies every byte into the page cache, and the fsync before the rename
//! then writes it out again; for the large files of an initial sync that copy (into page
//! cache pages the kernel first has to allocate and clear) was the largest part of the
//! receiver's system time, and a 2 GB machine's cache filled with data nobody reads back.
//! Here the page-aligned part of each run of contiguous pieces is copied into one aligned
//! buffer and written straight to the disk; the unaligned ends of a run (content-defined
//! chunks start anywhere) and whatever a filesystem without direct I/O refuses go through the
//! ordinary descriptor. The file stays the size `set_len` gave it, and the fsync of the
//! durability batch still makes everything durable (it flushes the disk's cache too).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Alignment of memory, offsets and lengths of direct writes (a page; any disk's logical
/// block size divides it).
const ALIGN: u64 = 4096;
/// Largest single direct write.
const WINDOW: usize = 4 << 20;
/// Files smaller than this are written through the page cache only.
pub(crate) const MIN_FILE: u64 = 1 << 20;

/// A second descriptor of a temp file opened for direct I/O, and the aligned buffer.
pub(crate) struct Direct {
    file: File,
    buf: Vec<u8>,
    /// Set once the filesystem refused a direct write: the rest goes buffered.
    refused: bool,
    /// Bytes written directly.
    direct_bytes: u64,
}

impl Direct {
    /// Opens `file` again for direct writes (through `/proc/self/fd`, so the very same file
    /// whatever its name is by now). `None` where that is not possible (no procfs, a
    /// filesystem without `O_DIRECT`, not Linux): the caller writes buffered.
    pub(crate) fn open(file: &File) -> Option<Direct> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::OpenOptionsExt;
            let path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()?;
            Some(Direct {
                file: f,
                buf: Vec::new(),
                refused: false,
                direct_bytes: 0,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            None
        }
    }

    /// Writes `pieces` (offset, data) into `file`: the aligned middle of each contiguous run
    /// directly, the rest buffered.
    pub(crate) fn write(&mut self, file: &File, pieces: &mut [(u64, Vec<u8>)]) -> io::Result<()> {
        pieces.sort_unstable_by_key(|p| p.0);
        let mut rest: &[(u64, Vec<u8>)] = pieces;
        while let Some((first, _)) = rest.first() {
            let start = *first;
            let mut end = start;
            let mut n = 0;
            for (off, data) in rest {
                if *off != end {
                    break;
                }
                end = end.saturating_add(data.len() as u64);
                n += 1;
            }
            let (run, after) = rest.split_at(n.max(1));
            self.write_run(file, run, start, end)?;
            rest = after;
        }
        Ok(())
    }

    /// One run of contiguous pieces covering `start..end`.
    fn write_run(
        &mut self,
        file: &File,
        run: &[(u64, Vec<u8>)],
        start: u64,
        end: u64,
    ) -> io::Result<()> {
        let lo = start.div_ceil(ALIGN) * ALIGN;
        let hi = end / ALIGN * ALIGN;
        if self.refused || hi <= lo {
            return write_range(file, run, start, end);
        }
        write_range(file, run, start, lo)?;
        let mut at = lo;
        while at < hi {
            let len = (hi - at).min(WINDOW as u64);
            self.write_window(file, run, at, len)?;
            at += len;
        }
        write_range(file, run, hi, end)
    }

    /// `len` bytes (a multiple of [`ALIGN`]) at the aligned offset `at`.
    fn write_window(
        &mut self,
        file: &File,
        run: &[(u64, Vec<u8>)],
        at: u64,
        len: u64,
    ) -> io::Result<()> {
        let n = usize::try_from(len).map_err(io::Error::other)?;
        let align = ALIGN as usize;
        if self.buf.len() < n + align {
            self.buf = vec![0; n.max(WINDOW) + align];
        }
        let skip = self.buf.as_ptr().align_offset(align);
        let window = self
            .buf
            .get_mut(skip..skip + n)
            .ok_or_else(|| io::Error::other("direct write buffer too small"))?;
        copy_range(run, at, window)?;
        match self.file.write_all_at(window, at) {
            Ok(()) => {
                self.direct_bytes += len;
                Ok(())
            }
            Err(e) => {
                if e.raw_os_error() == Some(libc::EINVAL) {
                    self.refused = true;
                }
                tracing::debug!(error = %e, "direct write failed; writing through the page cache");
                file.write_all_at(window, at)
            }
        }
    }
}

/// Writes the bytes of `run` in `from..to` through `file` (buffered).
fn write_range(file: &File, run: &[(u64, Vec<u8>)], from: u64, to: u64) -> io::Result<()> {
    for (off, data) in run {
        let (a, b) = overlap(*off, data.len(), from, to);
        if a < b {
            let part = data
                .get(a..b)
                .ok_or_else(|| io::Error::other("piece range out of bounds"))?;
            file.write_all_at(part, *off + a as u64)?;
        }
    }
    Ok(())
}

/// Copies the bytes of `run` at `at..at + out.len()` into `out` (the run covers them).
fn copy_range(run: &[(u64, Vec<u8>)], at: u64, out: &mut [u8]) -> io::Result<()> {
    let to = at + out.len() as u64;
    for (off, data) in run {
        let (a, b) = overlap(*off, data.len(), at, to);
        if a < b {
            let src = data.get(a..b);
            let dst_from = usize::try_from(*off + a as u64 - at).map_err(io::Error::other)?;
            let dst = out.get_mut(dst_from..dst_from + (b - a));
            match (src, dst) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                _ => return Err(io::Error::other("piece range out of bounds")),
            }
        }
    }
    Ok(())
}

/// The part `a..b` (indices into the piece) of a piece at `off` of `len` bytes that lies in
/// `from..to`; `a >= b` when none does.
fn overlap(off: u64, len: usize, from: u64, to: u64) -> (usize, usize) {
    let p_end = off.saturating_add(len as u64);
    let s = from.max(off);
    let e = to.min(p_end);
    if s >= e {
        return (0, 0);
    }
    (
        usize::try_from(s - off).unwrap_or(0),
        usize::try_from(e - off).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], cuts: &[usize]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            out.push((at as u64, data[at..c].to_vec()));
            at = c;
        }
        out
    }

    #[test]
    fn unaligned_pieces_in_any_order_land_at_their_offsets() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.set_len(data.len() as u64).unwrap();
        let mut all = pieces(&data, &[1, 70_001, 1_048_576, 1_100_000, 2_999_999]);
        // Two rounds, with a gap (the piece at 1,048,576) written in the second.
        let second = vec![all.remove(3)];
        all.reverse();
        // Where the filesystem has no O_DIRECT (tmpfs before 6.6) the writer that a refusal
        // leaves behind is tested instead: the same pieces, every byte through `file`.
        let mut w = Direct::open(&f).unwrap_or_else(|| Direct {
            file: f.try_clone().unwrap(),
            buf: Vec::new(),
            refused: true,
            direct_bytes: 0,
        });
        w.write(&f, &mut all).unwrap();
        w.write(&f, &mut second.clone()).unwrap();
        f.sync_all().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert_eq!(f.metadata().unwrap().len(), data.len() as u64);
        if w.refused {
            assert_eq!(w.direct_bytes, 0);
        } else {
            assert!(w.direct_bytes > 2_000_000, "{}", w.direct_bytes);
        }
    }

    #[test]
    fn overlap_clips_to_the_range() {
        assert_eq!(overlap(100, 50, 0, 1000), (0, 50));
        assert_eq!(overlap(100, 50, 120, 130), (20, 30));
        assert_eq!(overlap(100, 50, 150, 200), (0, 0));
        assert_eq!(overlap(100, 50, 0, 100), (0, 0));
    }
}
