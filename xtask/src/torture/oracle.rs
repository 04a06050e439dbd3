//! The oracle: a manifest of every content version the workload wrote, and the checks that
//! hold a synced tree against it.
//!
//! Every version gets a SHA-256. After a run, each file in either tree must hash to *some*
//! version that was written (a torn mix of two writes, or a half-pulled temp promoted under
//! the real name, hashes to none), and every version that must survive must be present
//! somewhere in the tree: the last write each side made to each path since the last
//! verified convergence (unless that same side deleted or renamed it later), whether it ended
//! up as the file itself or as a `.sync-conflict-*` copy. Contents carry a unique header, so
//! "present somewhere" cannot be satisfied by an unrelated file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

/// A content hash.
pub(crate) type Hash = [u8; 32];

/// SHA-256 of `data`.
pub(crate) fn hash_bytes(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// SHA-256 of a file's contents.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<Hash> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h.finalize().into())
}

/// Short hex form of a hash for messages.
pub(crate) fn short(h: &Hash) -> String {
    h.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Which daemon's folder a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Side {
    /// The first daemon (it listens; the other dials it).
    A,
    /// The second daemon.
    B,
    /// The third device of the mixed cluster (a stock Syncthing).
    C,
}

impl Side {
    /// `a` or `b`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
            Side::C => "c",
        }
    }
}

/// One written version.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    /// Path in the folder, `/`-separated.
    pub path: String,
    /// Its content hash.
    pub hash: Hash,
    /// Where it was written.
    pub side: Side,
    /// When, relative to the start of the run.
    pub at_ms: u128,
}

/// The manifest and the survival bookkeeping.
#[derive(Debug)]
pub(crate) struct Oracle {
    start: Instant,
    /// Every version ever written (the manifest), in order.
    pub manifest: Vec<Version>,
    known: HashSet<Hash>,
    /// Per side: path -> what that side last left there since the last checkpoint
    /// (`Some(hash)` written or renamed in, `None` deleted or renamed away).
    live: BTreeMap<Side, HashMap<String, Option<Hash>>>,
}

/// One tree as found on disk.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Tree {
    /// Regular files (not internal, not temp): path -> hash.
    pub files: BTreeMap<String, Hash>,
    /// Temp files (`.syncthing.*.tmp`, `~syncthing~*.tmp`) found on disk.
    pub temps: Vec<String>,
}

impl Tree {
    /// Conflict copies in the tree.
    pub(crate) fn conflict_copies(&self) -> usize {
        self.files
            .keys()
            .filter(|p| p.contains(".sync-conflict-"))
            .count()
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Versions that had to survive and are nowhere in the tree.
    pub lost: Vec<String>,
    /// Files whose content is no version that was written.
    pub foreign: Vec<String>,
}

impl Findings {
    /// True when nothing is wrong.
    pub(crate) fn clean(&self) -> bool {
        self.lost.is_empty() && self.foreign.is_empty()
    }
}

/// Lists a folder: every regular file except the folder's internal entries (`.stfolder`,
/// `.stignore`, `.stversions` at the root), hashing each; temp files are listed apart.
pub(crate) fn scan_tree(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::default();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A directory removed while we walk (the daemon deleting it) is simply gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        for entry in rd {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if rel.is_empty() && matches!(name.as_str(), ".stfolder" | ".stignore" | ".stversions")
            {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push((entry.path(), path));
            } else if syncd_temp_name(&name) {
                tree.temps.push(path);
            } else if ft.is_file() {
                match hash_file(&entry.path()) {
                    Ok(h) => {
                        tree.files.insert(path, h);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("{}: {e}", entry.path().display())),
                }
            }
        }
    }
    tree.temps.sort();
    Ok(tree)
}

/// `syncd_types::names::is_temp_name`'s rule (xtask does not depend on the workspace's
/// crates): a `.syncthing.` or `~syncthing~` prefix and a `.tmp` suffix.
pub(crate) fn syncd_temp_name(base: &str) -> bool {
    (base.starts_with(".syncthing.") || base.starts_with("~syncthing~")) && base.ends_with(".tmp")
}

impl Oracle {
    /// An empty manifest.
    pub(crate) fn new() -> Oracle {
        Oracle {
            start: Instant::now(),
            manifest: Vec::new(),
            known: HashSet::new(),
            live: BTreeMap::new(),
        }
    }

    /// Records that `side` wrote `hash` at `path`.
    pub(crate) fn wrote(&mut self, side: Side, path: &str, hash: Hash) {
        self.manifest.push(Version {
            path: path.to_string(),
            hash,
            side,
            at_ms: self.start.elapsed().as_millis(),
        });
        self.known.insert(hash);
        self.live
            .entry(side)
            .or_default()
            .insert(path.to_string(), Some(hash));
    }

    /// Records that `side` deleted `path`.
    pub(crate) fn deleted(&mut self, side: Side, path: &str) {
        self.live
            .entry(side)
            .or_default()
            .insert(path.to_string(), None);
    }

    /// Records that `side` renamed `from` (holding `hash`) to `to`.
    pub(crate) fn renamed(&mut self, side: Side, from: &str, to: &str, hash: Hash) {
        self.deleted(side, from);
        self.wrote(side, to, hash);
    }

    /// Every version written at `path`: `side:hash@ms`, oldest first.
    pub(crate) fn history(&self, path: &str) -> String {
        let h: Vec<String> = self
            .manifest
            .iter()
            .filter(|v| v.path == path)
            .map(|v| format!("{}:{}@{}ms", v.side.tag(), short(&v.hash), v.at_ms))
            .collect();
        h.join(" ")
    }

    /// Versions written so far.
    pub(crate) fn versions(&self) -> usize {
        self.manifest.len()
    }

    /// Forgets the survival bookkeeping after a verified convergence: from here on, a later
    /// write by either side may legitimately replace what both sides agreed on.
    pub(crate) fn checkpoint(&mut self) {
        self.live.clear();
    }

    /// Checks a tree against the manifest.
    pub(crate) fn check(&self, tree: &Tree) -> Findings {
        let mut f = Findings::default();
        for (p, h) in &tree.files {
            if !self.known.contains(h) {
                f.foreign.push(format!(
                    "{p} (content {} is no version that was written)",
                    short(h)
                ));
            }
        }
        let present: HashSet<&Hash> = tree.files.values().collect();
        for (side, paths) in &self.live {
            for (p, h) in paths {
                if let Some(h) = h
                    && !present.contains(h)
                {
                    let now = tree
                        .files
                        .get(p)
                        .map(|x| format!("the path now holds {}", short(x)))
                        .unwrap_or_else(|| "the path is absent".into());
                    f.lost.push(format!(
                        "{p}: version {} written on {} is nowhere in the tree ({now}); history: {}",
                        short(h),
                        side.tag(),
                        self.history(p)
                    ));
                }
            }
        }
        f.lost.sort();
        f.foreign.sort();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &[u8])]) -> Tree {
        Tree {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), hash_bytes(c)))
                .collect(),
            temps: Vec::new(),
        }
    }

    #[test]
    fn a_torn_mix_of_two_writes_is_foreign() {
        let mut o = Oracle::new();
        o.wrote(Side::A, "f", hash_bytes(b"aaaa"));
        o.wrote(Side::A, "f", hash_bytes(b"bbbb"));
        let f = o.check(&tree(&[("f", b"aabb")]));
        assert_eq!(f.foreign.len(), 1, "{f:?}");
    }

    #[test]
    fn the_last_write_of_each_side_must_survive_as_file_or_conflict_copy() {
        let mut o = Oracle::new();
        o.wrote(Side::A, "f", hash_bytes(b"a1"));
        o.wrote(Side::A, "f", hash_bytes(b"a2"));
        o.wrote(Side::B, "f", hash_bytes(b"b1"));
        let both = tree(&[
            ("f", b"a2"),
            ("f.sync-conflict-20260101-000000-AAAAAAA", b"b1"),
        ]);
        assert!(o.check(&both).clean());
        let lost = o.check(&tree(&[("f", b"a2")]));
        assert_eq!(lost.lost.len(), 1, "B's concurrent edit is gone: {lost:?}");
        assert!(
            o.check(&tree(&[("f", b"a1"), ("g", b"b1")])).lost.len() == 1,
            "A's last write a2 is missing"
        );
    }

    #[test]
    fn a_version_the_same_side_deleted_or_renamed_need_not_survive() {
        let mut o = Oracle::new();
        o.wrote(Side::A, "f", hash_bytes(b"a1"));
        o.deleted(Side::A, "f");
        o.wrote(Side::B, "g", hash_bytes(b"b1"));
        o.renamed(Side::B, "g", "h", hash_bytes(b"b1"));
        assert!(o.check(&tree(&[("h", b"b1")])).clean());
        assert_eq!(
            o.check(&tree(&[])).lost.len(),
            1,
            "the renamed file is gone"
        );
    }

    #[test]
    fn checkpoint_forgets_survival_but_not_the_manifest() {
        let mut o = Oracle::new();
        o.wrote(Side::A, "f", hash_bytes(b"a1"));
        o.checkpoint();
        assert!(o.check(&tree(&[])).clean());
        assert!(o.check(&tree(&[("f", b"a1")])).clean());
        assert_eq!(o.check(&tree(&[("f", b"zz")])).foreign.len(), 1);
    }

    #[test]
    fn temp_names_follow_syncthing() {
        for (name, temp) in [
            (".syncthing.a.txt.tmp", true),
            ("~syncthing~a.txt.tmp", true),
            (".syncthing.a.txt", false),
            ("a.tmp", false),
        ] {
            assert_eq!(syncd_temp_name(name), temp, "{name}");
        }
    }

    #[test]
    fn scan_tree_hashes_files_and_sets_internal_and_temp_entries_apart() {
        let dir = super::super::cluster::Scratch::new("oracle-test").unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(".stfolder")).unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/x"), b"x").unwrap();
        fs::write(root.join("d/.syncthing.y.tmp"), b"partial").unwrap();
        fs::write(root.join(".stignore"), b"").unwrap();
        let t = scan_tree(root).unwrap();
        assert_eq!(t.files.len(), 1);
        assert_eq!(t.files.get("d/x"), Some(&hash_bytes(b"x")));
        assert_eq!(t.temps, vec!["d/.syncthing.y.tmp".to_string()]);
    }
}
