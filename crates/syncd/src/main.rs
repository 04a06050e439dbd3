//! The `syncd` binary: see the `syncd` library for everything it does.

fn main() -> std::process::ExitCode {
    init_logging();
    syncd::cli::main()
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // stderr, and a copy of the recent lines for /rest/system/log.
        .with_writer(syncd::logbuf::Tee)
        // When stderr is a closed pipe, tracing reports the failed write with eprintln!, which
        // panics on the broken pipe and would take the daemon down: drop the lines instead.
        .log_internal_errors(false)
        .init();
}
