//! Real bytes captured from Syncthing 1.19.2 (tests/data, see its README.md): every fixture
//! decodes to the values recorded in `fixtures.json`, and re-encoding what we decoded gives the
//! same bytes (uncompressed fixtures) or the same body (compressed ones, whose LZ4 block
//! depends on the compressor).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use syncd_proto::{
    CompressionPolicy, Decoder, DeviceId, Message, bep, blocks_hash_v1, decode_hello, encode_hello,
    encode_message, validate_file_info, validate_request,
};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn fixtures() -> Map<String, Value> {
    let text = std::fs::read_to_string(data_dir().join("fixtures.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["fixtures"].as_object().unwrap().clone()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap()
}

/// Builds JSON the way the fixture's decoder wrote it: proto field names, zero values left out,
/// bytes as hex.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn s(mut self, k: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn n<T: Into<i128> + Copy>(mut self, k: &str, v: T) -> Self {
        let wide: i128 = v.into();
        if wide != 0 {
            self.0
                .insert(k.into(), serde_json::from_str(&wide.to_string()).unwrap());
        }
        self
    }
    fn b(mut self, k: &str, v: bool) -> Self {
        if v {
            self.0.insert(k.into(), json!(true));
        }
        self
    }
    fn hex(mut self, k: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), json!(hex::encode(v)));
        }
        self
    }
    fn list(mut self, k: &str, v: Vec<Value>) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), Value::Array(v));
        }
        self
    }
    fn obj(mut self, k: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v);
        }
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn hello_json(h: &bep::Hello) -> Value {
    Obj::default()
        .s("device_name", &h.device_name)
        .s("client_name", &h.client_name)
        .s("client_version", &h.client_version)
        .n("num_connections", h.num_connections)
        .n("timestamp", h.timestamp)
        .done()
}

fn device_json(d: &bep::Device) -> Value {
    let id = DeviceId::from_slice(&d.id).unwrap();
    Obj::default()
        .hex("id", &d.id)
        .s("name", &d.name)
        .list("addresses", d.addresses.iter().map(|a| json!(a)).collect())
        .n("compression", d.compression)
        .s("cert_name", &d.cert_name)
        .n("max_sequence", d.max_sequence)
        .b("introducer", d.introducer)
        .n("index_id", d.index_id)
        .b("skip_introduction_removals", d.skip_introduction_removals)
        .hex("encryption_password_token", &d.encryption_password_token)
        .s("id_str", &id.to_string())
        .done()
}

fn cluster_config_json(c: &bep::ClusterConfig) -> Value {
    let folders = c
        .folders
        .iter()
        .map(|f| {
            Obj::default()
                .s("id", &f.id)
                .s("label", &f.label)
                .b("read_only", f.read_only)
                .b("ignore_permissions", f.ignore_permissions)
                .b("ignore_delete", f.ignore_delete)
                .b("disable_temp_indexes", f.disable_temp_indexes)
                .b("paused", f.paused)
                .list("devices", f.devices.iter().map(device_json).collect())
                .done()
        })
        .collect();
    Obj::default()
        .list("folders", folders)
        .b("secondary", c.secondary)
        .done()
}

fn vector_json(v: &Option<bep::Vector>) -> Option<Value> {
    v.as_ref().map(|v| {
        let counters = v
            .counters
            .iter()
            .map(|c| Obj::default().n("id", c.id).n("value", c.value).done());
        Obj::default().list("counters", counters.collect()).done()
    })
}

fn file_json(f: &bep::FileInfo) -> Value {
    assert!(
        f.platform.is_none() && f.syncd_chunks.is_none(),
        "1.19.2 sends neither"
    );
    let blocks = f
        .blocks
        .iter()
        .map(|b| {
            Obj::default()
                .n("offset", b.offset)
                .n("size", b.size)
                .hex("hash", &b.hash)
                .n("weak_hash", b.weak_hash)
                .done()
        })
        .collect();
    Obj::default()
        .s("name", &f.name)
        .n("type", f.r#type)
        .n("size", f.size)
        .n("permissions", f.permissions)
        .n("modified_s", f.modified_s)
        .b("deleted", f.deleted)
        .b("invalid", f.invalid)
        .b("no_permissions", f.no_permissions)
        .obj("version", vector_json(&f.version))
        .n("sequence", f.sequence)
        .n("modified_ns", f.modified_ns)
        .n("modified_by", f.modified_by)
        .n("block_size", f.block_size)
        .list("blocks", blocks)
        .s(
            "symlink_target",
            std::str::from_utf8(&f.symlink_target).unwrap(),
        )
        .hex("blocks_hash", &f.blocks_hash)
        .hex("encrypted", &f.encrypted)
        .hex("previous_blocks_hash", &f.previous_blocks_hash)
        .done()
}

fn index_json(folder: &str, files: &[bep::FileInfo], last: i64, prev: i64) -> Value {
    Obj::default()
        .s("folder", folder)
        .list("files", files.iter().map(file_json).collect())
        .n("last_sequence", last)
        .n("prev_sequence", prev)
        .done()
}

/// The Response form used by fixtures.json: data summarised, full hex only where recorded.
fn response_json(r: &bep::Response, with_hex: bool) -> Value {
    let mut o = Obj::default().n("id", r.id).n("code", r.code);
    o.0.insert("data_len".into(), json!(r.data.len()));
    o.0.insert(
        "data_sha256".into(),
        json!(hex::encode(Sha256::digest(&r.data))),
    );
    if with_hex {
        o.0.insert("data_hex".into(), json!(hex::encode(&r.data)));
    }
    o.done()
}

fn message_json(m: &Message, expected: &Value) -> Value {
    match m {
        Message::ClusterConfig(c) => cluster_config_json(c),
        Message::Index(i) => index_json(&i.folder, &i.files, i.last_sequence, 0),
        Message::IndexUpdate(i) => {
            index_json(&i.folder, &i.files, i.last_sequence, i.prev_sequence)
        }
        Message::Request(r) => Obj::default()
            .n("id", r.id)
            .s("folder", &r.folder)
            .s("name", &r.name)
            .n("offset", r.offset)
            .n("size", r.size)
            .hex("hash", &r.hash)
            .b("from_temporary", r.from_temporary)
            .n("weak_hash", r.weak_hash)
            .n("block_no", r.block_no)
            .done(),
        Message::Response(r) => response_json(r, expected.get("data_hex").is_some()),
        Message::Ping(_) => json!({}),
        Message::Close(c) => Obj::default().s("reason", &c.reason).done(),
        Message::DownloadProgress(_) => panic!("no DownloadProgress fixture"),
    }
}

fn decode_one(bytes: &[u8]) -> Message {
    let mut d = Decoder::new();
    d.feed(bytes);
    let m = d.next_message().unwrap().expect("a whole message");
    assert_eq!(d.next_message().unwrap(), None);
    assert_eq!(d.buffered_len(), 0, "the fixture is exactly one message");
    m
}

#[test]
fn every_hello_fixture_decodes_to_its_recorded_values_and_reencodes_identically() {
    let all = fixtures();
    let hellos: Vec<_> = all
        .iter()
        .filter(|(k, _)| k.ends_with("hello.bin") || k.contains("hello-"))
        .collect();
    assert_eq!(hellos.len(), 3);
    for (name, fx) in hellos {
        let bytes = read(name);
        let (hello, used) = decode_hello(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "{name}");
        assert_eq!(
            used,
            fx["framing"]["total_len"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(hello_json(&hello), fx["decoded"], "{name}");
        let mut out = Vec::new();
        encode_hello(&hello, &mut out);
        assert_eq!(out, bytes, "{name}");
    }
}

#[test]
fn every_message_fixture_decodes_to_its_recorded_values() {
    let all = fixtures();
    let mut checked = 0;
    for (name, fx) in all.iter().filter(|(k, _)| !k.contains("hello")) {
        let bytes = read(name);
        let framing = &fx["framing"];
        assert_eq!(
            bytes.len() as u64,
            framing["total_len"].as_u64().unwrap(),
            "{name}"
        );
        let m = decode_one(&bytes);
        assert_eq!(
            m.message_type() as u64,
            framing["type"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(message_json(&m, &fx["decoded"]), fx["decoded"], "{name}");
        checked += 1;
    }
    assert_eq!(
        checked, 16,
        "every message fixture (Syncthing's and the accepted probe's)"
    );
}

#[test]
fn reencoding_uncompressed_fixtures_gives_the_captured_bytes() {
    for (name, fx) in fixtures().iter().filter(|(k, _)| !k.contains("hello")) {
        if fx["framing"]["compression"] != 0 {
            continue;
        }
        let bytes = read(name);
        let mut out = Vec::new();
        encode_message(&decode_one(&bytes), CompressionPolicy::Never, &mut out).unwrap();
        assert_eq!(hex::encode(&out), hex::encode(&bytes), "{name}");
    }
}

#[test]
fn reencoding_compressed_fixtures_gives_the_captured_body_and_a_compressed_frame() {
    let mut seen = 0;
    for (name, fx) in fixtures().iter().filter(|(k, _)| !k.contains("hello")) {
        let framing = &fx["framing"];
        if framing["compression"] != 1 {
            continue;
        }
        seen += 1;
        let bytes = read(name);
        // The 4-byte prefix after the framing is the big-endian uncompressed length.
        let hl = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let prefix = &bytes[2 + hl + 4..2 + hl + 8];
        assert_eq!(
            hex::encode(prefix),
            framing["lz4_uncompressed_len_be_hex"],
            "{name}"
        );

        let m = decode_one(&bytes);
        let mut plain = Vec::new();
        encode_message(&m, CompressionPolicy::Never, &mut plain).unwrap();
        let body = &plain[2 + plain[1] as usize + 4..];
        assert_eq!(
            body.len() as u64,
            framing["body_len"].as_u64().unwrap(),
            "{name}"
        );
        if let Some(sha) = framing.get("body_sha256") {
            assert_eq!(&json!(hex::encode(Sha256::digest(body))), sha, "{name}");
        }
        let mut again = Vec::new();
        encode_message(&m, CompressionPolicy::Always, &mut again).unwrap();
        assert_eq!(
            &again[..2 + hl],
            &bytes[..2 + hl],
            "{name}: same header (LZ4 flag set)"
        );
        assert_eq!(decode_one(&again), m, "{name}");
    }
    assert_eq!(seen, 3);
}

#[test]
fn index_fixture_blocks_hashes_are_the_1_19_formula_and_files_validate() {
    let Message::Index(index) = decode_one(&read("index.bin")) else {
        panic!("not an Index")
    };
    assert_eq!(index.files.len(), 7);
    for f in &index.files {
        validate_file_info(f).unwrap();
        if !f.blocks.is_empty() {
            assert_eq!(
                blocks_hash_v1(&f.blocks).as_slice(),
                f.blocks_hash.as_slice(),
                "{}",
                f.name
            );
        }
    }
    let link = index.files.iter().find(|f| f.name == "link").unwrap();
    assert_eq!(link.r#type(), bep::FileInfoType::Symlink);
    assert_eq!(link.symlink_target, b"hello.txt");
}

#[test]
fn request_fixtures_validate() {
    for name in ["request.bin", "probe-sent/request.bin"] {
        let Message::Request(r) = decode_one(&read(name)) else {
            panic!("not a Request")
        };
        validate_request(&r).unwrap();
    }
}

#[test]
fn all_fixtures_concatenated_decode_in_order_from_one_stream() {
    let names = [
        "cluster-config.bin",
        "index.bin",
        "index-compressed.bin",
        "index-update.bin",
        "request.bin",
        "response.bin",
        "response-compressed.bin",
        "response-error.bin",
        "ping.bin",
        "close.bin",
    ];
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for n in names {
        let b = read(n);
        expected.push(decode_one(&b));
        stream.extend_from_slice(&b);
    }
    let mut d = Decoder::new();
    let mut got = Vec::new();
    for chunk in stream.chunks(997) {
        d.feed(chunk);
        while let Some(m) = d.next_message().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, expected);
}
