//! Embeds syncd: two engines in one process keep two folders in sync over loopback TLS.
//!
//! Run with `cargo run -p syncd-engine --example embed`.

use std::time::Duration;

use syncd_engine::{DeviceConfig, Engine, EngineConfig, FolderConfig, FolderId, health};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let folders = [FolderId::new("docs")?, FolderId::new("code")?];
    // Each side: a home (identity + index) and one root per folder, marked with `.stfolder`.
    let side = |name: &str| -> Result<EngineConfig, Box<dyn std::error::Error>> {
        let mut cfg = EngineConfig {
            home: tmp.path().join(name).join("home"),
            device_name: name.into(),
            listen: vec!["tcp://127.0.0.1:0".into()],
            ..EngineConfig::default()
        };
        for id in &folders {
            let root = tmp.path().join(name).join(id.as_str());
            std::fs::create_dir_all(&root)?;
            health::create_marker(&root)?;
            cfg.folders.push(FolderConfig::new(id.clone(), root));
        }
        Ok(cfg)
    };
    let a = Engine::start(side("a")?).await?;
    let b = Engine::start(side("b")?).await?;
    // Introduce the devices to each other and share both folders; `a` dials `b`.
    let mut b_at = DeviceConfig::new(b.device_id());
    b_at.addresses = vec![format!("tcp://{}", b.listen_addrs()[0])];
    a.add_device(b_at).await?;
    b.add_device(DeviceConfig::new(a.device_id())).await?;
    for (engine, peer) in [(&a, b.device_id()), (&b, a.device_id())] {
        for mut f in engine.config().folders {
            f.devices = vec![peer];
            engine.add_folder(f).await?;
        }
    }
    std::fs::write(tmp.path().join("a/docs/hello.txt"), "hello from a\n")?;
    a.scan(&folders[0], None).await?;
    for id in &folders {
        b.wait_until_synced(id, Duration::from_secs(30)).await?;
    }
    println!(
        "b/docs/hello.txt: {}",
        std::fs::read_to_string(tmp.path().join("b/docs/hello.txt"))?
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
