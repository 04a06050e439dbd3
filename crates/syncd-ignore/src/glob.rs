//! Syncthing's glob dialect (gobwas/glob with separator `/`) and its translation into
//! `globset` syntax.
//!
//! The two dialects differ where it matters for directory behaviour, so patterns are never
//! handed to `globset` verbatim:
//!
//! - Syncthing's `**` is "any run of characters, `/` included", wherever it stands (`a**b`,
//!   `**.mp3`). `globset` only knows `**` as a whole path component, so a free `**` is
//!   rewritten as `{*,*/**/*}` (no `/` in the run, or at least one), and `**` followed by `/`
//!   as `*/**/` (one or more components).
//! - Syncthing's character classes match `/` (`[!a]` matches `/`); `globset` classes never do,
//!   so a class that matches `/` becomes `{[...],/}`.
//! - Classes are `[abc]`, `[!abc]` (escapes allowed inside) or a single range `[a-z]`,
//!   `[!a-z]`; anything else after a range is an error, as upstream.
//! - `{a,b}` nests; commas outside braces, a lone `]` and a lone `}` are literal.

use std::fmt::Write as _;

/// Deepest `{}` nesting we accept; deeper input is rejected instead of recursing further.
const MAX_DEPTH: usize = 32;

/// Why a glob does not parse. The `char` fields are byte-free so error messages stay exact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// A `[` without its closing `]`.
    #[error("unclosed character class")]
    UnclosedClass,
    /// A range class `[a-z` not closed right after its upper bound.
    #[error("character range must be closed right after its upper bound")]
    RangeNotClosed,
    /// A `{` without its closing `}`.
    #[error("unclosed alternation group")]
    UnclosedGroup,
    /// `{` nested deeper than we accept.
    #[error("alternation groups nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// One glob token; runs of `*`/`**` are already merged (`**` absorbs neighbouring `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// One literal character.
    Lit(char),
    /// `*`: any run without `/`.
    Any,
    /// `**`: any run, `/` included.
    Super,
    /// `?`: one character other than `/`.
    Single,
    /// `[...]`: `negated` flips membership; `/` can be a member.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `{a,b}`.
    Alt(Vec<Vec<Tok>>),
}

/// Parses one Syncthing glob with the given escape character.
pub(crate) fn parse(pattern: &str, escape: char) -> Result<Vec<Tok>, GlobError> {
    let mut lexer = Lexer {
        chars: pattern.chars().peekable(),
        escape,
    };
    lexer.sequence(0)
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    escape: char,
}

fn push(seq: &mut Vec<Tok>, tok: Tok) {
    match (seq.last(), &tok) {
        (Some(Tok::Super), Tok::Any | Tok::Super) | (Some(Tok::Any), Tok::Any) => {}
        (Some(Tok::Any), Tok::Super) => {
            seq.pop();
            seq.push(Tok::Super);
        }
        _ => seq.push(tok),
    }
}

impl Lexer<'_> {
    /// Parses until the end of input (depth 0) or an unconsumed `,`/`}` (inside a group).
    fn sequence(&mut self, depth: usize) -> Result<Vec<Tok>, GlobError> {
        let mut seq = Vec::new();
        loop {
            let Some(&c) = self.chars.peek() else {
                return if depth == 0 {
                    Ok(seq)
                } else {
                    Err(GlobError::UnclosedGroup)
                };
            };
            if depth > 0 && (c == ',' || c == '}') {
                return Ok(seq);
            }
            self.chars.next();
            match c {
                '{' => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(GlobError::TooDeep);
                    }
                    let mut branches = Vec::new();
                    loop {
                        branches.push(self.sequence(depth + 1)?);
                        match self.chars.next() {
                            Some(',') => {}
                            Some('}') => break,
                            _ => return Err(GlobError::UnclosedGroup),
                        }
                    }
                    seq.push(Tok::Alt(branches));
                }
                '[' => seq.push(self.class()?),
                '?' => seq.push(Tok::Single),
                '*' => {
                    if self.chars.peek() == Some(&'*') {
                        self.chars.next();
                        push(&mut seq, Tok::Super);
                    } else {
                        push(&mut seq, Tok::Any);
                    }
                }
                // A trailing lone escape character is dropped, as upstream does.
                c if c == self.escape => {
                    if let Some(lit) = self.chars.next() {
                        seq.push(Tok::Lit(lit));
                    }
                }
                c => seq.push(Tok::Lit(c)),
            }
        }
    }

    /// After `[`: `[!`? then either `lo-hi]` or escaped text up to `]`.
    fn class(&mut self) -> Result<Tok, GlobError> {
        let mut first = self.chars.next().ok_or(GlobError::UnclosedClass)?;
        let negated = first == '!';
        if negated {
            first = self.chars.next().ok_or(GlobError::UnclosedClass)?;
        }
        if self.chars.peek() == Some(&'-') {
            self.chars.next();
            let hi = self.chars.next().ok_or(GlobError::UnclosedClass)?;
            return match self.chars.next() {
                Some(']') => {
                    let ranges = if first <= hi {
                        vec![(first, hi)]
                    } else {
                        Vec::new()
                    };
                    Ok(Tok::Class { negated, ranges })
                }
                Some(_) => Err(GlobError::RangeNotClosed),
                None => Err(GlobError::UnclosedClass),
            };
        }
        let mut ranges = Vec::new();
        let mut c = first;
        loop {
            if c == self.escape {
                let lit = self.chars.next().ok_or(GlobError::UnclosedClass)?;
                ranges.push((lit, lit));
            } else if c == ']' {
                break;
            } else {
                ranges.push((c, c));
            }
            c = self.chars.next().ok_or(GlobError::UnclosedClass)?;
        }
        Ok(Tok::Class { negated, ranges })
    }
}

/// True when `globset`'s byte-wise matching agrees with Syncthing's per-character matching on
/// every path: no `?` and no class that could match part of a multi-byte character. (On ASCII
/// paths the two always agree.)
pub(crate) fn byte_safe(toks: &[Tok]) -> bool {
    toks.iter().all(|t| match t {
        Tok::Single => false,
        Tok::Class { negated, ranges } => !negated && ranges.iter().all(|r| r.1.is_ascii()),
        Tok::Alt(branches) => branches.iter().all(|b| byte_safe(b)),
        Tok::Lit(_) | Tok::Any | Tok::Super => true,
    })
}

/// The same glob as a Unicode-aware `regex` fragment (unanchored; `.` must match newlines).
pub(crate) fn to_regex(toks: &[Tok], out: &mut String) {
    for t in toks {
        match t {
            Tok::Lit(c) => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            Tok::Any => out.push_str("[^/]*"),
            Tok::Super => out.push_str(".*"),
            Tok::Single => out.push_str("[^/]"),
            Tok::Class { negated, ranges } if ranges.is_empty() => {
                out.push_str(if *negated { "." } else { "[a&&b]" });
            }
            Tok::Class { negated, ranges } => {
                out.push('[');
                if *negated {
                    out.push('^');
                }
                for (lo, hi) in ranges {
                    let _ = write!(out, "\\x{{{:x}}}-\\x{{{:x}}}", *lo as u32, *hi as u32);
                }
                out.push(']');
            }
            Tok::Alt(branches) => {
                out.push_str("(?:");
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    to_regex(b, out);
                }
                out.push(')');
            }
        }
    }
}

/// Characters that mean something to `globset` outside a class and so are escaped.
fn needs_escape(c: char) -> bool {
    matches!(c, '\\' | '*' | '?' | '[' | ']' | '{' | '}' | ',')
}

/// Writes `toks` as a `globset` glob (options: literal separator, backslash escapes, empty
/// alternates) matching exactly the paths the Syncthing glob matches.
pub(crate) fn to_globset(toks: &[Tok]) -> String {
    let mut out = String::new();
    emit(toks, true, &mut out);
    out
}

fn emit(toks: &[Tok], top: bool, out: &mut String) {
    for (i, tok) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| toks.get(p));
        let next = toks.get(i + 1);
        match tok {
            Tok::Lit(c) => {
                if needs_escape(*c) {
                    out.push('\\');
                }
                out.push(*c);
            }
            Tok::Any => out.push('*'),
            Tok::Single => out.push('?'),
            Tok::Super => {
                if top && toks.len() == 1 {
                    out.push_str("**");
                } else if next == Some(&Tok::Lit('/')) {
                    // `.*/` = one or more whole components; the `/` is the next literal.
                    out.push_str("*/**");
                } else if top && next.is_none() && prev == Some(&Tok::Lit('/')) {
                    out.push_str("**");
                } else {
                    out.push_str("{*,*/**/*}");
                }
            }
            Tok::Class { negated, ranges } => emit_class(*negated, ranges, out),
            Tok::Alt(branches) => {
                out.push('{');
                for (j, branch) in branches.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    emit(branch, false, out);
                }
                out.push('}');
            }
        }
    }
}

/// Splits ranges so that no endpoint is an awkward character, returning the awkward members
/// separately.
fn split_awkward(ranges: &[(char, char)]) -> (Vec<(char, char)>, Vec<char>) {
    // Sorted by code point; all ASCII, so the neighbours below always exist.
    const AWKWARD: [char; 5] = ['!', '-', '[', ']', '^'];
    let mut plain = Vec::new();
    let mut awkward: Vec<char> = Vec::new();
    for &(lo, hi) in ranges {
        let mut start = lo;
        for a in AWKWARD {
            if a < lo || a > hi {
                continue;
            }
            if !awkward.contains(&a) {
                awkward.push(a);
            }
            if start < a {
                plain.push((start, char::from(a as u8 - 1)));
            }
            start = start.max(char::from(a as u8 + 1));
        }
        if start <= hi {
            plain.push((start, hi));
        }
    }
    (plain, awkward)
}

fn push_range(out: &mut String, (lo, hi): (char, char)) {
    out.push(lo);
    if hi != lo {
        out.push('-');
        out.push(hi);
    }
}

fn emit_class(negated: bool, ranges: &[(char, char)], out: &mut String) {
    let has_slash = ranges.iter().any(|&(lo, hi)| lo <= '/' && '/' <= hi);
    let matches_slash = has_slash != negated;
    let (plain, awkward) = split_awkward(ranges);
    let mut alts: Vec<String> = Vec::new();
    if negated {
        // `globset` never lets a class match `/`; that part is the `/` alternative below.
        let mut class = String::from("[!");
        if awkward.contains(&']') {
            class.push(']');
        }
        for r in &plain {
            push_range(&mut class, *r);
        }
        for a in ['!', '^', '['] {
            if awkward.contains(&a) {
                class.push(a);
            }
        }
        if awkward.contains(&'-') {
            class.push('-');
        }
        if class == "[!" {
            // Negated empty set: any character but `/` (which is handled below).
            alts.push("?".to_owned());
        } else {
            class.push(']');
            alts.push(class);
        }
    } else {
        let plain: Vec<_> = plain.into_iter().filter(|&r| r != ('/', '/')).collect();
        if !plain.is_empty() {
            let mut class = String::from("[");
            for r in plain {
                push_range(&mut class, r);
            }
            class.push(']');
            alts.push(class);
        }
        for a in awkward {
            let mut lit = String::new();
            if needs_escape(a) {
                lit.push('\\');
            }
            lit.push(a);
            alts.push(lit);
        }
    }
    if matches_slash {
        alts.push("/".to_owned());
    }
    match alts.as_slice() {
        // Matches nothing: a class of only `/` never matches under a literal separator.
        [] => out.push_str("[/]"),
        [one] => out.push_str(one),
        _ => {
            out.push('{');
            for (i, a) in alts.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{a}");
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(p: &str) -> String {
        to_globset(&parse(p, '\\').unwrap_or_default())
    }

    #[test]
    fn translation_table() {
        let table = [
            ("foo", "foo"),
            ("*.pyc", "*.pyc"),
            ("**", "**"),
            ("a/**", "a/**"),
            ("**/a", "*/**/a"),
            ("a/**/b", "a/*/**/b"),
            ("a**b", "a{*,*/**/*}b"),
            ("a***", "a{*,*/**/*}"),
            ("a,b}c]", "a\\,b\\}c\\]"),
            ("\\*x", "\\*x"),
            ("[a-z]", "[a-z]"),
            ("[!a-z]", "{[!a-z],/}"),
            ("[/]", "/"),
            ("[]", "[/]"),
            ("[!]", "{?,/}"),
            ("[!/]", "[!/]"),
            ("[\\]!]", "{\\],!}"),
            ("{a,{b,c}}", "{a,{b,c}}"),
        ];
        for (input, want) in table {
            assert_eq!(tr(input), want, "translating {input:?}");
        }
    }

    #[test]
    fn malformed_globs_are_errors() {
        let table = [
            ("[abc", GlobError::UnclosedClass),
            ("[a-z0]", GlobError::RangeNotClosed),
            ("{a,b", GlobError::UnclosedGroup),
            ("[a\\", GlobError::UnclosedClass),
        ];
        for (input, want) in table {
            assert_eq!(parse(input, '\\'), Err(want), "parsing {input:?}");
        }
        assert_eq!(parse(&"{".repeat(40), '\\'), Err(GlobError::TooDeep));
    }
}
