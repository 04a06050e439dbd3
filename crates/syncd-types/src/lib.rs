//! The leaf types every syncd crate shares, each defined exactly once.
//!
//! - [`DeviceId`]: 32 bytes, the SHA-256 of a device's certificate DER, with Syncthing's
//!   63-character luhn32 string form ([`DeviceId`]'s `FromStr` accepts every spelling Syncthing
//!   accepts); [`ShortId`], its first 8 bytes read big-endian, used in version vectors.
//! - [`FolderId`]: a folder's cluster-wide identifier.
//! - [`RelPath`]: a validated, normalised path relative to a folder root. Constructing one from
//!   untrusted input (a peer's Index, a Request, a directory walk) is the *only* place where
//!   path validation lives: a `RelPath` is `/`-separated, NFC, never empty, never absolute,
//!   never contains `.`/`..`/empty components, a backslash or a NUL byte.
//! - [`FileKind`]: file, directory or symlink.
//! - [`names`]: the internal names Syncthing uses (`.stfolder`, `.stignore`, `.stversions`,
//!   temporary files), so a folder moves between Syncthing and syncd unchanged.
//!
//! This crate does no IO, holds no state and has no async code.
//!
//! ```
//! use syncd_types::{DeviceId, RelPath};
//! let id: DeviceId = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2".parse().unwrap();
//! assert_eq!(id.short().to_string(), "P56IOI7");
//! assert!(RelPath::new("../etc/passwd").is_err());
//! assert_eq!(RelPath::new("src/main.rs").unwrap().file_name(), "main.rs");
//! ```

// The README's example runs as a doctest, so the published front page stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod device;
mod folder;
mod kind;
pub mod names;
mod path;

pub use device::{DeviceId, DeviceIdError, ShortId};
pub use folder::{FolderId, FolderIdError};
pub use kind::FileKind;
pub use path::{PathError, RelPath, fold_case, is_local_spelling, local_names_nfd};
