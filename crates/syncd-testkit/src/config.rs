//! The loopback-only `config.xml` of a stock Syncthing 1.19.2.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The folder's filesystem watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watcher {
    /// `fsWatcherEnabled="false"`: changes are found by REST-triggered (or hourly) scans.
    Off,
    /// `fsWatcherEnabled="true"` with `fsWatcherDelayS` this many seconds (whole seconds,
    /// clamped to Syncthing's minimum of 1).
    Delay(u32),
}

/// How the folder's (disabled) versioning is written; all three mean "no versioning".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// No `<versioning>` element.
    Absent,
    /// `<versioning></versioning>`.
    Empty,
    /// The element as Syncthing itself writes it: cleanup interval 3600 s, basic filesystem.
    StockDefaults,
}

/// What goes into a loopback-only Syncthing `config.xml`: this device, one peer, one folder
/// shared between them. Built with [`SyncthingConfig::new`] and the chained setters; rendered
/// by [`SyncthingConfig::to_xml`] or written by [`SyncthingConfig::write`].
///
/// Always: BEP listens on `tcp://127.0.0.1:<listen port>`, REST on `127.0.0.1:<gui port>`
/// (plain HTTP, API key), global and local discovery, relays, NAT traversal, STUN, usage and
/// crash reporting and automatic upgrades are off, this device has no dialable address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncthingConfig {
    device_id: String,
    device_name: String,
    peer_id: String,
    peer_name: String,
    peer_address: String,
    folder_id: String,
    folder_path: PathBuf,
    listen_port: u16,
    gui_port: u16,
    api_key: String,
    watcher: Watcher,
    reconnection_interval_s: u32,
    max_conflicts: Option<u32>,
    versioning: Versioning,
    stock_defaults: bool,
    discovery_server: Option<String>,
    listen_host: String,
    local_discovery: bool,
}

impl SyncthingConfig {
    /// This device (`device_id`) shares `folder_id` at `folder_path` with `peer_id`. Defaults:
    /// names `st-test` and `syncd-test`, the peer at `dynamic` (never dialled), ports 0 (set
    /// them with [`ports`](Self::ports)), empty API key, watcher off, reconnection every 5 s,
    /// no `maxConflicts` or `<versioning>` element, only the loopback essentials.
    pub fn new(
        device_id: &str,
        peer_id: &str,
        folder_id: &str,
        folder_path: impl AsRef<Path>,
    ) -> Self {
        Self {
            device_id: device_id.to_owned(),
            device_name: "st-test".to_owned(),
            peer_id: peer_id.to_owned(),
            peer_name: "syncd-test".to_owned(),
            peer_address: "dynamic".to_owned(),
            folder_id: folder_id.to_owned(),
            folder_path: folder_path.as_ref().to_path_buf(),
            listen_port: 0,
            gui_port: 0,
            api_key: String::new(),
            watcher: Watcher::Off,
            reconnection_interval_s: 5,
            max_conflicts: None,
            versioning: Versioning::Absent,
            stock_defaults: false,
            discovery_server: None,
            listen_host: "127.0.0.1".to_owned(),
            local_discovery: false,
        }
    }

    /// BEP listen port and REST port, both on 127.0.0.1.
    pub fn ports(mut self, listen: u16, gui: u16) -> Self {
        self.listen_port = listen;
        self.gui_port = gui;
        self
    }

    /// The REST API key.
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = key.to_owned();
        self
    }

    /// Where this device dials the peer: `tcp://127.0.0.1:PORT`, or `dynamic` to never dial it
    /// (two 1.19.2 instances dialling each other at the same moment can stall for 20 s).
    pub fn peer_address(mut self, address: &str) -> Self {
        self.peer_address = address.to_owned();
        self
    }

    /// The device names this config gives itself and the peer.
    pub fn names(mut self, device: &str, peer: &str) -> Self {
        self.device_name = device.to_owned();
        self.peer_name = peer.to_owned();
        self
    }

    /// The folder's filesystem watcher.
    pub fn watcher(mut self, watcher: Watcher) -> Self {
        self.watcher = watcher;
        self
    }

    /// `reconnectionIntervalS`: how often Syncthing redials a disconnected peer.
    pub fn reconnection_interval_s(mut self, seconds: u32) -> Self {
        self.reconnection_interval_s = seconds;
        self
    }

    /// Writes the folder's `maxConflicts`.
    pub fn max_conflicts(mut self, n: u32) -> Self {
        self.max_conflicts = Some(n);
        self
    }

    /// How the folder's (disabled) versioning is written.
    pub fn versioning(mut self, v: Versioning) -> Self {
        self.versioning = v;
        self
    }

    /// Also writes every other folder and option element at Syncthing 1.19.2's own default
    /// (fsync on, `copiers` 0, `keepTemporariesH` 24, ...), as the known-good config of
    /// `/work/shared/syncthing/syncthing-loopback.sh` does. Benchmarks use it so that nothing
    /// is left to a default that might differ between versions.
    pub fn stock_defaults(mut self) -> Self {
        self.stock_defaults = true;
        self
    }

    /// Global discovery on, against this one server only (a test's own `stdiscosrv`, pinned
    /// with `?id=`), and BEP listening on `tcp://localhost:PORT`: a discovery server drops
    /// loopback literals but keeps host names, so this is what Syncthing announces.
    /// Local discovery stays off.
    pub fn global_discovery(mut self, server_url: &str) -> Self {
        self.discovery_server = Some(server_url.to_owned());
        self.listen_host = "localhost".to_owned();
        self
    }

    /// Local discovery on and BEP listening on `tcp://0.0.0.0:PORT`: **only** for a Syncthing
    /// started inside a network namespace the test created (its interfaces are the test's
    /// veth pair), never on the host.
    pub fn local_discovery_in_private_netns(mut self) -> Self {
        self.local_discovery = true;
        self.listen_host = "0.0.0.0".to_owned();
        self
    }

    /// Writes `home/config.xml`.
    pub fn write(&self, home: &Path) -> std::io::Result<()> {
        std::fs::write(home.join("config.xml"), self.to_xml())
    }

    /// The `config.xml` text. Values are XML-escaped. The element order is the one Syncthing
    /// writes; where the short and the stock-defaults forms put `<paused>` differently, each
    /// keeps its own (the order does not matter to Syncthing).
    pub fn to_xml(&self) -> String {
        let me = xml_escape(&self.device_id);
        let peer = xml_escape(&self.peer_id);
        let folder = xml_escape(&self.folder_id);
        let stock = self.stock_defaults;
        let (watch, delay) = match self.watcher {
            Watcher::Off => ("false", 1),
            Watcher::Delay(s) => ("true", s.max(1)),
        };
        let mut x = String::with_capacity(4096);
        x.push_str("<configuration version=\"36\">\n");
        let _ = writeln!(
            x,
            r#"    <folder id="{folder}" label="{folder}" path="{}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="{watch}" fsWatcherDelayS="{delay}" ignorePerms="false" autoNormalize="true">"#,
            xml_escape(&self.folder_path.to_string_lossy())
        );
        x.push_str("        <filesystemType>basic</filesystemType>\n");
        for id in [&me, &peer] {
            let _ = writeln!(
                x,
                r#"        <device id="{id}" introducedBy=""><encryptionPassword></encryptionPassword></device>"#
            );
        }
        x.push_str("        <minDiskFree unit=\"%\">1</minDiskFree>\n");
        match self.versioning {
            Versioning::Absent => {}
            Versioning::Empty => x.push_str("        <versioning></versioning>\n"),
            Versioning::StockDefaults => x.push_str(
                "        <versioning><cleanupIntervalS>3600</cleanupIntervalS><fsPath></fsPath><fsType>basic</fsType></versioning>\n",
            ),
        }
        // Syncthing 1.19.2's own defaults, where Syncthing writes them.
        let stock_only = |x: &mut String, xml: &str| {
            if stock {
                x.push_str(xml);
            }
        };
        stock_only(
            &mut x,
            r#"        <copiers>0</copiers>
        <pullerMaxPendingKiB>0</pullerMaxPendingKiB>
        <hashers>0</hashers>
        <order>random</order>
        <ignoreDelete>false</ignoreDelete>
        <scanProgressIntervalS>0</scanProgressIntervalS>
        <pullerPauseS>0</pullerPauseS>
"#,
        );
        if let Some(n) = self.max_conflicts {
            let _ = writeln!(x, "        <maxConflicts>{n}</maxConflicts>");
        }
        stock_only(
            &mut x,
            r#"        <disableSparseFiles>false</disableSparseFiles>
        <disableTempIndexes>false</disableTempIndexes>
        <paused>false</paused>
        <weakHashThresholdPct>25</weakHashThresholdPct>
"#,
        );
        x.push_str("        <markerName>.stfolder</markerName>\n");
        if stock {
            x.push_str(
                r#"        <copyOwnershipFromParent>false</copyOwnershipFromParent>
        <modTimeWindowS>0</modTimeWindowS>
        <maxConcurrentWrites>2</maxConcurrentWrites>
        <disableFsync>false</disableFsync>
        <blockPullOrder>standard</blockPullOrder>
        <copyRangeMethod>standard</copyRangeMethod>
        <caseSensitiveFS>false</caseSensitiveFS>
        <junctionsAsDirs>false</junctionsAsDirs>
"#,
            );
        } else {
            x.push_str("        <paused>false</paused>\n");
        }
        x.push_str("    </folder>\n");
        device(&mut x, &me, &self.device_name, "dynamic");
        device(&mut x, &peer, &self.peer_name, &self.peer_address);
        let _ = write!(
            x,
            r#"    <gui enabled="true" tls="false" debugging="false">
        <address>127.0.0.1:{}</address>
        <apikey>{}</apikey>
        <theme>default</theme>
    </gui>
    <options>
        <listenAddress>tcp://{}:{}</listenAddress>
        <globalAnnounceServer>{}</globalAnnounceServer>
        <globalAnnounceEnabled>{}</globalAnnounceEnabled>
        <localAnnounceEnabled>{}</localAnnounceEnabled>
"#,
            self.gui_port,
            xml_escape(&self.api_key),
            self.listen_host,
            self.listen_port,
            xml_escape(self.discovery_server.as_deref().unwrap_or("default")),
            self.discovery_server.is_some(),
            self.local_discovery,
        );
        stock_only(
            &mut x,
            r#"        <localAnnouncePort>21027</localAnnouncePort>
        <localAnnounceMCAddr>[ff12::8384]:21027</localAnnounceMCAddr>
        <maxSendKbps>0</maxSendKbps>
        <maxRecvKbps>0</maxRecvKbps>
"#,
        );
        let _ = write!(
            x,
            r#"        <reconnectionIntervalS>{}</reconnectionIntervalS>
        <relaysEnabled>false</relaysEnabled>
        <startBrowser>false</startBrowser>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <urURL></urURL>
"#,
            self.reconnection_interval_s
        );
        stock_only(
            &mut x,
            r#"        <urInitialDelayS>1800</urInitialDelayS>
        <restartOnWakeup>false</restartOnWakeup>
"#,
        );
        x.push_str("        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>\n");
        stock_only(
            &mut x,
            r#"        <upgradeToPreReleases>false</upgradeToPreReleases>
        <keepTemporariesH>24</keepTemporariesH>
        <limitBandwidthInLan>false</limitBandwidthInLan>
"#,
        );
        x.push_str("        <releasesURL></releasesURL>\n");
        stock_only(
            &mut x,
            r#"        <setLowPriority>false</setLowPriority>
        <maxFolderConcurrency>0</maxFolderConcurrency>
"#,
        );
        x.push_str(
            r#"        <crashReportingURL></crashReportingURL>
        <crashReportingEnabled>false</crashReportingEnabled>
        <stunKeepaliveStartS>0</stunKeepaliveStartS>
        <stunKeepaliveMinS>0</stunKeepaliveMinS>
        <stunServer></stunServer>
"#,
        );
        stock_only(&mut x, "        <databaseTuning>auto</databaseTuning>\n");
        let _ = writeln!(
            x,
            "        <announceLANAddresses>{}</announceLANAddresses>",
            self.discovery_server.is_some()
        );
        stock_only(
            &mut x,
            "        <unackedNotificationID>authenticationUserAndPassword</unackedNotificationID>\n",
        );
        x.push_str("    </options>\n</configuration>\n");
        x
    }
}

fn device(x: &mut String, id: &str, name: &str, address: &str) {
    let _ = write!(
        x,
        "    <device id=\"{id}\" name=\"{}\" compression=\"metadata\" introducer=\"false\" skipIntroductionRemovals=\"false\" introducedBy=\"\">\n        <address>{}</address>\n        <paused>false</paused>\n        <autoAcceptFolders>false</autoAcceptFolders>\n    </device>\n",
        xml_escape(name),
        xml_escape(address)
    );
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SyncthingConfig {
        SyncthingConfig::new("ME", "PEER", "f", "/tmp/a<b")
            .ports(40001, 40002)
            .api_key("k&y")
    }

    fn option(xml: &str, tag: &str) -> Option<String> {
        let open = format!("<{tag}>");
        let start = xml.find(&open)? + open.len();
        let end = xml[start..].find(&format!("</{tag}>"))?;
        Some(xml[start..start + end].to_string())
    }

    #[test]
    fn every_form_is_loopback_only() {
        for cfg in [sample(), sample().stock_defaults()] {
            let xml = cfg.to_xml();
            let table = [
                ("listenAddress", "tcp://127.0.0.1:40001"),
                ("globalAnnounceEnabled", "false"),
                ("localAnnounceEnabled", "false"),
                ("relaysEnabled", "false"),
                ("natEnabled", "false"),
                ("urAccepted", "-1"),
                ("crashReportingEnabled", "false"),
                ("autoUpgradeIntervalH", "0"),
                ("stunServer", ""),
                ("announceLANAddresses", "false"),
            ];
            for (tag, want) in table {
                assert_eq!(option(&xml, tag).as_deref(), Some(want), "{tag}");
            }
            assert!(xml.contains("<address>127.0.0.1:40002</address>"));
        }
    }

    #[test]
    fn values_are_xml_escaped() {
        let xml = sample().to_xml();
        assert!(xml.contains("<apikey>k&amp;y</apikey>"));
        assert!(xml.contains(r#"path="/tmp/a&lt;b""#));
    }

    #[test]
    fn watcher_delay_is_clamped_to_one_second() {
        let xml = sample().watcher(Watcher::Delay(0)).to_xml();
        assert!(xml.contains(r#"fsWatcherEnabled="true" fsWatcherDelayS="1""#));
        let xml = sample().watcher(Watcher::Delay(7)).to_xml();
        assert!(xml.contains(r#"fsWatcherEnabled="true" fsWatcherDelayS="7""#));
        let xml = sample().to_xml();
        assert!(xml.contains(r#"fsWatcherEnabled="false""#));
    }

    #[test]
    fn optional_folder_elements_appear_only_when_asked_for() {
        let short = sample().to_xml();
        for tag in ["maxConflicts", "versioning", "disableFsync", "copiers"] {
            assert!(!short.contains(&format!("<{tag}>")), "{tag}");
        }
        let full = sample()
            .max_conflicts(10)
            .versioning(Versioning::Empty)
            .stock_defaults()
            .to_xml();
        assert_eq!(option(&full, "maxConflicts").as_deref(), Some("10"));
        assert_eq!(option(&full, "disableFsync").as_deref(), Some("false"));
        assert!(full.contains("<versioning></versioning>"));
    }

    #[test]
    fn the_peer_is_dialled_only_at_the_given_address() {
        let xml = sample().to_xml();
        assert_eq!(xml.matches("<address>dynamic</address>").count(), 2);
        let xml = sample().peer_address("tcp://127.0.0.1:5").to_xml();
        assert_eq!(xml.matches("<address>dynamic</address>").count(), 1);
        assert!(xml.contains("<address>tcp://127.0.0.1:5</address>"));
    }

    #[test]
    fn folder_and_options_are_paused_false_exactly_once_each_form() {
        for cfg in [sample(), sample().stock_defaults()] {
            let xml = cfg.to_xml();
            let folder = &xml[..xml.find("</folder>").unwrap_or(0)];
            assert_eq!(folder.matches("<paused>false</paused>").count(), 1);
        }
    }
}
