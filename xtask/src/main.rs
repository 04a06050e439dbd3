//! `cargo xtask <task>`: the workspace's automation, in Rust so it runs wherever cargo does.
//!
//! Tasks: `tidy` (architecture checks), `package` (README and license texts in every
//! publishable crate's package). Each task prints what it checks and exits non-zero
//! with a message naming the file and the rule when a check fails.

mod bench;
mod downstream;
mod fuzz;
mod index_crash;
mod package;
mod protogen;
mod test;
mod tidy;
mod torture;

use std::path::PathBuf;
use std::process::ExitCode;

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <task>\n\ntasks:\n  tidy    check the architecture rules (docs/ARCHITECTURE.md)\n  test [ARGS]  run the test suite (cargo nextest if installed, else cargo test)\n  package check that every publishable crate ships its README and license texts\n  downstream  build and run the engine's embedding example from the packaged crates\n  protogen [--check]  regenerate syncd-proto's BEP structs from bep.proto\n  bench [--help]  the benchmarks (docs/benchmarks.md)\n  torture [--short]  the reliability suite (docs/reliability.md)\n  soak --minutes N  two daemons under a realistic edit pattern; resource growth report"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        return usage();
    };
    let root = workspace_root();
    let result = match task.as_str() {
        "tidy" => tidy::run(&root),
        "fuzz" => fuzz::run(&root, args.get(1..).unwrap_or_default()),
        "bench" => bench::run(&root, args.get(1..).unwrap_or_default()),
        "index-crash" => index_crash::run(&root),
        "test" => test::run(&root, args.get(1..).unwrap_or_default()),
        "protogen" => protogen::run(&root, args.get(1..).unwrap_or_default()),
        "package" => package::run(&root),
        "downstream" => downstream::run(&root),
        // Prints its own one-line summary last, so it sets the exit status itself.
        "torture" => return torture::run(&root, args.get(1..).unwrap_or_default()),
        "soak" => return torture::soak::run(&root, args.get(1..).unwrap_or_default()),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
