//! The real case of names on disk, for folders whose filesystem may be case-insensitive
//! (Syncthing's `caseSensitiveFS = false`, its default).
//!
//! On a case-insensitive filesystem (APFS, NTFS, a case-folding mount) `readme.md` opens the
//! file listed as `README.md`. Before the puller creates, renames into or deletes a name, and
//! before the scanner records a name it was asked to look at, [`CaseResolver::check`] tells
//! whether that name exists on disk spelt exactly so: a name that does not exist at all is
//! fine (on a case-sensitive filesystem `Foo` and `foo` can then coexist, as in Syncthing);
//! one that exists under another case is a [`CaseConflict`]. The real case is found from the
//! directory listings of each component's parent, cached for a second (at most
//! [`MAX_CACHED_DIRS`] directories) as in Syncthing; whoever changes a directory calls
//! [`CaseResolver::forget`] so its next check reads the listing again.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncd_types::{RelPath, fold_case};
use unicode_normalization::UnicodeNormalization;

/// How long a directory listing is trusted.
const LISTING_TTL: Duration = Duration::from_secs(1);
/// At most this many directory listings are cached (then the cache starts over).
pub const MAX_CACHED_DIRS: usize = 4096;

/// A name that exists on disk only under another case: Syncthing's `ErrCaseConflict`, with
/// its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote \"{given}\" uses different upper or lowercase characters than local \"{real}\"; change the casing on either side to match the other"
)]
pub struct CaseConflict {
    /// The name asked about (NFC, as in the index).
    pub given: String,
    /// The name as it is on disk (NFC).
    pub real: String,
}

/// What the disk says of a name (see [`CaseResolver::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDisk {
    /// Nothing by that name, in any case.
    Absent,
    /// The name exists spelt exactly so (up to Unicode normalisation).
    Exact,
    /// The name exists only under another case.
    Conflict(CaseConflict),
}

/// A directory's entries by folded name: each entry's NFC spelling and its name on disk.
type Entries = HashMap<String, Vec<(String, OsString)>>;
type Listing = (Instant, Arc<Entries>);

/// Finds the on-disk case of names below one folder root, with a short-lived cache of
/// directory listings (see the module docs). Shared between threads.
#[derive(Debug)]
pub struct CaseResolver {
    root: PathBuf,
    cache: Mutex<HashMap<PathBuf, Listing>>,
}

impl CaseResolver {
    /// A resolver for the folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> CaseResolver {
        CaseResolver {
            root: root.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `rel` exists on disk, spelt exactly so or under another case. Errors are those
    /// of `lstat` and of reading a directory (a missing parent is [`OnDisk::Absent`]).
    pub fn check(&self, rel: &RelPath) -> std::io::Result<OnDisk> {
        match std::fs::symlink_metadata(rel.to_path_under(&self.root)) {
            Ok(_) => {}
            Err(e) if is_absent(&e) => return Ok(OnDisk::Absent),
            Err(e) => return Err(e),
        }
        let Some(real) = self.real_case(rel)? else {
            return Ok(OnDisk::Absent);
        };
        if real == rel.as_str() {
            Ok(OnDisk::Exact)
        } else {
            Ok(OnDisk::Conflict(CaseConflict {
                given: rel.as_str().to_owned(),
                real,
            }))
        }
    }

    /// `rel` as it is spelt on disk (NFC), component by component; `None` when a component is
    /// in no listing under any case (it went away meanwhile).
    pub fn real_case(&self, rel: &RelPath) -> std::io::Result<Option<String>> {
        let mut dir = self.root.clone();
        let mut real = String::with_capacity(rel.as_str().len());
        for c in rel.components() {
            let Some((found, on_disk)) = self.find(&dir, c)? else {
                return Ok(None);
            };
            if !real.is_empty() {
                real.push('/');
            }
            real.push_str(&found);
            // The next listing is of the directory as it is spelt on disk.
            dir.push(on_disk);
        }
        Ok(Some(real))
    }

    /// Forgets the cached listing of the directory `dir` (absolute): call it after creating,
    /// renaming or removing an entry in it.
    pub fn forget(&self, dir: &Path) {
        self.with(|c| {
            c.remove(dir);
        });
    }

    /// The entry of `dir` that is `name` (NFC): the exact spelling if listed, else the one
    /// entry that folds alike (the first in listing order if several do).
    fn find(&self, dir: &Path, name: &str) -> std::io::Result<Option<(String, OsString)>> {
        let key = fold_case(name);
        for fresh in [false, true] {
            let listing = match self.cached(dir).filter(|_| !fresh) {
                Some(l) => l,
                None => match self.read(dir) {
                    Ok(l) => l,
                    Err(e) if is_absent(&e) => return Ok(None),
                    Err(e) => return Err(e),
                },
            };
            if let Some(names) = listing.get(&key) {
                if let Some(exact) = names.iter().find(|(n, _)| n == name) {
                    return Ok(Some(exact.clone()));
                }
                // A cached listing may predate the exact name (made by another program
                // within the last second): only a fresh one decides a conflict.
                if fresh && let Some(n) = names.first() {
                    return Ok(Some(n.clone()));
                }
            }
        }
        Ok(None)
    }

    fn cached(&self, dir: &Path) -> Option<Arc<Entries>> {
        self.with(|c| match c.get(dir) {
            Some((at, l)) if at.elapsed() < LISTING_TTL => Some(l.clone()),
            _ => None,
        })
    }

    fn read(&self, dir: &Path) -> std::io::Result<Arc<Entries>> {
        let mut by_fold: Entries = HashMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let raw: OsString = e.file_name();
            // A name that is not UTF-8 can match no RelPath.
            let Ok(s) = std::str::from_utf8(raw.as_bytes()) else {
                continue;
            };
            let nfc: String = s.nfc().collect();
            by_fold
                .entry(fold_case(&nfc))
                .or_default()
                .push((nfc, raw.clone()));
        }
        let l = Arc::new(by_fold);
        self.with(|c| {
            if c.len() >= MAX_CACHED_DIRS {
                c.clear();
            }
            c.insert(dir.to_path_buf(), (Instant::now(), l.clone()));
        });
        Ok(l)
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<PathBuf, Listing>) -> R) -> R {
        match self.cache.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// Not found, or a parent that is not a directory: nothing by that name.
fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::NotADirectory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn on_a_case_sensitive_filesystem_other_cases_are_absent_and_exact_names_exact() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("Docs")).unwrap();
        std::fs::write(d.path().join("Docs/README.md"), "x").unwrap();
        let r = CaseResolver::new(d.path());
        assert_eq!(r.check(&rel("Docs/README.md")).unwrap(), OnDisk::Exact);
        assert_eq!(r.check(&rel("Docs/readme.md")).unwrap(), OnDisk::Absent);
        assert_eq!(r.check(&rel("docs/README.md")).unwrap(), OnDisk::Absent);
        assert_eq!(r.check(&rel("Docs/README.md/x")).unwrap(), OnDisk::Absent);
        assert_eq!(
            r.real_case(&rel("docs/readme.MD")).unwrap().as_deref(),
            Some("Docs/README.md")
        );
    }

    #[test]
    fn a_name_spelt_in_nfd_on_disk_is_found_under_any_case_and_reported_in_nfc() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("Cafe\u{301}")).unwrap();
        std::fs::write(d.path().join("Cafe\u{301}/x"), "x").unwrap();
        let r = CaseResolver::new(d.path());
        assert_eq!(
            r.real_case(&rel("CAF\u{c9}/X")).unwrap().as_deref(),
            Some("Caf\u{e9}/x")
        );
    }

    #[test]
    fn the_conflict_text_is_syncthings() {
        let e = CaseConflict {
            given: "foo".into(),
            real: "Foo".into(),
        };
        assert_eq!(
            e.to_string(),
            "remote \"foo\" uses different upper or lowercase characters than local \"Foo\"; change the casing on either side to match the other"
        );
    }

    #[test]
    fn a_forgotten_listing_is_read_again() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("A"), "x").unwrap();
        let r = CaseResolver::new(d.path());
        assert_eq!(r.real_case(&rel("a")).unwrap().as_deref(), Some("A"));
        std::fs::rename(d.path().join("A"), d.path().join("b")).unwrap();
        r.forget(d.path());
        assert_eq!(r.real_case(&rel("a")).unwrap(), None);
        assert_eq!(r.real_case(&rel("B")).unwrap().as_deref(), Some("b"));
    }
}
