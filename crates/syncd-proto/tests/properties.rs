//! Property tests: every message type round-trips through framing under every policy; the
//! decoder never panics on random or mutated bytes; any split of the stream yields the same
//! messages as one buffer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure.

use proptest::prelude::*;
use syncd_proto::{
    CompressionPolicy, Decoder, Message, bep, decode_hello, encode_hello, encode_message,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z/._-]{0,12}", ".{0,8}", Just("a".repeat(300))]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        (0..max, any::<u8>()).prop_map(|(n, b)| vec![b; n])
    ]
}

fn vector() -> impl Strategy<Value = Option<bep::Vector>> {
    proptest::option::of(
        proptest::collection::vec(
            (any::<u64>(), any::<u64>()).prop_map(|(id, value)| bep::Counter { id, value }),
            0..3,
        )
        .prop_map(|counters| bep::Vector { counters }),
    )
}

fn file_info() -> impl Strategy<Value = bep::FileInfo> {
    let block = (any::<i64>(), any::<i32>(), bytes(33), any::<u32>()).prop_map(
        |(offset, size, hash, weak_hash)| bep::BlockInfo {
            offset,
            size,
            hash,
            weak_hash,
        },
    );
    let chunks = proptest::option::of(
        (
            any::<u32>(),
            proptest::collection::vec(
                (any::<i64>(), any::<i32>(), bytes(33))
                    .prop_map(|(offset, size, hash)| bep::SyncdChunk { offset, size, hash }),
                0..3,
            ),
        )
            .prop_map(|(format_version, chunks)| bep::SyncdChunks {
                format_version,
                chunks,
            }),
    );
    (
        (
            text(),
            0..5i32,
            any::<i64>(),
            any::<u32>(),
            any::<i64>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            vector(),
            any::<i64>(),
            any::<i32>(),
            any::<u64>(),
            any::<i32>(),
        ),
        (
            proptest::collection::vec(block, 0..4),
            bytes(20),
            bytes(33),
            chunks,
        ),
    )
        .prop_map(
            |(
                (name, t, size, permissions, modified_s, deleted, invalid, no_permissions),
                (version, sequence, modified_ns, modified_by, block_size),
                (blocks, symlink_target, blocks_hash, syncd_chunks),
            )| bep::FileInfo {
                name,
                r#type: t,
                size,
                permissions,
                modified_s,
                deleted,
                invalid,
                no_permissions,
                version,
                sequence,
                modified_ns,
                modified_by,
                block_size,
                blocks,
                symlink_target,
                blocks_hash,
                syncd_chunks,
                platform: None,
                encrypted: vec![],
                previous_blocks_hash: vec![],
            },
        )
}

fn device() -> impl Strategy<Value = bep::Device> {
    (
        bytes(33),
        text(),
        proptest::collection::vec(text(), 0..3),
        0..3i32,
        any::<i64>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(id, name, addresses, compression, max_sequence, introducer, index_id)| bep::Device {
                id,
                name,
                addresses,
                compression,
                max_sequence,
                introducer,
                index_id,
                ..Default::default()
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    let folder = (
        text(),
        text(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(device(), 0..3),
    )
        .prop_map(|(id, label, read_only, paused, devices)| bep::Folder {
            id,
            label,
            read_only,
            paused,
            devices,
            ..Default::default()
        });
    prop_oneof![
        (proptest::collection::vec(folder, 0..3), any::<bool>()).prop_map(
            |(folders, secondary)| Message::ClusterConfig(bep::ClusterConfig {
                folders,
                secondary,
                ..Default::default()
            })
        ),
        (
            text(),
            proptest::collection::vec(file_info(), 0..4),
            any::<i64>()
        )
            .prop_map(|(folder, files, last_sequence)| Message::Index(bep::Index {
                folder,
                files,
                last_sequence
            })),
        (
            text(),
            proptest::collection::vec(file_info(), 0..4),
            any::<i64>(),
            any::<i64>()
        )
            .prop_map(
                |(folder, files, last_sequence, prev_sequence)| Message::IndexUpdate(
                    bep::IndexUpdate {
                        folder,
                        files,
                        last_sequence,
                        prev_sequence,
                        ..Default::default()
                    }
                )
            ),
        (
            any::<i32>(),
            text(),
            text(),
            any::<i64>(),
            any::<i32>(),
            bytes(33),
            any::<bool>(),
            any::<i32>()
        )
            .prop_map(
                |(id, folder, name, offset, size, hash, from_temporary, block_no)| Message::Request(
                    bep::Request {
                        id,
                        folder,
                        name,
                        offset,
                        size,
                        hash,
                        from_temporary,
                        weak_hash: 0,
                        block_no
                    }
                )
            ),
        (any::<i32>(), bytes(5000), 0..4i32)
            .prop_map(|(id, data, code)| Message::Response(bep::Response { id, data, code })),
        (
            text(),
            proptest::collection::vec(
                (
                    0..2i32,
                    text(),
                    vector(),
                    proptest::collection::vec(any::<i32>(), 0..5),
                    any::<i32>()
                ),
                0..3
            )
        )
            .prop_map(
                |(folder, ups)| Message::DownloadProgress(bep::DownloadProgress {
                    folder,
                    updates: ups
                        .into_iter()
                        .map(|(update_type, name, version, block_indexes, block_size)| {
                            bep::FileDownloadProgressUpdate {
                                update_type,
                                name,
                                version,
                                block_indexes,
                                block_size,
                            }
                        })
                        .collect()
                })
            ),
        Just(Message::Ping(bep::Ping {})),
        text().prop_map(|reason| Message::Close(bep::Close { reason })),
    ]
}

fn policy() -> impl Strategy<Value = CompressionPolicy> {
    prop_oneof![
        Just(CompressionPolicy::Metadata),
        Just(CompressionPolicy::Always),
        Just(CompressionPolicy::Never)
    ]
}

fn drain(d: &mut Decoder) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = d.next_message() {
        out.push(m);
    }
    out
}

proptest! {
    #[test]
    fn every_message_type_round_trips(msgs in proptest::collection::vec(message(), 1..4), policy in policy()) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_message(m, policy, &mut wire).unwrap();
        }
        let mut d = Decoder::new();
        d.feed(&wire);
        prop_assert_eq!(drain(&mut d), msgs);
        prop_assert_eq!(d.buffered_len(), 0);
    }

    #[test]
    fn any_split_yields_the_same_messages_as_one_buffer(msgs in proptest::collection::vec(message(), 1..4), policy in policy(), cuts in proptest::collection::vec(1usize..64, 1..50)) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_message(m, policy, &mut wire).unwrap();
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut rest = wire.as_slice();
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            d.feed(&rest[..n]);
            rest = &rest[n..];
            got.extend(drain(&mut d));
            i += 1;
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn byte_at_a_time_yields_the_same_messages(msgs in proptest::collection::vec(message(), 1..3), policy in policy()) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_message(m, policy, &mut wire).unwrap();
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b));
            got.extend(drain(&mut d));
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn hello_round_trips(device_name in text(), client_name in text(), client_version in text(), num_connections in any::<i32>(), timestamp in any::<i64>()) {
        let h = bep::Hello { device_name, client_name, client_version, num_connections, timestamp };
        let mut out = Vec::new();
        encode_hello(&h, &mut out);
        let (got, used) = decode_hello(&out).unwrap().unwrap();
        prop_assert_eq!(got, h);
        prop_assert_eq!(used, out.len());
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut d = Decoder::new();
        d.feed(&data);
        for _ in 0..64 {
            if !matches!(d.next_message(), Ok(Some(_))) { break; }
        }
        let _ = decode_hello(&data);
    }

    #[test]
    fn mutated_valid_streams_never_panic_the_decoder(msgs in proptest::collection::vec(message(), 1..3), policy in policy(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_message(m, policy, &mut wire).unwrap();
        }
        for (at, byte) in flips {
            let i = at.index(wire.len());
            wire[i] ^= byte | 1;
        }
        let mut d = Decoder::new();
        d.feed(&wire);
        for _ in 0..64 {
            if !matches!(d.next_message(), Ok(Some(_))) { break; }
        }
    }
}
