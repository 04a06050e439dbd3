//! Architecture checks. `run` is called by `cargo xtask tidy` and by the test in
//! `crates/syncd-types/tests/` indirectly through the binary; `check_workspace` is the
//! testable core.

mod async_fs;
mod platform;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Crates that must never pull tokio into their (normal) dependency tree: they are sans-IO or
/// blocking-IO libraries driven by the engine.
pub const NO_TOKIO: &[&str] = &[
    "syncd-types",
    "syncd-proto",
    "syncd-ignore",
    "syncd-conflict",
    "syncd-index",
    "syncd-scan",
];

/// Crates that must not touch the filesystem or the clock: pure functions of their inputs.
pub const PURE: &[&str] = &["syncd-ignore", "syncd-conflict"];

/// Runs every check on the workspace at `root` and prints a summary.
pub fn run(root: &Path) -> Result<(), String> {
    let problems = check_workspace(root)?;
    if problems.is_empty() {
        println!("tidy: ok");
        Ok(())
    } else {
        let mut msg = format!("{} problem(s):\n", problems.len());
        for p in &problems {
            let _ = writeln!(msg, "  - {p}");
        }
        Err(msg)
    }
}

/// Returns a list of human-readable rule violations (empty when tidy).
pub fn check_workspace(root: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let crates_dir = root.join("crates");
    let entries = std::fs::read_dir(&crates_dir)
        .map_err(|e| format!("cannot read {}: {e}", crates_dir.display()))?;
    let mut crates: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    crates.sort();

    for name in &crates {
        let dir = crates_dir.join(name);
        let lib = dir.join("src/lib.rs");
        if lib.is_file() {
            let text = std::fs::read_to_string(&lib)
                .map_err(|e| format!("cannot read {}: {e}", lib.display()))?;
            if !text.trim_start().starts_with("//!") {
                problems.push(format!(
                    "{}: lib.rs must open with a `//!` doc comment (the crate's job, types, invariants)",
                    lib.display()
                ));
            }
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .map_err(|e| format!("cannot read {}/Cargo.toml: {e}", dir.display()))?;
        if !manifest.contains("[lints]") || !manifest.contains("workspace = true") {
            problems.push(format!(
                "{}/Cargo.toml: add `[lints] workspace = true` (the workspace denies unwrap/expect)",
                dir.display()
            ));
        }
        if PURE.contains(&name.as_str()) {
            for file in rust_files(&dir.join("src")) {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                for forbidden in ["std::fs", "SystemTime::now", "Instant::now", "File::open"] {
                    if text.contains(forbidden) {
                        problems.push(format!(
                            "{}: `{forbidden}` in a pure crate (time and file contents are parameters)",
                            file.display()
                        ));
                    }
                }
            }
        }
    }

    // No filesystem call on a tokio worker (see [`async_fs`]).
    let engine_src = crates_dir.join("syncd-engine/src");
    if engine_src.is_dir() {
        problems.extend(async_fs::check_dir(&engine_src, &rust_files(&engine_src)));
    }

    for name in NO_TOKIO {
        if !crates.iter().any(|c| c == name) {
            continue;
        }
        let tree = cargo_tree(root, name)?;
        if let Some(line) = tree
            .lines()
            .find(|l| l.split_whitespace().next() == Some("tokio"))
        {
            problems.push(format!(
                "{name} depends on tokio ({line}); only syncd-transport, syncd-engine and the binary may"
            ));
        }
    }
    problems.extend(engine_invariants(root));
    problems.extend(platform::check(root));
    problems.extend(check_tests_run_without_discovery(root));
    Ok(problems)
}

/// The invariants `docs/ARCHITECTURE.md` ("Inside the engine") says this checks.
fn engine_invariants(root: &Path) -> Vec<String> {
    let src = root.join("crates/syncd-engine/src");
    let mut problems = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let rel = file.strip_prefix(&src).unwrap_or(&file);
        // Only the engine's handle changes the configuration.
        if text.contains("config.update(") && !rel.ends_with("engine.rs") {
            problems.push(format!(
                "{}: changes the engine's configuration; only `EngineHandle` (engine.rs) may",
                file.display()
            ));
        }
        // The engine's running parts are reached only through `Shared::state`'s closure, so
        // their lock is never held across an await.
        let state_locks = text.matches("lock(&self.state)").count()
            + text.matches(".state.lock(").count()
            + text.matches("lock(&shared.state)").count();
        let allowed = usize::from(rel.ends_with("engine.rs"));
        if state_locks > allowed {
            problems.push(format!(
                "{}: locks the engine's registry directly; use `Shared::state(|r| ...)`",
                file.display()
            ));
        }
        // The folder's state machine does no I/O and reads no clock (its tests may).
        if rel.ends_with("folder/machine.rs") {
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for forbidden in [
                "std::fs",
                "File::",
                "tokio::spawn",
                "spawn_blocking",
                "Instant::now",
                "SystemTime::now",
                ".await",
            ] {
                if code.contains(forbidden) {
                    problems.push(format!(
                        "{}: `{forbidden}` in the folder state machine (I/O belongs to its driver, time is a parameter)",
                        file.display()
                    ));
                }
            }
        }
    }
    problems
}

/// Test files that start `syncd serve` without `--no-discovery`, and why that is safe.
const DISCOVERY_ALLOWED: &[(&str, &str)] = &[
    (
        "tests/interop/tests/local_discovery.rs",
        "runs the daemons inside network namespaces it creates; broadcasts stay there",
    ),
    (
        "crates/syncd/tests/cli.rs",
        "names `serve` only to read its --help",
    ),
];

/// Every test, bench or torture file that starts the daemon (`"serve"`) passes
/// `--no-discovery`, so no test announces anything beyond loopback (the daemon's own default
/// is discovery on, as Syncthing's). Files in [`DISCOVERY_ALLOWED`] say why they need not.
fn check_tests_run_without_discovery(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut dirs = vec![root.join("tests"), root.join("xtask/src")];
    if let Ok(rd) = std::fs::read_dir(root.join("crates")) {
        dirs.extend(rd.filter_map(Result::ok).map(|e| e.path().join("tests")));
    }
    for dir in dirs {
        for file in rust_files(&dir) {
            let rel = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let starts_daemon = text.contains("\"serve\"") && !rel.starts_with("xtask/src/tidy");
            if starts_daemon
                && !text.contains("--no-discovery")
                && !DISCOVERY_ALLOWED.iter().any(|(f, _)| *f == rel)
            {
                problems.push(format!(
                    "{rel}: starts `syncd serve` without `--no-discovery` (tests must not announce beyond loopback; or list the file in DISCOVERY_ALLOWED with the reason)"
                ));
            }
        }
    }
    problems
}

fn cargo_tree(root: &Path, package: &str) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["tree", "-e", "normal", "--prefix", "none", "-p", package])
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree -p {package} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn scratch_workspace(tag: &str, types_deps: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("syncd-tidy-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        write(
            &dir.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\", \"vendor/tokio\"]\n\n[workspace.lints.rust]\nunsafe_code = \"deny\"\n",
        );
        write(
            &dir.join("vendor/tokio/Cargo.toml"),
            "[package]\nname = \"tokio\"\nversion = \"1.0.0\"\nedition = \"2021\"\n",
        );
        write(
            &dir.join("vendor/tokio/src/lib.rs"),
            "//! stand-in crate named tokio\n",
        );
        write(
            &dir.join("crates/syncd-types/Cargo.toml"),
            &format!(
                "[package]\nname = \"syncd-types\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{types_deps}\n\n[lints]\nworkspace = true\n"
            ),
        );
        write(&dir.join("crates/syncd-types/src/lib.rs"), "//! types\n");
        dir
    }

    #[test]
    fn tidy_fails_when_syncd_types_depends_on_tokio() {
        let dir = scratch_workspace("tokio", "tokio = { path = \"../../vendor/tokio\" }");
        let problems = check_workspace(&dir).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("syncd-types depends on tokio")),
            "{problems:?}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tidy_passes_the_same_workspace_without_tokio() {
        let dir = scratch_workspace("clean", "");
        let problems = check_workspace(&dir).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tidy_requires_a_crate_doc_comment() {
        let dir = scratch_workspace("nodoc", "");
        fs::write(dir.join("crates/syncd-types/src/lib.rs"), "pub fn f() {}\n").unwrap();
        let problems = check_workspace(&dir).unwrap();
        assert!(problems.iter().any(|p| p.contains("`//!`")), "{problems:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tidy_refuses_io_in_the_folder_machine_state_locks_and_config_changes_outside_the_handle() {
        let dir = scratch_workspace("engine-invariants", "");
        let src = dir.join("crates/syncd-engine/src");
        write(
            &src.join("folder/machine.rs"),
            "fn f() { let _ = std::fs::read(\"x\"); }\n#[cfg(test)]\nmod t { fn g() { let _ = std::time::Instant::now(); } }\n",
        );
        write(
            &src.join("peer.rs"),
            "fn f(s: &S) { s.config.update(|c| c); }\n",
        );
        write(
            &src.join("engine.rs"),
            "fn f(s: &S) { s.config.update(|c| c); }\nfn state(&self) { lock(&self.state) }\n",
        );
        write(
            &src.join("serve.rs"),
            "async fn f(shared: &S) { let r = lock(&shared.state); g().await; }\n",
        );
        let problems = engine_invariants(&dir);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("serve.rs") && p.contains("registry"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("machine.rs") && p.contains("std::fs"))
        );
        assert!(problems.iter().any(|p| p.contains("peer.rs")));
    }

    #[test]
    fn tidy_flags_a_filesystem_call_in_the_engines_async_code() {
        let dir = scratch_workspace("asyncfs", "");
        write(
            &dir.join("crates/syncd-engine/Cargo.toml"),
            "[package]\nname = \"syncd-engine\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lints]\nworkspace = true\n",
        );
        write(&dir.join("crates/syncd-engine/src/lib.rs"), "//! engine\n");
        write(
            &dir.join("crates/syncd-engine/src/puller.rs"),
            "async fn pull() { let _ = std::fs::remove_file(\"x\"); }\n",
        );
        let problems = check_workspace(&dir).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("puller.rs:1: `std::fs::` in async code")),
            "{problems:?}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let problems = check_workspace(root).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}
