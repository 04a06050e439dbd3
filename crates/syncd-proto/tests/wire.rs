//! Byte-exact framing: the digest's hex examples, Hello framing and its errors, LZ4 with a
//! big-endian prefix, the compression policy, and the decoder's framing errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure.

use syncd_proto::{
    CompressionPolicy, DecodeError, Decoder, HELLO_MAGIC, HelloError, MAX_HELLO_LEN, Message,
    SYNCD_CLIENT_NAME, bep, decode_hello, encode_hello, encode_message,
};

/// A predicate recognising one error variant.
type Check<E> = fn(&E) -> bool;

fn encode(m: &Message, policy: CompressionPolicy) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(m, policy, &mut out).unwrap();
    out
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
    let mut d = Decoder::new();
    d.feed(bytes);
    let mut out = Vec::new();
    while let Some(m) = d.next_message()? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn ping_snapshot() {
    assert_eq!(
        hex::encode(encode(
            &Message::Ping(bep::Ping {}),
            CompressionPolicy::Always
        )),
        "0002080600000000"
    );
}

#[test]
fn empty_cluster_config_snapshot_has_zero_header_length() {
    let m = Message::ClusterConfig(bep::ClusterConfig::default());
    assert_eq!(
        hex::encode(encode(&m, CompressionPolicy::Always)),
        "000000000000"
    );
}

#[test]
fn close_bye_snapshot() {
    let m = Message::Close(bep::Close {
        reason: "bye".into(),
    });
    assert_eq!(
        hex::encode(encode(&m, CompressionPolicy::Metadata)),
        "00020807000000050a03627965"
    );
}

#[test]
fn example_hello_snapshot() {
    let h = bep::Hello {
        client_name: "syncthing".into(),
        client_version: "v1.19.2".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_hello(&h, &mut out);
    assert_eq!(
        hex::encode(&out),
        "2ea7d90b0014120973796e637468696e671a0776312e31392e32"
    );
}

#[test]
fn syncd_hello_names_the_client_syncd() {
    let h = bep::Hello {
        device_name: "probe-a".into(),
        client_name: SYNCD_CLIENT_NAME.into(),
        client_version: "v0.1.0".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_hello(&h, &mut out);
    // The Hello Syncthing 1.19.2 accepted from our probe (fixtures/probe-sent/hello.bin).
    assert_eq!(
        hex::encode(&out),
        "2ea7d90b00180a0770726f62652d61120573796e63641a0676302e312e30"
    );
}

#[test]
fn hello_needs_more_bytes_until_complete_and_keeps_the_rest() {
    let h = bep::Hello {
        client_name: "syncd".into(),
        ..Default::default()
    };
    let mut buf = Vec::new();
    encode_hello(&h, &mut buf);
    let hello_len = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // a pipelined empty ClusterConfig
    for cut in 0..hello_len {
        assert_eq!(decode_hello(&buf[..cut]).unwrap(), None, "cut at {cut}");
    }
    let (got, used) = decode_hello(&buf).unwrap().unwrap();
    assert_eq!(got, h);
    assert_eq!(used, hello_len);
    assert_eq!(
        decode_all(&buf[used..]).unwrap(),
        vec![Message::ClusterConfig(bep::ClusterConfig::default())]
    );
}

#[test]
fn hello_magic_table() {
    let cases: &[(u32, Option<Check<HelloError>>)] = &[
        (HELLO_MAGIC, None),
        (
            0x0001_0001,
            Some(|e| matches!(e, HelloError::TooOldVersion { magic: 0x0001_0001 })),
        ),
        (
            0x0001_0000,
            Some(|e| matches!(e, HelloError::TooOldVersion { magic: 0x0001_0000 })),
        ),
        (
            0x9F79_BC40,
            Some(|e| matches!(e, HelloError::TooOldVersion { magic: 0x9F79_BC40 })),
        ),
        (
            0x1234_5678,
            Some(|e| matches!(e, HelloError::UnknownMagic { magic: 0x1234_5678 })),
        ),
    ];
    for (magic, expect) in cases {
        let mut b = magic.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        match (decode_hello(&b), expect) {
            (Ok(Some((h, 6))), None) => assert_eq!(h, bep::Hello::default()),
            (Err(e), Some(check)) => assert!(check(&e), "{magic:#x}: {e:?}"),
            (other, _) => panic!("{magic:#x}: unexpected {other:?}"),
        }
    }
}

#[test]
fn hello_magic_is_judged_before_the_rest_arrives() {
    assert!(matches!(
        decode_hello(&[0x12, 0x34, 0x56, 0x78]),
        Err(HelloError::UnknownMagic { .. })
    ));
}

#[test]
fn hello_longer_than_32767_is_refused() {
    let mut b = HELLO_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&0x8000u16.to_be_bytes());
    assert_eq!(decode_hello(&b), Err(HelloError::TooBig { len: 0x8000 }));
}

#[test]
fn hello_with_invalid_utf8_is_its_own_error() {
    let mut b = HELLO_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 3, 0x0a, 0x01, 0xff]);
    assert_eq!(decode_hello(&b), Err(HelloError::InvalidUtf8));
}

#[test]
fn oversized_hello_is_shortened_to_fit_the_frame() {
    let h = bep::Hello {
        device_name: "é".repeat(20_000),
        client_name: "syncd".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_hello(&h, &mut out);
    let (got, used) = decode_hello(&out).unwrap().unwrap();
    assert_eq!(used, out.len());
    assert!(used - 6 <= MAX_HELLO_LEN);
    assert!(h.device_name.starts_with(&got.device_name) && !got.device_name.is_empty());
    assert_eq!(got.client_name, "syncd");
}

/// Pseudo-random bytes (xorshift64): LZ4 cannot shrink them.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn big_index() -> Message {
    let files = (0..50)
        .map(|i| bep::FileInfo {
            name: format!("dir/file-{i}.txt"),
            size: 10,
            ..Default::default()
        })
        .collect();
    Message::Index(bep::Index {
        folder: "default".into(),
        files,
        last_sequence: 0,
    })
}

#[test]
fn compressed_message_has_big_endian_uncompressed_length_prefix() {
    let m = big_index();
    let body_len = m.encoded_len();
    let out = encode(&m, CompressionPolicy::Metadata);
    assert_eq!(
        &out[..6],
        &[0, 4, 0x08, 0x01, 0x10, 0x01],
        "header: Index, LZ4"
    );
    let msg_len = u32::from_be_bytes(out[6..10].try_into().unwrap()) as usize;
    assert_eq!(msg_len, out.len() - 10);
    assert_eq!(&out[10..14], &(body_len as u32).to_be_bytes(), "BE prefix");
    assert_ne!(
        &out[14..18],
        &[0x04, 0x22, 0x4d, 0x18],
        "raw block, not an LZ4 frame"
    );
    assert_eq!(decode_all(&out).unwrap(), vec![m]);
}

#[test]
fn compression_policy_table() {
    let response = Message::Response(bep::Response {
        id: 1,
        data: vec![b'a'; 4096],
        code: 0,
    });
    let small = Message::Close(bep::Close {
        reason: "x".repeat(100),
    });
    let incompressible = Message::Response(bep::Response {
        id: 1,
        data: noise(4096),
        code: 0,
    });
    let index = big_index();
    use CompressionPolicy::*;
    let cases = [
        (&index, Metadata, true),
        (&index, Always, true),
        (&index, Never, false),
        (&response, Metadata, false),
        (&response, Always, true),
        (&small, Always, false),
        (&incompressible, Always, false),
    ];
    for (m, policy, compressed) in cases {
        let out = encode(m, policy);
        let header = bep::Header {
            r#type: m.message_type() as i32,
            compression: i32::from(compressed),
        };
        let mut expect = Vec::new();
        prost::Message::encode(&header, &mut expect).unwrap();
        assert_eq!(
            &out[2..2 + out[1] as usize],
            expect.as_slice(),
            "{:?} {policy:?}",
            m.message_type()
        );
        assert_eq!(decode_all(&out).unwrap(), vec![m.clone()]);
    }
}

#[test]
fn compression_is_kept_only_when_it_saves_at_least_one_32nd() {
    // Random-ish bytes: LZ4 cannot save 3.125%, so the message goes out plain.
    let data = noise(1000);
    let m = Message::Response(bep::Response {
        id: 7,
        data,
        code: 0,
    });
    let out = encode(&m, CompressionPolicy::Always);
    assert_eq!(&out[..4], &[0, 2, 0x08, 0x04]);
    assert_eq!(out.len(), 2 + 2 + 4 + m.encoded_len());
}

#[test]
fn unknown_message_types_are_skipped() {
    let mut stream = vec![0, 2, 0x08, 0x09, 0, 0, 0, 3, 1, 2, 3]; // type 9, 3-byte body
    stream.extend_from_slice(&[0, 2, 0x08, 0x06, 0, 0, 0, 0]); // Ping
    assert_eq!(
        decode_all(&stream).unwrap(),
        vec![Message::Ping(bep::Ping {})]
    );
    let mut d = Decoder::new();
    for b in &stream {
        d.feed(std::slice::from_ref(b));
        if let Some(m) = d.next_message().unwrap() {
            assert_eq!(m, Message::Ping(bep::Ping {}));
            return;
        }
    }
    panic!("the Ping after the unknown message never came out");
}

#[test]
fn unknown_message_of_declared_huge_size_is_not_buffered() {
    let mut d = Decoder::new();
    d.feed(&[0, 2, 0x08, 0x63, 0x1d, 0xcd, 0x65, 0x00]); // type 99, 500,000,000 bytes
    assert_eq!(d.next_message().unwrap(), None);
    d.feed(&[0u8; 65536]);
    assert_eq!(d.next_message().unwrap(), None);
    assert_eq!(d.buffered_len(), 0);
}

#[test]
fn framing_error_table() {
    let cases: Vec<(&str, Vec<u8>, Check<DecodeError>)> = vec![
        ("negative header length", vec![0x80, 0x00], |e| {
            matches!(e, DecodeError::NegativeHeaderLength { len: 0x8000 })
        }),
        ("bad header protobuf", vec![0, 1, 0x08, 0, 0, 0, 0], |e| {
            matches!(e, DecodeError::Header { .. })
        }),
        (
            "unknown compression",
            vec![0, 2, 0x10, 0x02, 0, 0, 0, 0],
            |e| matches!(e, DecodeError::UnknownCompression { value: 2 }),
        ),
        (
            "message too long",
            vec![0, 0, 0x1d, 0xcd, 0x65, 0x01],
            |e| matches!(e, DecodeError::MessageTooLong { len: 500_000_001 }),
        ),
        ("negative message length", vec![0, 0, 0x80, 0, 0, 0], |e| {
            matches!(e, DecodeError::MessageTooLong { len: 0x8000_0000 })
        }),
        (
            "lz4 without prefix",
            vec![0, 2, 0x10, 0x01, 0, 0, 0, 3, 0, 0, 1],
            |e| matches!(e, DecodeError::CompressedTooShort { len: 3 }),
        ),
        (
            "decompressed too long",
            vec![0, 2, 0x10, 0x01, 0, 0, 0, 5, 0x1d, 0xcd, 0x65, 0x01, 0],
            |e| matches!(e, DecodeError::DecompressedTooLong { len: 500_000_001 }),
        ),
        (
            "decompression bomb",
            vec![0, 2, 0x10, 0x01, 0, 0, 0, 5, 0x10, 0, 0, 0, 0],
            |e| {
                matches!(
                    e,
                    DecodeError::DecompressedSizeImpossible {
                        declared: 0x1000_0000,
                        compressed: 1
                    }
                )
            },
        ),
        (
            "corrupt lz4",
            vec![0, 2, 0x10, 0x01, 0, 0, 0, 6, 0, 0, 0, 10, 0xf0, 0x01],
            |e| matches!(e, DecodeError::Lz4 { .. }),
        ),
        (
            "bad body protobuf",
            vec![0, 2, 0x08, 0x07, 0, 0, 0, 2, 0x0a, 0x05],
            |e| {
                matches!(
                    e,
                    DecodeError::Protobuf {
                        message_type: bep::MessageType::Close,
                        ..
                    }
                )
            },
        ),
        (
            "invalid utf-8",
            vec![0, 2, 0x08, 0x07, 0, 0, 0, 3, 0x0a, 0x01, 0xff],
            |e| {
                matches!(
                    e,
                    DecodeError::InvalidUtf8 {
                        message_type: bep::MessageType::Close
                    }
                )
            },
        ),
    ];
    for (what, bytes, check) in cases {
        let err = decode_all(&bytes).expect_err(what);
        assert!(check(&err), "{what}: got {err:?}");
    }
}

#[test]
fn decoder_stays_failed_after_an_error() {
    let mut d = Decoder::new();
    d.feed(&[0x80, 0x00]);
    assert!(d.next_message().is_err());
    d.feed(&[0, 2, 0x08, 0x06, 0, 0, 0, 0]);
    assert_eq!(d.next_message(), Err(DecodeError::AlreadyFailed));
}

#[test]
fn symlink_target_survives_non_utf8_bytes() {
    let f = bep::FileInfo {
        name: "l".into(),
        r#type: 4,
        symlink_target: vec![0xff, 0xfe, b'/'],
        ..Default::default()
    };
    let m = Message::IndexUpdate(bep::IndexUpdate {
        folder: "f".into(),
        files: vec![f],
        ..Default::default()
    });
    assert_eq!(
        decode_all(&encode(&m, CompressionPolicy::Never)).unwrap(),
        vec![m]
    );
}
