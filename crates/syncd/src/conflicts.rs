//! The GUI's conflicts view (syncd's own endpoints, Syncthing has none): find the
//! `.sync-conflict-*` copies in a folder, read a version's text for a side-by-side view, and
//! resolve a conflict by keeping one version.
//!
//! Resolving is an ordinary local change that the watcher (or the rescan the REST handler asks
//! for) announces to every device: keeping the copy renames it over the original; keeping the
//! original deletes the copy. With versioning on, the losing version goes to the folder's
//! versions instead of being overwritten or deleted (as a file the puller replaces would).
//! Nothing happens without a request naming a real conflict copy.
//! Blocking file system work: call from a blocking thread.

use std::path::Path;

use serde_json::{Value, json};
use syncd_types::RelPath;

/// At most this many copies are listed, and this many directory entries visited.
const MAX_LISTED: usize = 1000;
const MAX_VISITED: usize = 1_000_000;
/// Text larger than this is not sent for the side-by-side view.
const MAX_TEXT: u64 = 256 * 1024;

/// A resolution's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConflictError {
    /// The path is not a valid folder-relative path.
    #[error("invalid path {0:?}")]
    BadPath(String),
    /// The path does not name a conflict copy.
    #[error("{0:?} is not a conflict copy")]
    NotAConflictCopy(String),
    /// The copy is not there (already resolved?).
    #[error("{0:?} does not exist")]
    Missing(String),
    /// The losing version could not be versioned (nothing was changed).
    #[error("versioning the losing version: {0}")]
    Versioning(#[from] syncd_engine::versioner::VersionError),
    /// Renaming or deleting failed.
    #[error("{path}: {source}")]
    Io {
        /// The path acted on.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Which version to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The conflict copy's content becomes the file.
    Copy,
    /// The file stays; the copy is deleted.
    Original,
}

fn mtime_json(meta: &std::fs::Metadata) -> Value {
    meta.modified()
        .map_or(Value::Null, |t| json!(crate::timefmt::rfc3339(t)))
}

/// Every conflict copy under `root` (directories `.stfolder`/`.stversions` and symlinks are
/// not followed), sorted by path: `{path, original, stamp, shortID, size, modified,
/// originalExists, originalSize, originalModified}`.
pub fn list(root: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    let mut visited = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            visited += 1;
            if visited > MAX_VISITED || out.len() >= MAX_LISTED {
                break;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if name != ".stfolder" && name != ".stversions" {
                    stack.push(rel);
                }
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            let Some(parsed) = syncd_conflict::parse_conflict_copy(&rel) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            let orig = std::fs::symlink_metadata(root.join(&parsed.original)).ok();
            out.push(json!({
                "path": rel,
                "original": parsed.original,
                "stamp": parsed.stamp,
                "shortID": parsed.short_id,
                "size": meta.len(),
                "modified": mtime_json(&meta),
                "originalExists": orig.is_some(),
                "originalSize": orig.as_ref().map_or(0, std::fs::Metadata::len),
                "originalModified": orig.as_ref().map_or(Value::Null, mtime_json),
            }));
        }
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

fn checked(raw: &str) -> Result<RelPath, ConflictError> {
    RelPath::new(raw).map_err(|_| ConflictError::BadPath(raw.to_owned()))
}

/// A version's text for the side-by-side view: `{path, exists, text|null, binary, tooLarge}`.
/// Only a conflict copy or the original of one may be read.
pub fn read_text(root: &Path, raw: &str) -> Result<Value, ConflictError> {
    let rel = checked(raw)?;
    let is_copy = syncd_conflict::parse_conflict_copy(rel.as_str()).is_some();
    let is_original = !is_copy && has_copy(root, rel.as_str());
    if !is_copy && !is_original {
        return Err(ConflictError::NotAConflictCopy(raw.to_owned()));
    }
    // Never through a symlinked directory: only what lies in the folder is shown.
    let path = syncd_engine::safe_path(root, &rel).map_err(|source| ConflictError::Io {
        path: rel.as_str().to_owned(),
        source,
    })?;
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(
            json!({"path": rel.as_str(), "exists": false, "text": null, "binary": false, "tooLarge": false}),
        );
    };
    if !meta.is_file() || meta.len() > MAX_TEXT {
        return Ok(
            json!({"path": rel.as_str(), "exists": true, "text": null, "binary": !meta.is_file(), "tooLarge": meta.len() > MAX_TEXT}),
        );
    }
    let bytes = std::fs::read(&path).map_err(|source| ConflictError::Io {
        path: rel.as_str().to_owned(),
        source,
    })?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => {
            json!({"path": rel.as_str(), "exists": true, "text": text, "binary": false, "tooLarge": false})
        }
        _ => {
            json!({"path": rel.as_str(), "exists": true, "text": null, "binary": true, "tooLarge": false})
        }
    })
}

/// Whether some conflict copy of `original` sits next to it.
fn has_copy(root: &Path, original: &str) -> bool {
    let (dir, _) = original.rsplit_once('/').unwrap_or(("", original));
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return false;
    };
    entries.flatten().take(MAX_VISITED).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        syncd_conflict::parse_conflict_copy(&rel).is_some_and(|p| p.original == original)
    })
}

/// Resolves the conflict of copy `raw`: returns the original's path. With `versioning` on,
/// the version not kept goes to the versions first.
pub fn resolve(
    root: &Path,
    raw: &str,
    keep: Keep,
    versioning: &syncd_engine::versioner::VersioningConfig,
) -> Result<String, ConflictError> {
    let versioner = syncd_engine::versioner::Versioner::new(root, versioning)?;
    let rel = checked(raw)?;
    let parsed = syncd_conflict::parse_conflict_copy(rel.as_str())
        .ok_or_else(|| ConflictError::NotAConflictCopy(raw.to_owned()))?;
    let original = checked(&parsed.original)?;
    let io = |source| ConflictError::Io {
        path: raw.to_owned(),
        source,
    };
    // Both names resolved without following a symlinked directory: nothing outside the
    // folder is renamed or removed.
    let copy_path = syncd_engine::safe_path(root, &rel).map_err(io)?;
    let original_path = syncd_engine::safe_path(root, &original).map_err(io)?;
    match std::fs::symlink_metadata(&copy_path) {
        Ok(m) if m.is_file() => {}
        _ => return Err(ConflictError::Missing(raw.to_owned())),
    }
    let now = std::time::SystemTime::now();
    match (keep, &versioner) {
        (Keep::Copy, Some(v)) => {
            v.archive_before_replace(&original, now)?;
            std::fs::rename(&copy_path, original_path).map_err(io)?;
        }
        (Keep::Copy, None) => std::fs::rename(&copy_path, original_path).map_err(io)?,
        (Keep::Original, Some(v)) => {
            v.archive_as_version_of(&rel, &original, now)?;
        }
        (Keep::Original, None) => std::fs::remove_file(&copy_path).map_err(io)?,
    }
    Ok(original.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &str = "d/a.sync-conflict-20260102-150405-ABCDEFG.txt";

    fn off() -> syncd_engine::versioner::VersioningConfig {
        syncd_engine::versioner::VersioningConfig::default()
    }

    /// With versioning on, the version not kept is a version of the original, whichever
    /// side is kept.
    #[test]
    fn with_versioning_the_losing_version_goes_to_the_versions() {
        use syncd_engine::versioner::{Versioner, VersioningConfig, VersioningType};
        let on = VersioningConfig {
            kind: VersioningType::Simple,
            ..VersioningConfig::default()
        };
        for (keep, kept, lost) in [
            (Keep::Copy, "theirs\n", "mine\n"),
            (Keep::Original, "mine\n", "theirs\n"),
        ] {
            let dir = tree();
            resolve(dir.path(), COPY, keep, &on).unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.path().join("d/a.txt")).unwrap(),
                kept
            );
            assert!(!dir.path().join(COPY).exists());
            let v = Versioner::new(dir.path(), &on).unwrap().unwrap();
            let listed = v.list().unwrap();
            assert_eq!(listed.len(), 1, "{listed:?}");
            assert_eq!(listed["d/a.txt"][0].size, lost.len() as u64);
        }
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::create_dir_all(dir.path().join(".stfolder")).unwrap();
        std::fs::write(dir.path().join("d/a.txt"), "mine\n").unwrap();
        std::fs::write(dir.path().join(COPY), "theirs\n").unwrap();
        std::fs::write(dir.path().join("d/other.txt"), "x").unwrap();
        dir
    }

    #[test]
    fn list_finds_copies_with_their_originals() {
        let dir = tree();
        let got = list(dir.path());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["path"], COPY);
        assert_eq!(got[0]["original"], "d/a.txt");
        assert_eq!(got[0]["shortID"], "ABCDEFG");
        assert_eq!(got[0]["originalExists"], true);
        assert_eq!(got[0]["size"], 7);
    }

    #[test]
    fn read_text_serves_only_conflict_versions() {
        let dir = tree();
        assert_eq!(read_text(dir.path(), COPY).unwrap()["text"], "theirs\n");
        assert_eq!(read_text(dir.path(), "d/a.txt").unwrap()["text"], "mine\n");
        assert!(matches!(
            read_text(dir.path(), "d/other.txt"),
            Err(ConflictError::NotAConflictCopy(_))
        ));
        assert!(matches!(
            read_text(dir.path(), "../etc/passwd"),
            Err(ConflictError::BadPath(_))
        ));
    }

    #[test]
    fn keeping_the_copy_replaces_the_original_and_keeping_the_original_drops_the_copy() {
        let dir = tree();
        assert_eq!(
            resolve(dir.path(), COPY, Keep::Copy, &off()).unwrap(),
            "d/a.txt"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("d/a.txt")).unwrap(),
            "theirs\n"
        );
        assert!(!dir.path().join(COPY).exists());
        assert!(matches!(
            resolve(dir.path(), COPY, Keep::Copy, &off()),
            Err(ConflictError::Missing(_))
        ));

        let dir = tree();
        resolve(dir.path(), COPY, Keep::Original, &off()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("d/a.txt")).unwrap(),
            "mine\n"
        );
        assert!(!dir.path().join(COPY).exists());
        assert!(matches!(
            resolve(dir.path(), "d/a.txt", Keep::Original, &off()),
            Err(ConflictError::NotAConflictCopy(_))
        ));
    }

    #[test]
    fn nothing_behind_a_symlinked_directory_is_read_renamed_or_removed() {
        let outside = tree();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("d"), dir.path().join("d")).unwrap();
        assert!(matches!(
            read_text(dir.path(), COPY),
            Err(ConflictError::Io { .. })
        ));
        for keep in [Keep::Copy, Keep::Original] {
            assert!(matches!(
                resolve(dir.path(), COPY, keep, &off()),
                Err(ConflictError::Io { .. })
            ));
        }
        assert_eq!(
            std::fs::read_to_string(outside.path().join(COPY)).unwrap(),
            "theirs\n"
        );
        assert_eq!(
            std::fs::read_to_string(outside.path().join("d/a.txt")).unwrap(),
            "mine\n"
        );
    }
}
