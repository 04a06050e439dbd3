//! Property tests: a differential check against a deliberately naive regex reference, a pruned
//! versus full walk over random trees, and "never panics" over arbitrary input.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use regex::Regex;
use syncd_ignore::{IgnoreSet, Options};

fn no_includes(_: &str) -> std::io::Result<String> {
    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
}

/// One glob token: its `.stignore` spelling and the regex the spec gives it
/// (`*` = `[^/]*`, `**` = `.*`, `?` = `[^/]`, classes may match `/`, `{a,b}` = `(?:a|b)`).
#[derive(Debug, Clone)]
struct Tok {
    text: &'static str,
    regex: &'static str,
    star: bool,
    slash: bool,
}

const fn t(text: &'static str, regex: &'static str) -> Tok {
    Tok {
        text,
        regex,
        star: false,
        slash: false,
    }
}

fn tokens() -> Vec<Tok> {
    vec![
        t("a", "a"),
        t("b", "b"),
        t("A", "A"),
        t("ü", "ü"),
        t(".", r"\."),
        t(",", ","),
        t("]", r"\]"),
        t("}", r"\}"),
        Tok {
            text: "/",
            regex: "/",
            star: false,
            slash: true,
        },
        Tok {
            text: "*",
            regex: "[^/]*",
            star: true,
            slash: false,
        },
        Tok {
            text: "**",
            regex: ".*",
            star: true,
            slash: false,
        },
        t("?", "[^/]"),
        t("[ab]", "[ab]"),
        t("[!a]", "[^a]"),
        t("[a-b]", "[a-b]"),
        t("[!a-b]", "[^a-b]"),
        t("[/]", "/"),
        t("{a,b}", "(?:a|b)"),
        t("{a*,b/a}", "(?:a[^/]*|b/a)"),
        t("{,a}", "(?:|a)"),
        t("{a,{b,.}}", r"(?:a|(?:b|\.))"),
        t(r"\*", r"\*"),
        t(r"\a", "a"),
    ]
}

/// How a line is shaped around its body `X`.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Plain,     // X
    Rooted,    // /X
    Dir,       // X/
    RootedDir, // /X/
    Contents,  // X/**
    AnyDepth,  // **/X
}

#[derive(Debug, Clone)]
struct GenLine {
    negated: bool,
    deletable: bool,
    folded: bool,
    shape: Shape,
    body: Vec<Tok>,
}

impl GenLine {
    fn text(&self) -> String {
        let mut s = String::new();
        if self.negated {
            s.push('!');
        }
        if self.folded {
            s.push_str("(?i)");
        }
        if self.deletable {
            s.push_str("(?d)");
        }
        let body: String = self.body.iter().map(|t| t.text).collect();
        match self.shape {
            Shape::Plain => s.push_str(&body),
            Shape::Rooted => s.push_str(&format!("/{body}")),
            Shape::Dir => s.push_str(&format!("{body}/")),
            Shape::RootedDir => s.push_str(&format!("/{body}/")),
            Shape::Contents => s.push_str(&format!("{body}/**")),
            Shape::AnyDepth => s.push_str(&format!("**/{body}")),
        }
        s
    }

    /// The spec's expansion (§5.5), each glob as an anchored regex.
    #[allow(clippy::unwrap_used)] // the regexes are built from a fixed token table
    fn regexes(&self) -> Vec<Regex> {
        let r: String = self.body.iter().map(|t| t.regex).collect();
        let forms: Vec<String> = match self.shape {
            Shape::Plain => vec![
                r.clone(),
                format!(".*/{r}"),
                format!("{r}/.*"),
                format!(".*/{r}/.*"),
            ],
            Shape::Rooted => vec![r.clone(), format!("{r}/.*")],
            Shape::Dir | Shape::Contents => vec![format!("{r}/.*"), format!(".*/{r}/.*")],
            Shape::RootedDir => vec![format!("{r}/.*")],
            Shape::AnyDepth => {
                vec![
                    format!(".*/{r}"),
                    r.clone(),
                    format!(".*/{r}/.*"),
                    format!("{r}/.*"),
                ]
            }
        };
        let flags = if self.folded { "(?is)" } else { "(?s)" };
        forms
            .iter()
            .map(|f| Regex::new(&format!("^{flags}(?:{f})$")).unwrap())
            .collect()
    }
}

fn body_strategy() -> impl Strategy<Value = Vec<Tok>> {
    let all = tokens();
    proptest::collection::vec(0..all.len(), 1..5).prop_map(move |idx| {
        let mut body: Vec<Tok> = Vec::new();
        for i in idx {
            let tok = all[i].clone();
            let last = body.last();
            // Keep the text unambiguous: no `*` next to `*` (would lex as `**`), no `//`,
            // no `/` at either end (that is what shapes are for).
            if last.is_some_and(|l| (l.star && tok.star) || (l.slash && tok.slash))
                || (body.is_empty() && tok.slash)
            {
                body.push(all[0].clone());
            }
            body.push(tok);
        }
        if body.last().is_some_and(|l| l.slash) {
            body.push(all[1].clone());
        }
        // `**` then `/` at the start would make the line a `**/` form.
        if body.first().is_some_and(|f| f.text == "**") {
            body.insert(0, all[0].clone());
        }
        body
    })
}

fn line_strategy() -> impl Strategy<Value = GenLine> {
    let shape = prop_oneof![
        Just(Shape::Plain),
        Just(Shape::Rooted),
        Just(Shape::Dir),
        Just(Shape::RootedDir),
        Just(Shape::Contents),
        Just(Shape::AnyDepth),
    ];
    (
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        shape,
        body_strategy(),
    )
        .prop_map(|(negated, deletable, folded, shape, body)| GenLine {
            negated,
            deletable,
            folded,
            shape,
            body,
        })
}

fn path_strategy() -> impl Strategy<Value = String> {
    let comp = proptest::collection::vec(
        prop::sample::select(vec![
            'a', 'b', 'A', 'ü', 'é', '.', ',', ']', '}', '*', '[', '!',
        ]),
        1..4,
    )
    .prop_map(|cs| cs.into_iter().collect::<String>())
    // `.` and `..` are never components of a valid folder-relative path.
    .prop_map(|c| {
        if c == "." || c == ".." {
            format!("a{c}")
        } else {
            c
        }
    });
    proptest::collection::vec(comp, 1..5).prop_map(|cs| cs.join("/"))
}

/// The reference: first line with a matching expansion decides.
fn reference(lines: &[(GenLine, Vec<Regex>)], path: &str) -> (bool, bool) {
    for (line, res) in lines {
        // Folding is the regex `i` flag here; for ASCII that equals lower-casing both sides.
        if res.iter().any(|re| re.is_match(path)) {
            return (!line.negated, !line.negated && line.deletable);
        }
    }
    (false, false)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_naive_reference(
        lines in proptest::collection::vec(line_strategy(), 1..6),
        paths in proptest::collection::vec(path_strategy(), 1..24),
    ) {
        let text: Vec<String> = lines.iter().map(GenLine::text).collect();
        let text = text.join("\n");
        let set = IgnoreSet::parse(&text, &no_includes, Options::default())
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let compiled: Vec<_> = lines.iter().map(|l| (l.clone(), l.regexes())).collect();
        for path in &paths {
            let m = set.matched(path, false);
            let want = reference(&compiled, path);
            prop_assert_eq!(
                (m.is_ignored(), m.is_deletable()),
                want,
                "patterns {:?} path {:?}",
                text,
                path
            );
        }
    }

    #[test]
    fn pruned_walk_finds_what_a_full_walk_finds(
        lines in proptest::collection::vec(line_strategy(), 1..6),
        files in proptest::collection::vec(path_strategy(), 1..40),
    ) {
        let text: Vec<String> = lines.iter().map(GenLine::text).collect();
        let set = IgnoreSet::parse(&text.join("\n"), &no_includes, Options::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Build the tree: every proper prefix of a file path is a directory.
        let mut tree: BTreeMap<String, bool> = BTreeMap::new();
        for f in &files {
            let parts: Vec<&str> = f.split('/').collect();
            for i in 1..parts.len() {
                tree.insert(parts[..i].join("/"), true);
            }
            tree.entry(f.clone()).or_insert(false);
        }
        let full: BTreeSet<&String> =
            tree.iter().filter(|(p, d)| !set.matched(p, **d).is_ignored()).map(|(p, _)| p).collect();
        let mut pruned = BTreeSet::new();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            for (p, is_dir) in &tree {
                let parent = p.rsplit_once('/').map_or("", |(d, _)| d);
                if parent != dir {
                    continue;
                }
                let m = set.matched(p, *is_dir);
                if !m.is_ignored() {
                    pruned.insert(p);
                }
                if *is_dir && !m.can_skip_dir() {
                    stack.push(p.clone());
                }
            }
        }
        prop_assert_eq!(full, pruned, "patterns {:?}", text);
    }

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>(), path in any::<String>(), dir in any::<bool>()) {
        let loader = |p: &str| if p.len().is_multiple_of(2) { Ok(format!("{text}\n#include x{p}")) } else { no_includes(p) };
        if let Ok(set) = IgnoreSet::parse(&text, &loader, Options::default()) {
            let _ = set.matched(&path, dir);
        }
        let folded = Options { case_insensitive: true, ..Options::default() };
        if let Ok(set) = IgnoreSet::parse(&text, &no_includes, folded) {
            let _ = set.matched(&path, dir);
        }
    }

    #[test]
    fn never_panics_on_glob_soup(
        text in proptest::collection::vec(
            prop::sample::select(vec!["*", "**", "?", "[", "]", "!", "-", "{", "}", ",", "\\", "/", "a", "(?i)", "(?d)", "\n", "#escape=|", "|", "^", ":"]),
            0..40,
        ).prop_map(|v| v.concat()),
        path in path_strategy(),
    ) {
        if let Ok(set) = IgnoreSet::parse(&text, &no_includes, Options::default()) {
            let _ = set.matched(&path, true);
        }
    }
}
