//! Folder health: a folder root must exist, be a directory and hold the `.stfolder` marker.
//! Otherwise an unmounted disk or a moved directory would look like "everything was deleted"
//! and the deletes would reach the other devices (spec sync-semantics §3.1, §9.1).

use std::path::Path;

use syncd_types::names::MARKER;

/// Why a folder root is unusable. The strings are Syncthing's, so operators recognise them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The root path does not exist.
    #[error("folder path missing")]
    PathMissing,
    /// The root path exists but is not a directory.
    #[error("folder path not a directory")]
    NotADirectory,
    /// The root exists but has no `.stfolder` marker.
    #[error(
        "folder marker missing (this indicates potential data loss, search docs/forum to get information about how to proceed)"
    )]
    MarkerMissing,
    /// The root could not be inspected.
    #[error("folder path: {0}")]
    Io(String),
}

/// Checks that `root` is a directory containing the marker. Follows a symlinked root (a
/// configured path may legitimately be a link), never a symlinked marker's target contents.
pub fn check(root: &Path) -> Result<(), HealthError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(HealthError::NotADirectory),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(HealthError::PathMissing),
        Err(e) => return Err(HealthError::Io(e.to_string())),
    }
    match std::fs::symlink_metadata(root.join(MARKER)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HealthError::MarkerMissing),
        Err(e) => Err(HealthError::Io(e.to_string())),
    }
}

/// Creates the marker directory in an existing root (what `syncd` does when a folder is
/// first added with a fresh, existing path).
pub fn create_marker(root: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(root.join(MARKER)) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_with_marker_is_healthy() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(MARKER)).unwrap();
        assert_eq!(check(d.path()), Ok(()));
    }

    #[test]
    fn missing_root_is_path_missing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(check(&d.path().join("gone")), Err(HealthError::PathMissing));
    }

    #[test]
    fn root_without_marker_is_marker_missing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(check(d.path()), Err(HealthError::MarkerMissing));
    }

    #[test]
    fn root_that_is_a_file_is_not_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(check(&f), Err(HealthError::NotADirectory));
    }

    #[test]
    fn create_marker_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        create_marker(d.path()).unwrap();
        create_marker(d.path()).unwrap();
        assert_eq!(check(d.path()), Ok(()));
    }
}
