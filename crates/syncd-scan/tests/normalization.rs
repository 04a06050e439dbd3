//! Names on disk that are not spelt in Unicode NFC (what a Mac hands out, NFD, copied to a
//! Linux disk): recorded under their NFC spelling, renamed on disk to it (`autoNormalize`), or
//! reported and left alone when that would lose a file or is turned off. Real files, real index.
#![cfg(not(target_os = "macos"))]

mod common;

use common::Fixture;
use syncd_scan::{EntryError, ScanConfig};

const NFC: &str = "caf\u{e9}.txt";
const NFD: &str = "cafe\u{301}.txt";

#[test]
fn a_name_spelt_in_nfd_is_renamed_to_nfc_on_disk_and_recorded() {
    let f = Fixture::new();
    f.write(NFD, b"accented");
    f.write("dire\u{301}/inner.txt", b"inside");
    let report = f.scanner.scan().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(std::fs::read(f.path(NFC)).unwrap(), b"accented");
    assert!(!f.path(NFD).exists(), "the NFD spelling is gone");
    assert_eq!(
        std::fs::read(f.path("dir\u{e9}/inner.txt")).unwrap(),
        b"inside"
    );
    assert_eq!(f.live_names(), [NFC, "dir\u{e9}", "dir\u{e9}/inner.txt"]);
    // A second scan finds the tree as recorded: nothing changes.
    assert_eq!(f.scanner.scan().unwrap().committed, 0);
}

#[test]
fn both_spellings_on_disk_are_a_reported_conflict_and_neither_file_is_lost() {
    let f = Fixture::new();
    f.write(NFC, b"composed");
    f.write(NFD, b"decomposed");
    let report = f.scanner.scan().unwrap();
    assert_eq!(
        report.errors,
        [EntryError::NormalizationConflict {
            path: NFC.to_owned()
        }]
    );
    assert_eq!(std::fs::read(f.path(NFC)).unwrap(), b"composed");
    assert_eq!(std::fs::read(f.path(NFD)).unwrap(), b"decomposed");
    assert_eq!(f.live_names(), [NFC]);
    assert_eq!(f.record(NFC).unwrap().size, 8);
}

#[test]
fn with_auto_normalize_off_the_name_is_reported_and_left_alone() {
    let f = Fixture::with_config(
        "",
        ScanConfig {
            auto_normalize: false,
            ..ScanConfig::default()
        },
    );
    f.write(NFD, b"accented");
    let report = f.scanner.scan().unwrap();
    assert_eq!(
        report.errors,
        [EntryError::NotNormalized {
            path: NFC.to_owned()
        }]
    );
    assert!(f.path(NFD).exists());
    assert!(!f.path(NFC).exists());
    assert!(f.live_names().is_empty(), "{:?}", f.live_names());
}
