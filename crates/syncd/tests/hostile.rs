//! Hostile peers against the real `syncd` daemon (issue 13: "Hostile peer", "Unknown and
//! impostor devices", "REST").
//!
//! `hostile_peer_suite` starts one daemon whose folder `shared` is shared with a device whose
//! identity the test holds, then connects over real TLS on loopback and sends, each on a fresh
//! connection, one hostile input per case. For every case it checks that nothing outside the
//! folder was read or written (a canary tree and a private folder are compared with a snapshot;
//! served data is compared with the canary), that the daemon is alive and answers
//! `/rest/noauth/health`, that the connection was closed exactly where the BEP spec says a peer
//! closes (and stayed usable where it does not), and that the daemon's log names the device and
//! the violation. It prints one line per case and, last, the line `cargo xtask torture` parses:
//!
//! `HOSTILE SUMMARY inputs=<N> violations_logged=<M> files_outside_touched=<K> daemon_crashes=<C>`
//!
//! Run with `HOSTILE_ECHO_LOG=1` to see the daemon's log.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "hostile/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use syncd_proto::bep;
use syncd_proto::{CompressionPolicy, Message, encode_message};
use syncd_transport::Identity;

/// What one hostile case expects and what it saw.
struct Case {
    name: String,
    /// `Some(words)`: a log line naming the device must contain these words.
    log_words: Option<Vec<&'static str>>,
    expect_closed: bool,
    /// Why the connection ended (`None`: still open after the wait).
    closed: Option<String>,
    logged: Option<String>,
    /// Anything else the case found wrong (data served from outside, a file written, ...).
    problems: Vec<String>,
    outside_touched: bool,
    healthy: bool,
}

impl Case {
    fn new(
        name: impl Into<String>,
        expect_closed: bool,
        log_words: Option<Vec<&'static str>>,
    ) -> Self {
        Case {
            name: name.into(),
            log_words,
            expect_closed,
            closed: None,
            logged: None,
            problems: Vec::new(),
            outside_touched: false,
            healthy: false,
        }
    }

    fn ok(&self) -> bool {
        self.problems.is_empty()
            && self.healthy
            && !self.outside_touched
            && self.closed.is_some() == self.expect_closed
            && (self.log_words.is_none() || self.logged.is_some())
    }
}

/// The suite's state: one daemon, the outside snapshot, the results.
struct Suite {
    d: Daemon,
    baseline: std::collections::BTreeMap<String, String>,
    cases: Vec<Case>,
    crashes: usize,
    /// Names the peer may legitimately have made the daemon create in `shared`.
    allowed: Vec<&'static str>,
}

/// How long a case waits for a close that the spec requires (generous: the machine is shared).
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// How long a case watches a connection that must stay open before probing it.
const OPEN_WAIT: Duration = Duration::from_secs(2);

impl Suite {
    /// A fresh, configured connection: Hello, the daemon's ClusterConfig, ours. Retried while
    /// the daemon still holds the previous connection.
    async fn fresh(&self) -> Peer {
        let mut last = String::new();
        // Up to ~60 s: a daemon just started on a loaded machine may still be opening its
        // index and scanning when the first case connects (10 s was seen to be too short).
        for _ in 0..120 {
            match Peer::connect(self.d.listen, &self.d.peer).await {
                Ok(mut p) => match p.cluster_config(self.d.id, &[SHARED]).await {
                    Ok(_) => return p,
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("could not open a configured connection to the daemon: {last}");
    }

    /// After a case: the close/open expectation, the log line, the outside and the health.
    async fn finish(&mut self, mut c: Case, mark: usize, peer: Option<&mut Peer>) {
        if let Some(p) = peer {
            let wait = if c.expect_closed {
                CLOSE_WAIT
            } else {
                OPEN_WAIT
            };
            c.closed = p.closed_within(wait).await;
            if !c.expect_closed && c.closed.is_none() {
                // Still open: it must still serve.
                let id = 0x7000_0000 + i32::try_from(self.cases.len()).unwrap();
                match p
                    .request(request(id, SHARED, "hello.txt", 12, sha(HELLO)))
                    .await
                {
                    Ok(r) if r.data == HELLO => {}
                    Ok(r) => c
                        .problems
                        .push(format!("probe got code {} {:?}", r.code, r.data)),
                    Err(e) => c.closed = Some(format!("probe failed: {e}")),
                }
            }
        }
        if let Some(words) = &c.log_words {
            c.logged = self.d.wait_log(mark, self.d.peer.device_id(), words);
        }
        let now = self.d.outside_snapshot();
        if now != self.baseline {
            c.outside_touched = true;
            let changed: Vec<_> = now
                .iter()
                .filter(|(k, v)| self.baseline.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .chain(
                    self.baseline
                        .keys()
                        .filter(|k| !now.contains_key(*k))
                        .cloned(),
                )
                .collect();
            c.problems.push(format!("outside changed: {changed:?}"));
            self.baseline = now;
        }
        let unexpected = self.d.unexpected_in_shared(&self.allowed);
        if !unexpected.is_empty() {
            c.problems
                .push(format!("unexpected files in the folder: {unexpected:?}"));
        }
        c.healthy = self.d.healthy();
        if !c.healthy {
            self.crashes += 1;
        }
        println!(
            "HOSTILE CASE {} {} (closed: {:?}; log: {:?}{})",
            c.name,
            if c.ok() { "ok" } else { "FAILED" },
            c.closed,
            c.logged
                .as_deref()
                .map(|l| l.chars().take(160).collect::<String>()),
            if c.problems.is_empty() {
                String::new()
            } else {
                format!("; problems: {:?}", c.problems)
            }
        );
        self.cases.push(c);
    }

    /// One message on a fresh connection.
    async fn send_case(&mut self, mut c: Case, msg: &Message) {
        let mark = self.d.log_mark();
        let mut p = self.fresh().await;
        p.send(msg).await;
        if let Message::Request(r) = msg {
            // A served Request must not return data from outside the folder.
            if let Some(data) = first_response_data(&mut p, r.id).await
                && !data.is_empty()
            {
                c.problems.push(format!("served {} bytes", data.len()));
                if data == CANARY || data == PRIVATE_DATA || data == SECRET {
                    c.outside_touched = true;
                }
            }
        }
        self.finish(c, mark, Some(&mut p)).await;
    }

    /// Raw bytes on a fresh connection.
    async fn raw_case(&mut self, c: Case, bytes: &[u8]) {
        let mark = self.d.log_mark();
        let mut p = self.fresh().await;
        p.send_raw(bytes).await;
        self.finish(c, mark, Some(&mut p)).await;
    }
}

/// The data of the Response to `id`, if one comes before the connection ends (other messages
/// are skipped; a Close/EOF ends the wait). Leaves the connection state to `finish`.
async fn first_response_data(p: &mut Peer, id: i32) -> Option<Vec<u8>> {
    loop {
        match p.recv(Duration::from_secs(10)).await {
            Recv::Msg(m) => match *m {
                Message::Response(r) if r.id == id => return Some(r.data),
                Message::Close(c) => {
                    // Put the close back in front for `finish` by re-feeding it.
                    let mut out = Vec::new();
                    encode_message(&Message::Close(c), CompressionPolicy::Never, &mut out).unwrap();
                    p.dec.feed(&out);
                    return None;
                }
                _ => {}
            },
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_suite() {
    let d = tokio::task::spawn_blocking(|| start_daemon(&[]))
        .await
        .unwrap();
    let baseline = d.outside_snapshot();
    let mut s = Suite {
        d,
        baseline,
        cases: Vec::new(),
        crashes: 0,
        allowed: vec![".stignore", "hello.txt", "secret.txt"],
    };
    let peer_id = s.d.peer.device_id();
    // Wait until the daemon has scanned `hello.txt` (it announces it in its Index).
    {
        let mut p = s.fresh().await;
        assert!(
            p.wait_announced(SHARED, "hello.txt").await,
            "the daemon never announced hello.txt"
        );
    }
    let outside_abs = s.d.outside.join("abs.txt").to_string_lossy().into_owned();
    let canary_abs =
        s.d.outside
            .join("canary.txt")
            .to_string_lossy()
            .into_owned();

    // 1. Index entries with names a receiver must refuse (spec §7.7: protocol error, close).
    let bad_names: Vec<(&str, String)> = vec![
        ("index-name-dotdot", "../escape.txt".into()),
        ("index-name-inner-dotdot", "sub/../../escape.txt".into()),
        ("index-name-absolute", outside_abs.clone()),
        ("index-name-backslash", "..\\escape.txt".into()),
        ("index-name-nul", "nul\0.txt".into()),
        ("index-name-non-nfc", "e\u{301}scape.txt".into()),
        ("index-name-dot", ".".into()),
    ];
    for (case, name) in bad_names {
        let msg = index(SHARED, vec![file_info(&name, b"pwned\n", peer_id, 10)]);
        s.send_case(
            Case::new(case, true, Some(vec!["violation", "invalid file"])),
            &msg,
        )
        .await;
    }

    // 2. Invalid UTF-8 in a name: the decoder refuses it (dropped without Close).
    {
        let msg = index(SHARED, vec![file_info("BADNAMEX", b"pwned\n", peer_id, 11)]);
        let mut wire = Vec::new();
        encode_message(&msg, CompressionPolicy::Never, &mut wire).unwrap();
        let at = wire.windows(8).position(|w| w == b"BADNAMEX").unwrap();
        wire.splice(at..at + 8, *b"bad\xff\xfe.tx");
        s.raw_case(
            Case::new(
                "index-name-invalid-utf8",
                true,
                Some(vec!["peer fault", "utf-8"]),
            ),
            &wire,
        )
        .await;
    }

    // 3. Index for a folder not shared with the peer, and for one that does not exist.
    for (case, folder) in [
        ("index-unshared-folder", PRIVATE),
        ("index-unknown-folder", "nosuch"),
    ] {
        let msg = index(folder, vec![file_info("x.txt", b"pwned\n", peer_id, 12)]);
        s.send_case(
            Case::new(case, true, Some(vec!["violation", "not shared"])),
            &msg,
        )
        .await;
    }

    // 4. Requests for paths outside the folder: bad names close the connection (§7.7).
    let escaping = [
        (
            "request-dotdot",
            format!("../{PRIVATE}/p.txt"),
            sha(PRIVATE_DATA),
        ),
        ("request-absolute", canary_abs.clone(), sha(CANARY)),
        (
            "request-backslash",
            "..\\outside\\canary.txt".into(),
            sha(CANARY),
        ),
    ];
    for (i, (case, name, hash)) in escaping.into_iter().enumerate() {
        let req = request(100 + i32::try_from(i).unwrap(), SHARED, &name, 26, hash);
        s.send_case(
            Case::new(case, true, Some(vec!["violation", "invalid request"])),
            &Message::Request(req),
        )
        .await;
    }

    // 5. Requests of impossible sizes (2.x closes on size < 0 or > 32 MiB).
    for (i, (case, size)) in [
        ("request-huge-size", i32::MAX),
        ("request-negative-size", -1),
    ]
    .into_iter()
    .enumerate()
    {
        let req = request(
            200 + i32::try_from(i).unwrap(),
            SHARED,
            "hello.txt",
            size,
            sha(HELLO),
        );
        s.send_case(
            Case::new(case, true, Some(vec!["violation", "request size"])),
            &Message::Request(req),
        )
        .await;
    }

    // 6. Requests the daemon refuses with an error code but keeps the connection for:
    //    an ignored file, a folder not shared with the peer, an internal file.
    let refused = [
        (
            "request-ignored-file",
            SHARED,
            "secret.txt",
            SECRET,
            vec!["refus", "ignored"],
        ),
        (
            "request-unshared-folder",
            PRIVATE,
            "p.txt",
            PRIVATE_DATA,
            vec!["refus", "not shared"],
        ),
        (
            "request-internal-file",
            SHARED,
            ".stignore",
            b"secret*\n".as_slice(),
            vec!["refus", "internal"],
        ),
    ];
    for (i, (case, folder, name, data, words)) in refused.into_iter().enumerate() {
        let size = i32::try_from(data.len()).unwrap();
        let req = request(
            300 + i32::try_from(i).unwrap(),
            folder,
            name,
            size,
            sha(data),
        );
        s.send_case(Case::new(case, false, Some(words)), &Message::Request(req))
            .await;
    }

    // 7. A block whose data does not match its hash.
    bad_block_case(&mut s).await;

    // 8. A symlink out of the folder, then a file under it announced and requested.
    symlink_case(&mut s).await;

    // 9. Frames the decoder must refuse (dropped without Close, as Syncthing does).
    let lz4_zeros = lz4_flex::block::compress(&vec![0u8; 4 << 20]);
    let frames: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "frame-length-over-limit",
            raw_frame(1, false, 0x7fff_fff0, &[0; 64]),
            vec!["peer fault", "500000000"],
        ),
        (
            "frame-length-just-over-limit",
            raw_frame(1, false, 500_000_001, &[0; 64]),
            vec!["peer fault", "500000000"],
        ),
        (
            "lz4-declared-over-limit",
            {
                let mut body = 600_000_000u32.to_be_bytes().to_vec();
                body.extend_from_slice(&lz4_zeros);
                raw_frame(1, true, u32::try_from(body.len()).unwrap(), &body)
            },
            vec!["peer fault", "uncompressed length"],
        ),
        (
            "lz4-declared-impossible",
            {
                let mut body = 499_000_000u32.to_be_bytes().to_vec();
                body.extend_from_slice(&lz4_zeros);
                raw_frame(1, true, u32::try_from(body.len()).unwrap(), &body)
            },
            vec!["peer fault", "uncompressed length"],
        ),
        (
            "lz4-expands-past-declared",
            {
                let mut body = 1000u32.to_be_bytes().to_vec();
                body.extend_from_slice(&lz4_zeros);
                raw_frame(1, true, u32::try_from(body.len()).unwrap(), &body)
            },
            vec!["peer fault"],
        ),
        (
            "lz4-garbage-block",
            {
                let mut body = 100u32.to_be_bytes().to_vec();
                body.extend_from_slice(&[0xff; 40]);
                raw_frame(1, true, u32::try_from(body.len()).unwrap(), &body)
            },
            vec!["peer fault"],
        ),
        (
            "garbage-protobuf-index",
            raw_frame(1, false, 16, &[0xff; 16]),
            vec!["peer fault", "malformed"],
        ),
        (
            "garbage-protobuf-request",
            raw_frame(
                3,
                false,
                9,
                &[0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
            ),
            vec!["peer fault", "malformed"],
        ),
        (
            "garbage-header",
            {
                let mut v = vec![0x00, 0x04, 0xff, 0xff, 0xff, 0xff];
                v.extend_from_slice(&[0, 0, 0, 0]);
                v
            },
            vec!["peer fault", "header"],
        ),
        (
            "negative-header-length",
            vec![0x80, 0x00, 0, 0, 0, 0],
            vec!["peer fault", "header length"],
        ),
        (
            "unknown-compression",
            {
                let mut v = vec![0x00, 0x04, 0x08, 0x01, 0x10, 0x07];
                v.extend_from_slice(&[0, 0, 0, 0]);
                v
            },
            vec!["peer fault", "compression"],
        ),
    ];
    for (case, bytes, words) in frames {
        s.raw_case(Case::new(case, true, Some(words)), &bytes).await;
    }

    // 10. A flood of small requests: bounded memory, every one answered, REST still up.
    flood_case(&mut s, 10_000).await;

    // The summary `cargo xtask torture` parses, then the verdict.
    let inputs = s.cases.len();
    let logged = s.cases.iter().filter(|c| c.logged.is_some()).count();
    let touched = s.cases.iter().filter(|c| c.outside_touched).count();
    let crashes = s.crashes + usize::from(!s.d.healthy());
    println!(
        "HOSTILE SUMMARY inputs={inputs} violations_logged={logged} files_outside_touched={touched} daemon_crashes={crashes}"
    );
    let failed: Vec<&str> = s
        .cases
        .iter()
        .filter(|c| !c.ok())
        .map(|c| c.name.as_str())
        .collect();
    assert!(failed.is_empty(), "failed cases: {failed:?}");
    assert_eq!((touched, crashes), (0, 0));
}

/// Announce `bad.txt`; answer the daemon's Request with data of the right length but the
/// wrong content. Nothing may appear under the final name; the log names us.
async fn bad_block_case(s: &mut Suite) {
    let peer_id = s.d.peer.device_id();
    let real = b"the real content!\n";
    let forged = b"FORGED CONTENT!!!\n";
    let mark = s.d.log_mark();
    let mut c = Case::new("block-hash-mismatch", false, Some(vec!["does not match"]));
    let mut p = s.fresh().await;
    p.send(&index(
        SHARED,
        vec![file_info("bad.txt", real, peer_id, 20)],
    ))
    .await;
    let mut answered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while answered < 2 && tokio::time::Instant::now() < deadline {
        match p.recv(Duration::from_secs(5)).await {
            Recv::Msg(m) => {
                if let Message::Request(r) = *m {
                    if r.name == "bad.txt" {
                        answered += 1;
                    }
                    p.send(&Message::Response(bep::Response {
                        id: r.id,
                        data: forged.to_vec(),
                        code: 0,
                    }))
                    .await;
                }
            }
            Recv::Closed(why) => {
                c.problems.push(format!("closed: {why}"));
                break;
            }
            Recv::Timeout if answered > 0 => break,
            Recv::Timeout => {}
        }
    }
    if answered == 0 {
        c.problems.push("the daemon never requested bad.txt".into());
    }
    if s.d.shared.join("bad.txt").exists() {
        c.problems
            .push("bad.txt was written under its final name".into());
    }
    s.finish(c, mark, Some(&mut p)).await;
}

/// `l -> <outside>/elsewhere` announced, then `l/f`: the daemon must neither write `f` through
/// the link nor serve `l/f` from it.
async fn symlink_case(s: &mut Suite) {
    let peer_id = s.d.peer.device_id();
    let target = s.d.outside.join("elsewhere").to_string_lossy().into_owned();
    let through = b"written through the link\n";
    let mark = s.d.log_mark();
    let mut c = Case::new(
        "symlink-escape",
        false,
        Some(vec!["symlink", "refusing", "l/f"]),
    );
    s.allowed.extend(["l", "l/f"]);
    let mut p = s.fresh().await;
    p.send(&index(
        SHARED,
        vec![
            symlink_info("l", &target, peer_id, 30),
            file_info("l/f", through, peer_id, 31),
        ],
    ))
    .await;
    // Serve whatever it asks for, honestly, for a while: the attack needs the daemon to try.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match p.recv(Duration::from_secs(2)).await {
            Recv::Msg(m) => {
                if let Message::Request(r) = *m {
                    p.send(&Message::Response(bep::Response {
                        id: r.id,
                        data: if r.name == "l/f" {
                            through.to_vec()
                        } else {
                            Vec::new()
                        },
                        code: if r.name == "l/f" { 0 } else { 2 },
                    }))
                    .await;
                }
            }
            Recv::Closed(why) => {
                c.problems.push(format!("closed: {why}"));
                break;
            }
            Recv::Timeout => {
                if s.d.wait_log_now(mark, &["l/f"]) {
                    break;
                }
            }
        }
    }
    // Ask the daemon for `l/f` as the canary's content: it must not read through the link.
    match p
        .request(request(
            400,
            SHARED,
            "l/f",
            i32::try_from(CANARY.len()).unwrap(),
            sha(CANARY),
        ))
        .await
    {
        Ok(r) if !r.data.is_empty() => {
            c.problems
                .push(format!("served l/f: {} bytes", r.data.len()));
            c.outside_touched = true;
        }
        Ok(_) => {}
        Err(e) => c.problems.push(format!("request l/f: {e}")),
    }
    let l = std::fs::symlink_metadata(s.d.shared.join("l"));
    if let Ok(m) = &l
        && m.is_dir()
        && s.d.shared.join("l/f").exists()
    {
        // A real directory replaced the link: `l/f` inside the folder is fine.
    }
    s.finish(c, mark, Some(&mut p)).await;
}

/// `n` small Requests for `hello.txt` written at once, answers read concurrently.
async fn flood_case(s: &mut Suite, n: i32) {
    let mark = s.d.log_mark();
    let mut c = Case::new(format!("request-flood-{n}"), false, None);
    let p = s.fresh().await;
    let Peer {
        stream, mut dec, ..
    } = p;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut buf = Vec::new();
        for id in 1..=n {
            let m = Message::Request(request(id, SHARED, "hello.txt", 12, sha(HELLO)));
            encode_message(&m, CompressionPolicy::Never, &mut buf).unwrap();
            if buf.len() > 256 * 1024 {
                if wr.write_all(&buf).await.is_err() {
                    return wr;
                }
                buf.clear();
            }
        }
        let _ = wr.write_all(&buf).await;
        let _ = wr.flush().await;
        wr
    });
    let pid = s.d.child.id();
    let mut peak = 0u64;
    let (mut ok, mut bad) = (0, 0);
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    use tokio::io::AsyncReadExt;
    'outer: while ok + bad < n {
        loop {
            match dec.next_message() {
                Ok(Some(Message::Response(r))) => {
                    if r.code == 0 && r.data == HELLO {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                    if (ok + bad) % 1000 == 0 {
                        peak = peak.max(rss_of(pid));
                    }
                }
                Ok(Some(Message::Close(cl))) => {
                    c.closed = Some(format!("Close{{{}}}", cl.reason));
                    break 'outer;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    c.closed = Some(e.to_string());
                    break 'outer;
                }
            }
        }
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                c.closed = Some("eof".into());
                break;
            }
            Ok(Ok(k)) => dec.feed(chunk.get(..k).unwrap()),
            Err(_) => {
                c.problems.push(format!("timed out after {ok} answers"));
                break;
            }
        }
    }
    let _ = writer.await;
    peak = peak.max(rss_of(pid));
    println!(
        "HOSTILE FLOOD answered={ok} errors={bad} peak_rss_mib={}",
        peak >> 20
    );
    if ok != n {
        c.problems.push(format!(
            "{ok} of {n} requests answered with data ({bad} errors)"
        ));
    }
    // Bounded: far below what 10,000 unbounded 32 MiB buffers would take.
    if peak > 1 << 30 {
        c.problems.push(format!("peak RSS {} MiB", peak >> 20));
    }
    s.finish(c, mark, None).await;
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

// ---------------------------------------------------------------------------------------------
// Unknown and impostor devices.

/// An unconfigured device gets no ClusterConfig or Index: the daemon drops it after Hello
/// and logs the refusal naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_is_refused_before_any_folder_data() {
    let d = tokio::task::spawn_blocking(|| start_daemon(&[]))
        .await
        .unwrap();
    let stranger = Identity::generate().unwrap();
    let mark = d.log_mark();
    // The daemon may already drop us during Hello; either way nothing may arrive.
    if let Ok(mut p) = Peer::connect(d.listen, &stranger).await {
        loop {
            match p.recv(Duration::from_secs(30)).await {
                Recv::Msg(m) => match *m {
                    Message::ClusterConfig(_) | Message::Index(_) | Message::IndexUpdate(_) => {
                        panic!("an unknown device received folder data: {m:?}")
                    }
                    _ => {}
                },
                Recv::Closed(_) => break,
                Recv::Timeout => panic!("the connection of an unknown device stayed open"),
            }
        }
    }
    let line = d.wait_log(mark, stranger.device_id(), &["unknown device"]);
    assert!(
        line.is_some(),
        "no refusal logged: {:?}",
        d.log.lock().unwrap()
    );
}

/// The daemon dials a configured device's address and finds another certificate there: it
/// refuses before sending any ClusterConfig and logs both IDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_at_a_configured_address_is_refused_before_any_folder_data() {
    use tokio::io::AsyncReadExt;
    let impostor = Identity::generate().unwrap();
    let expected = Identity::generate().unwrap().device_id();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    let d = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || start_daemon(&[(expected, addr.as_str())]))
            .await
            .unwrap()
    };
    let mark = 0;
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(120), listener.accept())
        .await
        .expect("the daemon never dialled the configured address")
        .unwrap();
    let server = syncd_transport::tls::server_config(&impostor).unwrap();
    let mut tls = tokio_rustls::TlsAcceptor::from(server)
        .accept(tcp)
        .await
        .unwrap();
    let ours = syncd_transport::hello::our_hello("impostor", "v0.0.1");
    let mut dec = syncd_proto::Decoder::new();
    if let Ok(Ok((_, leftover))) = tokio::time::timeout(
        Duration::from_secs(30),
        syncd_transport::hello::exchange(&mut tls, &ours),
    )
    .await
    {
        dec.feed(&leftover);
        let mut buf = vec![0u8; 4096];
        loop {
            if let Ok(Some(m)) = dec.next_message() {
                assert!(
                    !matches!(m, Message::ClusterConfig(_) | Message::Index(_)),
                    "the impostor received folder data: {m:?}"
                );
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => dec.feed(buf.get(..n).unwrap()),
                Err(_) => panic!("the impostor's connection stayed open"),
            }
        }
    }
    let line = d.wait_log(mark, impostor.device_id(), &["another id"]);
    assert!(
        line.is_some(),
        "no refusal logged: {:?}",
        d.log.lock().unwrap()
    );
    assert!(line.unwrap().contains(&expected.to_string()));
}

// ---------------------------------------------------------------------------------------------
// REST: auth on every route, loopback by default, Host check.

/// Every `(method, path)` the REST router declares, read from `src/rest.rs` itself so that a
/// new route cannot escape this test: each `.route("path", get(..).post(..)...)` call.
fn declared_routes() -> Vec<(String, String)> {
    let src = include_str!("../src/rest.rs");
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        let body = &rest[at + ".route(".len()..];
        // The call's argument span: up to the matching `)`.
        let (mut depth, mut end) = (1usize, body.len());
        for (i, ch) in body.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &body[..end];
        let q1 = args.find('"').unwrap();
        let q2 = q1 + 1 + args[q1 + 1..].find('"').unwrap();
        let path = args[q1 + 1..q2].to_owned();
        // Method calls at the top level of the second argument.
        let mut depth = 0usize;
        let bytes = args.as_bytes();
        for (i, ch) in args.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => {
                    for m in ["get", "post", "put", "patch", "delete"] {
                        let starts_word = i == 0
                            || !(bytes[i - 1] as char).is_alphanumeric() && bytes[i - 1] != b'_';
                        if starts_word && args[i..].starts_with(&format!("{m}(")) {
                            out.push((m.to_uppercase(), path.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        rest = &body[end..];
    }
    out
}

#[test]
fn the_route_list_is_read_from_the_router() {
    let routes = declared_routes();
    for expected in [
        ("GET", "/rest/noauth/health"),
        ("GET", "/rest/system/status"),
        ("POST", "/rest/system/shutdown"),
        ("DELETE", "/rest/config/folders/{id}"),
        ("PATCH", "/rest/config/devices/{id}"),
    ] {
        assert!(
            routes
                .iter()
                .any(|(m, p)| m == expected.0 && p == expected.1),
            "{expected:?} not found in {routes:?}"
        );
    }
    assert!(routes.len() >= 30, "{routes:?}");
}

#[test]
fn every_rest_route_but_noauth_refuses_requests_without_the_api_key() {
    let d = start_daemon(&[]);
    // The GUI's files (`/`, `/meta.js`, `/qr/`) are public, as in Syncthing; the REST API is not.
    let mut routes: Vec<_> = declared_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/rest/"))
        .collect();
    // Shutdown last: it ends the daemon.
    routes.push(("GET".into(), "/rest/no/such/route".into()));
    routes.sort_by_key(|(_, p)| p.ends_with("/shutdown"));
    let peer = d.peer.device_id().to_string();
    let mut checked = 0;
    for (method, path) in &routes {
        let path = path.replace(
            "{id}",
            if path.contains("devices") {
                &peer
            } else {
                SHARED
            },
        );
        let noauth = path.starts_with("/rest/noauth/");
        for headers in [
            vec![],
            vec![("X-API-Key", "wrong")],
            vec![("Authorization", "Bearer wrong")],
            vec![("Authorization", "Basic aG9zdGlsZQ==")],
        ] {
            let (status, body) = http(d.rest, method, &path, &headers)
                .unwrap_or_else(|e| panic!("{method} {path} {headers:?}: no HTTP answer: {e}"));
            if noauth {
                assert_ne!(status, 403, "{method} {path} {headers:?}: {body}");
            } else {
                assert_eq!(
                    (status, body.as_str()),
                    (403, "CSRF Error\n"),
                    "{method} {path} {headers:?}"
                );
            }
        }
        // With the key the route is reached (it may still say 400/404 about the empty body).
        // (Not shutdown or restart: they end this daemon.)
        if !path.ends_with("/shutdown")
            && !path.ends_with("/restart")
            && !path.starts_with("/rest/events")
        {
            let (status, body) =
                http(d.rest, method, &path, &[("X-API-Key", d.api_key.as_str())]).unwrap();
            assert_ne!(status, 403, "{method} {path} with the key: {body}");
        }
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn the_first_start_config_listens_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncd"))
        .args(["generate", "--no-default-folder", "--home"])
        .arg(&home)
        .env("HOME", dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(home.join("config.toml")).unwrap();
    let config = syncd::config::Config::parse(&home.join("config.toml"), &text).unwrap();
    assert_eq!(config.gui.address, "127.0.0.1:8384");
    let addr: std::net::SocketAddr = config.gui.address.parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(config.gui.api_key.len(), 32);
}

#[test]
fn a_foreign_host_header_is_refused_on_loopback_with_a_reason() {
    let d = start_daemon(&[]);
    let key = d.api_key.as_str();
    let port = d.rest.port();
    let refused = [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("192.168.1.5:{port}"),
        format!("[2001:db8::1]:{port}"),
        "localhost:notaport".to_owned(),
        String::new(),
    ];
    for host in &refused {
        for path in ["/rest/system/ping", "/rest/noauth/health"] {
            let (status, body) =
                http(d.rest, "GET", path, &[("X-API-Key", key), ("Host", host)]).unwrap();
            assert_eq!(status, 403, "Host {host:?} {path}: {body}");
            assert!(body.contains("Host check error"), "{body}");
        }
    }
    let accepted = [
        "localhost".to_owned(),
        format!("localhost:{port}"),
        "LocalHost".to_owned(),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{port}"),
        "[::1]".to_owned(),
        format!("[::1]:{port}"),
    ];
    for host in &accepted {
        let (status, body) = http(
            d.rest,
            "GET",
            "/rest/system/ping",
            &[("X-API-Key", key), ("Host", host)],
        )
        .unwrap();
        assert_eq!(status, 200, "Host {host:?}: {body}");
    }
}
