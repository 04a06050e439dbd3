//! The daemon's TOML config parser (`syncd::config::Config::parse`) never panics, its errors
//! format, and a config it accepts serialises (as `Config::save` writes it) and parses back
//! equal. Seeds: `fuzz/corpus/config/`; replayed on stable by `crates/syncd/tests/config_fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use syncd::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/config.toml");
    let config = match Config::parse(path, text) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let again = toml::to_string_pretty(&config).expect("a parsed config serialises");
    let back = Config::parse(path, &again)
        .unwrap_or_else(|e| panic!("a serialised config parses again: {e}\n{again}"));
    assert_eq!(config, back, "round trip changed the config:\n{again}");
});
