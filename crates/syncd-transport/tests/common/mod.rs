//! Shared helpers for integration tests: a stock Syncthing on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `syncthing` binary, or `None` (test skips) when it is absent. Panics instead of skipping
/// when `SYNCD_REQUIRE_SYNCTHING=1`.
pub fn syncthing_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("syncthing"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("SYNCD_REQUIRE_SYNCTHING").as_deref() == Ok("1") {
            panic!("SYNCD_REQUIRE_SYNCTHING=1 but no `syncthing` binary on PATH");
        }
        eprintln!(
            "SKIPPED: `syncthing` not found on PATH (apt-get install -y syncthing); set SYNCD_REQUIRE_SYNCTHING=1 to make this a failure"
        );
    }
    found
}

/// `syncthing generate` into `home`; returns the ID `syncthing serve --device-id` prints.
pub fn syncthing_generate(st: &Path, home: &Path) -> String {
    let out = Command::new(st)
        .arg("generate")
        .arg(format!("--home={}", home.display()))
        .arg("--no-default-folder")
        .arg("--skip-port-probing")
        .output()
        .unwrap();
    assert!(out.status.success(), "syncthing generate: {out:?}");
    let out = Command::new(st)
        .arg("serve")
        .arg(format!("--home={}", home.display()))
        .arg("--device-id")
        .output()
        .unwrap();
    assert!(out.status.success(), "syncthing --device-id: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the Syncthing config needs to know.
pub struct StConfig<'a> {
    pub home: &'a Path,
    pub my_id: &'a str,
    pub listen_port: u16,
    pub gui_port: u16,
    pub api_key: &'a str,
    pub peer_id: &'a str,
    /// `tcp://127.0.0.1:PORT` or `dynamic`.
    pub peer_addr: &'a str,
    pub folder_id: &'a str,
    pub folder_path: &'a Path,
}

/// Writes a loopback-only config.xml (no discovery, relays, NAT, usage/crash reports, upgrades).
pub fn write_config(c: &StConfig<'_>) {
    let xml = format!(
        r#"<configuration version="36">
    <folder id="{folder}" label="{folder}" path="{fpath}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="false" fsWatcherDelayS="1" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="{my}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <device id="{peer}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <minDiskFree unit="%">1</minDiskFree>
        <markerName>.stfolder</markerName>
        <paused>false</paused>
    </folder>
    <device id="{my}" name="st-test" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>dynamic</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <device id="{peer}" name="syncd-test" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>{paddr}</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>
    <gui enabled="true" tls="false" debugging="false">
        <address>127.0.0.1:{gui}</address>
        <apikey>{key}</apikey>
        <theme>default</theme>
    </gui>
    <options>
        <listenAddress>tcp://127.0.0.1:{port}</listenAddress>
        <globalAnnounceServer>default</globalAnnounceServer>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <reconnectionIntervalS>1</reconnectionIntervalS>
        <relaysEnabled>false</relaysEnabled>
        <startBrowser>false</startBrowser>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <urURL></urURL>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <releasesURL></releasesURL>
        <crashReportingURL></crashReportingURL>
        <crashReportingEnabled>false</crashReportingEnabled>
        <stunKeepaliveStartS>0</stunKeepaliveStartS>
        <stunKeepaliveMinS>0</stunKeepaliveMinS>
        <stunServer></stunServer>
        <announceLANAddresses>false</announceLANAddresses>
    </options>
</configuration>
"#,
        folder = c.folder_id,
        fpath = c.folder_path.display(),
        my = c.my_id,
        peer = c.peer_id,
        paddr = c.peer_addr,
        gui = c.gui_port,
        key = c.api_key,
        port = c.listen_port,
    );
    std::fs::write(c.home.join("config.xml"), xml).unwrap();
}

/// A running Syncthing; killed by PID (never by name) on drop.
pub struct Syncthing {
    child: Child,
    pub log: PathBuf,
}

impl Syncthing {
    pub fn start(st: &Path, home: &Path) -> Self {
        let log = home.join("syncthing.log");
        let child = Command::new(st)
            .arg("serve")
            .arg(format!("--home={}", home.display()))
            .args([
                "--no-browser",
                "--no-restart",
                "--no-upgrade",
                "--no-default-folder",
            ])
            .arg("--logflags=3")
            .arg("--logfile=-")
            .env("STMONITORED", "1")
            .env("STNORESTART", "1")
            .env("STNOUPGRADE", "1")
            .env("STNODEFAULTFOLDER", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(home.join("syncthing.err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET with the API key; returns (status, body). Errors while connecting
/// (Syncthing still starting) come back as `None`.
pub fn rest_get(port: u16, api_key: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {api_key}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((len, rest)) = s.split_once("\r\n") else {
            return out;
        };
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            return out;
        };
        if n == 0 || rest.len() < n {
            return out;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
}
