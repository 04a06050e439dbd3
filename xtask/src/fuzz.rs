//! `cargo xtask fuzz [--smoke]`: runs every cargo-fuzz target in `fuzz/fuzz_targets` for a
//! bounded time (10 s each with `--smoke`, 300 s otherwise) on the nightly toolchain.

use std::path::Path;
use std::process::Command;

/// Runs each target; skips with a message when cargo-fuzz is not installed.
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let seconds = if smoke { 10 } else { 300 };
    let installed = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !installed {
        println!(
            "fuzz: skipped: cargo-fuzz or the nightly toolchain is missing \
             (rustup toolchain install nightly && cargo install cargo-fuzz)"
        );
        return Ok(());
    }
    let fuzz_dir = root.join("fuzz");
    let targets_dir = fuzz_dir.join("fuzz_targets");
    let mut targets: Vec<String> = std::fs::read_dir(&targets_dir)
        .map_err(|e| format!("reading {}: {e}", targets_dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    targets.sort();
    for target in &targets {
        println!("fuzz: {target} for {seconds} s");
        // New inputs go to a scratch corpus under fuzz/target (ignored by git); the committed
        // seed corpus is only read, so it stays small.
        let seeds = fuzz_dir.join("corpus").join(target);
        let work = fuzz_dir.join("target").join("corpus-work").join(target);
        std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
        let status = Command::new("cargo")
            .current_dir(&fuzz_dir)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&work)
            .arg(&seeds)
            .args(["--", &format!("-max_total_time={seconds}")])
            .status()
            .map_err(|e| format!("running cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!(
                "target {target} failed ({status}); see fuzz/artifacts/{target}/"
            ));
        }
    }
    println!("fuzz: ok ({} target(s))", targets.len());
    Ok(())
}
