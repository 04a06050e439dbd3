//! `cargo xtask test [ARGS...]`: the project's test command (the README's and CI's). Runs
//! `cargo nextest run --workspace --no-fail-fast ARGS` when cargo-nextest is installed (each
//! test in its own process, the suite's processes in parallel), and otherwise
//! `cargo test --workspace --no-fail-fast ARGS`, so a machine with only Rust runs the tests too.

use std::path::Path;
use std::process::Command;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Whether `cargo nextest` is available.
pub fn has_nextest() -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the suite; `Err` when a test failed or the runner could not start.
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root);
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask test: cargo-nextest is not installed; running `cargo test` instead");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(args);
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}
