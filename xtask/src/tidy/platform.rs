//! Platform-specific code stays in the modules allowed to hold it, and every Linux-only
//! item has its counterpart for the other platforms (syncd must build and behave on macOS,
//! which CI here cannot run): a `#[cfg(target_os = "linux")]` (alone or inside `all(..)`)
//! in a file needs a `#[cfg(not(..))]` in the same file.

use std::path::Path;

/// What makes code platform-specific.
const MARKERS: &[&str] = &[
    "target_os",
    "target_env",
    "libc::",
    "\"/proc/",
    "INotifyWatcher",
    "std::os::linux",
];

/// Source files (relative to the workspace root) allowed to hold platform-specific code, and
/// what they hold.
pub const ALLOWED: &[(&str, &str)] = &[
    (
        "crates/syncd-transport/src/discovery/netif.rs",
        "local discovery's interfaces from /proc/net/route and /sys/class/net; empty lists (255.255.255.255, default multicast interface) elsewhere",
    ),
    (
        "crates/syncd-scan/src/watch.rs",
        "inotify per directory on Linux, notify's recommended watcher (FSEvents) elsewhere",
    ),
    (
        "crates/syncd-types/src/path.rs",
        "local names spelt in NFD on macOS (as Syncthing), NFC elsewhere unless SYNCD_LOCAL_NFD=1",
    ),
    (
        "crates/syncd-scan/src/hash.rs",
        "O_NOFOLLOW opens (POSIX, macOS too)",
    ),
    (
        "crates/syncd-scan/src/verify.rs",
        "O_NOFOLLOW opens and ELOOP (POSIX, macOS too)",
    ),
    (
        "crates/syncd-ignore/src/lib.rs",
        "case-insensitive matching by default on macOS and Windows",
    ),
    (
        "crates/syncd-engine/src/puller/direct.rs",
        "O_DIRECT on Linux; plain writes elsewhere",
    ),
    (
        "crates/syncd-engine/src/puller/conflicts.rs",
        "localtime_r for conflict names (POSIX)",
    ),
    (
        "crates/syncd-engine/src/puller/resume.rs",
        "O_NOFOLLOW (POSIX)",
    ),
    (
        "crates/syncd-engine/src/puller.rs",
        "O_NOFOLLOW, ENOSPC (POSIX)",
    ),
    (
        "crates/syncd-engine/src/fsutil.rs",
        "O_NOFOLLOW | O_NONBLOCK (POSIX)",
    ),
    (
        "crates/syncd-engine/src/limits.rs",
        "RLIMIT_NOFILE (POSIX; macOS caps the soft limit at OPEN_MAX)",
    ),
    (
        "crates/syncd/src/memory.rs",
        "glibc's malloc arenas and malloc_trim; a no-op elsewhere",
    ),
    (
        "crates/syncd/src/home.rs",
        "~/Library/Application Support on macOS, XDG elsewhere",
    ),
    (
        "crates/syncd-testkit/src/process.rs",
        "Linux's ephemeral port range, with a fallback elsewhere",
    ),
];

/// The problems of one file (`rel`: its path relative to the workspace root).
pub fn check_text(rel: &str, text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut problems = Vec::new();
    let allowed = ALLOWED.iter().any(|(p, _)| *p == rel);
    if !allowed && let Some(m) = MARKERS.iter().find(|m| code.contains(**m)) {
        problems.push(format!(
            "{rel}: platform-specific `{m}` outside the modules allowed to hold it (move it \
             there, or add the file to xtask/src/tidy/platform.rs with what it holds)"
        ));
    }
    let linux_only = code.matches("cfg(target_os = \"linux\")").count()
        + code.matches("cfg(all(target_os = \"linux\"").count();
    let elsewhere = code.matches("cfg(not(target_os = \"linux\"))").count()
        + code.matches("cfg(not(all(target_os = \"linux\"").count();
    if linux_only > 0 && elsewhere == 0 {
        problems.push(format!(
            "{rel}: {linux_only} Linux-only item(s) without a `cfg(not(..))` counterpart for macOS"
        ));
    }
    problems
}

/// Checks every `src/` file of every crate under `root/crates`.
pub fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else {
        return problems;
    };
    for c in crates.filter_map(Result::ok) {
        let src = c.path().join("src");
        for file in super::rust_files(&src) {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let rel = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            problems.extend(check_text(&rel, &text));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_only_item_needs_its_counterpart() {
        let only = "#[cfg(target_os = \"linux\")]\nfn f() {}\n";
        let p = check_text("crates/syncd-scan/src/watch.rs", only);
        assert!(p.iter().any(|x| x.contains("counterpart")), "{p:?}");
        let both = format!("{only}#[cfg(not(target_os = \"linux\"))]\nfn f() {{}}\n");
        assert!(check_text("crates/syncd-scan/src/watch.rs", &both).is_empty());
    }

    #[test]
    fn platform_code_outside_the_allowed_modules_is_named() {
        let p = check_text(
            "crates/syncd-index/src/store.rs",
            "fn f() { unsafe { libc::fsync(0) }; }\n",
        );
        assert!(p.iter().any(|x| x.contains("`libc::`")), "{p:?}");
        assert!(
            check_text(
                "crates/syncd-index/src/store.rs",
                "// libc:: in a comment\nfn f() {}\n"
            )
            .is_empty()
        );
    }
}
