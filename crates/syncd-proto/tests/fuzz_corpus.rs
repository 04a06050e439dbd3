//! Replays the fuzz seed corpus (`<repo>/fuzz/corpus/decode/`) on stable: every input, whole
//! and byte by byte, must decode to messages or a typed error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure.

use syncd_proto::{Decoder, decode_hello};

#[test]
fn every_fuzz_corpus_input_decodes_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = decode_hello(&data);
        let mut whole = Decoder::new();
        whole.feed(&data);
        let mut a = Vec::new();
        while let Ok(Some(m)) = whole.next_message() {
            a.push(m);
        }
        let mut bytewise = Decoder::new();
        let mut b = Vec::new();
        for byte in &data {
            bytewise.feed(std::slice::from_ref(byte));
            while let Ok(Some(m)) = bytewise.next_message() {
                b.push(m);
            }
        }
        assert_eq!(a, b);
        seen += 1;
    }
    assert!(seen >= 5, "the seed corpus is there ({seen} files)");
}
