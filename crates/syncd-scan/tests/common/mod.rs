#![allow(dead_code, clippy::unwrap_used)]
//! A real temp tree plus a real index, shared by the scanner and watcher tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use syncd_index::{FileRecord, Index};
use syncd_scan::{ScanConfig, Scanner};
use syncd_types::{DeviceId, FolderId, RelPath};

pub struct Fixture {
    pub root: tempfile::TempDir,
    _db: tempfile::TempDir,
    pub index: Arc<Index>,
    pub folder: FolderId,
    pub scanner: Arc<Scanner>,
}

pub const LOCAL: DeviceId = DeviceId::from_bytes([7; 32]);

impl Fixture {
    pub fn new() -> Fixture {
        Self::with_ignores("")
    }

    pub fn with_ignores(stignore: &str) -> Fixture {
        Self::with_config(stignore, ScanConfig::default())
    }

    pub fn with_config(stignore: &str, config: ScanConfig) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        if !stignore.is_empty() {
            std::fs::write(root.path().join(".stignore"), stignore).unwrap();
        }
        let db = tempfile::tempdir().unwrap();
        let index = Arc::new(Index::open(db.path().join("index.redb"), LOCAL).unwrap());
        let folder: FolderId = "f".parse().unwrap();
        let scanner =
            Arc::new(Scanner::new(root.path(), folder.clone(), index.clone(), config).unwrap());
        Fixture {
            root,
            _db: db,
            index,
            folder,
            scanner,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn write(&self, rel: &str, data: &[u8]) {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, data).unwrap();
    }

    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }

    pub fn record(&self, rel: &str) -> Option<FileRecord> {
        let r = self.index.read(&self.folder).unwrap();
        r.get(LOCAL, &RelPath::new(rel).unwrap()).unwrap()
    }

    pub fn live_names(&self) -> Vec<String> {
        let r = self.index.read(&self.folder).unwrap();
        let mut v: Vec<String> = r
            .local_since(0)
            .unwrap()
            .map(|x| x.unwrap())
            .filter(|x| !x.deleted && !x.invalid)
            .map(|x| x.name.to_string())
            .collect();
        v.sort();
        v
    }

    /// Polls until `f` holds (the watcher works asynchronously); panics after 10 s.
    pub fn eventually(&self, what: &str, mut f: impl FnMut(&Fixture) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("timed out waiting for: {what}");
    }
}

pub fn root_path(f: &Fixture) -> &Path {
    f.root.path()
}
