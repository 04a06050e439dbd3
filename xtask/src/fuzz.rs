//! `cargo xtask fuzz [--smoke]`: runs the cargo-fuzz targets in `fuzz/fuzz_targets` for a
//! bounded time on the nightly toolchain: every target for 300 s each, built as cargo-fuzz
//! builds by default (optimised, AddressSanitizer); or, with `--smoke` (CI), the targets that
//! need no optional feature for 10 s each, built unoptimised without a sanitizer (about a
//! minute of compiling instead of ten: the `config` target needs the whole daemon crate).

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
    if smoke {
        let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml"))
            .map_err(|e| format!("reading fuzz/Cargo.toml: {e}"))?;
        let gated = feature_gated(&manifest);
        for t in &gated {
            println!("fuzz: {t}: not in --smoke (needs a feature; run `cargo xtask fuzz`)");
        }
        targets.retain(|t| !gated.contains(t));
    }
    for target in &targets {
        println!("fuzz: {target} for {seconds} s");
        // New inputs go to a scratch corpus under fuzz/target (ignored by git); the committed
        // seed corpus is only read, so it stays small.
        let seeds = fuzz_dir.join("corpus").join(target);
        let work = fuzz_dir.join("target").join("corpus-work").join(target);
        std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
        let status = Command::new("cargo")
            .current_dir(&fuzz_dir)
            .args(["+nightly", "fuzz", "run"])
            .args(if smoke {
                &["--dev", "--sanitizer", "none"][..]
            } else {
                &["--features", "config"][..]
            })
            .arg(target)
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

/// The `[[bin]]` names in a cargo-fuzz manifest that have `required-features`.
fn feature_gated(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    for section in manifest.split("[[bin]]").skip(1) {
        let section = section.split("\n[").next().unwrap_or(section);
        let name = section.lines().find_map(|l| {
            let v = l.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_owned())
        });
        if let Some(name) = name
            && section
                .lines()
                .any(|l| l.trim().starts_with("required-features"))
        {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_target_is_the_only_feature_gated_one() {
        let manifest =
            std::fs::read_to_string(crate::workspace_root().join("fuzz/Cargo.toml")).unwrap();
        assert_eq!(super::feature_gated(&manifest), ["config"]);
    }
}
