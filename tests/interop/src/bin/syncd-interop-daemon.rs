//! The `syncd` daemon for the interop suite: the same entry point and logging as
//! `crates/syncd/src/main.rs`, built inside this package so its tests can locate the binary.

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    syncd::cli::main()
}
