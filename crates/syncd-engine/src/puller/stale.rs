//! Removing temp files no pull will use (spec sync-semantics §3.7).
//!
//! A failed pull keeps its `.syncthing.<name>.tmp` so the next attempt reuses its verified
//! pieces. When the path is then deleted or renamed elsewhere before the retry (or the process
//! is killed mid-pull), nothing would ever use or remove that temp file. So at the end of every
//! complete pull pass the temp files that failed items of earlier passes left are removed
//! unless their item failed again (then they are kept for its retry); the first complete pass
//! of a folder in this process walks the whole tree once and removes the temp files older than
//! 24 h (Syncthing's `keepTemporariesH`), which catches what a killed process left. Only regular files whose name is a temp name are removed; symlinks are never
//! followed and nothing outside the root is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use syncd_types::RelPath;
use syncd_types::names::{is_temp_name, temp_name};

/// Temp files older than this found by the first walk are removed (Syncthing's
/// `keepTemporariesH` default, 24 h); younger ones may still be reused by a pull.
const KEEP_TEMPORARIES: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Per folder root: temp files failed pulls may have left (absent until the root's first
/// complete pass in this process walked it).
static LEFT: Mutex<BTreeMap<PathBuf, BTreeSet<PathBuf>>> = Mutex::new(BTreeMap::new());

/// Where the pull of `name` keeps its temp file under `root`.
pub(crate) fn temp_path(root: &Path, name: &RelPath) -> PathBuf {
    let parent = name.as_str().rsplit_once('/').map_or("", |(p, _)| p);
    root.join(parent).join(temp_name(name.file_name()))
}

/// After a complete pass over the need set: removes every temp file left under `root` by
/// earlier failed pulls except those of `failed` (items that failed in this pass, whose temp
/// files the next attempt reuses). Returns how many were removed.
pub(crate) fn sweep(root: &Path, failed: &[RelPath]) -> usize {
    let keep: BTreeSet<PathBuf> = failed.iter().map(|n| temp_path(root, n)).collect();
    let previous = {
        let mut left = LEFT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        left.insert(root.to_path_buf(), keep.clone())
    };
    let candidates = previous.unwrap_or_else(|| {
        let mut found = BTreeSet::new();
        walk(root, &mut found);
        found
    });
    let mut removed = 0;
    for t in candidates.difference(&keep) {
        if std::fs::symlink_metadata(t).is_ok_and(|m| m.is_file())
            && std::fs::remove_file(t).is_ok()
        {
            tracing::debug!(path = %t.display(), "removed a temp file no pull will use");
            removed += 1;
        }
    }
    removed
}

/// Collects the temp files (regular files with a temp name) below `dir`, never following
/// symlinks.
fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file()
            && e.file_name().to_str().is_some_and(is_temp_name)
            && e.metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|m| m.elapsed().is_ok_and(|age| age > KEEP_TEMPORARIES))
        {
            out.insert(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"partial").unwrap();
        let old = std::time::SystemTime::now() - KEEP_TEMPORARIES * 2;
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn the_first_sweep_removes_every_temp_file_except_those_of_failed_items() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let failed = RelPath::new("x/still-failing.dat").unwrap();
        let gone = RelPath::new("x/y/deleted-meanwhile.dat").unwrap();
        touch(&temp_path(root, &failed));
        touch(&temp_path(root, &gone));
        touch(&root.join("x/y/user.dat"));
        assert_eq!(sweep(root, std::slice::from_ref(&failed)), 1);
        assert!(temp_path(root, &failed).exists());
        assert!(!temp_path(root, &gone).exists());
        assert!(
            root.join("x/y/user.dat").exists(),
            "user data is never touched"
        );
        // Once the item stops failing (done, deleted or renamed), its temp file goes too.
        assert_eq!(sweep(root, &[]), 1);
        assert!(!temp_path(root, &failed).exists());
    }

    #[test]
    fn a_sweep_never_follows_a_symlink_out_of_the_root() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside) = (d.path().join("root"), d.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        let victim = outside.join(temp_name("v"));
        touch(&victim);
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        assert_eq!(sweep(&root, &[]), 0);
        assert!(victim.exists());
    }
}
