//! Replays every file of `<repo>/fuzz/corpus/stignore/` through the fuzz harness on the stable
//! toolchain, so a crash the fuzzer once found stays fixed without nightly.

use std::path::Path;

#[test]
fn fuzz_corpus_replays_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/stignore");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no corpus at {}; nothing to replay", dir.display());
        return;
    };
    let mut replayed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            syncd_ignore::fuzzing::stignore(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus files from {}", dir.display());
}

#[test]
fn harness_reports_ignored_paths() {
    // The harness really matches: `*.log` ignores the one log path (file and dir forms), both
    // case-sensitively and case-insensitively.
    assert_eq!(syncd_ignore::fuzzing::stignore(b"*.log\0a.log\nb.txt"), 4);
}
