//! Table-driven spec of `.stignore` semantics (sync-semantics §5), one rule per test.

use std::collections::HashMap;

use syncd_ignore::{IgnoreSet, Options, ParseErrorKind, ParseErrors};

/// What we expect for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum R {
    /// Not ignored.
    Keep,
    /// Ignored, not deletable.
    Ign,
    /// Ignored and deletable.
    Del,
}

fn no_includes(_: &str) -> std::io::Result<String> {
    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
}

fn set(text: &str) -> IgnoreSet {
    IgnoreSet::parse(text, &no_includes, Options::default())
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn set_with(
    text: &str,
    files: &[(&str, &str)],
    options: Options,
) -> Result<IgnoreSet, ParseErrors> {
    let files: HashMap<String, String> = files
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let loader = move |p: &str| {
        files
            .get(p)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    IgnoreSet::parse(text, &loader, options)
}

fn result(set: &IgnoreSet, path: &str) -> R {
    let m = set.matched(path, false);
    match (m.is_ignored(), m.is_deletable()) {
        (false, _) => R::Keep,
        (true, false) => R::Ign,
        (true, true) => R::Del,
    }
}

/// Checks each `(path, expected)` against the set parsed from `text`.
fn check(text: &str, cases: &[(&str, R)]) {
    let s = set(text);
    for (path, want) in cases {
        assert_eq!(result(&s, path), *want, "patterns {text:?}, path {path:?}");
    }
}

fn kinds(err: ParseErrors) -> Vec<ParseErrorKind> {
    err.errors.into_iter().map(|e| e.kind).collect()
}

use R::{Del, Ign, Keep};

#[test]
fn unrooted_name_matches_at_any_depth_and_everything_below() {
    check(
        "foo",
        &[
            ("foo", Ign),
            ("a/foo", Ign),
            ("a/b/foo", Ign),
            ("foo/x", Ign),
            ("a/foo/x/y", Ign),
            ("foobar", Keep),
            ("xfoo", Keep),
            ("a/foobar/x", Keep),
        ],
    );
}

#[test]
fn leading_slash_anchors_at_the_root() {
    check(
        "/foo",
        &[
            ("foo", Ign),
            ("foo/x", Ign),
            ("a/foo", Keep),
            ("a/foo/x", Keep),
        ],
    );
}

#[test]
fn trailing_slash_matches_contents_but_not_the_directory() {
    check(
        "foo/",
        &[
            ("foo", Keep),
            ("foo/bar", Ign),
            ("a/foo", Keep),
            ("a/foo/bar/baz", Ign),
        ],
    );
    check(
        "/foo/",
        &[("foo", Keep), ("foo/bar", Ign), ("a/foo/bar", Keep)],
    );
}

#[test]
fn trailing_double_star_is_kept_as_written() {
    check(
        "foo/**",
        &[("foo", Keep), ("foo/x", Ign), ("a/foo/x/y", Ign)],
    );
    check("/**", &[("anything", Ign), ("a/b", Ign)]);
}

#[test]
fn leading_double_star_slash_also_matches_at_the_root() {
    check(
        "**/bar",
        &[
            ("bar", Ign),
            ("a/bar", Ign),
            ("a/b/bar/c", Ign),
            ("xbar", Keep),
        ],
    );
}

#[test]
fn single_star_stops_at_slash() {
    check(
        "/a*c",
        &[
            ("abc", Ign),
            ("ac", Ign),
            ("abc/x", Ign),
            ("ab/c", Keep),
            ("x/abc", Keep),
        ],
    );
    check(
        "*.pyc",
        &[
            ("m.pyc", Ign),
            ("a/b/m.pyc", Ign),
            ("m.pyc/x", Ign),
            ("m.py", Keep),
        ],
    );
}

#[test]
fn double_star_crosses_slashes_anywhere() {
    check(
        "/a**c",
        &[
            ("ac", Ign),
            ("abc", Ign),
            ("ab/xc", Ign),
            ("a/b/c", Ign),
            ("b/ac", Keep),
        ],
    );
    check(
        "/**.mp3",
        &[("x.mp3", Ign), ("a/b/x.mp3", Ign), ("x.mp4", Keep)],
    );
    // `a/**/b` needs a component between: `**` stands for `.*` between two slashes.
    check(
        "/a/**/b",
        &[("a/x/b", Ign), ("a/x/y/b", Ign), ("a/b", Keep)],
    );
}

#[test]
fn question_mark_is_one_character_not_slash() {
    check(
        "/t?t",
        &[
            ("tat", Ign),
            ("tüt", Ign),
            ("tt", Keep),
            ("taat", Keep),
            ("t/t", Keep),
        ],
    );
}

#[test]
fn character_classes() {
    check("/t[eih]t", &[("tet", Ign), ("tit", Ign), ("tat", Keep)]);
    check("/t[a-c]t", &[("tat", Ign), ("tct", Ign), ("tdt", Keep)]);
    check("/t[!a-c]t", &[("tdt", Ign), ("tat", Keep)]);
    check(
        "/t[!e]t",
        &[("tat", Ign), ("tet", Keep), ("tüt", Ign), ("t/t", Ign)],
    );
    check("/t[ä-ü]t", &[("tät", Ign), ("tüt", Ign), ("tat", Keep)]);
    check("/t[]t", &[("tt", Keep), ("tat", Keep)]);
}

#[test]
fn alternatives_and_literal_commas() {
    check(
        "/{a,b}.txt",
        &[("a.txt", Ign), ("b.txt", Ign), ("c.txt", Keep)],
    );
    check("/x{a,{b,c}}", &[("xa", Ign), ("xc", Ign), ("xd", Keep)]);
    check("/a,b", &[("a,b", Ign), ("a", Keep)]);
}

#[test]
fn lone_closing_brackets_are_literal() {
    check("/a]b}", &[("a]b}", Ign), ("ab", Keep)]);
}

#[test]
fn escape_makes_the_next_character_literal() {
    check(r"/a\*b", &[("a*b", Ign), ("axb", Keep)]);
    check(r"/\[x\]", &[("[x]", Ign), ("x", Keep)]);
    check(r"/q\?", &[("q?", Ign), ("qa", Keep)]);
}

#[test]
fn escape_directive_changes_the_escape_character_for_its_file() {
    check(
        "#escape=|\n/a|*b\n/c\\d",
        &[("a*b", Ign), ("axb", Keep), ("c\\d", Ign)],
    );
}

#[test]
fn escape_directive_errors() {
    let opts = Options::default();
    let after = set_with("foo\n#escape=|", &[], opts).unwrap_err();
    assert_eq!(kinds(after), vec![ParseErrorKind::EscapeAfterPattern]);
    let twice = set_with("#escape=|\n#escape=|", &[], opts).unwrap_err();
    assert_eq!(kinds(twice), vec![ParseErrorKind::EscapeRepeated]);
    for bad in ["#escape=", "#escape=ab", "#escape", "#escape=*"] {
        let e = set_with(bad, &[], opts).unwrap_err();
        assert!(
            matches!(kinds(e).as_slice(), [ParseErrorKind::EscapeInvalid { .. }]),
            "{bad:?}"
        );
    }
    // Comments, blank lines and includes may precede it.
    assert!(
        set_with(
            "// c\n\n#include inc\n#escape=|\n/a|*",
            &[("inc", "x")],
            opts
        )
        .is_ok()
    );
}

#[test]
fn comments_blank_lines_and_hash_lines() {
    check(
        "// a comment\n\n#snapshot\nfile // x",
        &[
            ("a comment", Keep),
            ("#snapshot", Ign),
            ("file // x", Ign),
            ("file", Keep),
        ],
    );
}

#[test]
fn lines_are_trimmed() {
    check(
        "  foo  \n\tbar\t",
        &[("foo", Ign), ("bar", Ign), (" foo ", Keep)],
    );
}

#[test]
fn first_match_wins() {
    check(
        "!keep.log\n*.log",
        &[("keep.log", Keep), ("a/keep.log", Keep), ("other.log", Ign)],
    );
    // The negation after the broader rule never takes effect.
    check("*.log\n!keep.log", &[("keep.log", Ign)]);
}

#[test]
fn negated_child_before_parent_rule_unignores_parent_and_child_only() {
    // Docs example: `bar2` matches `*2` but is kept because `frobble` ... matches first.
    check(
        "!frobble\n*2",
        &[
            ("bar2", Ign),
            ("bar2/frobble", Keep),
            ("bar2/baz", Ign),
            ("frobble", Keep),
        ],
    );
}

#[test]
fn prefixes_in_any_order() {
    for text in ["(?d)(?i)!foo", "!(?i)(?d)foo", "(?i)!(?d)foo"] {
        check(text, &[("FOO", Keep), ("foo", Keep)]);
    }
    for text in ["(?d)(?i)foo", "(?i)(?d)foo"] {
        check(text, &[("FOO", Del), ("a/Foo/x", Del), ("bar", Keep)]);
    }
}

#[test]
fn deletable_prefix_marks_matches_deletable() {
    check(
        "(?d).DS_Store\nthumbs",
        &[(".DS_Store", Del), ("a/.DS_Store", Del), ("thumbs", Ign)],
    );
}

#[test]
fn negation_is_never_deletable() {
    let s = set("(?d)!foo\n*");
    assert!(!s.matched("foo", false).is_deletable());
    assert!(!s.matched("foo", false).is_ignored());
}

#[test]
fn repeated_prefix_is_literal() {
    // The second `(?i)` is part of the pattern, so `(?d)` is never consumed.
    check("(?i)(?i)(?d)ign8", &[("ign8", Keep), ("(?i)(?d)ign8", Ign)]);
    check("!!x", &[("!x", Keep), ("x", Keep)]);
    check("!!x\n*", &[("!x", Keep), ("y", Ign)]);
}

#[test]
fn prefixes_only_is_a_parse_error() {
    for text in ["!", "(?d)", "(?i)", "!(?i)(?d)"] {
        let e = set_with(text, &[], Options::default()).unwrap_err();
        assert!(
            matches!(kinds(e).as_slice(), [ParseErrorKind::MissingPattern { .. }]),
            "{text:?}"
        );
    }
}

#[test]
fn bad_globs_are_parse_errors() {
    for text in ["[abc", "{a,b", "a[z-a0]"] {
        let e = set_with(text, &[], Options::default()).unwrap_err();
        assert!(
            matches!(kinds(e).as_slice(), [ParseErrorKind::InvalidGlob { .. }]),
            "{text:?}"
        );
    }
}

#[test]
fn every_error_is_reported_with_file_and_line() {
    let e = set_with(
        "ok\n!\n[bad\n#include inc\n#include missing",
        &[("inc", "fine\n(?d)")],
        Options::default(),
    )
    .unwrap_err();
    let located: Vec<(String, usize)> = e.errors.iter().map(|e| (e.file.clone(), e.line)).collect();
    assert_eq!(
        located,
        vec![
            (".stignore".to_owned(), 2),
            (".stignore".to_owned(), 3),
            ("inc".to_owned(), 2),
            (".stignore".to_owned(), 5),
        ]
    );
    assert!(
        matches!(e.errors[3].kind, ParseErrorKind::IncludeNotFound { ref path } if path == "missing")
    );
}

#[test]
fn duplicate_lines_are_skipped_across_files() {
    let s = set_with(
        "a\nb\na\n#include inc",
        &[("inc", "b\nc")],
        Options::default(),
    )
    .unwrap();
    assert_eq!(s.patterns().collect::<Vec<_>>(), vec!["a", "b", "c"]);
}

#[test]
fn includes_splice_patterns_in_place_and_nest_relative_to_the_including_file() {
    let s = set_with(
        "!keep\n#include sub/inc\nlast",
        &[
            ("sub/inc", "#include deeper\nmid"),
            ("sub/deeper", "*.tmp2"),
        ],
        Options::default(),
    )
    .unwrap();
    assert_eq!(
        s.patterns().collect::<Vec<_>>(),
        vec!["!keep", "*.tmp2", "mid", "last"]
    );
    assert_eq!(s.loaded_files(), [".stignore", "sub/inc", "sub/deeper"]);
    // Included patterns are still relative to the folder root.
    assert!(s.matched("x/y.tmp2", false).is_ignored());
    assert!(!s.matched("keep", false).is_ignored());
}

#[test]
fn include_errors() {
    let o = Options::default();
    let missing = set_with("#include nope", &[], o).unwrap_err();
    assert_eq!(
        kinds(missing),
        vec![ParseErrorKind::IncludeNotFound {
            path: "nope".into()
        }]
    );
    // Same file under another spelling: a double include.
    let twice = set_with("#include a\n#include ./a", &[("a", "x")], o).unwrap_err();
    assert_eq!(
        kinds(twice),
        vec![ParseErrorKind::MultipleInclude { path: "a".into() }]
    );
    let cycle = set_with(
        "#include a",
        &[("a", "#include ./b"), ("b", "#include ./a")],
        o,
    )
    .unwrap_err();
    assert_eq!(
        kinds(cycle),
        vec![ParseErrorKind::MultipleInclude { path: "a".into() }]
    );
    for bad in ["#include", "#include   ", "#includefoo"] {
        let e = set_with(bad, &[], o).unwrap_err();
        assert_eq!(
            kinds(e),
            vec![ParseErrorKind::IncludeWithoutFile],
            "{bad:?}"
        );
    }
    let unreadable = |_: &str| Err(std::io::Error::other("disk on fire"));
    let e = IgnoreSet::parse("#include x", &unreadable, o).unwrap_err();
    assert!(matches!(
        kinds(e).as_slice(),
        [ParseErrorKind::IncludeUnreadable { .. }]
    ));
}

#[test]
fn case_folding_per_pattern() {
    check("(?i)/Foo", &[("foo", Ign), ("FOO", Ign), ("fOo/x", Ign)]);
    check("/Foo", &[("Foo", Ign), ("foo", Keep), ("FOO", Keep)]);
    check("(?i)straße", &[("STRASSE", Keep), ("Straße", Ign)]);
}

#[test]
fn matcher_wide_case_folding_folds_every_pattern() {
    let opts = Options {
        case_insensitive: true,
        ..Options::default()
    };
    let s = set_with("/Foo\n!Keep\n*.JPG", &[], opts).unwrap();
    for (path, want) in [
        ("foo", true),
        ("FOO", true),
        ("a/x.jpg", true),
        ("KEEP", false),
    ] {
        assert_eq!(s.matched(path, false).is_ignored(), want, "{path}");
    }
    assert_eq!(
        Options::for_this_platform().case_insensitive,
        cfg!(any(target_os = "macos", windows))
    );
}

#[test]
fn root_is_never_ignored() {
    let s = set("*\n/**");
    assert!(!s.matched("", true).is_ignored());
    assert!(!s.matched(".", true).is_ignored());
}

#[test]
fn internal_names_are_always_ignored() {
    let s = set("!*");
    for path in [
        ".stfolder",
        ".stignore",
        ".stversions",
        ".stversions/a/b",
        ".stfolder/x",
    ] {
        let m = s.matched(path, true);
        assert!(
            m.is_ignored() && m.can_skip_dir() && !m.is_deletable(),
            "{path}"
        );
    }
    for path in [".syncthing.a.txt.tmp", "d/~syncthing~b.tmp"] {
        let m = s.matched(path, false);
        assert!(m.is_ignored() && m.is_deletable(), "{path}");
    }
    assert!(!s.matched("sub/.stignore", false).is_ignored());
}

#[test]
fn skip_dir_table() {
    // (patterns, directory, can skip)
    let table = [
        ("node_modules", "node_modules", true),
        ("node_modules", "a/node_modules", true),
        ("!/test\n*", "x", true),
        ("!/t[eih]t\n*", "x", true),
        ("!/t*t\n*", "x", true),
        ("!/t?t\n*", "x", true),
        ("!/**\n*", "x", false), // `!/**` matches first: not ignored at all
        // Stricter than upstream: `!/keep/` un-ignores `keep/x` while `*` ignores `keep`.
        ("!/keep/\n*", "keep", false),
        ("!/keep/**\n*", "keep", false),
        ("!/parent/test\n*", "x", false),
        ("!/**.mp3\n*", "x", false),
        ("!/pa*nt/test\n*", "x", false),
        ("!baz\n*", "x", false),
        ("/foo/ign*\n!/f*\n!/bar\n*", "x", true),
        ("!/foo/ign*\n*", "x", false),
        // The negation comes after the matching rule: it cannot matter.
        ("*\n!a/b", "x", true),
    ];
    for (text, dir, want) in table {
        let s = set(text);
        assert_eq!(
            s.matched(dir, true).can_skip_dir(),
            want,
            "{text:?} on {dir:?}"
        );
    }
}

#[test]
fn skip_dir_is_false_for_files_and_kept_paths() {
    let s = set("node_modules\n!x");
    assert!(!s.matched("node_modules", false).can_skip_dir());
    assert!(!s.matched("x", true).can_skip_dir());
}

#[test]
fn hash_is_stable_and_depends_only_on_effective_patterns() {
    let a = set("a\n!b\n(?d)c");
    let b = set_with(
        "a\n#include i\n\n// comment",
        &[("i", "!b\n(?d)c\na")],
        Options::default(),
    )
    .unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), set("a\n!b\nc").hash());
    assert_ne!(a.hash(), set("!b\na\n(?d)c").hash());
    // Pinned so a change of the hashing scheme is a deliberate act (sha256 of "a\n!b\n(?d)c\n").
    let hex: String = a.hash().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex.len(), 64);
    assert_eq!(IgnoreSet::empty().hash(), set("// nothing").hash());
}

#[test]
fn unicode_patterns_are_nfc_normalised() {
    // "é" decomposed in the pattern still matches the NFC path.
    check("/cafe\u{301}", &[("caf\u{e9}", Ign)]);
}
