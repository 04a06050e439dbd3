//! The hasher: one pass over a file produces the BEP block list, its blocks hash and the
//! FastCDC chunk list, with a bounded buffer per worker thread.

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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

/// The smallest buffer that lets the chunker always see a full maximum-size chunk.
fn buffer_len() -> usize {
    (2 * params::CDC_MAX_SIZE).max(1 << 20)
}

thread_local! {
    // One reusable read buffer per worker thread: memory is bounded by threads × buffer_len().
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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

/// Cuts content-defined chunks out of a sliding buffer and hashes each.
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

    /// Cuts one chunk from the start of `data`; returns its length. The caller guarantees
    /// `data` holds at least a maximum-size chunk unless the file ends inside it.
    fn cut(&mut self, data: &[u8]) -> usize {
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
        let len = len.min(data.len());
        if len == 0 {
            return 0;
        }
        let bytes = data.get(..len).unwrap_or(data);
        self.chunks.push(Chunk {
            offset: self.offset,
            // len ≤ CDC_MAX_SIZE, which fits u32.
            size: len as u32,
            hash: Sha256::digest(bytes).into(),
        });
        self.offset += len as u64;
        len
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
/// The file is opened without following symlinks, read once through a per-thread buffer,
/// and stat-ed again afterwards: if anything changed (or the bytes read disagree with the
/// size), the result is [`HashError::ChangedWhileHashing`]. `progress` is called with the
/// number of bytes consumed after every read.
pub fn hash_file(
    path: &Path,
    before: &Stat,
    block_size: u32,
    progress: &mut dyn FnMut(u64),
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

    let (blocks, chunks, total) = BUFFER
        .with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < buffer_len() {
                buf.resize(buffer_len(), 0);
            }
            read_and_hash(&mut file, &mut buf, block_size, before.size, progress)
        })
        .map_err(io)?;

    let after = file.metadata().map_err(io)?;
    let after_path = std::fs::symlink_metadata(path).map_err(io)?;
    let fp = before.fingerprint();
    if total != before.size
        || Stat::from_metadata(&after).fingerprint() != fp
        || Stat::from_metadata(&after_path).fingerprint() != fp
        || after_path.ino() != opened.ino()
    {
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

fn read_and_hash(
    file: &mut File,
    buf: &mut [u8],
    block_size: u32,
    expected: u64,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<(Vec<Block>, Vec<Chunk>, u64)> {
    let mut blocks = BlockHasher::new(block_size, expected);
    let mut chunker = Chunker::new();
    let mut total = 0u64;
    // buf[start..end] holds bytes read but not yet cut into chunks.
    let mut start = 0usize;
    let mut end = 0usize;
    let mut eof = false;
    loop {
        // Fill until a maximum-size chunk fits after `start`, or the file ends.
        while !eof && end - start < params::CDC_MAX_SIZE {
            if end == buf.len() {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            let Some(dst) = buf.get_mut(end..) else { break };
            match file.read(dst) {
                Ok(0) => eof = true,
                Ok(n) => {
                    if let Some(fresh) = buf.get(end..end + n) {
                        blocks.update(fresh);
                    }
                    end += n;
                    total += n as u64;
                    progress(n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if start == end {
            break;
        }
        let pending = buf.get(start..end).unwrap_or(&[]);
        let n = chunker.cut(pending);
        if n == 0 {
            break;
        }
        start += n;
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
