//! The hasher: one pass over a file produces the BEP block list, its blocks hash and the
//! FastCDC chunk list, with a bounded buffer per worker thread.

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::params;
use crate::stat::Stat;

/// One fixed-size BEP block: `offset` is a multiple of the file's block size, every block but
/// the last is exactly that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes (≤ the file's block size).
    pub size: u32,
    /// SHA-256 of the block's bytes.
    pub hash: [u8; 32],
}

/// One content-defined chunk (FastCDC v2020 cut points, parameters from `syncd-proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes (≤ the maximum chunk size).
    pub size: u32,
    /// SHA-256 of the chunk's bytes (never fastcdc's gear hash).
    pub hash: [u8; 32],
}

/// The result of hashing one regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// The file's metadata, identical before and after the read.
    pub stat: Stat,
    /// The block size used for [`Hashed::blocks`].
    pub block_size: u32,
    /// Fixed-size blocks; an empty file has exactly one empty block (`SHA-256("")`).
    pub blocks: Vec<Block>,
    /// SHA-256 over the concatenated block hashes (the Syncthing 2.x form).
    pub blocks_hash: [u8; 32],
    /// Content-defined chunks; an empty file has none.
    pub chunks: Vec<Chunk>,
}

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Opening, reading or stat-ing the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file changed (size, mtime, ctime or inode) while it was read; the hash would be
    /// torn, so it must be retried later.
    #[error("{path} changed while it was being hashed")]
    ChangedWhileHashing {
        /// The file.
        path: PathBuf,
    },
    /// The path is no longer a regular file (replaced by a symlink, directory, ...).
    #[error("{path} is no longer a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
}

/// Bytes read per step. A file no larger than this is read whole and hashed on the calling
/// thread; a larger one is hashed in a two-stage pipeline (see [`hash_file`]).
const SEGMENT: usize = 1 << 20;

/// One buffer: room for a carried-over, not yet cut tail (< the maximum chunk size) in front
/// of one segment, so the chunker always sees a full maximum-size chunk or the file's end.
fn buffer_len() -> usize {
    params::CDC_MAX_SIZE + SEGMENT
}

thread_local! {
    // One reusable read buffer per worker thread for files hashed on one thread: memory is
    // bounded by threads × buffer_len(). Never borrowed across a `rayon::join` (which may
    // run another file's job on this thread while it waits), so the borrow is never re-entered.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Pipelined hashings in progress, each holding two heap buffers; past the cap a large file
/// is hashed on one thread, so memory stays bounded even when rayon nests jobs.
static PIPELINES: AtomicUsize = AtomicUsize::new(0);

fn pipeline_cap() -> usize {
    2 * rayon::current_num_threads().max(1)
}

/// Streams bytes into fixed-size blocks, one SHA-256 per block.
struct BlockHasher {
    block_size: u32,
    offset: u64,
    fill: u32,
    hasher: Sha256,
    blocks: Vec<Block>,
}

impl BlockHasher {
    fn new(block_size: u32, expected_size: u64) -> Self {
        let n = expected_size.div_ceil(u64::from(block_size)).max(1);
        BlockHasher {
            block_size,
            offset: 0,
            fill: 0,
            hasher: Sha256::new(),
            blocks: Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1 << 16)),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.block_size - self.fill) as usize;
            let take = room.min(data.len());
            let (head, rest) = data.split_at(take);
            self.hasher.update(head);
            // `take` ≤ room ≤ block_size, which fits u32.
            self.fill += take as u32;
            data = rest;
            if self.fill == self.block_size {
                self.finish_block();
            }
        }
    }

    fn finish_block(&mut self) {
        let hash: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        self.blocks.push(Block {
            offset: self.offset,
            size: self.fill,
            hash,
        });
        self.offset += u64::from(self.fill);
        self.fill = 0;
    }

    fn finish(mut self) -> Vec<Block> {
        // The tail block, or the single empty block of an empty file.
        if self.fill > 0 || self.blocks.is_empty() {
            self.finish_block();
        }
        self.blocks
    }
}

/// Cuts content-defined chunks with `fastcdc::v2020::cut` itself (the routine the wire
/// contract names, so boundaries are fastcdc's by construction) and hashes each.
struct Chunker {
    mask_s: u64,
    mask_l: u64,
    offset: u64,
    chunks: Vec<Chunk>,
}

impl Chunker {
    fn new() -> Self {
        let (mask_s, mask_l) = fastcdc::v2020::select_masks(
            params::CDC_AVG_SIZE,
            fastcdc::v2020::Normalization::Level1,
        );
        Chunker {
            mask_s,
            mask_l,
            offset: 0,
            chunks: Vec::new(),
        }
    }

    /// The length of the chunk starting at `data[0]` (0 only for empty `data`).
    fn cut_len(&self, data: &[u8]) -> usize {
        let (_gear, len) = fastcdc::v2020::cut(
            data,
            params::CDC_MIN_SIZE,
            params::CDC_AVG_SIZE,
            params::CDC_MAX_SIZE,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        len.min(data.len())
    }

    /// Cuts and hashes chunks from the start of `data`, the bytes that follow the chunks cut
    /// so far. Unless `eof`, stops while less than a maximum-size chunk is left (the next
    /// cut needs the bytes after it). `known` gives the hash of a chunk whose bytes are
    /// already hashed (a chunk that is exactly one block). Returns the bytes consumed.
    fn cut_all(
        &mut self,
        data: &[u8],
        eof: bool,
        known: &dyn Fn(u64, u32) -> Option<[u8; 32]>,
    ) -> usize {
        let mut pos = 0;
        while let Some(rest) = data.get(pos..) {
            if rest.is_empty() || (!eof && rest.len() < params::CDC_MAX_SIZE) {
                break;
            }
            let len = self.cut_len(rest);
            if len == 0 {
                break;
            }
            let bytes = rest.get(..len).unwrap_or(rest);
            // len ≤ CDC_MAX_SIZE, which fits u32.
            let size = len as u32;
            let hash = known(self.offset, size).unwrap_or_else(|| Sha256::digest(bytes).into());
            self.chunks.push(Chunk {
                offset: self.offset,
                size,
                hash,
            });
            self.offset += len as u64;
            pos += len;
        }
        pos
    }
}

/// SHA-256 over the concatenated block hashes (Syncthing 2.x `blocks_hash`, computed by
/// `syncd-proto`).
pub fn blocks_hash(blocks: &[Block]) -> [u8; 32] {
    let wire: Vec<syncd_proto::bep::BlockInfo> = blocks
        .iter()
        .map(|b| syncd_proto::bep::BlockInfo {
            offset: i64::try_from(b.offset).unwrap_or(i64::MAX),
            size: i32::try_from(b.size).unwrap_or(i32::MAX),
            hash: b.hash.to_vec(),
            ..Default::default()
        })
        .collect();
    syncd_proto::blocks_hash(&wire)
}

/// Hashes the regular file at `path`, whose `lstat` the caller took as `before`.
///
/// The file is opened without following symlinks, read once, and stat-ed again afterwards
/// through the open descriptor: if anything changed (or the bytes read disagree with the
/// size), the result is [`HashError::ChangedWhileHashing`]. `progress` is called with the
/// number of bytes consumed after every read.
///
/// A file up to 1 MiB is read whole into a per-thread buffer; a chunk that is exactly one
/// block (every file up to the 16 KiB minimum chunk) reuses the block's SHA-256. A larger
/// file, when called on a rayon pool, is hashed in two overlapping stages (fixed blocks and
/// the next read on one task, chunk cuts and chunk hashes on the other, two 1.25 MiB buffers
/// per file, at most 2 × pool threads such files at once); elsewhere on one thread. Every
/// path yields the same lists: chunk boundaries are `fastcdc::v2020::cut`'s own.
pub fn hash_file(
    path: &Path,
    before: &Stat,
    block_size: u32,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Hashed, HashError> {
    let io = |source| HashError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                HashError::NotAFile {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
    let opened = file.metadata().map_err(io)?;
    if !opened.file_type().is_file() {
        return Err(HashError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if Stat::from_metadata(&opened).fingerprint() != before.fingerprint() {
        return Err(HashError::ChangedWhileHashing {
            path: path.to_path_buf(),
        });
    }

    let in_pool = rayon::current_thread_index().is_some();
    let whole = usize::try_from(before.size).ok().filter(|&n| n <= SEGMENT);
    let lists = if let Some(len) = whole {
        with_buffer(len, |buf| {
            hash_whole(&mut file, buf, block_size, before.size, progress)
        })
    } else if in_pool && PIPELINES.fetch_add(1, Ordering::Relaxed) < pipeline_cap() {
        let r = hash_pipelined(&mut file, block_size, before.size, progress);
        PIPELINES.fetch_sub(1, Ordering::Relaxed);
        r
    } else {
        if in_pool {
            PIPELINES.fetch_sub(1, Ordering::Relaxed);
        }
        with_buffer(buffer_len(), |buf| {
            hash_sequential(&mut file, buf, block_size, before.size, progress)
        })
    };
    let (blocks, chunks, total) = lists.map_err(io)?;

    // The open file's metadata after the read: any write, truncation or append moved its
    // size, mtime or ctime. (A rename over the path during the read leaves this inode's
    // hash consistent; the new file has another inode, which the next scan compares.)
    let after = file.metadata().map_err(io)?;
    if total != before.size || Stat::from_metadata(&after).fingerprint() != before.fingerprint() {
        return Err(HashError::ChangedWhileHashing {
            path: path.to_path_buf(),
        });
    }
    let blocks_hash = blocks_hash(&blocks);
    Ok(Hashed {
        stat: before.clone(),
        block_size,
        blocks,
        blocks_hash,
        chunks,
    })
}

/// Runs `f` with `len` bytes of this thread's reusable buffer. The buffer grows to what the
/// files hashed on this thread needed (rounded up to a power of two), not straight to
/// [`buffer_len`]: a thread that only ever hashed 4 KB files holds 4 KB, not 1.25 MiB, for
/// the daemon's life (measured: 4 hashing threads on the receiver of 100,000 small files).
fn with_buffer<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        let have = buf.len();
        if have < len {
            let want = len.next_power_of_two().min(buffer_len()).max(len);
            buf.reserve_exact(want - have);
            buf.resize(want, 0);
        }
        f(buf.get_mut(..len).unwrap_or_default())
    })
}

/// Reads into `dst` until it is full, `left` bytes were read or the file ends; returns the
/// bytes read. Stopping at the expected size saves the final empty read: growth is seen by
/// the metadata check after the read.
fn read_some(
    file: &mut File,
    dst: &mut [u8],
    left: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<usize> {
    let want = usize::try_from(left).unwrap_or(usize::MAX).min(dst.len());
    let mut n = 0;
    while n < want {
        let Some(free) = dst.get_mut(n..want) else {
            break;
        };
        match file.read(free) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                progress(k as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Blocks, chunks and the number of bytes read.
type Lists = (Vec<Block>, Vec<Chunk>, u64);

/// A file that fits one segment: read whole, its blocks hashed, then its chunks cut; a chunk
/// that is exactly one block (every file up to the minimum chunk size, many up to a block)
/// takes that block's hash instead of hashing the same bytes a second time.
fn hash_whole(
    file: &mut File,
    buf: &mut [u8],
    block_size: u32,
    expected: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<Lists> {
    let n = read_some(file, buf, expected, progress)?;
    let data = buf.get(..n).unwrap_or(&[]);
    let mut blocks = BlockHasher::new(block_size, expected);
    blocks.update(data);
    let blocks = blocks.finish();
    let mut chunker = Chunker::new();
    let bs = u64::from(block_size);
    let known = |offset: u64, size: u32| {
        let b = blocks.get(usize::try_from(offset / bs).ok()?)?;
        (b.offset == offset && b.size == size).then_some(b.hash)
    };
    chunker.cut_all(data, true, &known);
    Ok((blocks, chunker.chunks, n as u64))
}

/// A large file on one thread (outside a rayon pool, or when too many pipelines run).
fn hash_sequential(
    file: &mut File,
    buf: &mut [u8],
    block_size: u32,
    expected: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<Lists> {
    let mut blocks = BlockHasher::new(block_size, expected);
    let mut chunker = Chunker::new();
    let head = params::CDC_MAX_SIZE;
    let mut total = 0u64;
    // buf[start..head + n]: the uncut tail of the previous segment, then the new segment.
    let mut start = head;
    loop {
        let seg = buf.get_mut(head..).unwrap_or(&mut []);
        let n = read_some(file, seg, expected - total.min(expected), progress)?;
        total += n as u64;
        let eof = n == 0 || total >= expected;
        blocks.update(buf.get(head..head + n).unwrap_or(&[]));
        let pending = buf.get(start..head + n).unwrap_or(&[]);
        let used = chunker.cut_all(pending, eof, &|_, _| None);
        if eof {
            break;
        }
        // Fewer than a maximum-size chunk is left: it goes just before the next segment.
        let left = pending.len() - used;
        buf.copy_within(head + n - left..head + n, head - left);
        start = head - left;
    }
    Ok((blocks.finish(), chunker.chunks, total))
}

/// A large file in two overlapping stages on the rayon pool: while one task hashes the fixed
/// blocks of segment k and reads segment k+1 into the second buffer, the other cuts and
/// hashes the chunks of segment k. Both lists see every byte in order, exactly as on one
/// thread; the work is only spread over two cores (rayon runs both on this thread when no
/// other is free).
fn hash_pipelined(
    file: &mut File,
    block_size: u32,
    expected: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> std::io::Result<Lists> {
    let mut blocks = BlockHasher::new(block_size, expected);
    let mut chunker = Chunker::new();
    let head = params::CDC_MAX_SIZE;
    let mut cur = vec![0u8; buffer_len()];
    let mut next = vec![0u8; buffer_len()];
    let mut n = read_some(
        file,
        cur.get_mut(head..).unwrap_or(&mut []),
        expected,
        progress,
    )?;
    let mut total = n as u64;
    // cur[start..head + n]: the uncut tail of the previous segment, then segment k.
    let mut start = head;
    loop {
        let eof = n == 0 || total >= expected;
        let fresh = cur.get(head..head + n).unwrap_or(&[]);
        let pending = cur.get(start..head + n).unwrap_or(&[]);
        let next_seg = next.get_mut(head..).unwrap_or(&mut []);
        let left_to_read = expected - total.min(expected);
        let blocks = &mut blocks;
        let chunker = &mut chunker;
        let file = &mut *file;
        let progress = &mut *progress;
        let (read, used) = rayon::join(
            move || {
                blocks.update(fresh);
                if eof {
                    Ok(0)
                } else {
                    read_some(file, next_seg, left_to_read, progress)
                }
            },
            move || chunker.cut_all(pending, eof, &|_, _| None),
        );
        if eof {
            break;
        }
        let read = read?;
        total += read as u64;
        let left = pending.len() - used;
        if let (Some(dst), Some(src)) = (
            next.get_mut(head - left..head),
            cur.get(head + n - left..head + n),
        ) {
            dst.copy_from_slice(src);
        }
        start = head - left;
        n = read;
        std::mem::swap(&mut cur, &mut next);
    }
    Ok((blocks.finish(), chunker.chunks, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn stat(p: &Path) -> Stat {
        Stat::from_metadata(&std::fs::symlink_metadata(p).unwrap())
    }

    /// Deterministic pseudo-random bytes (xorshift), so chunk boundaries are content-defined.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    const BS: u32 = 128 * 1024;

    /// Source-like text (lines of words from a small vocabulary) with runs of zeros and
    /// repeats: low entropy, long equal stretches, like real trees.
    fn realish(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "fn", "let", "mut", "self", "return", "if", "else", "match", "{", "}", "x", "=",
        ];
        let mut x = seed | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match next() % 10 {
                0 => out.resize(out.len() + (next() % 100_000) as usize, 0),
                1 if out.len() > 4096 => {
                    let from = (next() as usize) % (out.len() - 4096);
                    out.extend_from_within(from..from + 4096);
                }
                _ => {
                    for _ in 0..(next() % 12) {
                        out.extend_from_slice(WORDS[(next() % 12) as usize].as_bytes());
                        out.push(b' ');
                    }
                    out.push(b'\n');
                }
            }
        }
        out.truncate(len);
        out
    }

    /// What the wire contract says: SHA-256 of fixed blocks, and fastcdc v2020's own
    /// chunker over the whole file in memory, SHA-256 of each chunk.
    fn reference(data: &[u8], bs: u32) -> (Vec<Block>, Vec<Chunk>) {
        let mut blocks: Vec<Block> = data
            .chunks(bs as usize)
            .enumerate()
            .map(|(i, c)| Block {
                offset: i as u64 * u64::from(bs),
                size: c.len() as u32,
                hash: Sha256::digest(c).into(),
            })
            .collect();
        if blocks.is_empty() {
            blocks.push(Block {
                offset: 0,
                size: 0,
                hash: Sha256::digest(b"").into(),
            });
        }
        let chunks = fastcdc::v2020::FastCDC::new(
            data,
            params::CDC_MIN_SIZE,
            params::CDC_AVG_SIZE,
            params::CDC_MAX_SIZE,
        )
        .map(|c| Chunk {
            offset: c.offset as u64,
            size: c.length as u32,
            hash: Sha256::digest(&data[c.offset..c.offset + c.length]).into(),
        })
        .collect();
        (blocks, chunks)
    }

    fn check(dir: &Path, data: &[u8], what: &str, pool: &rayon::ThreadPool) {
        let p = write(dir, "case", data);
        let want = reference(data, BS);
        let st = stat(&p);
        // Outside a pool (one thread) and on a two-thread pool (pipelined when large).
        let alone = hash_file(&p, &st, BS, &mut |_| {}).unwrap();
        let pooled = pool
            .install(|| hash_file(&p, &st, BS, &mut |_| {}))
            .unwrap();
        for (how, h) in [("one thread", alone), ("pool", pooled)] {
            assert_eq!(
                h.blocks,
                want.0,
                "{what}, {} bytes, {how}: blocks",
                data.len()
            );
            assert_eq!(
                h.chunks,
                want.1,
                "{what}, {} bytes, {how}: chunks",
                data.len()
            );
        }
    }

    #[test]
    fn blocks_and_chunks_equal_sha2_and_fastcdc_v2020_at_every_size_and_on_every_path() {
        let d = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (min, max, seg) = (params::CDC_MIN_SIZE, params::CDC_MAX_SIZE, SEGMENT);
        let bs = BS as usize;
        let edges = [
            0,
            1,
            4096,
            min - 1,
            min,
            min + 1,
            65_536,
            bs - 1,
            bs,
            bs + 1,
            max - 1,
            max,
            max + 1,
            seg - 1,
            seg,
            seg + 1,
            seg + max - 1,
            seg + max,
            seg + max + 7,
            2 * seg,
            3 * seg + 12_345,
        ];
        for (i, &len) in edges.iter().enumerate() {
            check(d.path(), &noise(len, i as u64 + 1), "random", &pool);
            check(d.path(), &realish(len, i as u64 + 1), "real-ish", &pool);
        }
        check(d.path(), &vec![0u8; 2 * seg + 3], "zeros", &pool);
    }

    #[test]
    fn blocks_and_chunks_equal_sha2_and_fastcdc_v2020_at_random_sizes() {
        let d = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut x = 0x5eed_u64;
        for case in 0..24u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % (4 << 20)) as usize;
            if case % 2 == 0 {
                check(d.path(), &noise(len, case + 100), "random", &pool);
            } else {
                check(d.path(), &realish(len, case + 100), "real-ish", &pool);
            }
        }
    }

    #[test]
    fn empty_file_has_one_empty_block_and_no_chunks() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "e", b"");
        let h = hash_file(&p, &stat(&p), BS, &mut |_| {}).unwrap();
        assert_eq!(h.blocks.len(), 1);
        assert_eq!(h.blocks[0].size, 0);
        assert_eq!(h.blocks[0].hash, <[u8; 32]>::from(Sha256::digest(b"")));
        assert!(h.chunks.is_empty());
        assert_eq!(
            h.blocks_hash,
            <[u8; 32]>::from(Sha256::digest(h.blocks[0].hash))
        );
    }

    #[test]
    fn blocks_are_fixed_size_sha256_with_a_short_tail() {
        let d = tempfile::tempdir().unwrap();
        let data = noise(BS as usize * 2 + 1000, 7);
        let p = write(d.path(), "f", &data);
        let h = hash_file(&p, &stat(&p), BS, &mut |_| {}).unwrap();
        let want: Vec<Block> = data
            .chunks(BS as usize)
            .enumerate()
            .map(|(i, c)| Block {
                offset: i as u64 * u64::from(BS),
                size: c.len() as u32,
                hash: Sha256::digest(c).into(),
            })
            .collect();
        assert_eq!(h.blocks, want);
        assert_eq!(h.blocks_hash, blocks_hash(&want));
    }

    #[test]
    fn chunks_match_fastcdc_stream_chunker_and_cover_the_file() {
        let d = tempfile::tempdir().unwrap();
        let data = noise(params::CDC_MAX_SIZE * 7 + 12345, 99);
        let p = write(d.path(), "f", &data);
        let h = hash_file(&p, &stat(&p), BS, &mut |_| {}).unwrap();
        let reference: Vec<Chunk> = fastcdc::v2020::StreamCDC::new(
            &data[..],
            params::CDC_MIN_SIZE,
            params::CDC_AVG_SIZE,
            params::CDC_MAX_SIZE,
        )
        .map(|c| {
            let c = c.unwrap();
            Chunk {
                offset: c.offset,
                size: c.length as u32,
                hash: Sha256::digest(&c.data).into(),
            }
        })
        .collect();
        assert!(reference.len() > 7, "several chunks: {}", reference.len());
        assert_eq!(h.chunks, reference);
        let covered: u64 = h.chunks.iter().map(|c| u64::from(c.size)).sum();
        assert_eq!(covered, data.len() as u64);
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let d = tempfile::tempdir().unwrap();
        let data = noise(params::CDC_MAX_SIZE * 8, 5);
        let mut edited = data.clone();
        edited.splice(1000..1000, *b"inserted");
        let a = write(d.path(), "a", &data);
        let b = write(d.path(), "b", &edited);
        let ha = hash_file(&a, &stat(&a), BS, &mut |_| {}).unwrap();
        let hb = hash_file(&b, &stat(&b), BS, &mut |_| {}).unwrap();
        let set: std::collections::HashSet<_> = ha.chunks.iter().map(|c| c.hash).collect();
        let shared = hb.chunks.iter().filter(|c| set.contains(&c.hash)).count();
        assert!(
            shared + 2 >= hb.chunks.len(),
            "{shared} of {}",
            hb.chunks.len()
        );
        let bset: std::collections::HashSet<_> = ha.blocks.iter().map(|c| c.hash).collect();
        assert!(
            hb.blocks.iter().all(|b| !bset.contains(&b.hash)),
            "fixed blocks all shift"
        );
    }

    #[test]
    fn a_file_written_during_hashing_is_reported_as_changed() {
        let d = tempfile::tempdir().unwrap();
        let data = noise(4 << 20, 3);
        let p = write(d.path(), "f", &data);
        let before = stat(&p);
        let mut appended = false;
        let r = hash_file(&p, &before, BS, &mut |_| {
            if !appended {
                appended = true;
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                f.write_all(b"more").unwrap();
            }
        });
        assert!(
            matches!(r, Err(HashError::ChangedWhileHashing { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn a_file_changed_between_stat_and_open_is_reported_as_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f", b"one");
        let before = stat(&p);
        std::fs::write(&p, b"three").unwrap();
        let r = hash_file(&p, &before, BS, &mut |_| {});
        assert!(
            matches!(r, Err(HashError::ChangedWhileHashing { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn a_symlink_is_never_opened() {
        let d = tempfile::tempdir().unwrap();
        let target = write(d.path(), "t", b"secret");
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let r = hash_file(&link, &stat(&target), BS, &mut |_| {});
        assert!(matches!(r, Err(HashError::NotAFile { .. })), "{r:?}");
    }

    #[test]
    fn progress_reports_every_byte_read() {
        let d = tempfile::tempdir().unwrap();
        let data = noise(3 << 20, 11);
        let p = write(d.path(), "f", &data);
        let mut seen = 0;
        hash_file(&p, &stat(&p), BS, &mut |n| seen += n).unwrap();
        assert_eq!(seen, data.len() as u64);
    }
}
