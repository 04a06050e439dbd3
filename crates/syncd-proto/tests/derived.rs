//! Derived records (`syncd_proto::derived`): groups round-trip; random or mutated groups and
//! names decode to a group or a typed error, never a panic; the fuzz seed corpus replays.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure.

use proptest::prelude::*;
use prost::Message as _;
use syncd_proto::bep;
use syncd_proto::derived::{Copies, Deletions, Group, decode_names, encode_names};

fn vector() -> impl Strategy<Value = bep::Vector> {
    proptest::collection::vec(
        (any::<u64>(), any::<u64>()).prop_map(|(id, value)| bep::Counter { id, value }),
        0..3,
    )
    .prop_map(|counters| bep::Vector { counters })
}

fn sequences(n: usize) -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(1..=i64::MAX as u64, n)
}

/// A well-formed group: ascending unique names, one sequence per name for each kind present.
fn group() -> impl Strategy<Value = Group> {
    (
        "[a-z/._-]{0,8}",
        proptest::collection::btree_set("[a-zé/._-]{0,12}", 1..20),
    )
        .prop_flat_map(|(from, names)| {
            let names: Vec<String> = names.into_iter().collect();
            let n = names.len();
            let copies = proptest::option::of(
                (
                    "[a-z/._-]{0,8}",
                    vector(),
                    any::<u64>(),
                    proptest::collection::vec(any::<u8>(), 0..33),
                    sequences(n),
                )
                    .prop_map(
                        |(to, version, modified_by, previous_blocks_hash, sequences)| Copies {
                            to,
                            version,
                            modified_by,
                            previous_blocks_hash,
                            sequences,
                        },
                    ),
            );
            let deletions = proptest::option::of(
                (vector(), any::<i64>(), any::<u64>(), sequences(n)).prop_map(
                    |(version, modified_s, modified_by, sequences)| Deletions {
                        version,
                        modified_s,
                        modified_by,
                        sequences,
                    },
                ),
            );
            (Just(from), Just(names), copies, deletions)
        })
        .prop_filter("a group has records", |(_, _, c, d)| {
            c.is_some() || d.is_some()
        })
        .prop_map(|(from, names, copies, deletions)| Group {
            from,
            names,
            copies,
            deletions,
        })
}

/// Decodes `wire` as a received group and reads its paths; a group that decodes encodes back
/// to one that decodes equal.
fn check(wire: &bep::SyncdDerived) {
    if let Ok(g) = Group::decode(wire) {
        let _ = g.bases();
        let _ = g.copy_names();
        assert_eq!(Group::decode(&g.encode()).unwrap(), g);
    }
}

proptest! {
    #[test]
    fn groups_round_trip(g in group()) {
        let wire = g.encode();
        prop_assert_eq!(Group::decode(&wire).unwrap(), g.clone());
        let bytes = wire.encode_to_vec();
        let back = bep::SyncdDerived::decode(bytes.as_slice()).unwrap();
        prop_assert_eq!(Group::decode(&back).unwrap(), g);
    }

    #[test]
    fn random_groups_never_panic(
        names in proptest::collection::vec(any::<u8>(), 0..200),
        from in ".{0,4}",
        to in ".{0,4}",
        copies in proptest::collection::vec(any::<i64>(), 0..6),
        deletes in proptest::collection::vec(-3..100i64, 0..6),
    ) {
        check(&bep::SyncdDerived {
            from,
            to,
            names,
            copy_sequences: copies,
            delete_sequences: deletes,
            ..Default::default()
        });
    }

    #[test]
    fn mutated_groups_never_panic(
        g in group(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut wire = g.encode();
        for (at, byte) in &flips {
            if !wire.names.is_empty() {
                let i = at % wire.names.len();
                wire.names[i] ^= byte;
            }
        }
        let _ = decode_names(&wire.names);
        check(&wire);
        // The whole message's bytes, mutated: prost refuses or we decode.
        let mut bytes = g.encode().encode_to_vec();
        for (at, byte) in flips {
            let i = at % bytes.len();
            bytes[i] ^= byte;
        }
        if let Ok(w) = bep::SyncdDerived::decode(bytes.as_slice()) {
            check(&w);
        }
    }

    #[test]
    fn names_round_trip(names in proptest::collection::btree_set(".{0,20}", 0..30)) {
        let names: Vec<String> = names.into_iter().collect();
        let coded = encode_names(names.iter().map(String::as_str));
        prop_assert_eq!(decode_names(&coded).unwrap(), names);
    }
}

#[test]
fn every_derived_fuzz_corpus_input_decodes_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/derived");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = decode_names(&data);
        if let Ok(w) = bep::SyncdDerived::decode(data.as_slice()) {
            check(&w);
        }
        seen += 1;
    }
    assert!(seen >= 3, "the seed corpus is there ({seen} files)");
}
