use std::fmt;
use unicode_normalization::{UnicodeNormalization, is_nfc};

/// A path relative to a folder root, validated and normalised.
///
/// Invariants (checked in [`RelPath::new`] / [`RelPath::from_wire`], the only constructors):
/// `/`-separated; NFC; not empty; not `.`; not absolute; no empty, `.` or `..` component (so it
/// equals Go's `path.Clean` of itself and can never escape the root); no backslash (Windows
/// peers drop such names); no NUL byte.
///
/// Non-NFC input: [`RelPath::new`] (for names found on the local disk, e.g. macOS NFD names)
/// normalises to NFC; [`RelPath::from_wire`] (for names a peer sent) rejects it, because every
/// Syncthing sends NFC and two spellings of one name must never become two files.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

/// Why a string is not a valid [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Empty, or `.`.
    #[error("path is empty")]
    Empty,
    /// Starts with `/`.
    #[error("path {0:?} is absolute")]
    Absolute(String),
    /// Contains a `..` component.
    #[error("path {0:?} contains a `..` component")]
    ParentComponent(String),
    /// Contains an empty or `.` component (`a//b`, `a/./b`, a trailing `/`).
    #[error("path {0:?} is not clean (empty or `.` component)")]
    NotClean(String),
    /// Contains a backslash.
    #[error("path {0:?} contains a backslash")]
    Backslash(String),
    /// Contains a NUL byte.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    /// Not in Unicode normalisation form C (only from [`RelPath::from_wire`]).
    #[error("path {0:?} is not NFC-normalised")]
    NotNfc(String),
    /// Not valid UTF-8 (only from [`RelPath::from_bytes`]).
    #[error("path is not valid UTF-8: {0:?}")]
    InvalidUtf8(String),
}

/// Whether `s` is NFC: ASCII always is (checked a word at a time), anything else is asked of
/// `unicode-normalization`, whose check goes character by character.
fn nfc(s: &str) -> bool {
    s.is_ascii() || is_nfc(s)
}

impl RelPath {
    /// Validates a path found locally, normalising it to NFC first.
    pub fn new(s: impl AsRef<str>) -> Result<Self, PathError> {
        let s = s.as_ref();
        if nfc(s) {
            Self::check(s)?;
            Ok(RelPath(s.to_owned()))
        } else {
            let n: String = s.nfc().collect();
            Self::check(&n)?;
            Ok(RelPath(n))
        }
    }

    /// Validates a path a peer sent: like [`RelPath::new`] but non-NFC input is an error.
    pub fn from_wire(s: &str) -> Result<Self, PathError> {
        if !nfc(s) {
            return Err(PathError::NotNfc(s.to_owned()));
        }
        Self::check(s)?;
        Ok(RelPath(s.to_owned()))
    }

    /// Validates raw bytes (e.g. a directory entry name on Unix): invalid UTF-8 is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Self, PathError> {
        match std::str::from_utf8(b) {
            Ok(s) => Self::new(s),
            Err(_) => Err(PathError::InvalidUtf8(
                String::from_utf8_lossy(b).into_owned(),
            )),
        }
    }

    fn check(s: &str) -> Result<(), PathError> {
        if Self::plainly_valid(s) {
            return Ok(());
        }
        if s.is_empty() || s == "." {
            return Err(PathError::Empty);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute(s.to_owned()));
        }
        if s.contains('\0') {
            return Err(PathError::Nul(s.to_owned()));
        }
        if s.contains('\\') {
            return Err(PathError::Backslash(s.to_owned()));
        }
        for comp in s.split('/') {
            match comp {
                ".." => return Err(PathError::ParentComponent(s.to_owned())),
                "" | "." => return Err(PathError::NotClean(s.to_owned())),
                _ => {}
            }
        }
        Ok(())
    }

    /// Accepts the usual path in one branch-free pass: it does not start with `/` or `.`, does
    /// not end with `/`, and holds no NUL, no backslash, no `//` and no `/.`. Such a path has
    /// no empty component and no component starting with a dot, so certainly no `.` or `..`.
    /// Anything else (a hidden file, an error) goes through the checks of [`RelPath::check`],
    /// which decide and name the error; a path this accepts passes them all.
    fn plainly_valid(s: &str) -> bool {
        let b = s.as_bytes();
        let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
            return false;
        };
        if first == b'/' || first == b'.' || last == b'/' || last == 0 || last == b'\\' {
            return false;
        }
        // Each byte with its successor (the last byte was checked above). No early exit, so
        // the compiler can vectorise the loop.
        let bad = b.windows(2).fold(false, |acc, w| {
            let (x, y) = (w[0], w[1]);
            acc | (x == 0) | (x == b'\\') | ((x == b'/') & ((y == b'/') | (y == b'.')))
        });
        !bad
    }

    /// The path as a `/`-separated string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent path, or `None` for a top-level entry.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_owned()))
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Number of components (1 for a top-level entry).
    pub fn depth(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'/').count() + 1
    }

    /// Appends one validated component (`name` must not contain `/`).
    pub fn join(&self, name: &str) -> Result<RelPath, PathError> {
        if name.contains('/') {
            return Err(PathError::NotClean(format!("{}/{}", self.0, name)));
        }
        RelPath::new(format!("{}/{}", self.0, name))
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0.as_bytes()[other.0.len()] == b'/')
    }

    /// The path on the local filesystem below `root`. Safe by construction: a `RelPath` has
    /// no `..` and is relative, so the result is always inside `root` (symlinked parents
    /// are the caller's concern).
    ///
    /// Each component is spelt as local names are (see [`local_names_nfd`]): NFC as on the
    /// wire, or NFD where the filesystem hands out NFD names (macOS).
    pub fn to_path_under(&self, root: &std::path::Path) -> std::path::PathBuf {
        let mut p = root.to_path_buf();
        let nfd = !self.0.is_ascii() && local_names_nfd();
        for c in self.components() {
            if nfd {
                p.push(c.nfd().collect::<String>());
            } else {
                p.push(c);
            }
        }
        p
    }
}

/// Whether local names are spelt in Unicode NFD: names on the wire and in the index are NFC,
/// and where local names are NFD (macOS, as Syncthing) a name is converted on its way to the
/// disk ([`RelPath::to_path_under`]) and back ([`RelPath::new`] normalises what a directory
/// listing holds). Always on macOS; elsewhere only when the environment variable
/// `SYNCD_LOCAL_NFD` is `1` as the process starts, a switch that runs the macOS conversion on
/// Linux (tests).
pub fn local_names_nfd() -> bool {
    static NFD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NFD.get_or_init(|| {
        cfg!(target_os = "macos") || std::env::var_os("SYNCD_LOCAL_NFD").is_some_and(|v| v == "1")
    })
}

/// Whether `name` (one component as a directory listing holds it) is spelt as local names
/// should be (see [`local_names_nfd`]): NFC, or NFD where local names are NFD.
pub fn is_local_spelling(name: &str) -> bool {
    if name.is_ascii() {
        return true;
    }
    if local_names_nfd() {
        unicode_normalization::is_nfd(name)
    } else {
        is_nfc(name)
    }
}

/// `s` with its case folded as Syncthing compares names on a case-insensitive filesystem:
/// each character upper-cased then lower-cased, then NFC (so `Straße` and `STRASSE` fold
/// alike, and an NFD spelling folds like its NFC one).
pub fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .nfc()
        .collect()
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for RelPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RelPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RelPath::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_folding_is_syncthings_upper_then_lower_then_nfc() {
        for (a, b) in [
            ("README.md", "readme.md"),
            ("Readme.MD", "rEADME.md"),
            ("STRASSE", "strasse"),
            ("Äpfel", "a\u{308}pfel"),
            ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
        ] {
            assert_eq!(fold_case(a), fold_case(b), "{a} and {b}");
        }
        assert_ne!(fold_case("a"), fold_case("b"));
    }

    #[test]
    fn quick_check_accepts_only_valid_paths_and_check_decides_the_rest() {
        for s in [
            "a",
            "a/b",
            "a/b/c.txt",
            "...",
            "a/.../b",
            ".a",
            "a.",
            "..a",
            "a/..b/c",
            "",
            ".",
            "..",
            "/a",
            "a/",
            "a//b",
            "a/./b",
            "a/../b",
            "./a",
            "../a",
            "a/.",
            "a/..",
            "a\\b",
            "a\0b",
            "a\\",
            "a\0",
            "\\a",
            "a/.git/config",
            ".git/HEAD",
            "a/b.",
            "a./b",
            "é/ü",
        ] {
            let plain = RelPath::plainly_valid(s);
            let full = {
                // The rules written out one by one.
                let bad = s.is_empty()
                    || s == "."
                    || s.starts_with('/')
                    || s.contains('\0')
                    || s.contains('\\')
                    || s.split('/').any(|c| matches!(c, "" | "." | ".."));
                !bad
            };
            assert!(
                !plain || full,
                "{s:?}: the quick check accepted an invalid path"
            );
            assert_eq!(RelPath::check(s).is_ok(), full, "{s:?}");
        }
    }

    #[test]
    fn path_acceptance_table() {
        // (input, Ok(normalised) or Err(kind))
        let nfd_e = "e\u{301}.txt"; // é decomposed
        let table: Vec<(&str, Result<&str, &str>)> = vec![
            ("a", Ok("a")),
            ("a/b/c.txt", Ok("a/b/c.txt")),
            (".bashrc", Ok(".bashrc")),
            ("a/.hidden/b", Ok("a/.hidden/b")),
            ("...", Ok("...")),
            ("a/..b", Ok("a/..b")),
            ("日本語/ファイル", Ok("日本語/ファイル")),
            (nfd_e, Ok("\u{e9}.txt")),
            ("", Err("empty")),
            (".", Err("empty")),
            ("..", Err("parent")),
            ("../etc/passwd", Err("parent")),
            ("a/../../b", Err("parent")),
            ("a/..", Err("parent")),
            ("/etc/passwd", Err("absolute")),
            ("/", Err("absolute")),
            ("a//b", Err("clean")),
            ("a/./b", Err("clean")),
            ("./a", Err("clean")),
            ("a/", Err("clean")),
            ("a\\b", Err("backslash")),
            ("..\\..\\x", Err("backslash")),
            ("a\0b", Err("nul")),
        ];
        for (input, want) in table {
            let got = RelPath::new(input);
            match (want, got) {
                (Ok(w), Ok(p)) => assert_eq!(p.as_str(), w, "input {input:?}"),
                (Err(kind), Err(e)) => {
                    let ok = matches!(
                        (kind, &e),
                        ("empty", PathError::Empty)
                            | ("parent", PathError::ParentComponent(_))
                            | ("absolute", PathError::Absolute(_))
                            | ("clean", PathError::NotClean(_))
                            | ("backslash", PathError::Backslash(_))
                            | ("nul", PathError::Nul(_))
                    );
                    assert!(ok, "input {input:?}: wanted {kind}, got {e:?}");
                }
                (w, g) => panic!("input {input:?}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn wire_paths_must_already_be_nfc() {
        assert!(matches!(
            RelPath::from_wire("e\u{301}.txt"),
            Err(PathError::NotNfc(_))
        ));
        assert_eq!(
            RelPath::from_wire("\u{e9}.txt").unwrap().as_str(),
            "\u{e9}.txt"
        );
        assert!(matches!(
            RelPath::from_wire("../x"),
            Err(PathError::ParentComponent(_))
        ));
    }

    #[test]
    fn invalid_utf8_bytes_are_rejected() {
        assert!(matches!(
            RelPath::from_bytes(b"a\xffb"),
            Err(PathError::InvalidUtf8(_))
        ));
        assert_eq!(RelPath::from_bytes(b"ok").unwrap().as_str(), "ok");
    }

    #[test]
    fn parent_file_name_join_and_prefix() {
        let p = RelPath::new("a/b/c").unwrap();
        assert_eq!(p.file_name(), "c");
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.depth(), 3);
        assert!(RelPath::new("a").unwrap().parent().is_none());
        assert_eq!(p.join("d").unwrap().as_str(), "a/b/c/d");
        assert!(p.join("..").is_err());
        assert!(p.join("x/y").is_err());
        assert!(p.starts_with(&RelPath::new("a/b").unwrap()));
        assert!(!p.starts_with(&RelPath::new("a/bc").unwrap()));
        assert!(
            !RelPath::new("a/bc")
                .unwrap()
                .starts_with(&RelPath::new("a/b").unwrap())
        );
        let root = std::path::Path::new("/r");
        assert_eq!(p.to_path_under(root), std::path::PathBuf::from("/r/a/b/c"));
    }

    proptest::proptest! {
        #[test]
        fn valid_paths_never_escape_the_root(s in "[a./\\\\]{0,12}") {
            if let Ok(p) = RelPath::new(&s) {
                let under = p.to_path_under(std::path::Path::new("/root"));
                proptest::prop_assert!(under.starts_with("/root/"));
                proptest::prop_assert!(!p.components().any(|c| c == ".." || c == "." || c.is_empty()));
            }
        }
    }
}
