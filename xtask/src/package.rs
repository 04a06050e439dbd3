//! `cargo xtask package`: checks that every publishable crate's package (`cargo package
//! --list`) ships its README and both license texts (the crates are `MIT OR Apache-2.0`), and
//! that crates with code examples ship those too. A crate is publishable unless its manifest
//! says `publish = false`.

use std::path::Path;
use std::process::Command;

/// Files every publishable crate's package must contain.
const REQUIRED: &[&str] = &["README.md", "LICENSE-MIT", "LICENSE-APACHE"];

/// Files particular crates' packages must contain as well.
const REQUIRED_PER_CRATE: &[(&str, &[&str])] = &[("syncd-engine", &["examples/embed.rs"])];

/// Checks every crate under `crates/`; the error lists every missing file at once.
pub fn run(root: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    for name in publishable_crates(root)? {
        let listed = package_list(root, &name)?;
        let extra = REQUIRED_PER_CRATE
            .iter()
            .filter(|(c, _)| *c == name)
            .flat_map(|(_, files)| files.iter());
        let absent: Vec<String> = REQUIRED
            .iter()
            .chain(extra)
            .filter(|file| !listed.iter().any(|l| l == *file))
            .map(|file| format!("{name}: {file}"))
            .collect();
        if absent.is_empty() {
            println!("package: {name}: ok");
        }
        missing.extend(absent);
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "files missing from `cargo package --list` (add them to the crate directory, e.g. \
             a symlink to the root's license files):\n  {}",
            missing.join("\n  ")
        ))
    }
}

/// The crates under `crates/` whose manifest does not say `publish = false`, sorted.
pub fn publishable_crates(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("crates");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if text.lines().any(|l| l.replace(' ', "") == "publish=false") {
            continue;
        }
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The paths `cargo package --list` prints for one crate.
pub fn package_list(root: &Path, name: &str) -> Result<Vec<String>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["package", "--list", "--allow-dirty", "-p", name])
        .output()
        .map_err(|e| format!("running cargo package --list -p {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo package --list -p {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_publishable_crate_packages_its_readme_and_both_licenses() {
        let root = crate::workspace_root();
        let crates = publishable_crates(&root).unwrap();
        assert!(crates.iter().any(|c| c == "syncd-engine"), "{crates:?}");
        run(&root).unwrap();
    }

    #[test]
    fn the_engine_package_ships_its_embed_example() {
        let listed = package_list(&crate::workspace_root(), "syncd-engine").unwrap();
        assert!(
            listed.iter().any(|l| l == "examples/embed.rs"),
            "{listed:?}"
        );
    }
}
