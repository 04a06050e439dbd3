//! Lines, directives and includes: turns `.stignore` text into [`IgnoreSet`].

use std::collections::HashSet;
use std::fmt;

use globset::{GlobBuilder, GlobSetBuilder};
use sha2::{Digest, Sha256};
use syncd_types::names;
use unicode_normalization::UnicodeNormalization;

use crate::glob::{self, GlobError};
use crate::{Compiled, IgnoreSet, Line, Options, fold};

/// Includes nested deeper than this are refused (each file can be included once anyway;
/// this bounds recursion when a loader invents ever new paths).
const MAX_INCLUDE_DEPTH: usize = 32;

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A line of prefixes only (`!`, `(?i)`, `(?d)`).
    #[error("missing pattern after prefixes in {line:?}")]
    MissingPattern {
        /// The offending line.
        line: String,
    },
    /// The glob does not parse.
    #[error("invalid pattern {pattern:?}: {source}")]
    InvalidGlob {
        /// The pattern as written (after prefixes).
        pattern: String,
        /// What is wrong with it.
        source: GlobError,
    },
    /// The pattern parses but could not be compiled (e.g. too large).
    #[error("pattern {pattern:?} cannot be compiled: {message}")]
    Uncompilable {
        /// The pattern as written (after prefixes).
        pattern: String,
        /// The compiler's message.
        message: String,
    },
    /// `#include` without a file name.
    #[error("failed to parse #include line: no file")]
    IncludeWithoutFile,
    /// The included file does not exist.
    #[error("failed to load include file {path}: file not found")]
    IncludeNotFound {
        /// The include path, relative to the folder root.
        path: String,
    },
    /// The included file could not be read.
    #[error("failed to load include file {path}: {message}")]
    IncludeUnreadable {
        /// The include path, relative to the folder root.
        path: String,
        /// The loader's error message.
        message: String,
    },
    /// The same file is included a second time (or the root file is included).
    #[error("failed to load include file {path}: multiple include")]
    MultipleInclude {
        /// The include path, relative to the folder root.
        path: String,
    },
    /// Includes nested deeper than we follow.
    #[error("include of {path} nested deeper than {MAX_INCLUDE_DEPTH} files")]
    IncludeTooDeep {
        /// The include path, relative to the folder root.
        path: String,
    },
    /// `#escape=` after a pattern of the same file.
    #[error("#escape must come before any pattern of the file")]
    EscapeAfterPattern,
    /// A second `#escape=` in one file.
    #[error("#escape given more than once in one file")]
    EscapeRepeated,
    /// `#escape` not followed by `=` and exactly one usable character.
    #[error("invalid #escape line {line:?}: expected `#escape=` and one character")]
    EscapeInvalid {
        /// The offending line.
        line: String,
    },
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ParseError {
    /// The file, relative to the folder root (`.stignore` or an include path).
    pub file: String,
    /// 1-based line number in that file (0 when the problem concerns the whole set).
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// Every problem found while parsing; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseErrors {
    /// The problems, in the order met.
    pub errors: Vec<ParseError>,
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loading ignores: ")?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

struct Parser<'a> {
    loader: &'a dyn Fn(&str) -> std::io::Result<String>,
    options: Options,
    seen_lines: HashSet<String>,
    seen_files: HashSet<String>,
    files: Vec<String>,
    lines: Vec<Line>,
    allows_skip: Vec<bool>,
    /// `(line index, glob)` for lines matched as is and for case-folded lines.
    exact: Vec<(usize, globset::Glob)>,
    folded: Vec<(usize, globset::Glob)>,
    /// `(line index, regex)` for lines `globset` cannot match right on non-ASCII paths.
    exact_unicode: Vec<(usize, String)>,
    folded_unicode: Vec<(usize, String)>,
    byte_unsafe: Vec<bool>,
    errors: Vec<ParseError>,
}

pub(crate) fn parse(
    text: &str,
    loader: &dyn Fn(&str) -> std::io::Result<String>,
    options: Options,
) -> Result<IgnoreSet, ParseErrors> {
    let root = names::IGNORE_FILE.to_owned();
    let mut p = Parser {
        loader,
        options,
        seen_lines: HashSet::new(),
        seen_files: HashSet::from([root.clone()]),
        files: vec![root.clone()],
        lines: Vec::new(),
        allows_skip: Vec::new(),
        exact: Vec::new(),
        folded: Vec::new(),
        exact_unicode: Vec::new(),
        folded_unicode: Vec::new(),
        byte_unsafe: Vec::new(),
        errors: Vec::new(),
    };
    p.file(&root, text, 0);
    p.finish()
}

/// `dir(current)/rel`, cleaned like Go's `filepath.Join` (`.` dropped, `..` pops, leading
/// `..` kept: an include may point outside the folder).
fn join_include(current: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = current.split('/').collect();
    parts.pop();
    for comp in rel.split('/') {
        match comp {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// Strips `!`, `(?i)`, `(?d)` (any order, each once): `(negated, folded, deletable, rest)`.
fn prefixes(mut line: &str) -> (bool, bool, bool, &str) {
    let (mut neg, mut fold, mut del) = (false, false, false);
    loop {
        if !neg && let Some(rest) = line.strip_prefix('!') {
            neg = true;
            line = rest;
        } else if !fold && let Some(rest) = line.strip_prefix("(?i)") {
            fold = true;
            line = rest;
        } else if !del && let Some(rest) = line.strip_prefix("(?d)") {
            del = true;
            line = rest;
        } else {
            return (neg, fold, del, line);
        }
    }
}

/// Whether a negated line (its pattern after prefixes) leaves ignored directories skippable:
/// it must never match a path below a directory it does not match itself. Syncthing's rule:
/// rooted, one level, `**` only at the very end (`!/foo`, `!/f*`, `!/t?t`, `!/t[eih]t`,
/// `!/**`). Stricter than upstream in two places where upstream loses files: `!/foo/` and
/// `!/foo/**` (they un-ignore the contents of `foo` but not `foo`, so a later `*` would hide
/// them) and any `[!...]` class (it can match `/`).
fn negation_allows_skip(body: &str) -> bool {
    if body == "/**" {
        return true;
    }
    let Some(rest) = body.strip_prefix('/') else {
        return false;
    };
    if rest.ends_with('/') || rest.ends_with("/**") {
        return false;
    }
    let head = rest.strip_suffix("**").unwrap_or(rest);
    !head.contains('/') && !head.contains("**") && !head.contains("[!")
}

impl Parser<'_> {
    fn error(&mut self, file: &str, line: usize, kind: ParseErrorKind) {
        self.errors.push(ParseError {
            file: file.to_owned(),
            line,
            kind,
        });
    }

    fn file(&mut self, name: &str, text: &str, depth: usize) {
        let mut escape = self.options.default_escape;
        let mut seen_escape = false;
        let mut seen_pattern = false;
        for (index, raw) in text.lines().enumerate() {
            let lineno = index + 1;
            let line = raw.trim();
            // `#escape` is per file, so it is exempt from cross-file de-duplication.
            if line.starts_with("#escape") {
                let value = line.strip_prefix("#escape=").map(str::trim);
                let mut chars = value.map(str::chars);
                let c = chars.as_mut().and_then(Iterator::next);
                let single = chars.as_mut().is_some_and(|c| c.next().is_none());
                match c {
                    _ if seen_escape => self.error(name, lineno, ParseErrorKind::EscapeRepeated),
                    _ if seen_pattern => {
                        self.error(name, lineno, ParseErrorKind::EscapeAfterPattern)
                    }
                    Some(c) if single && !"*?[]{},/".contains(c) && !c.is_whitespace() => {
                        escape = c;
                    }
                    _ => self.error(
                        name,
                        lineno,
                        ParseErrorKind::EscapeInvalid {
                            line: line.to_owned(),
                        },
                    ),
                }
                seen_escape = true;
                continue;
            }
            if !self.seen_lines.insert(line.to_owned()) {
                continue;
            }
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("#include") {
                self.include(name, lineno, rest, depth);
                continue;
            }
            seen_pattern = true;
            self.pattern(name, lineno, line, escape);
        }
    }

    fn include(&mut self, name: &str, lineno: usize, rest: &str, depth: usize) {
        let rel = match rest.strip_prefix(' ') {
            Some(r) if !r.trim().is_empty() => r.trim(),
            _ => return self.error(name, lineno, ParseErrorKind::IncludeWithoutFile),
        };
        let path = join_include(name, rel);
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return self.error(name, lineno, ParseErrorKind::IncludeTooDeep { path });
        }
        if !self.seen_files.insert(path.clone()) {
            return self.error(name, lineno, ParseErrorKind::MultipleInclude { path });
        }
        match (self.loader)(&path) {
            Ok(text) => {
                self.files.push(path.clone());
                self.file(&path, &text, depth + 1);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.error(name, lineno, ParseErrorKind::IncludeNotFound { path })
            }
            Err(e) => self.error(
                name,
                lineno,
                ParseErrorKind::IncludeUnreadable {
                    path,
                    message: e.to_string(),
                },
            ),
        }
    }

    fn pattern(&mut self, name: &str, lineno: usize, line: &str, escape: char) {
        let (negated, own_fold, deletable, rest) = prefixes(line);
        if rest.is_empty() {
            return self.error(
                name,
                lineno,
                ParseErrorKind::MissingPattern {
                    line: line.to_owned(),
                },
            );
        }
        let folded = own_fold || self.options.case_insensitive;
        let body: String = if folded {
            fold(rest).nfc().collect()
        } else {
            rest.nfc().collect()
        };

        // Syncthing's expansion: `X` → `X` and `X/**`; `X/` → `X/**`; `X/**` as is. Each of
        // those then matches from the root if it starts with `/`, else at any depth.
        let variants: Vec<String> = if body.ends_with("/**") {
            vec![body.clone()]
        } else if body.ends_with('/') {
            vec![format!("{body}**")]
        } else {
            vec![body.clone(), format!("{body}/**")]
        };

        let index = self.lines.len();
        let mut globs = Vec::with_capacity(variants.len());
        let mut regexes = Vec::new();
        for v in &variants {
            // Unrooted `P` stands for `P` plus `**/P`, and `**/Q` for itself plus `Q`; in
            // `globset` both unions are exactly `**/` followed by the translation.
            let (source, anywhere) = match v.strip_prefix('/') {
                Some(rooted) => (rooted, false),
                None => (v.strip_prefix("**/").unwrap_or(v), true),
            };
            let toks = match glob::parse(source, escape) {
                Ok(t) => t,
                Err(source) => {
                    return self.error(
                        name,
                        lineno,
                        ParseErrorKind::InvalidGlob {
                            pattern: rest.to_owned(),
                            source,
                        },
                    );
                }
            };
            if !glob::byte_safe(&toks) {
                let mut re = String::from("(?s)^");
                if anywhere {
                    re.push_str("(?:.*/)?");
                }
                glob::to_regex(&toks, &mut re);
                re.push('$');
                regexes.push(re);
            }
            let translated = glob::to_globset(&toks);
            let text = if anywhere {
                format!("**/{translated}")
            } else {
                translated
            };
            match GlobBuilder::new(&text)
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
            {
                Ok(g) => globs.push(g),
                Err(e) => {
                    return self.error(
                        name,
                        lineno,
                        ParseErrorKind::Uncompilable {
                            pattern: rest.to_owned(),
                            message: e.to_string(),
                        },
                    );
                }
            }
        }

        let mut canonical = String::new();
        for (on, p) in [(negated, "!"), (folded, "(?i)"), (deletable, "(?d)")] {
            if on {
                canonical.push_str(p);
            }
        }
        canonical.push_str(&body);
        let allows = !negated || negation_allows_skip(&body);
        self.allows_skip.push(allows);
        self.lines.push(Line {
            canonical,
            negated,
            deletable: deletable && !negated,
        });
        self.byte_unsafe.push(!regexes.is_empty());
        let target = if folded {
            &mut self.folded
        } else {
            &mut self.exact
        };
        target.extend(globs.into_iter().map(|g| (index, g)));
        let target = if folded {
            &mut self.folded_unicode
        } else {
            &mut self.exact_unicode
        };
        target.extend(regexes.into_iter().map(|r| (index, r)));
    }

    fn finish(mut self) -> Result<IgnoreSet, ParseErrors> {
        let exact_globs = std::mem::take(&mut self.exact);
        let folded_globs = std::mem::take(&mut self.folded);
        let exact_re = std::mem::take(&mut self.exact_unicode);
        let folded_re = std::mem::take(&mut self.folded_unicode);
        let exact = self.compile(exact_globs, exact_re);
        let folded = self.compile(folded_globs, folded_re);
        if !self.errors.is_empty() {
            return Err(ParseErrors {
                errors: self.errors,
            });
        }
        let mut hasher = Sha256::new();
        for line in &self.lines {
            hasher.update(line.canonical.as_bytes());
            hasher.update(b"\n");
        }
        let mut ok = true;
        let skip_ok: Vec<bool> = self
            .allows_skip
            .iter()
            .map(|&a| {
                ok &= a;
                ok
            })
            .collect();
        let mut outcomes = self
            .lines
            .iter()
            .zip(&skip_ok)
            .map(|(l, s)| (l.negated, l.deletable, *s));
        let first = outcomes.next();
        let uniform = outcomes.all(|o| Some(o) == first);
        Ok(IgnoreSet {
            lines: self.lines,
            skip_ok,
            exact,
            folded,
            byte_unsafe: self.byte_unsafe,
            uniform,
            hash: hasher.finalize().into(),
            files: self.files,
        })
    }

    fn compile(
        &mut self,
        globs: Vec<(usize, globset::Glob)>,
        regexes: Vec<(usize, String)>,
    ) -> Option<Compiled> {
        if globs.is_empty() || !self.errors.is_empty() {
            return None;
        }
        let mut builder = GlobSetBuilder::new();
        let mut line_of = Vec::with_capacity(globs.len());
        for (line, g) in globs {
            builder.add(g);
            line_of.push(line);
        }
        let unicode = if regexes.is_empty() {
            None
        } else {
            let (lines, res): (Vec<usize>, Vec<String>) = regexes.into_iter().unzip();
            match regex::RegexSet::new(res) {
                Ok(set) => Some((set, lines)),
                Err(e) => {
                    let file = names::IGNORE_FILE.to_owned();
                    let kind = ParseErrorKind::Uncompilable {
                        pattern: String::new(),
                        message: e.to_string(),
                    };
                    self.errors.push(ParseError {
                        file,
                        line: 0,
                        kind,
                    });
                    return None;
                }
            }
        };
        match builder.build() {
            Ok(set) => Some(Compiled {
                set,
                line_of,
                unicode,
            }),
            Err(e) => {
                let file = names::IGNORE_FILE.to_owned();
                let kind = ParseErrorKind::Uncompilable {
                    pattern: String::new(),
                    message: e.to_string(),
                };
                self.errors.push(ParseError {
                    file,
                    line: 0,
                    kind,
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_paths_join_like_go() {
        let table = [
            (".stignore", "more", "more"),
            (".stignore", "./a/../b", "b"),
            (".stignore", "../outside", "../outside"),
            ("sub/inc", "other", "sub/other"),
            ("sub/inc", "../top", "top"),
            ("sub/inc", "/abs", "sub/abs"),
        ];
        for (current, rel, want) in table {
            assert_eq!(join_include(current, rel), want, "{current} + {rel}");
        }
    }

    #[test]
    fn negation_skip_rule_table() {
        let table = [
            ("/test", true),
            ("/t[eih]t", true),
            ("/t*t", true),
            ("/t?t", true),
            ("/**", true),
            ("/test/**", false),
            ("/test/", false),
            ("/t[!a]t", false),
            ("/te**", true),
            ("/parent/test", false),
            ("/**.mp3", false),
            ("/pa*nt/test", false),
            ("test", false),
            ("**/test", false),
        ];
        for (p, want) in table {
            assert_eq!(negation_allows_skip(p), want, "{p}");
        }
    }
}
