//! `syncd-ignore`: Syncthing's `.stignore` language, parsed and matched exactly as Syncthing
//! does, so a folder moved from Syncthing keeps its rules and a mixed cluster agrees on what
//! is ignored.
//!
//! Key types:
//! - [`IgnoreSet`]: the compiled pattern set of one folder. Built by [`IgnoreSet::parse`] from
//!   the text of `<folder>/.stignore` and a loader for `#include`d files; answers
//!   [`IgnoreSet::matched`] for a folder-relative, `/`-separated path.
//! - [`Match`]: the answer: ignored or not, deletable (`(?d)`), and whether the scanner may
//!   skip descending into an ignored directory ([`Match::can_skip_dir`]).
//! - [`ParseErrors`]: every bad line (file and line number) at once. A set with errors is
//!   never used: the folder goes to `error`, as in Syncthing; syncing with half the rules
//!   would be worse.
//!
//! Invariants:
//! - First match wins, in file order (includes spliced in where they stand). No match means
//!   not ignored. The folder root (`""` or `"."`) is never ignored.
//! - The internal names of [`syncd_types::names`] (`.stfolder`, `.stignore`, `.stversions` and
//!   everything below them, temp files at any depth) are always ignored, whatever the patterns.
//!   Temp files are also deletable, so a leftover temp file never blocks a directory delete.
//! - Each pattern line expands as Syncthing's does (`X` → `X`, `**/X`, `X/**`, `**/X/**`;
//!   `/X` anchors; `X/` matches the contents but not `X`; `**/X` also matches at the root),
//!   and the glob dialect is Syncthing's (gobwas): `*` and `?` stop at `/`, `**` crosses it
//!   anywhere, classes can match `/`. See `glob.rs` for how that maps onto `globset`.
//! - Matching never allocates unless a case-folded pattern meets a path with upper case.
//!
//! It does NOT read files (the caller hands over the text and a loader), walk directories, or
//! watch for changes (the scanner reloads when one of [`IgnoreSet::loaded_files`] changes and
//! compares [`IgnoreSet::hash`]).
//!
//! ```
//! use syncd_ignore::{IgnoreSet, Options};
//! let text = "!/important.log\n*.log\nnode_modules\n(?d).DS_Store\n";
//! let no_includes = |_: &str| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
//! let set = IgnoreSet::parse(text, &no_includes, Options::default()).unwrap();
//! assert!(set.matched("build/out.log", false).is_ignored());
//! assert!(!set.matched("important.log", false).is_ignored());
//! assert!(set.matched("web/node_modules", true).can_skip_dir());
//! assert!(set.matched("a/.DS_Store", false).is_deletable());
//! assert!(set.matched(".stfolder", true).is_ignored());
//! ```

mod glob;
mod parse;

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use globset::{Candidate, GlobSet};
use syncd_types::names;

pub use glob::GlobError;
pub use parse::{ParseError, ParseErrorKind, ParseErrors};

/// Matcher-wide options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Fold case for every pattern, as if each had `(?i)`. Syncthing does this on macOS and
    /// Windows; [`Options::for_this_platform`] sets it there.
    pub case_insensitive: bool,
    /// The escape character when a file has no `#escape=` line: `\` on Unix, `|` on Windows
    /// (where `\` separates paths).
    pub default_escape: char,
}

impl Default for Options {
    /// Case-sensitive, `\` escapes: Syncthing's behaviour on Linux and the BSDs.
    fn default() -> Self {
        Options {
            case_insensitive: false,
            default_escape: '\\',
        }
    }
}

impl Options {
    /// The options Syncthing uses on the platform we are compiled for.
    pub fn for_this_platform() -> Self {
        Options {
            case_insensitive: cfg!(any(target_os = "macos", target_os = "windows")),
            default_escape: if cfg!(windows) { '|' } else { '\\' },
        }
    }
}

/// The answer for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Match {
    ignored: bool,
    deletable: bool,
    skip_dir: bool,
}

impl Match {
    /// Not ignored.
    pub const NOT_IGNORED: Match = Match {
        ignored: false,
        deletable: false,
        skip_dir: false,
    };

    /// True when the path is ignored (neither scanned nor synced).
    pub fn is_ignored(self) -> bool {
        self.ignored
    }

    /// True when the ignored item may be removed when it blocks the deletion of a parent
    /// directory (`(?d)`, or a temp file). Never true for a path that is not ignored.
    pub fn is_deletable(self) -> bool {
        self.ignored && self.deletable
    }

    /// True when the path is an ignored directory the scanner need not descend into: no
    /// pattern before (or at) the one that matched could un-ignore anything inside it.
    pub fn can_skip_dir(self) -> bool {
        self.ignored && self.skip_dir
    }
}

/// One pattern line after prefixes, folding and normalisation.
#[derive(Debug, Clone)]
struct Line {
    /// Canonical form: prefixes in fixed order (`!`, `(?i)`, `(?d)`), then the pattern.
    canonical: String,
    negated: bool,
    deletable: bool,
}

/// One `GlobSet` and, for each of its globs, the index of the line it came from.
#[derive(Debug, Clone)]
struct Compiled {
    set: GlobSet,
    line_of: Vec<usize>,
    /// For lines `globset` matches bytewise where Syncthing matches per character (`?`,
    /// negated or non-ASCII classes): a Unicode regex set and its line indexes, used only
    /// for non-ASCII paths.
    unicode: Option<(regex::RegexSet, Vec<usize>)>,
}

thread_local! {
    static HITS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Compiled {
    /// The lowest line index this set matches for `path`, if any. With `any_line`, any
    /// matching line will do (every line has the same outcome), which skips collecting all
    /// matches.
    fn first_line(&self, path: &str, byte_unsafe: &[bool], any_line: bool) -> Option<usize> {
        let candidate = Candidate::new(path);
        let unicode = if path.is_ascii() {
            None
        } else {
            self.unicode.as_ref()
        };
        if unicode.is_none() {
            if !self.set.is_match_candidate(&candidate) {
                return None;
            }
            if any_line {
                return self.line_of.first().copied();
            }
        }
        let from_globs = HITS.with(|hits| {
            let mut hits = hits.borrow_mut();
            self.set.matches_candidate_into(&candidate, &mut hits);
            hits.iter()
                .filter_map(|&g| self.line_of.get(g).copied())
                .filter(|&l| unicode.is_none() || !byte_unsafe.get(l).copied().unwrap_or(false))
                .min()
        });
        let from_regexes = unicode.and_then(|(set, lines)| {
            set.matches(path)
                .iter()
                .filter_map(|i| lines.get(i).copied())
                .min()
        });
        match (from_globs, from_regexes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A compiled `.stignore`: the patterns of the file and everything it includes.
#[derive(Debug, Clone)]
pub struct IgnoreSet {
    lines: Vec<Line>,
    /// `skip_ok[i]`: every line up to and including `i` allows skipping ignored directories.
    skip_ok: Vec<bool>,
    /// Globs of lines matched against the path as is.
    exact: Option<Compiled>,
    /// Globs of case-folded lines, matched against the folded path.
    folded: Option<Compiled>,
    /// Per line: `globset` alone is not exact for it on non-ASCII paths.
    byte_unsafe: Vec<bool>,
    /// Every line has the same outcome (e.g. plain ignore lines only), so any match decides.
    uniform: bool,
    hash: [u8; 32],
    files: Vec<String>,
}

impl IgnoreSet {
    /// Parses `.stignore` text. `loader` is called with each `#include` path, relative to the
    /// folder root (`sub/more-ignores`, `../shared-ignores`), and returns that file's text; an
    /// [`std::io::ErrorKind::NotFound`] error becomes a "file not found" parse error.
    ///
    /// Every problem is collected, with its file and 1-based line number; any problem makes
    /// the whole set unusable.
    pub fn parse(
        text: &str,
        loader: &dyn Fn(&str) -> std::io::Result<String>,
        options: Options,
    ) -> Result<IgnoreSet, ParseErrors> {
        parse::parse(text, loader, options)
    }

    /// The set of a folder without `.stignore`: only the internal names are ignored.
    pub fn empty() -> IgnoreSet {
        let no_includes = |_: &str| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        parse::parse("", &no_includes, Options::default()).unwrap_or_else(|_| IgnoreSet {
            lines: Vec::new(),
            skip_ok: Vec::new(),
            exact: None,
            folded: None,
            byte_unsafe: Vec::new(),
            uniform: true,
            hash: [0; 32],
            files: Vec::new(),
        })
    }

    /// Matches a folder-relative path with `/` separators (a `RelPath` string; the root is
    /// `""` or `"."`). `is_dir` only affects [`Match::can_skip_dir`].
    pub fn matched(&self, path: &str, is_dir: bool) -> Match {
        if path.is_empty() || path == "." {
            return Match::NOT_IGNORED;
        }
        if let Some(deletable) = internal(path) {
            return Match {
                ignored: true,
                deletable,
                skip_dir: is_dir,
            };
        }
        let mut first = self
            .exact
            .as_ref()
            .and_then(|c| c.first_line(path, &self.byte_unsafe, self.uniform));
        if let Some(folded) = &self.folded
            && !(self.uniform && first.is_some())
        {
            let lower = fold(path);
            if let Some(line) = folded.first_line(&lower, &self.byte_unsafe, self.uniform) {
                first = Some(first.map_or(line, |f| f.min(line)));
            }
        }
        let Some(index) = first else {
            return Match::NOT_IGNORED;
        };
        match self.lines.get(index) {
            Some(line) if !line.negated => Match {
                ignored: true,
                deletable: line.deletable,
                skip_dir: is_dir && self.skip_ok.get(index).copied().unwrap_or(false),
            },
            _ => Match::NOT_IGNORED,
        }
    }

    /// A stable SHA-256 of the effective pattern lines (canonical prefixes, folded and
    /// normalised text, in order): equal for equal rules however they were spelled across
    /// files, stable across runs and releases.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The files the set was loaded from, relative to the folder root: `.stignore` first, then
    /// every included file in load order. The scanner reloads when one of them changes.
    pub fn loaded_files(&self) -> &[String] {
        &self.files
    }

    /// The effective pattern lines in canonical form (`!`, `(?i)`, `(?d)` prefixes in that
    /// order), in evaluation order.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.canonical.as_str())
    }

    /// True when there are no pattern lines (internal names are still ignored).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl Default for IgnoreSet {
    fn default() -> Self {
        IgnoreSet::empty()
    }
}

impl fmt::Display for IgnoreSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{}", line.canonical)?;
        }
        Ok(())
    }
}

/// `Some(deletable)` when `path` is one of the folder's internal entries, which are ignored
/// whatever the patterns say. Same rule as [`names::is_internal`], on a plain `&str` so the
/// hot path builds no `RelPath`.
fn internal(path: &str) -> Option<bool> {
    let base = path.rsplit('/').next().unwrap_or(path);
    if names::is_temp_name(base) {
        return Some(true);
    }
    let first = path.split('/').next().unwrap_or(path);
    (first == names::MARKER || first == names::IGNORE_FILE || first == names::VERSIONS_DIR)
        .then_some(false)
}

/// Lower-cases rune by rune (Go's `strings.ToLower`), borrowing when nothing changes.
pub(crate) fn fold(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return Cow::Borrowed(s);
    }
    let lowered: String = s.chars().flat_map(char::to_lowercase).collect();
    if lowered == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(lowered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncd_types::RelPath;

    #[test]
    fn internal_agrees_with_syncd_types() {
        for p in [
            ".stfolder",
            ".stfolder/x",
            ".stignore",
            ".stversions/a/b",
            "deep/dir/.syncthing.f.tmp",
            "deep/~syncthing~f.tmp",
            "sub/.stignore",
            "a.stfolder",
            "src/main.rs",
            ".syncthing.x",
        ] {
            let rel = RelPath::new(p).unwrap();
            assert_eq!(internal(p).is_some(), names::is_internal(&rel), "{p}");
        }
    }

    #[test]
    fn fold_lowercases_and_borrows_when_unchanged() {
        assert!(matches!(fold("abc/def"), Cow::Borrowed(_)));
        assert!(matches!(fold("ünï"), Cow::Borrowed(_)));
        assert_eq!(fold("ÄbC"), "äbc");
    }
}

/// Shared by the `stignore` fuzz target and the corpus replay test; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{IgnoreSet, Options};

    /// One fuzz case: the bytes before the first NUL are `.stignore` text (lossy UTF-8), the
    /// bytes after it are paths to match, one a line; an include of `inc` gets the path
    /// block as its text. Returns how many paths were ignored (so the work is not optimised
    /// away); must never panic.
    pub fn stignore(data: &[u8]) -> usize {
        let text = String::from_utf8_lossy(data);
        let (patterns, paths) = text.split_once('\0').unwrap_or((&text, ""));
        let loader = |p: &str| {
            if p == "inc" {
                Ok(paths.to_owned())
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            }
        };
        let mut ignored = 0;
        for case_insensitive in [false, true] {
            let options = Options {
                case_insensitive,
                ..Options::default()
            };
            if let Ok(set) = IgnoreSet::parse(patterns, &loader, options) {
                let _ = set.hash();
                for path in paths.lines() {
                    for is_dir in [false, true] {
                        ignored += usize::from(set.matched(path, is_dir).is_ignored());
                    }
                }
            }
        }
        ignored
    }
}
