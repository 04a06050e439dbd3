//! `cargo xtask index-crash`: the syncd-index SIGKILL soak test (the `#[ignore]`d test in
//! `crates/syncd-index/tests/crash.rs`): a child process applying batches is killed at
//! random moments at least 50 times; every reopen must hold a prefix of the committed batches.
//! `SYNCD_INDEX_CRASH_ITERATIONS` raises the count.

use std::path::Path;
use std::process::Command;

/// Runs the soak test through cargo; fails when it fails.
pub fn run(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("index-crash: SIGKILL soak of syncd-index (>= 50 kills)");
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "test",
            "-p",
            "syncd-index",
            "--test",
            "crash",
            "--",
            "--ignored",
            "--exact",
            "sigkilled_writer_reopens_at_a_committed_prefix_many_times",
            "--nocapture",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "crates/syncd-index/tests/crash.rs: soak test failed ({status})"
        ))
    }
}
