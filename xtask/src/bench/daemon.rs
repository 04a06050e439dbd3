//! Running one daemon on loopback: identity, config, start, REST, measurements, stop.
//! Syncthing is configured by writing its `config.xml` (the known-good loopback config of
//! `/work/shared/syncthing/syncthing-loopback.sh`); syncd through its CLI (`generate`,
//! `api-key`, `device add`, `folder add`, `serve --gui-address --listen`). Both are then
//! driven only through the Syncthing-compatible REST API. Processes are stopped by PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use syncd_testkit::{Rest, SyncthingConfig, Versioning, Watcher, find_device_id};

use super::json::{self, Json, Members};
use super::procfs::{self, Sample};
use super::rng::Rng;

/// The folder ID every bench pair shares.
pub const FOLDER_ID: &str = "bench";

/// Which implementation a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Stock Syncthing (`syncthing serve`), run as the worker itself (`STMONITORED=1`).
    Syncthing,
    /// Our `syncd` binary.
    Syncd,
}

/// One daemon of a pair.
#[derive(Debug)]
pub struct Node {
    /// Implementation.
    pub kind: Kind,
    /// Its binary.
    pub bin: PathBuf,
    /// `--home`.
    pub home: PathBuf,
    /// The shared folder's path.
    pub folder: PathBuf,
    /// Its device ID.
    pub id: String,
    /// Its REST API.
    pub rest: Rest,
    /// Its BEP listen port on 127.0.0.1.
    pub listen_port: u16,
    /// The peer: ID, name, and dial address (`None`: the peer dials us).
    peer: Option<(String, Option<String>)>,
    /// Syncthing's fsWatcherDelayS.
    watch_delay_s: u32,
    child: Option<Child>,
    /// syncd's file versioning type for the folder (`None`: off; Syncthing nodes ignore it).
    pub versioning: Option<String>,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Node {
    /// Creates the identity in `home` and the folder at `folder` (with its `.stfolder` marker).
    pub fn create(
        kind: Kind,
        bin: &Path,
        home: &Path,
        folder: &Path,
        seed: u64,
    ) -> Result<Node, String> {
        fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
        fs::create_dir_all(folder.join(".stfolder"))
            .map_err(|e| format!("{}: {e}", folder.display()))?;
        let home_arg = format!("--home={}", home.display());
        let (id, api_key) = match kind {
            Kind::Syncthing => {
                let id = syncd_testkit::generate(bin, home).map_err(|e| e.to_string())?;
                let mut rng = Rng::new(seed);
                (
                    id,
                    format!("bench{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
                )
            }
            Kind::Syncd => {
                let out =
                    run(Command::new(bin).args([&home_arg, "generate", "--no-default-folder"]))?;
                let id = find_device_id(&out)
                    .ok_or_else(|| format!("no device ID in `syncd generate` output {out:?}"))?;
                let key = run(Command::new(bin).args([&home_arg, "api-key"]))?
                    .trim()
                    .to_string();
                if key.is_empty() {
                    return Err("`syncd api-key` printed nothing".into());
                }
                (id, key)
            }
        };
        let port = || syncd_testkit::free_port().map_err(|e| format!("bind 127.0.0.1:0: {e}"));
        let gui = port()?;
        let listen_port = port()?;
        Ok(Node {
            kind,
            bin: bin.to_path_buf(),
            home: home.to_path_buf(),
            folder: folder.to_path_buf(),
            id,
            rest: Rest::loopback(gui, &api_key),
            listen_port,
            peer: None,
            watch_delay_s: 10,
            child: None,
            versioning: None,
        })
    }

    /// Shares the folder with `peer`; `dial` makes this node dial it (only one side of a pair
    /// should: two Syncthings dialling each other at once can stall for 20 s).
    pub fn introduce(
        &mut self,
        peer_id: &str,
        peer_port: u16,
        dial: bool,
        watch_delay_s: u32,
    ) -> Result<(), String> {
        let addr = dial.then(|| format!("tcp://127.0.0.1:{peer_port}"));
        self.peer = Some((peer_id.to_string(), addr.clone()));
        self.watch_delay_s = watch_delay_s;
        match self.kind {
            Kind::Syncthing => self.write_syncthing_config(),
            Kind::Syncd => {
                let home_arg = format!("--home={}", self.home.display());
                let mut add = Command::new(&self.bin);
                add.args([&home_arg, "device", "add", peer_id, "--name", "peer"]);
                if let Some(a) = &addr {
                    add.args(["--address", a]);
                }
                run(&mut add)?;
                let folder = self.folder.to_string_lossy().into_owned();
                let mut add = Command::new(&self.bin);
                add.args([
                    &home_arg, "folder", "add", FOLDER_ID, &folder, "--device", peer_id,
                ]);
                if let Some(v) = &self.versioning {
                    add.args(["--versioning", v]);
                }
                run(&mut add)?;
                Ok(())
            }
        }
    }

    /// Changes Syncthing's `fsWatcherDelayS` (takes effect at the next start). syncd keeps its
    /// own default watcher delay.
    pub fn set_watch_delay(&mut self, s: u32) -> Result<(), String> {
        self.watch_delay_s = s;
        match self.kind {
            Kind::Syncthing => self.write_syncthing_config(),
            Kind::Syncd => Ok(()),
        }
    }

    fn write_syncthing_config(&self) -> Result<(), String> {
        let (peer_id, peer_addr) = self.peer.clone().ok_or("no peer configured")?;
        // The known-good loopback config with every stock default written out (fsync on).
        SyncthingConfig::new(&self.id, &peer_id, FOLDER_ID, &self.folder)
            .ports(self.listen_port, self.rest.addr.port())
            .api_key(&self.rest.api_key)
            .peer_address(peer_addr.as_deref().unwrap_or("dynamic"))
            .names("self", "peer")
            .watcher(Watcher::Delay(self.watch_delay_s))
            .reconnection_interval_s(5)
            .max_conflicts(10)
            .versioning(Versioning::StockDefaults)
            .stock_defaults()
            .write(&self.home)
            .map_err(|e| format!("config.xml: {e}"))
    }

    /// Starts the daemon in the background (log in `HOME/daemon.log`).
    pub fn start(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Err("already running".into());
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("daemon.log"))
            .map_err(|e| format!("daemon.log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = match self.kind {
            Kind::Syncthing => syncd_testkit::serve_command(&self.bin, &self.home),
            Kind::Syncd => {
                let home_arg = format!("--home={}", self.home.display());
                let gui = self.rest.addr.to_string();
                let listen = format!("tcp://127.0.0.1:{}", self.listen_port);
                let mut cmd = Command::new(&self.bin);
                cmd.args([
                    &home_arg,
                    "serve",
                    "--no-browser",
                    "--no-discovery",
                    "--gui-address",
                    &gui,
                    "--listen",
                    &listen,
                ]);
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The running process's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Errors (with the log's tail) when the process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        let Some(c) = self.child.as_mut() else {
            return Err("not started".into());
        };
        match c.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(format!(
                    "{:?} daemon exited ({status}); log tail:\n{}",
                    self.kind,
                    self.log_tail(8)
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.home.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .get(lines.len().saturating_sub(n)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// Waits until the REST API answers an authenticated request.
    pub fn wait_rest(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            match self.rest.get("/rest/system/status", Duration::from_secs(2)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("REST not up after {timeout:?}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// `GET path` on the REST API; the body when the status is 2xx.
    pub fn get(&self, path: &str, timeout: Duration) -> Result<String, String> {
        self.rest.get(path, timeout).map_err(|e| e.to_string())
    }

    /// `GET /rest/db/status?folder=bench`.
    pub fn db_status(&self) -> Result<Json, String> {
        json::parse(&self.get(
            &format!("/rest/db/status?folder={FOLDER_ID}"),
            Duration::from_secs(10),
        )?)
    }

    /// `GET /rest/system/connections`.
    pub fn connections(&self) -> Result<Json, String> {
        json::parse(&self.get("/rest/system/connections", Duration::from_secs(10))?)
    }

    /// Whether the peer is connected.
    pub fn connected_to(&self, peer: &str) -> Result<bool, String> {
        let c = self.connections()?;
        Ok(c.get("connections")
            .and_then(|m| m.get(peer))
            .and_then(|p| p.bool("connected"))
            .unwrap_or(false))
    }

    /// Bytes this daemon has sent and received on all connections (`total.outBytesTotal`,
    /// `total.inBytesTotal`).
    pub fn wire_bytes(&self) -> Result<(f64, f64), String> {
        let c = self.connections()?;
        let t = c
            .get("total")
            .ok_or("no `total` in /rest/system/connections")?;
        Ok((
            t.num("outBytesTotal").unwrap_or(0.0),
            t.num("inBytesTotal").unwrap_or(0.0),
        ))
    }

    /// `POST /rest/db/scan?folder=bench`, which returns when the scan is done (and queues
    /// behind a scan in progress).
    pub fn scan(&self, timeout: Duration) -> Result<(), String> {
        self.rest
            .post(&format!("/rest/db/scan?folder={FOLDER_ID}"), timeout)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// CPU seconds and RSS of the running process.
    pub fn sample(&self) -> Result<Sample, String> {
        procfs::sample(self.pid().ok_or("not running")?)
    }

    /// Kills the process with SIGKILL (no chance to flush or clean up, like a power cut for
    /// the process) and reaps it; `start` then restarts it on the same home, ports and folder.
    /// Returns false when it was not running.
    pub fn kill9(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        // std's Child::kill is SIGKILL on Unix.
        let _ = c.kill();
        let _ = c.wait();
        true
    }

    /// Stops the process: SIGTERM by PID, SIGKILL by PID after 15 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        syncd_testkit::stop_by_pid(&mut c, Duration::from_secs(15));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}
