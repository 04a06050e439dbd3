//! Embeds syncd: two engines in one process keep two folders in sync over loopback TLS.
//!
//! Run with `cargo run -p syncd-engine --example embed`.

use std::time::Duration;

use syncd_engine::{
    DeviceConfig, Engine, EngineConfig, FolderConfig, FolderId, device_id_for_home, health,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let folders = [FolderId::new("docs")?, FolderId::new("code")?];
    let (home_a, home_b) = (tmp.path().join("a/home"), tmp.path().join("b/home"));
    let (id_a, id_b) = (device_id_for_home(&home_a)?, device_id_for_home(&home_b)?);
    // One side: its home, both folders (each root marked with `.stfolder`) shared with `peer`.
    let side = |name: &str,
                home,
                peer: DeviceConfig|
     -> Result<EngineConfig, Box<dyn std::error::Error>> {
        let mut cfg = EngineConfig {
            home,
            device_name: name.into(),
            listen: vec!["tcp://127.0.0.1:0".into()],
            ..EngineConfig::default()
        };
        for id in &folders {
            let root = tmp.path().join(name).join(id.as_str());
            std::fs::create_dir_all(&root)?;
            health::create_marker(&root)?;
            cfg.folders.push(FolderConfig {
                devices: vec![peer.id],
                ..FolderConfig::new(id.clone(), root)
            });
        }
        cfg.devices.push(peer);
        Ok(cfg)
    };
    std::fs::create_dir_all(tmp.path().join("a/docs"))?;
    std::fs::write(tmp.path().join("a/docs/hello.txt"), "hello from a\n")?;
    // `b` listens on a free port; `a` dials it.
    let b = Engine::start(side("b", home_b, DeviceConfig::new(id_a))?).await?;
    let b_at = DeviceConfig {
        addresses: vec![format!("tcp://{}", b.listen_addrs()[0])],
        ..DeviceConfig::new(id_b)
    };
    let a = Engine::start(side("a", home_a, b_at)?).await?;
    for id in &folders {
        a.wait_until_synced(id, Duration::from_secs(30)).await?;
        b.wait_until_synced(id, Duration::from_secs(30)).await?;
    }
    // In sync with what `a` has announced so far: its first scan may not be announced yet,
    // so wait for the file itself too.
    let arrived = tmp.path().join("b/docs/hello.txt");
    for _ in 0..300 {
        if arrived.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("b/docs/hello.txt: {}", std::fs::read_to_string(&arrived)?);
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
