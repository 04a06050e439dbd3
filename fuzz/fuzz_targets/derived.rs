//! Arbitrary bytes as a derived-records group (`syncd_proto::derived`), and as its `names`
//! field alone: decoding returns a group or a typed error, never a panic, and a group that
//! decodes encodes back to one that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use syncd_proto::bep;
use syncd_proto::derived::{Group, decode_names};

fuzz_target!(|data: &[u8]| {
    let _ = decode_names(data);
    let Ok(wire) = bep::SyncdDerived::decode(data) else {
        return;
    };
    if let Ok(g) = Group::decode(&wire) {
        let _ = g.bases();
        let _ = g.copy_names();
        assert_eq!(Group::decode(&g.encode()).ok(), Some(g));
    }
});
