//! A receiver killed with SIGKILL in the middle of an initial sync restarts, reuses what was
//! durable, and converges; no partially written file ever appears under its final name.
//!
//! The receiver runs in a child process (this test binary re-executed with
//! `SYNCD_CRASH_ROLE=receiver`), the sender in this process. The child is killed once about
//! 40% of the tree has been sent; what is durable at that moment (final files, and the pieces
//! of temp files whose hashes verify) is measured on disk, then the receiver is restarted in
//! this process from the same home and folder, and the bytes it receives are counted at its
//! connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::Dir;
use sha2::{Digest, Sha256};
use syncd_engine::{
    DeviceConfig, DeviceId, Engine, EngineConfig, EngineHandle, FolderConfig, FolderId,
    device_id_for_home,
};

const ROLE: &str = "SYNCD_CRASH_ROLE";
const TEST_NAME: &str = "sigkill_during_initial_sync_resumes_from_durable_data";
const FILES: usize = 12;
const FILE_SIZE: usize = 8 * 1024 * 1024;
/// Allowance for what a reconnect costs besides file data: TLS handshake, Hello, cluster
/// config and the index exchange.
const PROTOCOL_SLACK: u64 = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

fn folder() -> FolderId {
    FolderId::new("crash").unwrap()
}

fn content(i: usize) -> Vec<u8> {
    common::random_bytes(FILE_SIZE, 0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) << 32))
}

fn file_name(i: usize) -> String {
    format!("data/part{}/file{i:02}.bin", i % 3)
}

/// The receiver's config, identical in the killed child and after the restart.
fn receiver_config(home: &Path, root: &Path, sender: DeviceId, addr: &str) -> EngineConfig {
    let mut f = FolderConfig::new(folder(), root);
    f.devices = vec![sender];
    let mut dev = DeviceConfig::new(sender);
    dev.addresses = vec![format!("tcp://{addr}")];
    EngineConfig {
        home: home.to_path_buf(),
        device_name: "receiver".into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![dev],
        folders: vec![f],
        ..EngineConfig::default()
    }
}

/// The child: runs the receiver until it is killed (or gives up after a while, so a parent
/// that died never leaves it behind).
fn run_receiver() {
    let env = |k: &str| std::env::var(k).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sender: DeviceId = env("SYNCD_CRASH_SENDER").parse().unwrap();
        let cfg = receiver_config(
            Path::new(&env("SYNCD_CRASH_HOME")),
            Path::new(&env("SYNCD_CRASH_ROOT")),
            sender,
            &env("SYNCD_CRASH_ADDR"),
        );
        let _engine = Engine::start(cfg).await.unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

/// Kills the child if the test fails before it does.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts that every file present under a final name holds exactly the source content;
/// `checked` remembers files already verified (they never change once in place).
fn assert_no_torn_final_file(root: &Dir, sources: &[Vec<u8>], checked: &mut [bool]) {
    for (i, src) in sources.iter().enumerate() {
        if checked[i] {
            continue;
        }
        let p = root.path(&file_name(i));
        match std::fs::read(&p) {
            Ok(data) => {
                assert!(
                    data == *src,
                    "{} is visible under its final name but is not the complete file ({} of {} bytes, content differs)",
                    p.display(),
                    data.len(),
                    src.len()
                );
                checked[i] = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("reading {}: {e}", p.display()),
        }
    }
}

/// The content-defined chunks of a source file (what the puller requests between syncd
/// peers), computed by the scanner's own hasher.
fn chunks_of(path: &Path) -> Vec<(u64, u32, [u8; 32])> {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let stat = syncd_scan::stat::Stat::from_metadata(&meta);
    let block_size = syncd_proto::block_size(meta.len());
    let h = syncd_scan::hash::hash_file(path, &stat, block_size, &mut |_| {}).unwrap();
    h.chunks
        .iter()
        .map(|c| (c.offset, c.size, c.hash))
        .collect()
}

/// Bytes of the tree durable on disk in `root`: complete final files, plus the verified
/// chunks of temp files.
fn durable_bytes(root: &Dir, source_root: &Dir, sources: &[Vec<u8>]) -> u64 {
    let mut durable = 0u64;
    for (i, src) in sources.iter().enumerate() {
        let name = file_name(i);
        let final_path = root.path(&name);
        if final_path.exists() {
            assert!(std::fs::read(&final_path).unwrap() == *src, "{name} torn");
            durable += src.len() as u64;
            continue;
        }
        let base = Path::new(&name).file_name().unwrap().to_str().unwrap();
        let temp = final_path
            .parent()
            .unwrap()
            .join(syncd_types::names::temp_name(base));
        let Ok(data) = std::fs::read(&temp) else {
            continue;
        };
        for (offset, size, hash) in chunks_of(&source_root.path(&name)) {
            let (o, s) = (offset as usize, size as usize);
            if let Some(piece) = data.get(o..o + s)
                && Sha256::digest(piece).as_slice() == hash
            {
                durable += u64::from(size);
            }
        }
    }
    durable
}

fn received(e: &EngineHandle) -> u64 {
    e.connections().iter().map(|c| c.in_bytes_total).sum()
}

fn sent_to(e: &EngineHandle, peer: DeviceId) -> u64 {
    e.connections()
        .iter()
        .filter(|c| c.device == peer)
        .map(|c| c.out_bytes_total)
        .sum()
}

#[test]
fn sigkill_during_initial_sync_resumes_from_durable_data() {
    if std::env::var(ROLE).as_deref() == Ok("receiver") {
        run_receiver();
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(parent());
}

async fn parent() {
    let tmp = tempfile::tempdir().unwrap();
    let (send_home, recv_home) = (tmp.path().join("send-home"), tmp.path().join("recv-home"));
    let (send_id, recv_id) = (
        device_id_for_home(&send_home).unwrap(),
        device_id_for_home(&recv_home).unwrap(),
    );
    let src = Dir::new(tmp.path().join("send"));
    let dst = Dir::new(tmp.path().join("recv"));
    let sources: Vec<Vec<u8>> = (0..FILES).map(content).collect();
    for (i, data) in sources.iter().enumerate() {
        src.write(&file_name(i), data);
    }
    let total = (FILES * FILE_SIZE) as u64;

    let mut f = FolderConfig::new(folder(), &src.root);
    f.devices = vec![recv_id];
    let sender = Engine::start(EngineConfig {
        home: send_home,
        device_name: "sender".into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![DeviceConfig::new(recv_id)],
        folders: vec![f],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    let addr = sender.listen_addrs()[0].to_string();

    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env(ROLE, "receiver")
        .env("SYNCD_CRASH_HOME", &recv_home)
        .env("SYNCD_CRASH_ROOT", &dst.root)
        .env("SYNCD_CRASH_SENDER", send_id.to_string())
        .env("SYNCD_CRASH_ADDR", &addr)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killer(child);

    // While the transfer runs, every final-named file must be complete.
    let mut checked = vec![false; FILES];
    let start = Instant::now();
    loop {
        assert_no_torn_final_file(&dst, &sources, &mut checked);
        if sent_to(&sender, recv_id) >= total * 2 / 5 {
            break;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the receiver exited on its own: {status}");
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "the receiver did not get 40% of the tree in {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    drop(child);

    let mut checked = vec![false; FILES];
    assert_no_torn_final_file(&dst, &sources, &mut checked);
    let durable = durable_bytes(&dst, &src, &sources);
    let not_durable = total - durable;
    assert!(
        not_durable > 0,
        "the whole tree was durable before the kill"
    );

    let receiver = Engine::start(receiver_config(&recv_home, &dst.root, send_id, &addr))
        .await
        .unwrap();
    let start = Instant::now();
    let mut checked = vec![false; FILES];
    loop {
        assert_no_torn_final_file(&dst, &sources, &mut checked);
        if checked.iter().all(|c| *c) {
            break;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "the restarted receiver did not converge in {TIMEOUT:?}: {:#?}",
            receiver.folder_status(&folder())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver
        .wait_until_synced(&folder(), TIMEOUT)
        .await
        .unwrap();
    let after = received(&receiver);
    let allowed = not_durable + not_durable / 10 + PROTOCOL_SLACK;
    eprintln!(
        "total {total}, durable at kill {durable}, received after restart {after}, allowed {allowed}"
    );
    assert!(
        after <= allowed,
        "received {after} bytes after the restart; only {not_durable} were not durable (allowed {allowed})"
    );
    common::assert_same(&src, &dst);
    receiver.shutdown().await;
    sender.shutdown().await;
}
