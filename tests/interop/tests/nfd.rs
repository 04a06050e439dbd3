//! Unicode normalisation with a stock Syncthing 1.19.2: names on the wire are NFC; syncd runs
//! here with `SYNCD_LOCAL_NFD=1`, the switch that makes Linux take the path macOS always
//! takes (local names spelt in NFD, converted both ways), so a Mac's behaviour is tested on
//! this machine's ext4.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Cluster, FOLDER, cluster, name_set as set, names, poll};

const CAFE_NFC: &str = "caf\u{e9}";
const CAFE_NFD: &str = "cafe\u{301}";

fn nfd_cluster(setup: impl FnOnce(&Cluster)) -> Option<Cluster> {
    let mut c = cluster()?;
    c.sd.env.push(("SYNCD_LOCAL_NFD".into(), "1".into()));
    setup(&c);
    c.start();
    Some(c)
}

fn errors(c: &Cluster) -> Vec<(String, String)> {
    c.sd.folder_errors()
}

fn context(c: &Cluster) -> String {
    format!(
        "syncd: {:?}\nsyncthing: {:?}\nerrors: {:?}\n{}",
        names(&c.sd.folder),
        names(&c.st.folder),
        errors(c),
        c.sd.log_tail()
    )
}

fn syncd_idle(c: &Cluster) -> bool {
    c.sd.get(&format!("/rest/db/status?folder={FOLDER}"))
        .is_some_and(|r| r.body["needTotalItems"] == 0 && r.body["state"] == "idle")
}

#[test]
fn a_peers_nfc_name_is_written_in_nfd_and_found_again_when_it_changes() {
    let Some(c) = nfd_cluster(|c| c.st.write(&format!("{CAFE_NFC}/notes.txt"), "first")) else {
        return;
    };
    let local = c.sd.folder.join(CAFE_NFD).join("notes.txt");
    poll(
        "the NFC name arrives on syncd spelt in NFD",
        || context(&c),
        || (std::fs::read(&local).ok()? == b"first" && syncd_idle(&c)).then_some(()),
    );
    assert_eq!(names(&c.sd.folder), set(&[CAFE_NFD]));
    // A new version replaces the NFD file: the puller finds it under its NFC name.
    c.st.write(&format!("{CAFE_NFC}/notes.txt"), "second, longer");
    c.st.scan();
    poll(
        "the change replaces the NFD file",
        || context(&c),
        || (std::fs::read(&local).ok()? == b"second, longer" && syncd_idle(&c)).then_some(()),
    );
    assert_eq!(names(&c.sd.folder), set(&[CAFE_NFD]));
    assert_eq!(names(&c.sd.folder.join(CAFE_NFD)), set(&["notes.txt"]));
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    // Syncthing keeps its one NFC name: syncd announced nothing else.
    assert_eq!(names(&c.st.folder), set(&[CAFE_NFC]));
    c.assert_clean_logs(&[]);
}

#[test]
fn a_local_nfd_name_is_announced_in_nfc_and_left_in_nfd() {
    let Some(c) = nfd_cluster(|_| {}) else {
        return;
    };
    c.sd.write(&format!("{CAFE_NFD}.txt"), "from the mac");
    c.sd.scan();
    let remote = c.st.folder.join(format!("{CAFE_NFC}.txt"));
    poll(
        "the NFD name reaches Syncthing in NFC",
        || context(&c),
        || (std::fs::read(&remote).ok()? == b"from the mac").then_some(()),
    );
    c.st.scan();
    poll(
        "syncd is idle",
        || context(&c),
        || syncd_idle(&c).then_some(()),
    );
    assert_eq!(names(&c.st.folder), set(&[&format!("{CAFE_NFC}.txt")]));
    assert_eq!(names(&c.sd.folder), set(&[&format!("{CAFE_NFD}.txt")]));
    c.assert_clean_logs(&[]);
}

#[test]
fn two_local_spellings_of_one_name_are_a_reported_conflict_and_neither_file_is_lost() {
    let Some(c) = nfd_cluster(|_| {}) else {
        return;
    };
    let (nfc, nfd) = (format!("{CAFE_NFC}.txt"), format!("{CAFE_NFD}.txt"));
    c.sd.write(&nfd, "nfd spelling");
    c.sd.write(&nfc, "nfc spelling");
    c.sd.scan();
    poll(
        "the conflict is in syncd's folder errors",
        || context(&c),
        || {
            errors(&c)
                .iter()
                .any(|(p, e)| p == &nfc && e.contains("different Unicode normalisations"))
                .then_some(())
        },
    );
    // The file spelt as local names are (NFD here) syncs; the other is left alone.
    poll(
        "the NFD file reaches Syncthing",
        || context(&c),
        || (std::fs::read(c.st.folder.join(&nfc)).ok()? == b"nfd spelling").then_some(()),
    );
    assert_eq!(c.sd.read(&nfd), b"nfd spelling");
    assert_eq!(c.sd.read(&nfc), b"nfc spelling");
    assert_eq!(names(&c.sd.folder), set(&[&nfc, &nfd]));
    c.assert_clean_logs(&[]);
}
