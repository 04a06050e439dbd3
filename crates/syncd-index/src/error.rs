//! The error families of the index: opening, reading/writing, and decoding stored bytes.

/// A stored value could not be decoded: the file is corrupted or written by an unknown format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The value ended before the structure did.
    #[error("{what}: truncated at byte {offset}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Byte offset where more input was expected.
        offset: usize,
    },
    /// A varint longer than 10 bytes or above `u64::MAX`.
    #[error("{what}: varint overflow at byte {offset}")]
    VarintOverflow {
        /// Which structure.
        what: &'static str,
        /// Byte offset of the varint.
        offset: usize,
    },
    /// A field holds a value outside its domain.
    #[error("{what}: field {field} out of range ({value})")]
    OutOfRange {
        /// Which structure.
        what: &'static str,
        /// Which field.
        field: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The value was written by a format version this build does not know.
    #[error("{what}: unknown format version {found}")]
    UnknownVersion {
        /// Which structure.
        what: &'static str,
        /// The version byte found.
        found: u8,
    },
    /// A stored file name is not a valid [`syncd_types::RelPath`].
    #[error("stored name is not a valid path: {0}")]
    BadName(#[from] syncd_types::PathError),
    /// Bytes were left over after the structure ended.
    #[error("{what}: {extra} trailing bytes")]
    Trailing {
        /// Which structure.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
}

/// Opening an index failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// redb could not open or create the file.
    #[error("cannot open the index database: {0}")]
    Database(#[from] redb::DatabaseError),
    /// The file was written by a newer (or unknown) index format.
    #[error("index format version {found} is not supported (this build reads {supported})")]
    UnsupportedFormat {
        /// Version stored in the file.
        found: u32,
        /// Version this build writes.
        supported: u32,
    },
    /// The file belongs to another local device.
    #[error("the index belongs to device {stored}, not {requested}")]
    WrongDevice {
        /// The device ID stored in the index.
        stored: syncd_types::DeviceId,
        /// The device ID the caller opened it as.
        requested: syncd_types::DeviceId,
    },
    /// Reading or initialising the metadata failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl OpenError {
    /// Whether the file itself is damaged (truncated, overwritten, not a database, values that
    /// do not decode): the index cannot be used and must be rebuilt. Not damage: a lock held by
    /// another process, a newer format, another device's index, or an I/O failure of the disk.
    pub fn is_damage(&self) -> bool {
        match self {
            OpenError::Database(redb::DatabaseError::Storage(s)) => storage_is_damage(s),
            OpenError::Database(_)
            | OpenError::UnsupportedFormat { .. }
            | OpenError::WrongDevice { .. } => false,
            OpenError::Index(e) => e.is_damage(),
        }
    }
}

impl IndexError {
    /// Whether this error means the stored bytes are damaged (see [`OpenError::is_damage`]).
    pub fn is_damage(&self) -> bool {
        match self {
            IndexError::Corrupt(_) | IndexError::CountUnderflow { .. } => true,
            IndexError::Storage(redb::Error::Corrupted(_)) => true,
            IndexError::Storage(redb::Error::Io(e)) => e.kind() == std::io::ErrorKind::InvalidData,
            _ => false,
        }
    }
}

fn storage_is_damage(s: &redb::StorageError) -> bool {
    match s {
        redb::StorageError::Corrupted(_) => true,
        redb::StorageError::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// A read or write on an open index failed. These are local faults (disk, corruption), never a
/// peer's: a peer's bad data is rejected before it reaches the index (paths are already
/// [`syncd_types::RelPath`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// redb reported a storage or transaction error.
    #[error("index storage error: {0}")]
    Storage(#[from] redb::Error),
    /// A stored value is corrupted.
    #[error("corrupted index value: {0}")]
    Corrupt(#[from] DecodeError),
    /// A stored counter would go below zero: the counts no longer match the records.
    #[error("count {what} would underflow in folder {folder}")]
    CountUnderflow {
        /// The folder whose counts broke.
        folder: String,
        /// Which counter.
        what: &'static str,
    },
    /// A remote batch or index ID named the local device.
    #[error("the local device cannot be applied as a remote device")]
    LocalDeviceAsRemote,
    /// The folder has more devices or there are more folders than the format can number.
    #[error("too many {what} in the index")]
    TooMany {
        /// Folders or devices.
        what: &'static str,
    },
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                IndexError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::CompactionError
);
