//! Running one daemon on loopback: identity, config, start, REST, measurements, stop.
//! Syncthing is configured by writing its `config.xml` (the known-good loopback config of
//! `/work/shared/syncthing/syncthing-loopback.sh`); syncd through its CLI (`generate`,
//! `api-key`, `device add`, `folder add`, `serve --gui-address --listen`). Both are then
//! driven only through the Syncthing-compatible REST API. Processes are stopped by PID.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::Rest;
use super::json::Json;
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
}

/// A free TCP port on 127.0.0.1 (bind port 0, read it back, release it).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The first whitespace-separated token shaped like a device ID (8 groups of 7 characters).
pub fn find_device_id(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .find(|t| {
            let groups: Vec<&str> = t.split('-').collect();
            groups.len() == 8
                && groups
                    .iter()
                    .all(|g| g.len() == 7 && g.chars().all(|c| c.is_ascii_alphanumeric()))
        })
        .map(str::to_string)
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

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
                run(Command::new(bin).args([
                    "generate",
                    &home_arg,
                    "--no-default-folder",
                    "--skip-port-probing",
                ]))?;
                let out = run(Command::new(bin).args(["serve", &home_arg, "--device-id"]))?;
                let id = find_device_id(&out).ok_or_else(|| format!("no device ID in {out:?}"))?;
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
        let gui = free_port()?;
        let listen_port = free_port()?;
        Ok(Node {
            kind,
            bin: bin.to_path_buf(),
            home: home.to_path_buf(),
            folder: folder.to_path_buf(),
            id,
            rest: Rest {
                addr: SocketAddr::from(([127, 0, 0, 1], gui)),
                api_key,
            },
            listen_port,
            peer: None,
            watch_delay_s: 10,
            child: None,
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
                run(Command::new(&self.bin).args([
                    &home_arg, "folder", "add", FOLDER_ID, &folder, "--device", peer_id,
                ]))?;
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
        let xml = syncthing_config_xml(&SyncthingConfig {
            my_id: &self.id,
            my_port: self.listen_port,
            peer_id: &peer_id,
            peer_addr: peer_addr.as_deref().unwrap_or("dynamic"),
            gui_port: self.rest.addr.port(),
            api_key: &self.rest.api_key,
            folder: &self.folder.to_string_lossy(),
            watch_delay_s: self.watch_delay_s,
        });
        fs::write(self.home.join("config.xml"), xml).map_err(|e| format!("config.xml: {e}"))
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
        let home_arg = format!("--home={}", self.home.display());
        let mut cmd = Command::new(&self.bin);
        match self.kind {
            Kind::Syncthing => {
                cmd.args([
                    "serve",
                    &home_arg,
                    "--no-browser",
                    "--no-restart",
                    "--no-upgrade",
                    "--no-default-folder",
                    "--logflags=3",
                    "--logfile=-",
                ])
                .env("STMONITORED", "1")
                .env("STNORESTART", "1")
                .env("STNOUPGRADE", "1")
                .env("STNODEFAULTFOLDER", "1");
            }
            Kind::Syncd => {
                let gui = self.rest.addr.to_string();
                let listen = format!("tcp://127.0.0.1:{}", self.listen_port);
                cmd.args([
                    &home_arg,
                    "serve",
                    "--no-browser",
                    "--gui-address",
                    &gui,
                    "--listen",
                    &listen,
                ]);
            }
        }
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

    /// `GET /rest/db/status?folder=bench`.
    pub fn db_status(&self) -> Result<Json, String> {
        Json::parse(&self.rest.get(
            &format!("/rest/db/status?folder={FOLDER_ID}"),
            Duration::from_secs(10),
        )?)
    }

    /// `GET /rest/system/connections`.
    pub fn connections(&self) -> Result<Json, String> {
        Json::parse(
            &self
                .rest
                .get("/rest/system/connections", Duration::from_secs(10))?,
        )
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
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What goes into a loopback-only Syncthing `config.xml`.
pub struct SyncthingConfig<'a> {
    /// This device.
    pub my_id: &'a str,
    /// BEP port on 127.0.0.1.
    pub my_port: u16,
    /// The peer.
    pub peer_id: &'a str,
    /// `tcp://127.0.0.1:PORT`, or `dynamic` to never dial it.
    pub peer_addr: &'a str,
    /// REST port on 127.0.0.1.
    pub gui_port: u16,
    /// REST API key.
    pub api_key: &'a str,
    /// The folder path.
    pub folder: &'a str,
    /// `fsWatcherDelayS` (whole seconds, minimum 1, Syncthing's default 10).
    pub watch_delay_s: u32,
}

/// The config: listens on loopback only; no discovery, relays, NAT traversal, usage or crash
/// reporting, upgrades; fsync on (`disableFsync` false); one folder shared with one peer.
pub fn syncthing_config_xml(c: &SyncthingConfig<'_>) -> String {
    let (my_id, peer_id, peer_addr, api_key, folder) = (
        xml_escape(c.my_id),
        xml_escape(c.peer_id),
        xml_escape(c.peer_addr),
        xml_escape(c.api_key),
        xml_escape(c.folder),
    );
    let (my_port, gui_port, delay) = (c.my_port, c.gui_port, c.watch_delay_s.max(1));
    format!(
        r#"<configuration version="36">
    <folder id="{FOLDER_ID}" label="{FOLDER_ID}" path="{folder}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="true" fsWatcherDelayS="{delay}" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="{my_id}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <device id="{peer_id}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <minDiskFree unit="%">1</minDiskFree>
        <versioning><cleanupIntervalS>3600</cleanupIntervalS><fsPath></fsPath><fsType>basic</fsType></versioning>
        <copiers>0</copiers>
        <pullerMaxPendingKiB>0</pullerMaxPendingKiB>
        <hashers>0</hashers>
        <order>random</order>
        <ignoreDelete>false</ignoreDelete>
        <scanProgressIntervalS>0</scanProgressIntervalS>
        <pullerPauseS>0</pullerPauseS>
        <maxConflicts>10</maxConflicts>
        <disableSparseFiles>false</disableSparseFiles>
        <disableTempIndexes>false</disableTempIndexes>
        <paused>false</paused>
        <weakHashThresholdPct>25</weakHashThresholdPct>
        <markerName>.stfolder</markerName>
        <copyOwnershipFromParent>false</copyOwnershipFromParent>
        <modTimeWindowS>0</modTimeWindowS>
        <maxConcurrentWrites>2</maxConcurrentWrites>
        <disableFsync>false</disableFsync>
        <blockPullOrder>standard</blockPullOrder>
        <copyRangeMethod>standard</copyRangeMethod>
        <caseSensitiveFS>false</caseSensitiveFS>
        <junctionsAsDirs>false</junctionsAsDirs>
    </folder>
    <device id="{my_id}" name="self" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>dynamic</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <device id="{peer_id}" name="peer" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>{peer_addr}</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <gui enabled="true" tls="false" debugging="false">
        <address>127.0.0.1:{gui_port}</address>
        <apikey>{api_key}</apikey>
        <theme>default</theme>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:{my_port}</listenAddress>
        <globalAnnounceServer>default</globalAnnounceServer>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <localAnnouncePort>21027</localAnnouncePort>
        <localAnnounceMCAddr>[ff12::8384]:21027</localAnnounceMCAddr>
        <maxSendKbps>0</maxSendKbps>
        <maxRecvKbps>0</maxRecvKbps>
        <reconnectionIntervalS>5</reconnectionIntervalS>
        <relaysEnabled>false</relaysEnabled>
        <startBrowser>false</startBrowser>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <urURL></urURL>
        <urInitialDelayS>1800</urInitialDelayS>
        <restartOnWakeup>false</restartOnWakeup>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <upgradeToPreReleases>false</upgradeToPreReleases>
        <keepTemporariesH>24</keepTemporariesH>
        <limitBandwidthInLan>false</limitBandwidthInLan>
        <releasesURL></releasesURL>
        <setLowPriority>false</setLowPriority>
        <maxFolderConcurrency>0</maxFolderConcurrency>
        <crashReportingURL></crashReportingURL>
        <crashReportingEnabled>false</crashReportingEnabled>
        <stunKeepaliveStartS>0</stunKeepaliveStartS>
        <stunKeepaliveMinS>0</stunKeepaliveMinS>
        <stunServer></stunServer>
        <databaseTuning>auto</databaseTuning>
        <announceLANAddresses>false</announceLANAddresses>
        <unackedNotificationID>authenticationUserAndPassword</unackedNotificationID>
    </options>
</configuration>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_is_found_in_cli_output() {
        let id = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
        assert_eq!(
            find_device_id(&format!("Device ID: {id}\nCreated ...")),
            Some(id.to_string())
        );
        assert_eq!(find_device_id(&format!("{id}\n")), Some(id.to_string()));
        assert_eq!(find_device_id("no id here MFZWI3D-BONSGYC"), None);
    }

    #[test]
    fn syncthing_config_is_loopback_only_with_fsync_and_the_watch_delay() {
        let xml = syncthing_config_xml(&SyncthingConfig {
            my_id: "ME",
            my_port: 40001,
            peer_id: "PEER",
            peer_addr: "dynamic",
            gui_port: 40002,
            api_key: "k&y",
            folder: "/tmp/a<b",
            watch_delay_s: 0,
        });
        assert!(
            xml.contains(r#"fsWatcherDelayS="1""#),
            "delay is clamped to Syncthing's minimum"
        );
        assert!(xml.contains("<listenAddress>tcp://127.0.0.1:40001</listenAddress>"));
        assert!(xml.contains("<address>127.0.0.1:40002</address>"));
        assert!(xml.contains("<globalAnnounceEnabled>false</globalAnnounceEnabled>"));
        assert!(xml.contains("<localAnnounceEnabled>false</localAnnounceEnabled>"));
        assert!(xml.contains("<relaysEnabled>false</relaysEnabled>"));
        assert!(xml.contains("<disableFsync>false</disableFsync>"));
        assert!(xml.contains("<apikey>k&amp;y</apikey>") && xml.contains(r#"path="/tmp/a&lt;b""#));
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
