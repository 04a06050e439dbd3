//! "No filesystem call on a tokio worker": a textual check of the engine's async code.
//!
//! A blocking filesystem call in an `async fn` or an `async` block stalls the worker thread
//! running it, and with it every task queued there. The engine runs such calls on blocking
//! threads (`spawn_blocking`) instead. This check reads the source text (it does not compile
//! it) and reports every line of an `async fn` body or `async` block that names a filesystem
//! API from [`PATTERNS`], except inside the closure given to `spawn_blocking` (or the
//! puller's wrapper of it), `block_in_place`, `thread::spawn` or `thread::scope` (those run
//! on other threads). Comments, string and character literals are ignored.
//!
//! It is a tripwire, not a proof: a call hidden in a sync helper called from async code is
//! not seen (which is why the engine's own blocking helpers are listed too), and closing a
//! `File` by dropping it is not a "call". Justified exceptions go in [`ALLOWED`] with the
//! reason.

use std::path::Path;

/// What counts as a filesystem call: std's file APIs and the engine's own blocking helpers.
/// A bare `fs::` (as after `use std::fs;`) counts too; `tokio::fs::` does not (it runs its
/// calls on blocking threads itself).
pub const PATTERNS: &[&str] = &[
    "std::fs::",
    "fs::",
    "File::open",
    "File::create",
    "OpenOptions::new",
    "DirBuilder::new",
    ".sync_all()",
    ".sync_data()",
    "fsutil::safe_path",
    "fsutil::matches_index",
    "fsutil::still_installed",
    "fsutil::sync_dir",
    "read_at_nofollow",
    // The puller's blocking steps.
    "pull_dir(",
    "pull_symlink(",
    "delete_item(",
    "install_first(",
    "delete_all(",
    "prepare_file(",
    "conflict_move(",
    "set_meta(",
    "batch::flush(",
    "stale::sweep(",
    "local::prepare(",
    "local::write_pieces(",
    "Direct::open(",
];

/// Calls whose arguments run on another thread than the async code around them.
const BLOCKING_CONTEXTS: &[&str] = &[
    "spawn_blocking(",
    "block_in_place(",
    "thread::spawn(",
    "thread::scope(",
    // The puller's `spawn_blocking` wrapper.
    "on_blocking_thread(",
];

/// Justified exceptions: (file relative to the checked `src/` directory, text of the line,
/// why). A line matches when it contains the text.
pub const ALLOWED: &[(&str, &str, &str)] = &[(
    "engine.rs",
    "std::fs::create_dir_all(&config.home)",
    "`Engine::start` creates the home directory once, before any of the engine's tasks \
     exist (its identity and index are opened the same way, through helpers this check does \
     not see); the engine's start-up is being restructured under issue 25 (the engine actor)",
)];

/// One filesystem call found in async code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// 1-based line number.
    pub line: usize,
    /// The pattern found.
    pub pattern: &'static str,
    /// The line's text, trimmed.
    pub text: String,
}

/// The filesystem calls in async code of one source file's `text`.
pub fn scan(text: &str) -> Vec<Hit> {
    let code = mask(text);
    let bytes = code.as_bytes();
    let mut in_async = vec![false; bytes.len()];
    for start in async_bodies(&code) {
        if let Some(end) = matching(bytes, start) {
            for flag in in_async.iter_mut().take(end + 1).skip(start) {
                *flag = true;
            }
        }
    }
    // Blocking contexts are cleared afterwards, so one inside an async block wins.
    for ctx in BLOCKING_CONTEXTS {
        for (at, _) in code.match_indices(ctx) {
            let open = at + ctx.len() - 1;
            if let Some(end) = matching(bytes, open) {
                for flag in in_async.iter_mut().take(end + 1).skip(open) {
                    *flag = false;
                }
            }
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut hits: Vec<Hit> = Vec::new();
    for pattern in PATTERNS {
        for (at, _) in code.match_indices(pattern) {
            if !in_async.get(at).copied().unwrap_or(false)
                || !is_token_start(bytes, at, pattern)
                || names_a_type(bytes, at + pattern.len(), pattern)
            {
                continue;
            }
            let line = code.get(..at).map_or(0, |s| s.matches('\n').count());
            if hits.iter().any(|h| h.line == line + 1) {
                continue;
            }
            hits.push(Hit {
                line: line + 1,
                pattern,
                text: lines.get(line).map_or("", |l| l.trim()).to_owned(),
            });
        }
    }
    hits.sort_by_key(|h| h.line);
    hits
}

/// Problems for every `.rs` file under `src` (the engine's source directory).
pub fn check_dir(src: &Path, files: &[std::path::PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut files = files.to_vec();
    files.sort();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let rel = file
            .strip_prefix(src)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        for hit in scan(&text) {
            let allowed = ALLOWED
                .iter()
                .any(|(f, line, _)| *f == rel && hit.text.contains(line));
            if !allowed {
                problems.push(format!(
                    "{}:{}: `{}` in async code (run it on a blocking thread: spawn_blocking): {}",
                    file.display(),
                    hit.line,
                    hit.pattern,
                    hit.text
                ));
            }
        }
    }
    problems
}

/// Whether a module path pattern (`fs::`) is followed by a type (`fs::File`,
/// `fs::Permissions::from_mode`) rather than a function: naming a type calls nothing, and
/// the calls of those types that touch the disk have patterns of their own.
fn names_a_type(bytes: &[u8], after: usize, pattern: &str) -> bool {
    pattern.ends_with("fs::") && bytes.get(after).is_some_and(u8::is_ascii_uppercase)
}

/// Whether the pattern at `at` starts a path rather than ending one (`tokio::fs::` or
/// `my_fs::` is not `fs::`).
fn is_token_start(bytes: &[u8], at: usize, pattern: &str) -> bool {
    if !pattern.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return true;
    }
    match at.checked_sub(1).and_then(|i| bytes.get(i)) {
        // A bare `fs::` is std's module; `tokio::fs::` is not.
        Some(b':') => pattern != "fs::",
        Some(b) => !(b.is_ascii_alphanumeric() || *b == b'_'),
        None => true,
    }
}

/// Offsets of the `{` opening each `async fn` body and `async` block.
fn async_bodies(code: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("async") {
        let before_ok = at
            .checked_sub(1)
            .and_then(|i| bytes.get(i))
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
        let rest = code.get(at + "async".len()..).unwrap_or("");
        let after_ok = rest
            .chars()
            .next()
            .is_some_and(|c| c.is_whitespace() || c == '{');
        if !before_ok || !after_ok {
            continue;
        }
        let rest_trim = rest.trim_start();
        let skipped = rest.len() - rest_trim.len();
        let base = at + "async".len() + skipped;
        if rest_trim.starts_with("fn") {
            // The body is the first `{` outside the signature's parentheses, unless a `;`
            // (a declaration without a body) comes first.
            let mut depth = 0i32;
            for (i, b) in bytes.iter().enumerate().skip(base) {
                match b {
                    b'(' | b'<' | b'[' => depth += 1,
                    b')' | b']' => depth -= 1,
                    b'>' if bytes.get(i.wrapping_sub(1)) != Some(&b'-') => depth -= 1,
                    b'{' if depth <= 0 => {
                        out.push(i);
                        break;
                    }
                    b';' if depth <= 0 => break,
                    _ => {}
                }
            }
        } else {
            let block = rest_trim
                .strip_prefix("move")
                .map_or(rest_trim, str::trim_start);
            if block.starts_with('{') {
                out.push(at + "async".len() + (rest.len() - block.len()));
            }
        }
    }
    out
}

/// The offset of the bracket closing the one at `open` (`{`, `(` or `[`).
fn matching(bytes: &[u8], open: usize) -> Option<usize> {
    let (o, c) = match bytes.get(open)? {
        b'{' => (b'{', b'}'),
        b'(' => (b'(', b')'),
        b'[' => (b'[', b']'),
        _ => return None,
    };
    let mut depth = 0usize;
    for (i, b) in bytes.iter().enumerate().skip(open) {
        if *b == o {
            depth += 1;
        } else if *b == c {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// `text` with comments and the contents of string and character literals replaced by
/// spaces (newlines kept, so offsets and line numbers stay the same).
fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    // Every char is replaced by chars of the same UTF-8 length so byte offsets stay aligned.
    let push_blank = |out: &mut String, c: char| {
        if c == '\n' {
            out.push('\n');
        } else {
            for _ in 0..c.len_utf8() {
                out.push(blank(c));
            }
        }
    };
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while let Some(&c) = chars.get(i) {
                if c == '\n' {
                    break;
                }
                push_blank(&mut out, c);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while let Some(&c) = chars.get(i) {
                let n = chars.get(i + 1).copied();
                if c == '/' && n == Some('*') {
                    depth += 1;
                    push_blank(&mut out, c);
                    push_blank(&mut out, '*');
                    i += 2;
                } else if c == '*' && n == Some('/') {
                    depth -= 1;
                    push_blank(&mut out, c);
                    push_blank(&mut out, '/');
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    push_blank(&mut out, c);
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('#') | Some('"')) && raw_start(&chars, i) {
            // A raw string r"..." or r#"..."#.
            let hashes = chars.iter().skip(i + 1).take_while(|&&h| h == '#').count();
            let open = i + 1 + hashes;
            if chars.get(open) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            for _ in i..=open {
                out.push(' ');
            }
            i = open + 1;
            while let Some(&c) = chars.get(i) {
                let closes = c == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#'));
                if closes {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                push_blank(&mut out, c);
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while let Some(&c) = chars.get(i) {
                if c == '\\' {
                    push_blank(&mut out, c);
                    if let Some(&e) = chars.get(i + 1) {
                        push_blank(&mut out, e);
                    }
                    i += 2;
                    continue;
                }
                if c == '"' {
                    out.push(' ');
                    i += 1;
                    break;
                }
                push_blank(&mut out, c);
                i += 1;
            }
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime, left as is.
            let len = if next == Some('\\') {
                chars
                    .iter()
                    .skip(i + 2)
                    .position(|&q| q == '\'')
                    .map(|p| p + 3)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(len) => {
                    for k in 0..len {
                        if let Some(&c) = chars.get(i + k) {
                            push_blank(&mut out, c);
                        }
                    }
                    i += len;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` starts a raw string (not the end of an identifier like `for`).
fn raw_start(chars: &[char], i: usize) -> bool {
    i.checked_sub(1)
        .and_then(|p| chars.get(p))
        .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<usize> {
        scan(text).iter().map(|h| h.line).collect()
    }

    #[test]
    fn a_filesystem_call_in_an_async_fn_is_reported() {
        let text = "async fn f() {\n    let _ = std::fs::read(\"x\");\n}\n";
        assert_eq!(lines(text), [2]);
    }

    #[test]
    fn sync_fns_and_blocking_closures_are_not_reported() {
        let text = r#"
fn sync_helper() { std::fs::remove_file("x").ok(); }
async fn f(p: &Path) -> io::Result<()> {
    let p = p.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::remove_file(&p)?;
        File::open(&p).map(drop)
    })
    .await??;
    tokio::fs::read("y").await?;
    Ok(())
}
"#;
        assert_eq!(lines(text), Vec::<usize>::new());
    }

    #[test]
    fn async_blocks_are_checked_like_async_fns() {
        let text = r#"
fn spawn(set: &mut JoinSet<()>) {
    set.spawn(async move {
        let _ = fs::metadata("x");
    });
    let _ = std::fs::metadata("y");
}
"#;
        assert_eq!(lines(text), [4]);
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let text = r#"
async fn f() {
    // std::fs::read would block here
    /* File::open too */
    let s = "std::fs::read {";
    let c = '{';
    tracing::debug!("{s}{c}");
}
async fn g<'a>(x: &'a str) { let _ = std::fs::read(x); }
async fn h(f: std::fs::File) -> std::fs::File {
    type Pair = (std::fs::File, std::fs::Permissions);
    f
}
"#;
        assert_eq!(lines(text), [9]);
    }

    #[test]
    fn the_engines_helpers_and_signatures_with_generics_are_understood() {
        let text = r#"
async fn blocking<F: FnOnce() -> Phase + Send>(f: F) -> Result<Vec<u8>, E> {
    let ok = fsutil::split_time(now);
    fsutil::sync_dir(d)?;
    let _ = crate::serve::read_at_nofollow(p, 0, 1);
    let _ = my_read_at_nofollow(p);
    Ok(Vec::new())
}
"#;
        assert_eq!(lines(text), [4, 5]);
    }
}
