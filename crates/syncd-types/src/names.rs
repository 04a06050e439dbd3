//! Syncthing's internal file names, shared so a folder moves between Syncthing and syncd
//! unchanged.

use sha2::{Digest, Sha256};

use crate::RelPath;

/// The folder marker directory: a folder root without it is in `error`.
pub const MARKER: &str = ".stfolder";
/// The ignore file at the folder root.
pub const IGNORE_FILE: &str = ".stignore";
/// The versions directory (file versioning); never synced.
pub const VERSIONS_DIR: &str = ".stversions";
/// Unix temp-file prefix.
pub const TEMP_PREFIX: &str = ".syncthing.";
/// Windows temp-file prefix; treated as temporary on every OS.
pub const TEMP_PREFIX_WINDOWS: &str = "~syncthing~";
/// Temp-file suffix.
pub const TEMP_SUFFIX: &str = ".tmp";
/// Longest file name Syncthing assumes a filesystem allows, in bytes.
const MAX_FILENAME_LEN: usize = 160;

/// The temporary name for a file whose base name is `base`: `.syncthing.<base>.tmp`, or
/// `.syncthing.<sha256-hex of base>.tmp` when the base name is longer than 145 bytes
/// (160 − prefix − suffix), exactly as Syncthing names them.
pub fn temp_name(base: &str) -> String {
    let max = MAX_FILENAME_LEN - TEMP_PREFIX.len() - TEMP_SUFFIX.len();
    if base.len() > max {
        let digest = Sha256::digest(base.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{TEMP_PREFIX}{hex}{TEMP_SUFFIX}")
    } else {
        format!("{TEMP_PREFIX}{base}{TEMP_SUFFIX}")
    }
}

/// True when a base name is a temporary file of either prefix.
pub fn is_temp_name(base: &str) -> bool {
    (base.starts_with(TEMP_PREFIX) || base.starts_with(TEMP_PREFIX_WINDOWS))
        && base.ends_with(TEMP_SUFFIX)
}

/// True for the folder's internal entries, which are never scanned or synced: the marker, the
/// ignore file and the versions directory at the root (and anything below them), and temp
/// files at any depth.
pub fn is_internal(path: &RelPath) -> bool {
    let s = path.as_str();
    let first = s.split('/').next().unwrap_or(s);
    matches!(first, MARKER | IGNORE_FILE | VERSIONS_DIR) || is_temp_name(path.file_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_follow_syncthing() {
        assert_eq!(temp_name("main.rs"), ".syncthing.main.rs.tmp");
        let at_limit = "x".repeat(145);
        assert_eq!(temp_name(&at_limit), format!(".syncthing.{at_limit}.tmp"));
        let long = "y".repeat(146);
        let t = temp_name(&long);
        assert_eq!(t.len(), ".syncthing.".len() + 64 + ".tmp".len());
        assert!(t.starts_with(".syncthing.") && t.ends_with(".tmp"));
        assert_eq!(
            temp_name("z".repeat(200).as_str()),
            temp_name("z".repeat(200).as_str()),
            "hashed names are deterministic"
        );
        assert_ne!(temp_name(&"y".repeat(146)), temp_name(&"y".repeat(147)));
        // sha256("abc") for a long name made of a known string would be opaque; check hex form.
        assert!(
            t[11..75]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Multi-byte names count bytes, not characters.
        let wide = "é".repeat(73); // 146 bytes, 73 chars
        assert_eq!(temp_name(&wide).len(), 79);
    }

    #[test]
    fn temp_names_are_recognised_with_either_prefix() {
        assert!(is_temp_name(".syncthing.a.txt.tmp"));
        assert!(is_temp_name("~syncthing~a.txt.tmp"));
        assert!(!is_temp_name(".syncthing.a.txt"));
        assert!(!is_temp_name("syncthing.a.tmp"));
        assert!(is_temp_name(&temp_name("whatever")));
    }

    #[test]
    fn internal_names_are_root_markers_and_temp_files_anywhere() {
        let p = |s: &str| RelPath::new(s).unwrap();
        assert!(is_internal(&p(".stfolder")));
        assert!(is_internal(&p(".stfolder/x")));
        assert!(is_internal(&p(".stignore")));
        assert!(is_internal(&p(".stversions/a/b")));
        assert!(is_internal(&p("deep/dir/.syncthing.f.tmp")));
        assert!(!is_internal(&p("sub/.stignore")));
        assert!(!is_internal(&p("a.stfolder")));
        assert!(!is_internal(&p("src/main.rs")));
    }
}
