//! Three real engines in a full mesh on loopback: every change reaches every device.

mod common;

use common::{Dir, WAIT, assert_same};
use syncd_engine::{
    DeviceConfig, Engine, EngineConfig, EngineHandle, FolderConfig, FolderId, device_id_for_home,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_engines_in_a_mesh_converge() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = FolderId::new("shared").unwrap();
    let names = ["a", "b", "c"];
    let homes: Vec<_> = names
        .iter()
        .map(|n| tmp.path().join(format!("{n}-home")))
        .collect();
    let ids: Vec<_> = homes
        .iter()
        .map(|h| device_id_for_home(h).unwrap())
        .collect();
    let dirs: Vec<Dir> = names.iter().map(|n| Dir::new(tmp.path().join(n))).collect();
    dirs[0].write("from-a.txt", "a");
    dirs[1].write("sub/from-b.txt", "b");
    dirs[2].write("deep/er/from-c.txt", "c");
    // Start in order c, b, a; each dials the ones already listening.
    let mut engines: Vec<(usize, EngineHandle)> = Vec::new();
    for i in (0..3).rev() {
        let devices = (0..3)
            .filter(|&j| j != i)
            .map(|j| {
                let mut d = DeviceConfig::new(ids[j]);
                if let Some((_, e)) = engines.iter().find(|(k, _)| *k == j) {
                    d.addresses = vec![format!("tcp://{}", e.listen_addrs()[0])];
                }
                d
            })
            .collect();
        let mut f = FolderConfig::new(folder.clone(), &dirs[i].root);
        f.devices = (0..3).filter(|&j| j != i).map(|j| ids[j]).collect();
        let cfg = EngineConfig {
            home: homes[i].clone(),
            device_name: names[i].into(),
            listen: vec!["tcp://127.0.0.1:0".into()],
            devices,
            folders: vec![f],
            ..EngineConfig::default()
        };
        engines.push((i, Engine::start(cfg).await.unwrap()));
    }
    for _ in 0..2 {
        for (i, e) in &engines {
            if let Err(err) = e.wait_until_synced(&folder, WAIT).await {
                panic!("{} not in sync: {err:?}", names[*i]);
            }
        }
    }
    assert_same(&dirs[0], &dirs[1]);
    assert_same(&dirs[1], &dirs[2]);
    assert!(dirs[0].exists("deep/er/from-c.txt"));
}
