//! The `syncd` binary's command line outside the daemon: where its home is (`--home`,
//! `SYNCD_HOME`, the XDG default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_syncd");

/// `syncd <args>` with `HOME` at `user` and no XDG or SYNCD_HOME from the caller's environment.
fn syncd(user: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("HOME", user)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SYNCD_HOME")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn syncd_home_sets_the_home_when_home_flag_is_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let env_home = tmp.path().join("from-env");
    let mut c = syncd(tmp.path(), &["generate", "--no-default-folder"]);
    c.env("SYNCD_HOME", &env_home);
    ok(c);
    assert!(env_home.join("config.toml").is_file());
    assert!(!tmp.path().join(".config/syncd").exists());
}

#[test]
fn home_flag_overrides_syncd_home() {
    let tmp = tempfile::tempdir().unwrap();
    let (env_home, flag_home) = (tmp.path().join("from-env"), tmp.path().join("from-flag"));
    let mut c = syncd(
        tmp.path(),
        &[
            "generate",
            "--no-default-folder",
            "--home",
            flag_home.to_str().unwrap(),
        ],
    );
    c.env("SYNCD_HOME", &env_home);
    ok(c);
    assert!(flag_home.join("config.toml").is_file());
    assert!(!env_home.exists());
}

#[test]
fn without_either_the_home_is_under_xdg_config_home() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = syncd(tmp.path(), &["generate", "--no-default-folder"]);
    c.env("XDG_CONFIG_HOME", tmp.path().join("xdg"));
    ok(c);
    assert!(tmp.path().join("xdg/syncd/config.toml").is_file());
}

/// `syncd <args>` run without any home set up; asserts success; returns stdout.
fn generated(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(syncd(tmp.path(), args));
    // Printing generated text creates nothing.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    out
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = generated(&["completions", shell]);
        for sub in ["device", "folder", "pending", "serve"] {
            assert!(script.contains(sub), "{shell} completions lack `{sub}`");
        }
    }
}

#[test]
fn bash_completions_are_valid_bash() {
    let script = generated(&["completions", "bash"]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("syncd.bash");
    std::fs::write(&file, script).unwrap();
    match Command::new("bash").arg("-n").arg(&file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("skipped: no bash ({e})"),
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = syncd(tmp.path(), &["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_and_names_the_subcommands() {
    let page = generated(&["man"]);
    assert!(page.contains(".TH"), "{page}");
    for sub in ["device", "folder", "pending", "completions"] {
        assert!(page.contains(sub), "the man page lacks `{sub}`");
    }
}
