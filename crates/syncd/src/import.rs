//! `syncd import-syncthing`: turns a Syncthing `config.xml` into a syncd [`Config`], and
//! reports every setting that was not carried over.
//!
//! What carries over: devices (ID, name, addresses, compression, paused, introducer,
//! skipIntroductionRemovals, introducedBy, autoAcceptFolders, ignored folders), folders (ID,
//! label, path, type, rescan interval, watcher on/off and delay, ignore permissions, max
//! conflicts, paused, devices and who introduced them), ignored devices, the default folder
//! path, the GUI address and API key, and `tcp://` listen addresses. Everything
//! else whose value differs from Syncthing's default is listed in [`Imported::not_carried`].
//! The identity (`cert.pem`/`key.pem`) is copied by the caller, so the device ID stays.

use crate::config::{Compression, Config, DeviceEntry, FolderEntry, Gui, Options};
use std::path::PathBuf;
use syncd_types::{DeviceId, FolderId};

/// The result of converting a Syncthing config.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The syncd config built from it.
    pub config: Config,
    /// One line per setting that was not carried over (`folder "x": versioning type simple`).
    pub not_carried: Vec<String>,
}

/// Why a Syncthing config could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The XML is not well formed.
    #[error("config.xml is not valid XML: {0}")]
    Xml(String),
    /// The root element is not `<configuration>`.
    #[error("config.xml has root <{0}>, expected <configuration>")]
    NotSyncthing(String),
    /// A device or folder entry is unusable.
    #[error("config.xml: {what}: {message}")]
    Entry {
        /// Which entry (`device "ABC..."`, `folder "x"`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A parsed XML element: just enough structure for Syncthing's config.
#[derive(Debug, Clone, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

fn parse_xml(text: &str) -> Result<Element, ImportError> {
    use quick_xml::events::{BytesStart, Event};
    let xml_err = |e: &dyn std::fmt::Display| ImportError::Xml(e.to_string());
    let start = |e: &BytesStart<'_>| -> Result<Element, ImportError> {
        let mut el = Element {
            name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            ..Element::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|e| xml_err(&e))?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a.unescape_value().map_err(|e| xml_err(&e))?.into_owned();
            el.attrs.push((key, value));
        }
        Ok(el)
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader.read_event().map_err(|e| xml_err(&e))?;
        match event {
            Event::Start(e) => stack.push(start(&e)?),
            Event::Empty(e) => {
                let el = start(&e)?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| ImportError::Xml("unbalanced tags".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Err(ImportError::Xml("unbalanced tags".into())),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| xml_err(&e))?;
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                let ch = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(|e| xml_err(&e))?
                } else {
                    match r.decode().map_err(|e| xml_err(&e))?.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        other => return Err(ImportError::Xml(format!("unknown entity &{other};"))),
                    }
                };
                if let (Some(c), Some(cur)) = (ch, stack.last_mut()) {
                    cur.text.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack
        .pop()
        .ok_or_else(|| ImportError::Xml("empty document".into()))?;
    if !stack.is_empty() {
        return Err(ImportError::Xml("unclosed element at end of file".into()));
    }
    if doc.children.len() != 1 {
        return Err(ImportError::Xml("expected exactly one root element".into()));
    }
    Ok(doc.children.remove(0))
}

/// Syncthing's defaults for settings we do not carry: a setting equal to its default is not
/// worth reporting. Element names for folder children, `@name` for attributes.
const FOLDER_DEFAULTS: &[(&str, &str)] = &[
    ("@autoNormalize", "true"),
    ("@fsWatcherTimeoutS", "0"),
    ("filesystemType", "basic"),
    ("minDiskFree", "1"),
    ("copiers", "0"),
    ("pullerMaxPendingKiB", "0"),
    ("hashers", "0"),
    ("order", "random"),
    ("ignoreDelete", "false"),
    ("scanProgressIntervalS", "0"),
    ("pullerPauseS", "0"),
    ("pullerDelayS", "1"),
    ("disableSparseFiles", "false"),
    ("disableTempIndexes", "false"),
    ("weakHashThresholdPct", "25"),
    ("markerName", ".stfolder"),
    ("copyOwnershipFromParent", "false"),
    ("modTimeWindowS", "0"),
    ("maxConcurrentWrites", "2"),
    ("disableFsync", "false"),
    ("blockPullOrder", "standard"),
    ("copyRangeMethod", "standard"),
    ("junctionsAsDirs", "false"),
    ("syncOwnership", "false"),
    ("sendOwnership", "false"),
    ("syncXattrs", "false"),
    ("sendXattrs", "false"),
    ("blockIndexing", "true"),
];
const FOLDER_CARRIED: &[&str] = &[
    "@id",
    "@label",
    "@path",
    "@type",
    "@rescanIntervalS",
    "@fsWatcherEnabled",
    "@fsWatcherDelayS",
    "@ignorePerms",
    "autoNormalize",
    "caseSensitiveFS",
    "device",
    "maxConflicts",
    "paused",
    "versioning",
];
const DEVICE_DEFAULTS: &[(&str, &str)] = &[
    ("maxSendKbps", "0"),
    ("maxRecvKbps", "0"),
    ("maxRequestKiB", "0"),
    ("untrusted", "false"),
    ("remoteGUIPort", "0"),
    ("numConnections", "0"),
];
const DEVICE_CARRIED: &[&str] = &[
    "@id",
    "@name",
    "@compression",
    "address",
    "paused",
    "@introducer",
    "@skipIntroductionRemovals",
    "@introducedBy",
    "autoAcceptFolders",
    "ignoredFolder",
];
/// The discovery options, carried into `[options]`.
const DISCOVERY_OPTIONS: &[&str] = &[
    "globalAnnounceServer",
    "globalAnnounceEnabled",
    "localAnnounceEnabled",
    "localAnnouncePort",
    "localAnnounceMCAddr",
    "announceLANAddresses",
];

/// Options that matter to a user moving over; the rest of `<options>` is Syncthing-internal
/// tuning (usage reporting, upgrade URLs, ...) and is summarised in one line.
const OPTION_NOTES: &[(&str, &str)] = &[
    ("relaysEnabled", "false"),
    ("natEnabled", "false"),
    ("maxSendKbps", "0"),
    ("maxRecvKbps", "0"),
];

/// Reports `el`'s attributes and children that are neither carried nor at their default.
fn report_rest(
    what: &str,
    el: &Element,
    carried: &[&str],
    defaults: &[(&str, &str)],
    out: &mut Vec<String>,
) {
    let is_default = |key: &str, value: &str| {
        defaults
            .iter()
            .any(|(k, d)| *k == key && *d == value.trim())
    };
    for (k, v) in &el.attrs {
        let key = format!("@{k}");
        if !carried.contains(&key.as_str()) && !is_default(&key, v) {
            out.push(format!("{what}: {k}=\"{v}\""));
        }
    }
    for c in &el.children {
        if carried.contains(&c.name.as_str()) {
            continue;
        }
        if c.name == "encryptionPassword" && c.text.trim().is_empty() {
            continue;
        }
        if !is_default(&c.name, &c.text) {
            let value = c.text.trim();
            let unit = c.attr("unit").unwrap_or("");
            out.push(format!("{what}: {} = {value}{unit}", c.name));
        }
    }
}

fn parse_bool(s: Option<&str>, default: bool) -> bool {
    match s.map(str::trim) {
        Some("true") => true,
        Some("false") => false,
        _ => default,
    }
}

fn parse_num<T: std::str::FromStr>(s: Option<&str>, default: T) -> T {
    s.and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// Converts a Syncthing `config.xml` (any 1.x/2.x schema version) for the device `own_id`.
pub fn from_syncthing_xml(text: &str, own_id: DeviceId) -> Result<Imported, ImportError> {
    let root = parse_xml(text)?;
    if root.name != "configuration" {
        return Err(ImportError::NotSyncthing(root.name));
    }
    let mut not_carried = Vec::new();
    let mut config = Config::default();

    for d in root.children("device") {
        let raw = d.attr("id").unwrap_or("");
        let id: DeviceId =
            raw.parse()
                .map_err(|e: syncd_types::DeviceIdError| ImportError::Entry {
                    what: format!("device \"{raw}\""),
                    message: e.to_string(),
                })?;
        if id == own_id {
            if let Some(name) = d.attr("name").filter(|n| !n.is_empty()) {
                config.options.device_name = name.to_owned();
            }
            continue;
        }
        let what = format!("device {} ({})", id.short(), d.attr("name").unwrap_or(""));
        let mut entry = DeviceEntry::new(id);
        entry.name = d.attr("name").unwrap_or("").to_owned();
        let mut addresses = Vec::new();
        for a in d.children("address") {
            let a = a.text.trim();
            if a == "dynamic"
                || a.starts_with("tcp://")
                || a.starts_with("tcp4://")
                || a.starts_with("tcp6://")
            {
                addresses.push(a.to_owned());
            } else if !a.is_empty() {
                not_carried.push(format!(
                    "{what}: address {a} (only tcp:// and dynamic are supported)"
                ));
            }
        }
        if !addresses.is_empty() {
            entry.addresses = addresses;
        }
        let compression = d.attr("compression").unwrap_or("metadata");
        entry.compression = Compression::parse(compression).unwrap_or_else(|| {
            not_carried.push(format!(
                "{what}: compression \"{compression}\" (using metadata)"
            ));
            Compression::Metadata
        });
        entry.paused = parse_bool(d.child_text("paused"), false);
        entry.introducer = parse_bool(d.attr("introducer"), false);
        entry.skip_introduction_removals = parse_bool(d.attr("skipIntroductionRemovals"), false);
        entry.introduced_by = d.attr("introducedBy").and_then(|v| v.trim().parse().ok());
        entry.auto_accept_folders = parse_bool(d.child_text("autoAcceptFolders"), false);
        for f in d.children("ignoredFolder") {
            match FolderId::new(f.attr("id").unwrap_or("")) {
                Ok(id) => entry.ignored_folders.push(crate::config::ObservedFolder {
                    id,
                    label: f.attr("label").unwrap_or("").to_owned(),
                    time: f.attr("time").unwrap_or("").to_owned(),
                }),
                Err(e) => not_carried.push(format!("{what}: ignoredFolder ({e})")),
            }
        }
        report_rest(&what, d, DEVICE_CARRIED, DEVICE_DEFAULTS, &mut not_carried);
        config.devices.push(entry);
    }

    for f in root.children("folder") {
        let raw = f.attr("id").unwrap_or("");
        let id = FolderId::new(raw).map_err(|e| ImportError::Entry {
            what: format!("folder \"{raw}\""),
            message: e.to_string(),
        })?;
        let what = format!("folder \"{id}\"");
        let path = f.attr("path").unwrap_or("");
        if path.is_empty() {
            return Err(ImportError::Entry {
                what,
                message: "has no path".into(),
            });
        }
        let mut entry = FolderEntry::new(id, PathBuf::from(path));
        entry.label = f.attr("label").unwrap_or("").to_owned();
        match crate::config::FolderType::parse(f.attr("type").unwrap_or("sendreceive")) {
            Ok(t) => entry.kind = t,
            Err(e) => {
                // receiveencrypted: syncd has no untrusted devices.
                not_carried.push(format!(
                    "{what}: {e} (imported PAUSED so nothing is sent until you decide)"
                ));
                entry.paused = true;
            }
        }
        entry.rescan_interval_s = parse_num(f.attr("rescanIntervalS"), 3600);
        entry.watcher_enabled = parse_bool(f.attr("fsWatcherEnabled"), true);
        let delay_s: f64 = parse_num(f.attr("fsWatcherDelayS"), 10.0);
        let delay_s = if delay_s > 0.0 { delay_s } else { 10.0 };
        entry.watcher_delay_ms = (delay_s * 1000.0).round().min(f64::from(u32::MAX)) as u32;
        entry.ignore_perms = parse_bool(f.attr("ignorePerms"), false);
        entry.auto_normalize = parse_bool(f.child_text("autoNormalize"), true);
        entry.case_sensitive_fs = parse_bool(f.child_text("caseSensitiveFS"), false);
        entry.max_conflicts = parse_num(f.child_text("maxConflicts"), 10);
        entry.paused = entry.paused || parse_bool(f.child_text("paused"), false);
        for d in f.children("device") {
            let raw = d.attr("id").unwrap_or("");
            match raw.parse::<DeviceId>() {
                Ok(id) if id == own_id => {}
                Ok(id) => {
                    entry.devices.push(id);
                    if let Some(by) = d
                        .attr("introducedBy")
                        .and_then(|v| v.trim().parse::<DeviceId>().ok())
                    {
                        entry.introduced_by.insert(id.to_string(), by.to_string());
                    }
                }
                Err(e) => not_carried.push(format!("{what}: device \"{raw}\" ({e})")),
            }
        }
        if let Some(v) = f.child("versioning") {
            let versioning = crate::config::Versioning {
                kind: v.attr("type").unwrap_or("").trim().to_owned(),
                params: v
                    .children("param")
                    .filter_map(|p| Some((p.attr("key")?.to_owned(), p.attr("val")?.to_owned())))
                    .collect(),
                cleanup_interval_s: parse_num(
                    v.child_text("cleanupIntervalS"),
                    syncd_engine::versioner::DEFAULT_CLEANUP_INTERVAL_S,
                ),
                fs_path: v.child_text("fsPath").unwrap_or("").trim().to_owned(),
                fs_type: v
                    .child_text("fsType")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .unwrap_or("basic")
                    .to_owned(),
            };
            match versioning.to_engine(&entry.path) {
                Ok(_) => entry.versioning = versioning,
                Err(e) => not_carried.push(format!("{what}: versioning ({e})")),
            }
        }
        report_rest(&what, f, FOLDER_CARRIED, FOLDER_DEFAULTS, &mut not_carried);
        config.folders.push(entry);
    }

    let mut gui = Gui::default();
    if let Some(g) = root.child("gui") {
        if let Some(addr) = g.child_text("address") {
            if addr.parse::<std::net::SocketAddr>().is_ok() {
                gui.address = addr.to_owned();
            } else {
                not_carried.push(format!(
                    "gui: address \"{addr}\" (syncd needs IP:port; using {})",
                    gui.address
                ));
            }
        }
        gui.api_key = g.child_text("apikey").unwrap_or("").to_owned();
        gui.tls = parse_bool(g.attr("tls"), false);
        gui.user = g.child_text("user").unwrap_or("").to_owned();
        // Syncthing stores a bcrypt hash, which syncd checks the same way; anything else
        // (a hand-written plain password) is hashed when the daemon starts.
        gui.password = g.child_text("password").unwrap_or("").to_owned();
    }
    if gui.api_key.is_empty() {
        gui.api_key = crate::config::random_api_key();
    }
    config.gui = gui;

    let mut options = Options {
        device_name: config.options.device_name.clone(),
        ..Options::default()
    };
    if let Some(o) = root.child("options") {
        let mut listen = Vec::new();
        for l in o.children("listenAddress") {
            for addr in l.text.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                if addr == "default" {
                    listen.push(crate::config::DEFAULT_LISTEN.to_owned());
                    not_carried.push(
                        "options: listenAddress default's quic:// and relay parts (syncd listens on tcp only)"
                            .into(),
                    );
                } else if crate::config::is_listen_address(addr) {
                    listen.push(addr.to_owned());
                } else {
                    not_carried.push(format!(
                        "options: listenAddress {addr} (only tcp://IP:port)"
                    ));
                }
            }
        }
        if !listen.is_empty() {
            options.listen = listen;
        }
        let servers: Vec<String> = o
            .children("globalAnnounceServer")
            .flat_map(|s| {
                s.text
                    .split(',')
                    .map(|a| a.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|a| !a.is_empty())
            .collect();
        if !servers.is_empty() {
            options.global_announce_servers = servers;
        }
        let flag = |name: &str, not_carried: &mut Vec<String>| -> Option<bool> {
            let v = o.child_text(name)?;
            match v.trim() {
                "true" => Some(true),
                "false" => Some(false),
                other => {
                    not_carried.push(format!("options: {name} = {other} (not true or false)"));
                    None
                }
            }
        };
        if let Some(b) = flag("globalAnnounceEnabled", &mut not_carried) {
            options.global_announce_enabled = b;
        }
        if let Some(b) = flag("localAnnounceEnabled", &mut not_carried) {
            options.local_announce_enabled = b;
        }
        if let Some(b) = flag("announceLANAddresses", &mut not_carried) {
            options.announce_lan_addresses = b;
        }
        if let Some(p) = o.child_text("localAnnouncePort") {
            match p.trim().parse::<u16>() {
                Ok(p) if p != 0 => options.local_announce_port = p,
                _ => not_carried.push(format!("options: localAnnouncePort = {p} (not a port)")),
            }
        }
        if let Some(mc) = o
            .child_text("localAnnounceMCAddr")
            .filter(|m| !m.trim().is_empty())
        {
            options.local_announce_mc_addr = mc.trim().to_owned();
        }
        for (name, quiet) in OPTION_NOTES {
            if let Some(v) = o.child_text(name)
                && v != *quiet
            {
                not_carried.push(format!(
                    "options: {name} = {v} (syncd does not do this yet)"
                ));
            }
        }
        let others = o
            .children
            .iter()
            .filter(|c| {
                c.name != "listenAddress"
                    && !DISCOVERY_OPTIONS.contains(&c.name.as_str())
                    && !OPTION_NOTES.iter().any(|(n, _)| *n == c.name)
            })
            .count();
        if others > 0 {
            not_carried.push(format!(
                "options: {others} other Syncthing-internal settings (usage reporting, \
                 upgrades, tuning)"
            ));
        }
    }
    config.options = options;
    for d in root.children("remoteIgnoredDevice") {
        let raw = d.attr("id").unwrap_or("");
        match raw.parse::<DeviceId>() {
            Ok(id) => config.ignored_devices.push(crate::config::ObservedDevice {
                id,
                name: d.attr("name").unwrap_or("").to_owned(),
                address: d.attr("address").unwrap_or("").to_owned(),
                time: d.attr("time").unwrap_or("").to_owned(),
            }),
            Err(e) => not_carried.push(format!("remoteIgnoredDevice \"{raw}\" ({e})")),
        }
    }
    if let Some(path) = root
        .child("defaults")
        .and_then(|d| d.child("folder"))
        .and_then(|f| f.attr("path"))
        .filter(|p| !p.trim().is_empty())
    {
        config.defaults.folder_path = PathBuf::from(path.trim());
    }
    Ok(Imported {
        config,
        not_carried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "ZDQ4WGD-IV3NRYP-TRDL6DH-PFQ5EQN-QBLXLV5-4O4ZEZH-O4EYNCV-SIFLCAY";
    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

    fn xml(body: &str) -> String {
        format!("<configuration version=\"36\">{body}</configuration>")
    }

    fn import(body: &str) -> Imported {
        from_syncthing_xml(&xml(body), OWN.parse().unwrap()).unwrap()
    }

    #[test]
    fn pending_related_keys_carry_over() {
        let third = DeviceId::from_slice(&[7; 32]).unwrap().to_string();
        let third = third.as_str();
        let i = import(&format!(
            "<folder id=\"f\" path=\"/x\"><device id=\"{PEER}\" introducedBy=\"{third}\"></device></folder>\
             <device id=\"{PEER}\" name=\"p\" introducer=\"true\" skipIntroductionRemovals=\"true\" introducedBy=\"{third}\">\
             <address>dynamic</address><autoAcceptFolders>true</autoAcceptFolders>\
             <ignoredFolder time=\"2026-12-07T08:00:00Z\" id=\"nope\" label=\"Nope\"></ignoredFolder></device>\
             <remoteIgnoredDevice time=\"2026-12-07T08:00:00Z\" id=\"{third}\" name=\"t\" address=\"1.2.3.4:5\"></remoteIgnoredDevice>\
             <defaults><folder id=\"\" path=\"/srv/sync\"></folder></defaults>"
        ));
        let d = &i.config.devices[0];
        assert!(d.introducer && d.skip_introduction_removals && d.auto_accept_folders);
        assert_eq!(
            d.introduced_by.map(|x| x.to_string()).as_deref(),
            Some(third)
        );
        assert_eq!(d.ignored_folders[0].id.as_str(), "nope");
        assert_eq!(d.ignored_folders[0].label, "Nope");
        assert_eq!(i.config.ignored_devices[0].id.to_string(), third);
        assert_eq!(i.config.ignored_devices[0].address, "1.2.3.4:5");
        assert_eq!(i.config.defaults.folder_path, PathBuf::from("/srv/sync"));
        assert_eq!(
            i.config.folders[0]
                .introduced_by
                .get(PEER)
                .map(String::as_str),
            Some(third)
        );
        assert!(
            !i.not_carried.iter().any(|l| l.contains("introduc")
                || l.contains("autoAccept")
                || l.contains("ignored")),
            "{:?}",
            i.not_carried
        );
    }

    #[test]
    fn own_device_is_not_a_peer_but_gives_the_name() {
        let i = import(&format!(
            "<device id=\"{OWN}\" name=\"vps\"><address>dynamic</address></device>"
        ));
        assert!(i.config.devices.is_empty());
        assert_eq!(i.config.options.device_name, "vps");
    }

    #[test]
    fn device_fields_carry_over() {
        let i = import(&format!(
            "<device id=\"{PEER}\" name=\"mac &amp; co\" compression=\"always\">\
             <address>tcp://10.0.0.2:22000</address><address>quic://10.0.0.2:22000</address>\
             <paused>true</paused></device>"
        ));
        let d = &i.config.devices[0];
        assert_eq!(d.id.to_string(), PEER);
        assert_eq!(d.name, "mac & co");
        assert_eq!(d.addresses, vec!["tcp://10.0.0.2:22000".to_owned()]);
        assert_eq!(d.compression, Compression::Always);
        assert!(d.paused);
        assert!(
            i.not_carried.iter().any(|n| n.contains("quic://")),
            "{:?}",
            i.not_carried
        );
    }

    #[test]
    fn folder_fields_carry_over_and_watcher_delay_becomes_ms() {
        let i = import(&format!(
            "<folder id=\"work\" label=\"Work\" path=\"/srv/work\" type=\"sendreceive\" \
             rescanIntervalS=\"60\" fsWatcherEnabled=\"false\" fsWatcherDelayS=\"2\" ignorePerms=\"true\">\
             <device id=\"{OWN}\"></device><device id=\"{PEER}\"></device>\
             <maxConflicts>3</maxConflicts><paused>false</paused>\
             <caseSensitiveFS>true</caseSensitiveFS></folder>"
        ));
        let f = &i.config.folders[0];
        assert!(f.case_sensitive_fs);
        assert_eq!((f.id.as_str(), f.label.as_str()), ("work", "Work"));
        assert_eq!(f.path, PathBuf::from("/srv/work"));
        assert_eq!((f.rescan_interval_s, f.watcher_delay_ms), (60, 2000));
        assert!(!f.watcher_enabled && f.ignore_perms && !f.paused);
        assert_eq!(f.max_conflicts, 3);
        assert_eq!(f.devices, vec![PEER.parse::<DeviceId>().unwrap()]);
    }

    #[test]
    fn non_default_unsupported_settings_are_listed() {
        let i = import(
            "<folder id=\"a\" path=\"/a\"><order>alphabetic</order><copiers>0</copiers>\
             <versioning type=\"bogus\"></versioning><ignoreDelete>true</ignoreDelete></folder>",
        );
        let all = i.not_carried.join("\n");
        assert!(all.contains("order = alphabetic"), "{all}");
        assert!(
            all.contains("versioning (unknown versioning type \"bogus\")"),
            "{all}"
        );
        assert!(all.contains("ignoreDelete = true"), "{all}");
        assert!(!all.contains("copiers"), "{all}");
    }

    #[test]
    fn versioning_is_carried_with_its_params() {
        let i = import(
            "<folder id=\"a\" path=\"/a\"><versioning type=\"staggered\">\
             <param key=\"maxAge\" val=\"86400\"></param><param key=\"cleanInterval\" val=\"60\"></param>\
             <cleanupIntervalS>60</cleanupIntervalS><fsPath>old</fsPath><fsType>basic</fsType>\
             </versioning></folder>",
        );
        let v = &i.config.folders[0].versioning;
        assert_eq!(v.kind, "staggered");
        assert_eq!(v.params["maxAge"], "86400");
        assert_eq!((v.cleanup_interval_s, v.fs_path.as_str()), (60, "old"));
        assert!(i.not_carried.is_empty(), "{:?}", i.not_carried);
        let e = i.config.folders[0].to_engine();
        assert_eq!(
            e.versioning.kind,
            syncd_engine::versioner::VersioningType::Staggered
        );
    }

    #[test]
    fn folder_types_carry_over() {
        for (ty, want) in [
            ("sendreceive", crate::config::FolderType::Sendreceive),
            ("sendonly", crate::config::FolderType::Sendonly),
            ("receiveonly", crate::config::FolderType::Receiveonly),
            ("readonly", crate::config::FolderType::Sendonly),
        ] {
            let i = import(&format!(
                "<folder id=\"a\" path=\"/a\" type=\"{ty}\"></folder>"
            ));
            assert_eq!(i.config.folders[0].kind, want, "{ty}");
            assert!(!i.config.folders[0].paused, "{ty}");
            assert!(i.not_carried.is_empty(), "{ty}: {:?}", i.not_carried);
        }
    }

    #[test]
    fn receive_encrypted_folder_is_imported_paused() {
        let i = import("<folder id=\"a\" path=\"/a\" type=\"receiveencrypted\"></folder>");
        assert!(i.config.folders[0].paused);
        assert!(i.not_carried.iter().any(|n| n.contains("receiveencrypted")));
    }

    #[test]
    fn gui_address_and_api_key_carry_over() {
        let i = import(
            "<gui enabled=\"true\" tls=\"false\"><address>0.0.0.0:8385</address><apikey>k3y</apikey></gui>",
        );
        assert_eq!(i.config.gui.address, "0.0.0.0:8385");
        assert_eq!(i.config.gui.api_key, "k3y");
    }

    #[test]
    fn default_listen_address_becomes_tcp_default() {
        let i = import("<options><listenAddress>default</listenAddress></options>");
        assert_eq!(
            i.config.options.listen,
            vec![crate::config::DEFAULT_LISTEN.to_owned()]
        );
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in [
            "",
            "<configuration>",
            "<a></b>",
            "<x/>",
            "<configuration><device id=\"nope\"/></configuration>",
        ] {
            assert!(
                from_syncthing_xml(bad, OWN.parse().unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
