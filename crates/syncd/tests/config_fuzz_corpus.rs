//! Replays the config fuzz corpus (`<repo>/fuzz/corpus/config/`, seeds and the inputs of fixed
//! crashes) on stable with the property the `config` fuzz target checks: parsing never panics,
//! errors format, and an accepted config serialises and parses back equal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a test failure.

use std::path::Path;

use syncd::config::Config;

/// The fuzz target's property for one input (keep in step with `fuzz/fuzz_targets/config.rs`).
fn check(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let path = Path::new("/fuzz/config.toml");
    let config = match Config::parse(path, text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return false;
        }
    };
    let again = toml::to_string_pretty(&config).unwrap();
    let back = Config::parse(path, &again)
        .unwrap_or_else(|e| panic!("a serialised config parses again: {e}\n{again}"));
    assert_eq!(config, back, "round trip changed the config:\n{again}");
    true
}

#[test]
fn every_config_corpus_input_parses_or_fails_cleanly_and_round_trips() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/config");
    let (mut seen, mut accepted) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let ok = std::panic::catch_unwind(|| check(&data))
            .unwrap_or_else(|_| panic!("{} panicked", path.display()));
        accepted += usize::from(ok);
        seen += 1;
    }
    assert!(seen >= 4, "the seed corpus is there ({seen} files)");
    assert!(accepted >= 2, "some seeds are valid configs ({accepted})");
}

#[test]
fn a_config_written_by_save_is_a_corpus_shaped_input_that_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new_with_key("k".repeat(32));
    config.devices.push(syncd::config::DeviceEntry::new(
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
            .parse()
            .unwrap(),
    ));
    config.save(dir.path()).unwrap();
    let text = std::fs::read(dir.path().join("config.toml")).unwrap();
    assert!(check(&text));
}
