//! `cargo xtask downstream`: builds and runs the engine's embedding example as a crate outside
//! the workspace would, from the packaged crates.
//!
//! It packages every publishable crate (`cargo package --no-verify`), unpacks the `.crate`
//! files, and writes a scratch crate whose only syncd dependency is the unpacked
//! `syncd-engine` (its own syncd dependencies resolve to the other unpacked packages through
//! `[patch.crates-io]`, standing in for crates.io). The scratch crate's `main.rs` is the
//! package's `examples/embed.rs`: two engines in one process sync a file over loopback TLS.
//! It passes when the file arrived. The workspace's `Cargo.lock` pins the scratch crate's
//! third-party versions and the workspace's target directory is shared, so only our crates
//! are compiled again.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the example prints once the file has arrived on the second engine.
const EXPECTED: &str = "b/docs/hello.txt: hello from a";

pub fn run(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"));
    println!("downstream: cargo package (every publishable crate)");
    let crates = crate::package::publishable_crates(root)?;
    let mut package = Command::new(&cargo);
    package
        .current_dir(root)
        .args(["package", "--no-verify", "--allow-dirty", "--locked"]);
    for name in &crates {
        package.args(["-p", name]);
    }
    run_ok(&mut package, "cargo package")?;

    let work = target.join("downstream");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("clearing {}: {e}", work.display()))?;
    }
    let unpacked = work.join("crates");
    let app = work.join("app");
    for dir in [&unpacked, &app.join("src")] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let version = workspace_version(root)?;
    let mut patches = String::new();
    // Our crates compile as the workspace compiles them (opt-level 0), not as dependencies.
    let mut ours = String::new();
    for name in &crates {
        let file = target
            .join("package")
            .join(format!("{name}-{version}.crate"));
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(&file)
                .arg("-C")
                .arg(&unpacked),
            &format!("unpacking {}", file.display()),
        )?;
        patches.push_str(&format!(
            "{name} = {{ path = \"../crates/{name}-{version}\" }}\n"
        ));
        ours.push_str(&format!("\n[profile.dev.package.{name}]\nopt-level = 0\n"));
    }
    let engine = unpacked.join(format!("syncd-engine-{version}"));
    let example = engine.join("examples/embed.rs");
    std::fs::copy(&example, app.join("src/main.rs"))
        .map_err(|e| format!("the engine's package has no {}: {e}", example.display()))?;
    let manifest = format!(
        r#"[package]
name = "syncd-downstream-check"
version = "0.0.0"
edition = "2024"
publish = false

# Not part of any workspace above it.
[workspace]

[dependencies]
syncd-engine = {{ path = "../crates/syncd-engine-{version}" }}
tokio = {{ version = "1", features = ["rt-multi-thread", "macros"] }}
tempfile = "3"

# The unpacked packages stand in for crates.io.
[patch.crates-io]
{patches}
# As the workspace builds its dependencies, so the shared target directory is reused.
[profile.dev.package."*"]
opt-level = 2

[profile.dev]
debug = "line-tables-only"
{ours}"#
    );
    write(&app.join("Cargo.toml"), &manifest)?;
    std::fs::copy(root.join("Cargo.lock"), app.join("Cargo.lock"))
        .map_err(|e| format!("copying Cargo.lock: {e}"))?;

    println!(
        "downstream: building {} against the packaged syncd-engine and running it",
        app.display()
    );
    let out = Command::new(&cargo)
        .current_dir(&app)
        .env("CARGO_TARGET_DIR", &target)
        .args(["run", "--quiet", "--offline"])
        .output()
        .map_err(|e| format!("running cargo run in {}: {e}", app.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains(EXPECTED) {
        return Err(format!(
            "the embedding example built from the packages did not sync its file ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    println!("downstream: ok ({})", stdout.trim());
    Ok(())
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `version` of `[workspace.package]` in the root manifest.
fn workspace_version(root: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml"))
        .map_err(|e| format!("reading Cargo.toml: {e}"))?;
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section && let Some(v) = line.strip_prefix("version") {
            let v = v.trim().trim_start_matches('=').trim().trim_matches('"');
            return Ok(v.to_owned());
        }
    }
    Err("no version in [workspace.package] of Cargo.toml".into())
}
