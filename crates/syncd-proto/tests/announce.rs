//! Local discovery packets (`syncd_proto::discovery`): the fuzz seed corpus replays on
//! stable, decoding to an announcement or a typed error, never a panic.
#![allow(clippy::unwrap_used)]

use syncd_proto::discovery::{AnnounceError, decode_local_announce};

#[test]
fn every_announce_fuzz_corpus_input_decodes_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/announce");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let data = std::fs::read(entry.path()).unwrap();
        let got = decode_local_announce(&data);
        let name = entry.file_name().into_string().unwrap();
        match name.as_str() {
            "syncthing-style.bin" => assert_eq!(got.unwrap().addresses.len(), 3),
            "v13-magic.bin" => assert_eq!(got, Err(AnnounceError::OldVersion)),
            "short-id.bin" => assert_eq!(got, Err(AnnounceError::BadDeviceId { len: 2 })),
            _ => {}
        }
        names.push(name);
    }
    assert!(names.len() >= 3, "the seed corpus is there: {names:?}");
}
