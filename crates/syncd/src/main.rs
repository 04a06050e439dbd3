//! The `syncd` binary: see the `syncd` library for everything it does.

fn main() -> std::process::ExitCode {
    syncd::logbuf::init();
    syncd::cli::main()
}
