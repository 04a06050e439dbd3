//! The `syncd` binary: see the `syncd` library for everything it does.

fn main() -> std::process::ExitCode {
    init_logging();
    syncd::cli::main()
}

fn init_logging() {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| tracing_subscriber::EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::new(&base);
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // stderr, and a copy of the recent lines for /rest/system/log.
        .with_writer(syncd::logbuf::Tee)
        // When stderr is a closed pipe, tracing reports the failed write with eprintln!, which
        // panics on the broken pipe and would take the daemon down: drop the lines instead.
        .log_internal_errors(false)
        // `/rest/system/debug` turns log targets to debug at run time.
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    syncd::debug::install(base, move |directives| {
        let filter =
            tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
}
