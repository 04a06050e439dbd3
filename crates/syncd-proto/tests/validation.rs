//! The receiver's rules (spec bep-wire §7.7–7.8), one distinct error per violation, plus block
//! sizes and device IDs (re-exported from syncd-types).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure.

use sha2::{Digest, Sha256};
use syncd_proto::{
    DeviceId, MAX_REQUEST_SIZE, ShortId, ValidationError, bep, block_size, blocks_hash, cdc,
    normalize_file_info, validate_file_info, validate_file_info_strict, validate_request,
};

/// A predicate recognising one error variant.
type Check = fn(&ValidationError) -> bool;

const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn block(offset: i64, size: i32) -> bep::BlockInfo {
    bep::BlockInfo {
        offset,
        size,
        hash: vec![7; 32],
        weak_hash: 0,
    }
}

fn file(name: &str, size: i64, blocks: Vec<bep::BlockInfo>) -> bep::FileInfo {
    bep::FileInfo {
        name: name.into(),
        size,
        blocks,
        ..Default::default()
    }
}

fn dir(name: &str) -> bep::FileInfo {
    bep::FileInfo {
        name: name.into(),
        r#type: bep::FileInfoType::Directory as i32,
        ..Default::default()
    }
}

fn symlink(name: &str) -> bep::FileInfo {
    bep::FileInfo {
        name: name.into(),
        r#type: bep::FileInfoType::Symlink as i32,
        symlink_target: b"t".to_vec(),
        no_permissions: true,
        ..Default::default()
    }
}

#[test]
fn well_formed_entries_pass() {
    let empty = bep::FileInfo {
        blocks: vec![bep::BlockInfo {
            hash: hex::decode(EMPTY_SHA).unwrap(),
            ..Default::default()
        }],
        ..file("a/empty", 0, vec![])
    };
    let deleted = bep::FileInfo {
        deleted: true,
        ..file("gone", 0, vec![])
    };
    let invalid = bep::FileInfo {
        invalid: true,
        ..file("ignored", 5, vec![])
    };
    for f in [
        file("a/b.txt", 300, vec![block(0, 200), block(200, 100)]),
        empty,
        deleted,
        invalid,
        dir("a"),
        symlink("l"),
    ] {
        validate_file_info(&f).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        validate_file_info_strict(&f).unwrap_or_else(|e| panic!("{}: {e}", f.name));
    }
}

#[test]
fn file_info_violation_table() {
    let deleted_with_blocks = bep::FileInfo {
        deleted: true,
        ..file("d", 0, vec![block(0, 0)])
    };
    let dir_with_blocks = bep::FileInfo {
        blocks: vec![block(0, 1)],
        ..dir("d")
    };
    let link_with_blocks = bep::FileInfo {
        blocks: vec![block(0, 1)],
        ..symlink("l")
    };
    let old_link_with_blocks = bep::FileInfo {
        r#type: 2,
        ..link_with_blocks.clone()
    };
    let bad_hash = file(
        "f",
        3,
        vec![bep::BlockInfo {
            hash: vec![1; 20],
            ..block(0, 3)
        }],
    );
    let cases: Vec<(bep::FileInfo, Check)> = vec![
        (file("../escape", 1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (file("/abs", 1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (file("a//b", 1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (file("", 1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (file(".", 1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (file("e\u{301}", 1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (deleted_with_blocks, |e| {
            matches!(e, ValidationError::DeletedWithBlocks { .. })
        }),
        (dir_with_blocks, |e| {
            matches!(e, ValidationError::DirectoryWithBlocks { .. })
        }),
        (link_with_blocks, |e| {
            matches!(e, ValidationError::SymlinkWithBlocks { .. })
        }),
        (old_link_with_blocks, |e| {
            matches!(e, ValidationError::SymlinkWithBlocks { .. })
        }),
        (file("f", 10, vec![]), |e| {
            matches!(e, ValidationError::FileWithoutBlocks { .. })
        }),
        (file("f", 0, vec![]), |e| {
            matches!(e, ValidationError::FileWithoutBlocks { .. })
        }),
        (file("f", 0, vec![block(0, 0), block(0, 0)]), |e| {
            matches!(e, ValidationError::EmptyFileBlocks { blocks: 2, .. })
        }),
        (file("f", 0, vec![block(0, 5)]), |e| {
            matches!(e, ValidationError::EmptyFileBlocks { blocks: 1, .. })
        }),
        (file("f", -1, vec![block(0, 1)]), |e| {
            matches!(e, ValidationError::NegativeSize { size: -1, .. })
        }),
        (file("f", 300, vec![block(0, 200)]), |e| {
            matches!(e, ValidationError::BlocksDoNotCoverSize { size: 300, .. })
        }),
        (file("f", 300, vec![block(0, 200), block(100, 100)]), |e| {
            matches!(e, ValidationError::BlocksDoNotCoverSize { .. })
        }),
        (bad_hash, |e| {
            matches!(
                e,
                ValidationError::BlockHashLength {
                    index: 0,
                    len: 20,
                    ..
                }
            )
        }),
    ];
    for (f, check) in cases {
        let err = validate_file_info(&f).expect_err(&f.name);
        assert!(check(&err), "{:?}: got {err:?}", f.name);
    }
}

#[test]
fn odd_directory_and_symlink_sizes_pass_the_default_check_and_fail_the_strict_one() {
    let d = bep::FileInfo {
        size: 4096,
        ..dir("d")
    };
    let d128 = bep::FileInfo {
        size: 128,
        ..dir("d")
    };
    let l = bep::FileInfo {
        size: 5,
        ..symlink("l")
    };
    validate_file_info(&d).unwrap();
    validate_file_info(&l).unwrap();
    validate_file_info_strict(&d128).unwrap();
    assert!(matches!(
        validate_file_info_strict(&d),
        Err(ValidationError::DirectorySize { size: 4096, .. })
    ));
    assert!(matches!(
        validate_file_info_strict(&l),
        Err(ValidationError::SymlinkSize { size: 5, .. })
    ));
}

#[test]
fn normalising_zeroes_directory_and_symlink_sizes_and_modernises_symlink_type() {
    let mut d = bep::FileInfo {
        size: 4096,
        ..dir("d")
    };
    let mut l = bep::FileInfo {
        size: 5,
        r#type: 3,
        ..symlink("l")
    };
    normalize_file_info(&mut d);
    normalize_file_info(&mut l);
    assert_eq!(
        (d.size, l.size, l.r#type()),
        (0, 0, bep::FileInfoType::Symlink)
    );
    validate_file_info_strict(&d).unwrap();
    validate_file_info_strict(&l).unwrap();
}

fn request(name: &str, offset: i64, size: i32, hash: Vec<u8>) -> bep::Request {
    bep::Request {
        name: name.into(),
        folder: "f".into(),
        offset,
        size,
        hash,
        ..Default::default()
    }
}

#[test]
fn request_rule_table() {
    validate_request(&request("a/b", 0, MAX_REQUEST_SIZE, vec![1; 32])).unwrap();
    validate_request(&request("a/b", 131072, 0, vec![1; 32])).unwrap();
    let cases: Vec<(bep::Request, Check)> = vec![
        (request("../x", 0, 1, vec![1; 32]), |e| {
            matches!(e, ValidationError::InvalidName { .. })
        }),
        (request("a", 0, -1, vec![1; 32]), |e| {
            matches!(e, ValidationError::RequestSize { size: -1 })
        }),
        (request("a", 0, MAX_REQUEST_SIZE + 1, vec![1; 32]), |e| {
            matches!(e, ValidationError::RequestSize { .. })
        }),
        (request("a", -5, 1, vec![1; 32]), |e| {
            matches!(e, ValidationError::RequestOffset { offset: -5 })
        }),
        (request("a", 0, 1, vec![]), |e| {
            matches!(e, ValidationError::RequestWithoutHash { .. })
        }),
    ];
    for (r, check) in cases {
        let err = validate_request(&r).expect_err(&r.name);
        assert!(check(&err), "{r:?}: got {err:?}");
    }
}

#[test]
fn block_size_table() {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let cases = [
        (0, 128 * KIB),
        (250 * MIB - 1, 128 * KIB),
        (2000 * 128 * KIB, 256 * KIB),
        (500 * MIB - 1, 256 * KIB),
        (500 * MIB, 512 * KIB),
        (2000 * 512 * KIB, MIB),
        (2000 * MIB - 1, MIB),
        (2000 * MIB, 2 * MIB),
        (2000 * 2 * MIB, 4 * MIB),
        (2000 * 4 * MIB, 8 * MIB),
        (2000 * 8 * MIB, 16 * MIB),
        (u64::MAX, 16 * MIB),
    ];
    for (size, expected) in cases {
        assert_eq!(u64::from(block_size(size)), expected, "file size {size}");
    }
}

#[test]
fn blocks_hash_is_sha256_of_concatenated_block_hashes() {
    let blocks = vec![
        bep::BlockInfo {
            hash: vec![1; 32],
            ..block(0, 1)
        },
        bep::BlockInfo {
            hash: vec![2; 32],
            weak_hash: 99,
            ..block(1, 1)
        },
    ];
    let mut cat = vec![1u8; 32];
    cat.extend_from_slice(&[2; 32]);
    assert_eq!(blocks_hash(&blocks), <[u8; 32]>::from(Sha256::digest(&cat)));
    assert_eq!(hex::encode(blocks_hash(&[])), EMPTY_SHA);
}

fn chunked(size: i64, chunks: Vec<(i64, i32)>, version: u32) -> bep::FileInfo {
    bep::FileInfo {
        syncd_chunks: Some(bep::SyncdChunks {
            format_version: version,
            chunks: chunks
                .into_iter()
                .map(|(offset, size)| bep::SyncdChunk {
                    offset,
                    size,
                    hash: vec![3; 32],
                })
                .collect(),
        }),
        ..file("f", size, vec![block(0, i32::try_from(size).unwrap())])
    }
}

#[test]
fn chunk_list_is_used_only_when_well_formed_and_of_our_format_version() {
    let good = chunked(
        100_000,
        vec![(0, 60_000), (60_000, 40_000)],
        cdc::FORMAT_VERSION,
    );
    assert_eq!(cdc::usable_chunks(&good).map(<[_]>::len), Some(2));
    let cases = [
        chunked(
            100_000,
            vec![(0, 60_000), (60_000, 40_000)],
            cdc::FORMAT_VERSION + 1,
        ),
        chunked(100_000, vec![(0, 60_000)], cdc::FORMAT_VERSION),
        chunked(
            100_000,
            vec![(0, 60_000), (50_000, 50_000)],
            cdc::FORMAT_VERSION,
        ),
        chunked(300_000, vec![(0, 300_000)], cdc::FORMAT_VERSION),
        chunked(10, vec![(0, 0), (0, 10)], cdc::FORMAT_VERSION),
    ];
    for f in &cases {
        assert_eq!(cdc::usable_chunks(f), None, "{:?}", f.syncd_chunks);
    }
    assert_eq!(cdc::usable_chunks(&file("f", 1, vec![block(0, 1)])), None);
}

#[test]
fn chunk_extension_uses_field_7001_on_the_wire() {
    let f = chunked(10, vec![(0, 10)], 1);
    let mut f_plain = f.clone();
    f_plain.syncd_chunks = None;
    let bytes = prost::Message::encode_to_vec(&f);
    let plain = prost::Message::encode_to_vec(&f_plain);
    // Tag of field 7001, wire type 2: (7001 << 3) | 2 = 56010 = varint ca b5 03.
    assert_eq!(&bytes[plain.len()..plain.len() + 3], &[0xca, 0xb5, 0x03]);
}

// Device IDs: the spec's vectors, through the re-export from syncd-types.

const CANONICAL: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

#[test]
fn device_id_vectors_format_as_the_spec_says() {
    let cases = [
        (
            "479403ffdef496b5f5e5bc9c0a15221e70073164509fa30761af63094f6f945c",
            "I6KAH76-66SLLLB-5PFXSOA-UFJCDZC-YAOMLEK-CP2GB32-BV5RQST-3PSROAU",
        ),
        (
            "64516fb94d24e7b637d20d9846ebaeffb09556ef3968c8276fefc3fe24c144c2",
            "MRIW7OK-NETT3M4-N6SBWME-N25O76W-YJKVXPH-FUMQJ3S-P57B74J-GBITBAC",
        ),
        (
            "dff67945f05bdab4270acd6057f1eacfa3ac93cade07ce6a89384c181ad6b80e",
            "373HSRP-QLPNLIE-JYKZVQF-P4PKZ63-R2ZE6K3-YD442U2-JHBGBQG-WWXAHAU",
        ),
        (
            "7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205",
            CANONICAL,
        ),
        (
            &hex::encode("asdl".repeat(8)),
            "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD",
        ),
    ];
    for (bytes, text) in cases {
        let id = DeviceId::from_slice(&hex::decode(bytes).unwrap()).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(text.parse::<DeviceId>().unwrap(), id);
    }
}

#[test]
fn device_id_from_certificate_der_is_its_sha256() {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/syncthing-cert.pem"
    ))
    .unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64_decode(&b64);
    assert_eq!(
        DeviceId::from_cert_der(&der).to_string(),
        "ZXLMUHB-XXVWOZW-S4324AT-7JQF7N4-Z3X47QD-ONS23D3-UDQYFGD-3HZVTAE"
    );
}

/// Minimal standard-alphabet base64 decoder for the PEM above (test helper).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | u32::from(val(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn device_id_spellings_normalise_to_the_same_id() {
    let expected: DeviceId = CANONICAL.parse().unwrap();
    for s in [
        "P56IOI-7MZJNU-2IQGDR-EYDM2M-GTMGL3-BXNPQ6-W5BTBB-Z4TJXZ-WICQ",
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",
        &CANONICAL.to_lowercase(),
        "p561017mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmt88z4tjxzwicq2",
        "P56IOI7 MZJNU2Y IQGDREY DM2MGTI MGL3BXN PQ6W5BM TBBZ4TJ XZWICQ2",
    ] {
        assert_eq!(s.parse::<DeviceId>().unwrap(), expected, "{s}");
    }
}

#[test]
fn device_id_rejections() {
    for s in [
        "a",
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQCCCC",
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ3",
    ] {
        assert!(s.parse::<DeviceId>().is_err(), "{s}");
    }
}

#[test]
fn short_id_is_first_eight_bytes_big_endian_and_seven_characters() {
    let id: DeviceId = CANONICAL.parse().unwrap();
    assert_eq!(id.short(), ShortId(0x7f7c_8723_ecca_5b4d));
    assert_eq!(id.short().to_string(), "P56IOI7");
}
