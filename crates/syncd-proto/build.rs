//! Compiles `proto/bep.proto` with `protox` (pure Rust, no system `protoc`) and generates the
//! prost structs into `OUT_DIR/bep.rs`.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto/bep.proto");
    let fds = protox::compile(["bep.proto"], ["proto"])?;
    prost_build::Config::new()
        // `symlink_target` and every other `bytes` field stay `Vec<u8>`.
        .compile_fds(fds)?;
    Ok(())
}
