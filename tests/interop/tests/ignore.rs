//! `.stignore`: with the same patterns on both sides, ignored files never cross in either
//! direction; a file ignored on one side only is handled as Syncthing handles it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{FOLDER, cluster};

const PATTERNS: &str = "*.log\n/build\n// a comment\n";

#[test]
fn files_ignored_on_both_sides_never_cross_either_way() {
    let Some(mut c) = cluster() else { return };
    for n in [&c.st, &c.sd] {
        n.write(".stignore", PATTERNS);
    }
    c.st.write("st-kept.txt", "kept");
    c.st.write("st-debug.log", "ignored on st");
    c.st.write("build/st-out.o", "ignored on st");
    c.sd.write("sd-kept.txt", "kept");
    c.sd.write("sd-debug.log", "ignored on sd");
    c.sd.write("build/sd-out.o", "ignored on sd");
    c.skip = ["st-debug.log", "sd-debug.log", "build"]
        .map(String::from)
        .to_vec();
    c.start();
    c.converge();
    assert_eq!(c.sd.read("st-kept.txt"), b"kept");
    assert_eq!(c.st.read("sd-kept.txt"), b"kept");
    assert!(!c.sd.exists("st-debug.log") && !c.sd.exists("build/st-out.o"));
    assert!(!c.st.exists("sd-debug.log") && !c.st.exists("build/sd-out.o"));
    c.assert_clean_logs(&[]);
}

#[test]
fn a_file_ignored_only_on_syncthing_stays_on_syncd_and_is_not_needed() {
    let Some(mut c) = cluster() else { return };
    c.st.write(".stignore", "only-here.txt\n");
    c.sd.write("only-here.txt", "syncd's file");
    c.sd.write("shared.txt", "shared");
    c.skip = vec!["only-here.txt".into()];
    c.start();
    c.converge();
    assert!(!c.st.exists("only-here.txt"));
    assert_eq!(c.sd.read("only-here.txt"), b"syncd's file");
    let st = c.st.get_ok(&format!("/rest/db/status?folder={FOLDER}"));
    assert_eq!(st["needTotalItems"], 0, "{st}");
    c.assert_clean_logs(&[]);
}

#[test]
fn a_file_ignored_only_on_syncd_stays_on_syncthing_and_syncthing_sees_syncd_complete() {
    let Some(mut c) = cluster() else { return };
    c.sd.write(".stignore", "only-here.txt\n");
    c.st.write("only-here.txt", "Syncthing's file");
    c.st.write("shared.txt", "shared");
    c.skip = vec!["only-here.txt".into()];
    c.start();
    // converge() also requires Syncthing's completion of syncd to show nothing needed: syncd
    // must announce the ignored file as an invalid record, as Syncthing does.
    c.converge();
    assert!(!c.sd.exists("only-here.txt"));
    assert_eq!(c.st.read("only-here.txt"), b"Syncthing's file");
    c.assert_clean_logs(&[]);
}
