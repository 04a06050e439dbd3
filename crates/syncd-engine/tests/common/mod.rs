//! Shared helpers of the engine's integration tests: temp trees and real engines on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use syncd_engine::{
    DeviceConfig, DeviceId, Engine, EngineConfig, EngineHandle, FolderConfig, FolderId,
    device_id_for_home, health,
};

/// Logs of the engines under test, when `SYNCD_TEST_LOG` names a filter
/// (`SYNCD_TEST_LOG=syncd_engine=debug`): they show with the failing test's output.
pub fn init_test_log() {
    if let Ok(filter) = std::env::var("SYNCD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A temp folder root with `.stfolder`, and helpers to shape it.
pub struct Dir {
    pub root: PathBuf,
}

impl Dir {
    pub fn new(root: PathBuf) -> Dir {
        std::fs::create_dir_all(&root).unwrap();
        health::create_marker(&root).unwrap();
        Dir { root }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }
    pub fn symlink(&self, rel: &str, target: &str) {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
    }
    pub fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap()
    }
    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }
    /// Every entry below the root (sorted, relative), internal names excluded.
    pub fn entries(&self) -> Vec<String> {
        syncd_memnet::Tree::at(&self.root).entries()
    }
}

/// Asserts two trees hold the same entries with the same kind, content, permission bits and
/// (for files) mtime (see [`syncd_memnet::assert_same_tree`]).
pub fn assert_same(a: &Dir, b: &Dir) {
    syncd_memnet::assert_same_tree(
        &syncd_memnet::Tree::at(&a.root),
        &syncd_memnet::Tree::at(&b.root),
    );
}

/// Two engines sharing one folder over loopback TLS: `b` listens, `a` dials it.
pub struct Pair {
    pub _tmp: tempfile::TempDir,
    pub folder: FolderId,
    pub a: EngineHandle,
    pub b: EngineHandle,
    pub da: Dir,
    pub db: Dir,
    pub a_cfg: EngineConfig,
    pub b_cfg: EngineConfig,
}

pub const WAIT: Duration = Duration::from_secs(60);

/// Builds both sides' configs; `prepare` may fill the folders before the engines start.
pub async fn pair_with(prepare: impl FnOnce(&Dir, &Dir)) -> Pair {
    pair_configured(prepare, |_| {}).await
}

/// Like [`pair_with`], and `tweak` adjusts both sides' folder config (e.g. `max_conflicts`).
pub async fn pair_configured(
    prepare: impl FnOnce(&Dir, &Dir),
    tweak: impl Fn(&mut FolderConfig),
) -> Pair {
    init_test_log();
    let tmp = tempfile::tempdir().unwrap();
    let folder = FolderId::new("f").unwrap();
    let (ha, hb) = (tmp.path().join("a-home"), tmp.path().join("b-home"));
    let (ida, idb) = (
        device_id_for_home(&ha).unwrap(),
        device_id_for_home(&hb).unwrap(),
    );
    let (da, db) = (
        Dir::new(tmp.path().join("a")),
        Dir::new(tmp.path().join("b")),
    );
    prepare(&da, &db);
    let folder_cfg = |root: &Path, peer: DeviceId| {
        let mut f = FolderConfig::new(folder.clone(), root);
        f.devices = vec![peer];
        tweak(&mut f);
        f
    };
    let b_cfg = EngineConfig {
        home: hb,
        device_name: "b".into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![DeviceConfig::new(ida)],
        folders: vec![folder_cfg(&db.root, ida)],
        ..EngineConfig::default()
    };
    let b = Engine::start(b_cfg.clone()).await.unwrap();
    let mut b_dev = DeviceConfig::new(idb);
    b_dev.addresses = vec![format!("tcp://{}", b.listen_addrs()[0])];
    let a_cfg = EngineConfig {
        home: ha,
        device_name: "a".into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![b_dev],
        folders: vec![folder_cfg(&da.root, idb)],
        ..EngineConfig::default()
    };
    let a = Engine::start(a_cfg.clone()).await.unwrap();
    Pair {
        _tmp: tmp,
        folder,
        a,
        b,
        da,
        db,
        a_cfg,
        b_cfg,
    }
}

pub async fn pair() -> Pair {
    pair_with(|_, _| {}).await
}

impl Pair {
    /// Waits until both sides report the folder in sync.
    pub async fn synced(&self) {
        for (name, e) in [("a", &self.a), ("b", &self.b), ("a", &self.a)] {
            if let Err(err) = e.wait_until_synced(&self.folder, WAIT).await {
                let st = e.folder_status(&self.folder);
                let (sa, sb) = (
                    self.a.folder_status(&self.folder),
                    self.b.folder_status(&self.folder),
                );
                panic!("{name} not in sync: {err:?}\nstatus: {st:#?}\na: {sa:#?}\nb: {sb:#?}");
            }
        }
    }
}

/// Incompressible, reproducible bytes (a xorshift stream): content-defined chunk boundaries
/// fall where they would in real data, and the same seed gives the same bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`WAIT`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `e` has a live connection to `peer`.
pub fn connected(e: &EngineHandle, peer: DeviceId) -> bool {
    e.connections()
        .iter()
        .any(|c| c.device == peer && c.connected)
}
