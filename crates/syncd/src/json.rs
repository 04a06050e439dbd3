//! Syncthing's JSON shapes: engine status and events to JSON, and the config file model to and
//! from the `/rest/config` JSON. Pure functions; `rest` does the IO.
//!
//! Key names, nesting and JSON types follow Syncthing 1.19 (captured responses live in
//! `tests/fixtures/syncthing-1.19.2/`), so existing Syncthing REST clients can read them.

use serde::Deserialize as _;
use serde_json::{Map, Value, json};
use syncd_engine::{Completion, ConnectionStatus, Counts, Event, FolderStatus};
use syncd_types::{DeviceId, FileKind, FolderId};

use crate::config::{Compression, Config, DeviceEntry, FolderEntry};
use crate::timefmt::{ZERO_TIME, rfc3339, rfc3339_or_zero};

/// `/rest/db/status` (and the `FolderSummary` event's `summary`).
pub fn folder_summary(s: &FolderStatus, has_ignore_patterns: bool) -> Value {
    let counts = |prefix: &str, c: &Counts, deleted_key: &str, out: &mut Map<String, Value>| {
        out.insert(format!("{prefix}Files"), json!(c.files));
        out.insert(format!("{prefix}Directories"), json!(c.directories));
        out.insert(format!("{prefix}Symlinks"), json!(c.symlinks));
        out.insert(format!("{prefix}{deleted_key}"), json!(c.deleted));
        out.insert(format!("{prefix}Bytes"), json!(c.bytes));
        // Syncthing's TotalItems counts deleted entries too.
        out.insert(
            format!("{prefix}TotalItems"),
            json!(c.items().saturating_add(c.deleted)),
        );
    };
    let mut m = Map::new();
    counts("global", &s.global, "Deleted", &mut m);
    counts("local", &s.local, "Deleted", &mut m);
    counts("need", &s.need, "Deletes", &mut m);
    // Syncthing 1.19 adds `receiveOnlyChanged*` only to receive-only folders and has no
    // `remoteSequence` yet; `error` and `watchError` appear only when set.
    if let Some(ro) = &s.receive_only_changed {
        m.insert("receiveOnlyChangedFiles".into(), json!(ro.files));
        m.insert(
            "receiveOnlyChangedDirectories".into(),
            json!(ro.directories),
        );
        m.insert("receiveOnlyChangedSymlinks".into(), json!(ro.symlinks));
        m.insert("receiveOnlyChangedDeletes".into(), json!(ro.deleted));
        m.insert("receiveOnlyChangedBytes".into(), json!(ro.bytes));
        m.insert(
            "receiveOnlyTotalItems".into(),
            json!(ro.items().saturating_add(ro.deleted)),
        );
    }
    let errors = s.errors.len();
    m.insert("inSyncFiles".into(), json!(s.in_sync_files));
    m.insert("inSyncBytes".into(), json!(s.in_sync_bytes));
    m.insert("errors".into(), json!(errors));
    m.insert("pullErrors".into(), json!(s.pull_errors));
    m.insert("invalid".into(), json!(""));
    m.insert("state".into(), json!(s.state.as_str()));
    m.insert("stateChanged".into(), json!(rfc3339(s.state_changed)));
    if let Some(e) = s.error.as_ref().filter(|e| !e.is_empty()) {
        m.insert("error".into(), json!(e));
    }
    m.insert("sequence".into(), json!(s.sequence));
    m.insert("version".into(), json!(s.sequence));
    m.insert("ignorePatterns".into(), json!(has_ignore_patterns));
    if let Some(e) = s.watch_error.as_ref().filter(|e| !e.is_empty()) {
        m.insert("watchError".into(), json!(e));
    }
    Value::Object(m)
}

/// `/rest/db/completion`.
pub fn completion(c: &Completion) -> Value {
    json!({
        "completion": c.completion,
        "globalBytes": c.global_bytes,
        "needBytes": c.need_bytes,
        "globalItems": c.global_items,
        "needItems": c.need_items,
        "needDeletes": c.need_deletes,
        "sequence": c.sequence,
    })
}

/// One entry of `/rest/system/connections`'s `connections` map.
pub fn connection(c: &ConnectionStatus, now: std::time::SystemTime) -> Value {
    let at = if c.connected {
        rfc3339(now)
    } else {
        ZERO_TIME.to_owned()
    };
    json!({
        "at": at,
        "inBytesTotal": c.in_bytes_total,
        "outBytesTotal": c.out_bytes_total,
        "startedAt": rfc3339_or_zero(c.started_at),
        "connected": c.connected,
        "paused": c.paused,
        "address": c.address.map(|a| a.to_string()).unwrap_or_default(),
        "clientVersion": c.client_version,
        "type": c.conn_type,
        "crypto": c.crypto,
    })
}

/// `/rest/system/connections`.
pub fn connections(list: &[ConnectionStatus], now: std::time::SystemTime) -> Value {
    let (mut inb, mut outb) = (0u64, 0u64);
    let mut map = Map::new();
    for c in list {
        inb = inb.saturating_add(c.in_bytes_total);
        outb = outb.saturating_add(c.out_bytes_total);
        map.insert(c.device.to_string(), connection(c, now));
    }
    json!({
        "connections": map,
        "total": {"at": rfc3339(now), "inBytesTotal": inb, "outBytesTotal": outb},
    })
}

fn kind_str(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Directory => "dir",
        FileKind::Symlink => "symlink",
    }
}

/// Syncthing's type name for an engine event (each is the engine's variant name); `None` for
/// events Syncthing has no equivalent of. Cheap: no `data` is built.
pub fn event_kind(e: &Event) -> Option<&'static str> {
    Some(match e {
        Event::StateChanged { .. } => "StateChanged",
        Event::LocalIndexUpdated { .. } => "LocalIndexUpdated",
        Event::RemoteIndexUpdated { .. } => "RemoteIndexUpdated",
        Event::ItemStarted { .. } => "ItemStarted",
        Event::ItemFinished { .. } => "ItemFinished",
        Event::DeviceConnected { .. } => "DeviceConnected",
        Event::DeviceDisconnected { .. } => "DeviceDisconnected",
        Event::DeviceRejected { .. } => "DeviceRejected",
        Event::DeviceDiscovered { .. } => "DeviceDiscovered",
        Event::PendingDevicesChanged { .. } => "PendingDevicesChanged",
        Event::PendingFoldersChanged { .. } => "PendingFoldersChanged",
        Event::FolderRejected { .. } => "FolderRejected",
        Event::DevicePaused { .. } => "DevicePaused",
        Event::DeviceResumed { .. } => "DeviceResumed",
        Event::FolderPaused { .. } => "FolderPaused",
        Event::FolderResumed { .. } => "FolderResumed",
        Event::FolderErrors { .. } => "FolderErrors",
        Event::FolderCompletion { .. } => "FolderCompletion",
        Event::FolderScanProgress { .. } => "FolderScanProgress",
        Event::DiskChanged { local: true, .. } => "LocalChangeDetected",
        Event::DiskChanged { local: false, .. } => "RemoteChangeDetected",
        _ => return None,
    })
}

/// Syncthing's type name and `data` for an engine event; `None` for events Syncthing has no
/// equivalent of. `state_seconds` is how long the folder was in its previous state (for
/// `StateChanged.duration`).
pub fn event(e: &Event, state_seconds: f64) -> Option<(&'static str, Value)> {
    let kind = event_kind(e)?;
    let data = match e {
        Event::StateChanged {
            folder,
            from,
            to,
            error,
        } => {
            let mut data = json!({"folder": folder.as_str(), "from": from.as_str(), "to": to.as_str(), "duration": state_seconds});
            if let (Some(err), Some(obj)) = (error, data.as_object_mut()) {
                obj.insert("error".into(), json!(err));
            }
            data
        }
        Event::LocalIndexUpdated {
            folder,
            items,
            sequence,
            filenames,
        } => {
            json!({"folder": folder.as_str(), "items": items, "filenames": filenames, "sequence": sequence, "version": sequence})
        }
        Event::RemoteIndexUpdated {
            device,
            folder,
            items,
            sequence,
        } => {
            json!({"device": device.to_string(), "folder": folder.as_str(), "items": items, "sequence": sequence, "version": sequence})
        }
        Event::ItemStarted {
            folder,
            item,
            kind,
            action,
        } => {
            json!({"folder": folder.as_str(), "item": item, "type": kind_str(*kind), "action": action.as_str()})
        }
        Event::ItemFinished {
            folder,
            item,
            kind,
            action,
            error,
        } => {
            json!({"folder": folder.as_str(), "item": item, "type": kind_str(*kind), "action": action.as_str(), "error": error})
        }
        Event::DeviceConnected {
            device,
            device_name,
            client_name,
            client_version,
            addr,
            conn_type,
        } => {
            json!({"id": device.to_string(), "deviceName": device_name, "clientName": client_name, "clientVersion": client_version, "type": conn_type, "addr": addr.to_string()})
        }
        Event::DeviceDisconnected { device, error } => {
            json!({"id": device.to_string(), "error": error})
        }
        Event::DeviceDiscovered { device, addrs } => {
            json!({"device": device.to_string(), "addrs": addrs})
        }
        Event::DeviceRejected {
            device,
            name,
            address,
        } => json!({"device": device.to_string(), "name": name, "address": address.to_string()}),
        Event::PendingDevicesChanged { added, removed } => {
            let mut o = Map::new();
            if !added.is_empty() {
                o.insert("added".into(), added.iter().map(|d| json!({"deviceID": d.device.to_string(), "name": d.name, "address": d.address})).collect());
            }
            if !removed.is_empty() {
                o.insert(
                    "removed".into(),
                    removed
                        .iter()
                        .map(|d| json!({"deviceID": d.to_string()}))
                        .collect(),
                );
            }
            Value::Object(o)
        }
        Event::PendingFoldersChanged { added, removed } => {
            // As Syncthing: an offer (from a ClusterConfig) has both lists, a clean-up only
            // `removed`.
            let mut o = Map::new();
            if !added.is_empty() {
                o.insert("added".into(), added.iter().map(|f| json!({"folderID": f.folder.as_str(), "folderLabel": f.label, "deviceID": f.device.to_string(), "receiveEncrypted": f.receive_encrypted, "remoteEncrypted": f.remote_encrypted})).collect());
            }
            if !removed.is_empty() || !added.is_empty() {
                o.insert(
                    "removed".into(),
                    removed
                        .iter()
                        .map(|(f, d)| match d {
                            Some(d) => json!({"folderID": f.as_str(), "deviceID": d.to_string()}),
                            None => json!({"folderID": f.as_str()}),
                        })
                        .collect(),
                );
            }
            Value::Object(o)
        }
        Event::FolderRejected {
            folder,
            label,
            device,
        } => {
            json!({"folder": folder.as_str(), "folderLabel": label, "device": device.to_string()})
        }
        Event::DevicePaused { device } => json!({"device": device.to_string()}),
        Event::DeviceResumed { device } => json!({"device": device.to_string()}),
        Event::FolderPaused { folder } => json!({"id": folder.as_str(), "label": folder.as_str()}),
        Event::FolderResumed { folder } => json!({"id": folder.as_str(), "label": folder.as_str()}),
        Event::FolderErrors { folder, errors } => {
            json!({"folder": folder.as_str(), "errors": errors.iter().map(|e| json!({"path": e.path, "error": e.error})).collect::<Vec<_>>()})
        }
        Event::FolderCompletion {
            folder,
            device,
            completion: c,
        } => {
            let mut data = completion(c);
            if let Some(obj) = data.as_object_mut() {
                obj.insert("folder".into(), json!(folder.as_str()));
                obj.insert("device".into(), json!(device.to_string()));
            }
            data
        }
        Event::FolderScanProgress {
            folder,
            current,
            total,
            rate,
        } => json!({"folder": folder.as_str(), "current": current, "total": total, "rate": rate}),
        Event::DiskChanged {
            folder,
            label,
            path,
            kind,
            deleted,
            modified_by,
            ..
        } => json!({
            "action": if *deleted { "deleted" } else { "modified" },
            "folder": folder.as_str(),
            "folderID": folder.as_str(),
            "label": label,
            "modifiedBy": modified_by.to_string(),
            "path": path,
            "type": kind_str(*kind),
        }),
        _ => return None,
    };
    Some((kind, data))
}

/// A watcher delay in ms as Syncthing's `fsWatcherDelayS`: an integer when whole, else a
/// fraction (newer Syncthing versions use a float).
fn delay_seconds(ms: u32) -> Value {
    if ms.is_multiple_of(1000) {
        json!(ms / 1000)
    } else {
        json!(f64::from(ms) / 1000.0)
    }
}

fn folder_device(id: &DeviceId, f: &FolderEntry) -> Value {
    let by = f
        .introduced_by
        .get(&id.to_string())
        .cloned()
        .unwrap_or_default();
    json!({"deviceID": id.to_string(), "introducedBy": by, "encryptionPassword": ""})
}

/// Syncthing's `versioning` object of a folder.
fn versioning(v: &crate::config::Versioning) -> Value {
    json!({
        "type": v.kind,
        "params": v.params,
        "cleanupIntervalS": v.cleanup_interval_s,
        "fsPath": v.fs_path,
        "fsType": if v.fs_type.is_empty() { "basic" } else { v.fs_type.as_str() },
    })
}

/// Applies a Syncthing `versioning` object to `v`: the keys it has replace those of `v`
/// (the GUI sends all of them). Param values may be strings or numbers.
fn apply_versioning(v: &mut crate::config::Versioning, body: &Value) -> Result<(), BodyError> {
    let o = body
        .as_object()
        .ok_or_else(|| BodyError("versioning: expected an object".into()))?;
    let scoped = |e: BodyError| BodyError(format!("versioning.{}", e.0));
    if let Some(t) = field::<String>(o, "type").map_err(scoped)? {
        v.kind = t;
    }
    if let Some(params) =
        field::<std::collections::BTreeMap<String, ParamBody>>(o, "params").map_err(scoped)?
    {
        v.params = params
            .into_iter()
            .map(|(k, p)| (k, p.into_text()))
            .collect();
    }
    if let Some(n) = field(o, "cleanupIntervalS").map_err(scoped)? {
        v.cleanup_interval_s = n;
    }
    if let Some(p) = field(o, "fsPath").map_err(scoped)? {
        v.fs_path = p;
    }
    if let Some(t) = field(o, "fsType").map_err(scoped)? {
        v.fs_type = t;
    }
    Ok(())
}

/// A folder in `/rest/config/folders` shape. `my_id` is listed among its devices, as
/// Syncthing always does.
pub fn folder(f: &FolderEntry, my_id: &DeviceId) -> Value {
    let mut devices = vec![folder_device(my_id, f)];
    devices.extend(
        f.devices
            .iter()
            .filter(|d| *d != my_id)
            .map(|d| folder_device(d, f)),
    );
    json!({
        "id": f.id.as_str(),
        "label": f.label,
        "filesystemType": "basic",
        "path": f.path.to_string_lossy(),
        "type": f.kind.as_str(),
        "devices": devices,
        "rescanIntervalS": f.rescan_interval_s,
        "fsWatcherEnabled": f.watcher_enabled,
        "fsWatcherDelayS": delay_seconds(f.watcher_delay_ms),
        "ignorePerms": f.ignore_perms,
        "autoNormalize": f.auto_normalize,
        "minDiskFree": {"value": 1, "unit": "%"},
        "versioning": versioning(&f.versioning),
        "copiers": 0,
        "pullerMaxPendingKiB": 0,
        "hashers": 0,
        "order": "random",
        "ignoreDelete": false,
        "scanProgressIntervalS": 0,
        "pullerPauseS": 0,
        "maxConflicts": f.max_conflicts,
        "disableSparseFiles": false,
        "disableTempIndexes": false,
        "paused": f.paused,
        "weakHashThresholdPct": 25,
        "markerName": ".stfolder",
        "copyOwnershipFromParent": false,
        "modTimeWindowS": 0,
        "maxConcurrentWrites": 2,
        "disableFsync": false,
        "blockPullOrder": "standard",
        "copyRangeMethod": "standard",
        "caseSensitiveFS": f.case_sensitive_fs,
        "junctionsAsDirs": false,
    })
}

/// A device in `/rest/config/devices` shape.
pub fn device(d: &DeviceEntry) -> Value {
    json!({
        "deviceID": d.id.to_string(),
        "name": d.name,
        "addresses": d.addresses,
        "compression": d.compression.as_str(),
        "certName": "",
        "introducer": d.introducer,
        "skipIntroductionRemovals": d.skip_introduction_removals,
        "introducedBy": d.introduced_by.map(|x| x.to_string()).unwrap_or_default(),
        "paused": d.paused,
        "allowedNetworks": [],
        "autoAcceptFolders": d.auto_accept_folders,
        "maxSendKbps": 0,
        "maxRecvKbps": 0,
        "ignoredFolders": d.ignored_folders.iter().map(|f| json!({"time": observed_time(&f.time), "id": f.id.as_str(), "label": f.label})).collect::<Vec<_>>(),
        "maxRequestKiB": 0,
        "untrusted": false,
        "remoteGUIPort": 0,
    })
}

/// A stored observation time, Go's zero time if there is none.
fn observed_time(t: &str) -> String {
    if t.is_empty() {
        ZERO_TIME.to_owned()
    } else {
        t.to_owned()
    }
}

/// `/rest/cluster/pending/devices`: `{"<ID>": {"time", "name", "address"}}`.
pub fn pending_devices(list: &[syncd_engine::PendingDevice]) -> Value {
    let mut o = Map::new();
    for d in list {
        o.insert(
            d.device.to_string(),
            json!({"time": rfc3339(d.time), "name": d.name, "address": d.address}),
        );
    }
    Value::Object(o)
}

/// `/rest/cluster/pending/folders`: `{"<folder>": {"offeredBy": {"<ID>": {"time", "label",
/// "receiveEncrypted", "remoteEncrypted"}}}}`.
pub fn pending_folders(list: &[syncd_engine::PendingFolder]) -> Value {
    let mut o = Map::new();
    for f in list {
        let entry = o
            .entry(f.folder.as_str().to_owned())
            .or_insert_with(|| json!({"offeredBy": {}}));
        if let Some(by) = entry.get_mut("offeredBy").and_then(Value::as_object_mut) {
            by.insert(
                f.device.to_string(),
                json!({"time": rfc3339(f.time), "label": f.label, "receiveEncrypted": f.receive_encrypted, "remoteEncrypted": f.remote_encrypted}),
            );
        }
    }
    Value::Object(o)
}

/// Our own device as Syncthing lists it among the devices.
pub fn own_device(config: &Config, my_id: DeviceId) -> Value {
    let mut me = DeviceEntry::new(my_id);
    me.name = config.options.device_name.clone();
    device(&me)
}

/// `/rest/config/options`.
pub fn options(config: &Config) -> Value {
    json!({
        "listenAddresses": config.options.listen,
        "globalAnnounceServers": config.options.global_announce_servers,
        "globalAnnounceEnabled": config.options.global_announce_enabled,
        "localAnnounceEnabled": config.options.local_announce_enabled,
        "localAnnouncePort": config.options.local_announce_port,
        "localAnnounceMCAddr": config.options.local_announce_mc_addr,
        "maxSendKbps": 0,
        "maxRecvKbps": 0,
        "reconnectionIntervalS": 60,
        "relaysEnabled": false,
        "relayReconnectIntervalM": 10,
        "startBrowser": false,
        "natEnabled": false,
        "natLeaseMinutes": 60,
        "natRenewalMinutes": 30,
        "natTimeoutSeconds": 10,
        "urAccepted": -1,
        "urSeen": 0,
        "urUniqueId": "",
        "urURL": "",
        "urPostInsecurely": false,
        "urInitialDelayS": 1800,
        "restartOnWakeup": true,
        "autoUpgradeIntervalH": 0,
        "upgradeToPreReleases": false,
        "keepTemporariesH": 24,
        "cacheIgnoredFiles": false,
        "progressUpdateIntervalS": 5,
        "limitBandwidthInLan": false,
        "minHomeDiskFree": {"value": 1, "unit": "%"},
        "releasesURL": "",
        "alwaysLocalNets": [],
        "overwriteRemoteDeviceNamesOnConnect": false,
        "tempIndexMinBlocks": 10,
        "unackedNotificationIDs": [],
        "trafficClass": 0,
        "setLowPriority": true,
        "maxFolderConcurrency": 0,
        "crURL": "",
        "crashReportingEnabled": false,
        "stunKeepaliveStartS": 180,
        "stunKeepaliveMinS": 20,
        "stunServers": [],
        "databaseTuning": "auto",
        "maxConcurrentIncomingRequestKiB": 0,
        "announceLANAddresses": config.options.announce_lan_addresses,
        "sendFullIndexOnUpgrade": false,
        "featureFlags": [],
        "connectionLimitEnough": 0,
        "connectionLimitMax": 0,
        "insecureAllowOldTLSVersions": false,
    })
}

/// `/rest/config/gui`. `address` is the configured one.
pub fn gui(config: &Config) -> Value {
    json!({
        "enabled": true,
        "address": config.gui.address,
        "unixSocketPermissions": "",
        "user": config.gui.user,
        "password": config.gui.password,
        "authMode": "static",
        "useTLS": config.gui.tls,
        "apiKey": config.gui.api_key,
        "insecureAdminAccess": false,
        "theme": "default",
        "debugging": false,
        "insecureSkipHostcheck": false,
        "insecureAllowFrameLoading": false,
    })
}

/// What the usage report needs from the running daemon.
#[derive(Debug, Default)]
pub struct UsageFigures {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Resident memory, bytes.
    pub rss: u64,
    /// Global file count of each folder.
    pub folder_files: Vec<u64>,
    /// Connected devices per transport (`tcp4`, `tcp6`).
    pub transports: std::collections::BTreeMap<String, u64>,
}

/// `/rest/svc/report`: the usage report Syncthing 1.19 (report version 3) would send, with
/// the keys it has, filled from syncd's config and process. Counters and keys Syncthing
/// leaves out when zero or empty (`omitempty`) are left out here too.
pub fn usage_report(config: &Config, figures: &UsageFigures) -> Value {
    let UsageFigures {
        uptime_s,
        rss,
        ref folder_files,
        ref transports,
    } = *figures;
    fn bump(map: &mut serde_json::Map<String, Value>, key: &str, by: usize) {
        if by == 0 {
            return;
        }
        let n = map.get(key).and_then(Value::as_u64).unwrap_or(0);
        map.insert(key.to_owned(), json!(n + by as u64));
    }
    let os = std::env::consts::OS;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let folders = &config.folders;
    let mut folder_uses = serde_json::Map::new();
    bump(&mut folder_uses, "sendreceive", folders.len());
    bump(
        &mut folder_uses,
        "ignorePerms",
        folders.iter().filter(|f| f.ignore_perms).count(),
    );
    // Names are always NFC-normalised.
    bump(&mut folder_uses, "autoNormalize", folders.len());
    let mut device_uses = serde_json::Map::new();
    for d in &config.devices {
        let key = match d.compression {
            crate::config::Compression::Metadata => "compressMetadata",
            crate::config::Compression::Always => "compressAlways",
            crate::config::Compression::Never => "compressNever",
        };
        bump(&mut device_uses, key, 1);
        let dynamic = d.addresses.iter().any(|a| a == "dynamic");
        bump(
            &mut device_uses,
            if dynamic { "dynamicAddr" } else { "staticAddr" },
            1,
        );
    }
    let mut rescans: Vec<u32> = folders.iter().map(|f| f.rescan_interval_s).collect();
    rescans.sort_unstable();
    let mut v3 = serde_json::Map::new();
    bump(
        &mut v3,
        "fsWatcherEnabled",
        folders.iter().filter(|f| f.watcher_enabled).count(),
    );
    let mut delays: Vec<u32> = folders
        .iter()
        .filter(|f| f.watcher_enabled)
        .map(|f| f.watcher_delay_ms.div_ceil(1000))
        .collect();
    delays.sort_unstable();
    v3.insert("fsWatcherDelays".into(), json!(delays));
    let mut gui_stats = serde_json::Map::new();
    bump(&mut gui_stats, "enabled", 1);
    bump(&mut gui_stats, "useTLS", usize::from(config.gui.tls));
    bump(
        &mut gui_stats,
        "useAuth",
        usize::from(config.gui.auth_enabled()),
    );
    bump(
        &mut gui_stats,
        "listenLocal",
        usize::from(config.gui.address_is_loopback()),
    );
    bump(
        &mut gui_stats,
        "listenUnspecified",
        usize::from(
            config
                .gui
                .address
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_unspecified()),
        ),
    );
    gui_stats.insert("theme".into(), json!({"default": 1}));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = json!({
        "version": crate::rest::VERSION,
        "longVersion": format!("syncd {} (rust {os}-{arch})", crate::rest::VERSION),
        "platform": format!("{os}-{arch}"),
        "numFolders": folders.len(),
        "numDevices": config.devices.len() + 1,
        "memoryUsageMiB": rss / (1024 * 1024),
        // Not measured: syncd runs no hashing benchmark at start.
        "sha256Perf": 0.0,
        "hashPerf": 0.0,
        "memorySize": crate::memory::total_memory_mib(),
        "urVersion": 3,
        "numCPU": cpus,
        "folderUses": folder_uses,
        "deviceUses": device_uses,
        "announce": {},
        "relays": {},
        "rescanIntvs": rescans,
        "uptime": uptime_s,
        "natType": "unknown",
        "progressEmitterEnabled": true,
        "customReleaseURL": false,
        "customStunServers": false,
        "folderUsesV3": v3,
        "deviceUsesV3": {},
        "guiStats": gui_stats,
        "blockStats": {},
        "ignoreStats": {},
    });
    if let Some(o) = report.as_object_mut() {
        let total: u64 = folder_files.iter().sum();
        if total > 0 {
            o.insert("totFiles".into(), json!(total));
            o.insert(
                "folderMaxFiles".into(),
                json!(folder_files.iter().max().copied().unwrap_or(0)),
            );
        }
        if !transports.is_empty() {
            o.insert("transportStats".into(), json!(transports));
        }
    }
    report
}

/// `/rest/config` (and the legacy `/rest/system/config`): the whole config.
pub fn config(config: &Config, my_id: DeviceId) -> Value {
    let mut devices = vec![own_device(config, my_id)];
    devices.extend(config.devices.iter().filter(|d| d.id != my_id).map(device));
    let default_folder = FolderEntry::new(
        FolderId::new("default").unwrap_or_else(|_| unreachable_folder()),
        config.defaults.folder_path.clone(),
    );
    let mut defaults_folder = folder(&default_folder, &my_id);
    if let Some(obj) = defaults_folder.as_object_mut() {
        obj.insert("id".into(), json!(""));
        obj.insert("label".into(), json!(""));
    }
    json!({
        "version": 36,
        "folders": config.folders.iter().map(|f| folder(f, &my_id)).collect::<Vec<_>>(),
        "devices": devices,
        "gui": gui(config),
        "ldap": {"address": "", "bindDN": "", "transport": "plain", "insecureSkipVerify": false, "searchBaseDN": "", "searchFilter": ""},
        "options": options(config),
        "remoteIgnoredDevices": config.ignored_devices.iter().map(|d| json!({"time": observed_time(&d.time), "deviceID": d.id.to_string(), "name": d.name, "address": d.address})).collect::<Vec<_>>(),
        "defaults": {
            "folder": defaults_folder,
            "device": device(&DeviceEntry::new(DeviceId::default())),
            "ignores": {"lines": []},
        },
    })
}

fn unreachable_folder() -> FolderId {
    // "default" is a valid folder ID; this branch is never taken.
    unreachable!("\"default\" is a valid folder ID")
}

/// Why a JSON body is not a valid folder or device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// The value at `key` decoded by serde as a `T`; absent or `null` is `None`. An error names
/// the key (`paused: invalid type: string "yes", expected a boolean`), which serde's own errors
/// on a [`Value`] do not.
fn field<T: serde::de::DeserializeOwned>(
    o: &Map<String, Value>,
    key: &str,
) -> Result<Option<T>, BodyError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| BodyError(format!("{key}: {e}"))),
    }
}

/// An entry of a folder's `devices`.
#[derive(serde::Deserialize)]
struct FolderDeviceBody {
    #[serde(rename = "deviceID")]
    device_id: String,
    #[serde(default, rename = "introducedBy")]
    introduced_by: Option<String>,
}

/// An entry of a device's `ignoredFolders`.
#[derive(serde::Deserialize)]
struct IgnoredFolderBody {
    id: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

/// An entry of `remoteIgnoredDevices`.
#[derive(serde::Deserialize)]
struct ObservedDeviceBody {
    #[serde(rename = "deviceID")]
    device_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

/// A versioning parameter: Syncthing's are strings, GUIs also send numbers and booleans.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ParamBody {
    Text(String),
    Number(serde_json::Number),
    Flag(bool),
}

impl ParamBody {
    fn into_text(self) -> String {
        match self {
            ParamBody::Text(s) => s,
            ParamBody::Number(n) => n.to_string(),
            ParamBody::Flag(b) => b.to_string(),
        }
    }
}

fn as_object(v: &Value) -> Result<&Map<String, Value>, BodyError> {
    v.as_object()
        .ok_or_else(|| BodyError("expected a JSON object".into()))
}

/// Applies a Syncthing folder object to `base` (a full replace starts from defaults, a PATCH
/// from the current folder). Unknown keys are ignored, as Syncthing does; `my_id` is dropped
/// from the device list. The ID in the body, if any, must match `base`'s unless `base` is new.
pub fn apply_folder(
    base: FolderEntry,
    body: &Value,
    my_id: &DeviceId,
) -> Result<FolderEntry, BodyError> {
    let o = as_object(body)?;
    let mut f = base;
    if let Some(id) = field::<String>(o, "id")? {
        f.id = FolderId::new(&id).map_err(|e| BodyError(format!("id: {e}")))?;
    }
    if let Some(v) = field(o, "label")? {
        f.label = v;
    }
    if let Some(v) = field::<String>(o, "path")? {
        f.path = v.into();
    }
    if let Some(t) = field::<String>(o, "type")?
        && !t.is_empty()
    {
        f.kind =
            crate::config::FolderType::parse(&t).map_err(|e| BodyError(format!("type: {e}")))?;
    }
    if let Some(v) = field(o, "rescanIntervalS")? {
        f.rescan_interval_s = v;
    }
    if let Some(v) = field(o, "fsWatcherEnabled")? {
        f.watcher_enabled = v;
    }
    if let Some(s) = field::<f64>(o, "fsWatcherDelayS")? {
        f.watcher_delay_ms = if s > 0.0 {
            (s * 1000.0).round().min(f64::from(u32::MAX)) as u32
        } else {
            10_000
        };
    }
    if let Some(v) = field(o, "ignorePerms")? {
        f.ignore_perms = v;
    }
    if let Some(v) = field(o, "autoNormalize")? {
        f.auto_normalize = v;
    }
    if let Some(v) = field(o, "caseSensitiveFS")? {
        f.case_sensitive_fs = v;
    }
    if let Some(v) = field(o, "maxConflicts")? {
        f.max_conflicts = v;
    }
    if let Some(v) = field(o, "paused")? {
        f.paused = v;
    }
    if let Some(v) = o.get("versioning").filter(|v| !v.is_null()) {
        apply_versioning(&mut f.versioning, v)?;
        f.versioning
            .to_engine(&f.path)
            .map_err(|e| BodyError(format!("versioning: {e}")))?;
    }
    if let Some(list) = field::<Vec<FolderDeviceBody>>(o, "devices")? {
        let mut out = Vec::new();
        let mut introduced = std::collections::BTreeMap::new();
        for d in list {
            let raw = d.device_id;
            let id: DeviceId = raw
                .parse()
                .map_err(|e| BodyError(format!("devices: \"{raw}\": {e}")))?;
            if id != *my_id && !out.contains(&id) {
                out.push(id);
                match d.introduced_by.as_deref() {
                    Some(by) if !by.is_empty() => {
                        let by: DeviceId = by.parse().map_err(|e| {
                            BodyError(format!("devices: introducedBy \"{by}\": {e}"))
                        })?;
                        introduced.insert(id.to_string(), by.to_string());
                    }
                    _ => {}
                }
            }
        }
        f.devices = out;
        f.introduced_by = introduced;
    }
    if f.path.as_os_str().is_empty() {
        return Err(BodyError("path: a folder needs a path".into()));
    }
    Ok(f)
}

/// Applies a Syncthing device object to `base` (see [`apply_folder`]).
pub fn apply_device(base: DeviceEntry, body: &Value) -> Result<DeviceEntry, BodyError> {
    let o = as_object(body)?;
    let mut d = base;
    if let Some(raw) = field::<String>(o, "deviceID")? {
        d.id = raw
            .parse()
            .map_err(|e| BodyError(format!("deviceID: \"{raw}\": {e}")))?;
    }
    if let Some(v) = field(o, "name")? {
        d.name = v;
    }
    if let Some(out) = field::<Vec<String>>(o, "addresses")? {
        d.addresses = if out.is_empty() {
            vec!["dynamic".to_owned()]
        } else {
            out
        };
    }
    if let Some(c) = field::<String>(o, "compression")? {
        d.compression = Compression::parse(&c).ok_or_else(|| {
            BodyError(format!(
                "compression: \"{c}\" is not metadata, always or never"
            ))
        })?;
    }
    if let Some(v) = field(o, "paused")? {
        d.paused = v;
    }
    if let Some(v) = field(o, "introducer")? {
        d.introducer = v;
    }
    if let Some(v) = field(o, "skipIntroductionRemovals")? {
        d.skip_introduction_removals = v;
    }
    if let Some(v) = field(o, "autoAcceptFolders")? {
        d.auto_accept_folders = v;
    }
    if let Some(raw) = field::<String>(o, "introducedBy")? {
        d.introduced_by = if raw.is_empty() {
            None
        } else {
            Some(
                raw.parse()
                    .map_err(|e| BodyError(format!("introducedBy: \"{raw}\": {e}")))?,
            )
        };
    }
    if let Some(list) = field::<Vec<IgnoredFolderBody>>(o, "ignoredFolders")? {
        let mut out = Vec::new();
        for f in list {
            let id = FolderId::new(&f.id)
                .map_err(|e| BodyError(format!("ignoredFolders: \"{}\": {e}", f.id)))?;
            if out
                .iter()
                .any(|x: &crate::config::ObservedFolder| x.id == id)
            {
                continue;
            }
            out.push(crate::config::ObservedFolder {
                id,
                label: f.label.unwrap_or_default(),
                time: f.time.unwrap_or_default(),
            });
        }
        d.ignored_folders = out;
    }
    if d.id.is_empty() {
        return Err(BodyError("deviceID: required".into()));
    }
    Ok(d)
}

/// Syncthing's `remoteIgnoredDevices` list (`[{"deviceID", "name", "address", "time"}]`).
pub fn observed_devices(v: &Value) -> Result<Vec<crate::config::ObservedDevice>, BodyError> {
    let list = Vec::<ObservedDeviceBody>::deserialize(v)
        .map_err(|e| BodyError(format!("remoteIgnoredDevices: {e}")))?;
    let mut out: Vec<crate::config::ObservedDevice> = Vec::new();
    for d in list {
        let raw = d.device_id;
        let id: DeviceId = raw
            .parse()
            .map_err(|e| BodyError(format!("remoteIgnoredDevices: \"{raw}\": {e}")))?;
        if out.iter().any(|x| x.id == id) {
            continue;
        }
        out.push(crate::config::ObservedDevice {
            id,
            name: d.name.unwrap_or_default(),
            address: d.address.unwrap_or_default(),
            time: d.time.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Syncthing's name for a kind in listings (`FILE_INFO_TYPE_…`).
fn file_info_type(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "FILE_INFO_TYPE_FILE",
        FileKind::Directory => "FILE_INFO_TYPE_DIRECTORY",
        FileKind::Symlink => "FILE_INFO_TYPE_SYMLINK",
    }
}

fn modified_time(f: &syncd_engine::FileSummary) -> String {
    let t = match u64::try_from(f.modified_s) {
        Ok(s) => {
            std::time::UNIX_EPOCH
                + std::time::Duration::new(s, u32::try_from(f.modified_ns).unwrap_or(0))
        }
        Err(_) => std::time::UNIX_EPOCH,
    };
    crate::timefmt::rfc3339_nano(t)
}

/// A file record as Syncthing's `db/need`, `db/file`, `db/localchanged` and
/// `db/remoteneed` show it. `local`: this device's own record (an invalid one is ignored).
pub fn file_info(f: &syncd_engine::FileSummary, local: bool) -> Value {
    let ignored = local && f.invalid;
    json!({
        "deleted": f.deleted,
        "ignored": ignored,
        "invalid": f.invalid,
        // Syncthing's FlagLocalIgnored.
        "localFlags": if ignored { 2 } else { 0 },
        "modified": modified_time(f),
        "modifiedBy": f.modified_by.to_string(),
        "mustRescan": false,
        "name": f.name,
        "noPermissions": f.no_permissions,
        "numBlocks": f.num_blocks,
        "permissions": format!("{:04o}", f.permissions & 0o7777),
        "sequence": f.sequence,
        "size": f.size,
        "type": file_info_type(f.kind),
        "version": f.version.iter().map(|(id, v)| format!("{id}:{v}")).collect::<Vec<_>>(),
    })
}

/// `db/browse`: the live entries below a directory as a tree, each
/// `{"name","modTime","size","type"}` and `"children"` for a directory within the depth
/// asked for. `entries` hold names relative to the folder, at most `depth` levels below
/// `base` (the directory listed, "" for the folder's root); an entry whose parent is not
/// among them is not shown.
pub fn browse_tree(entries: &[syncd_engine::FileSummary], base: &str, depth: usize) -> Value {
    let base = base.trim_end_matches('/');
    let mut children: std::collections::BTreeMap<&str, Vec<&syncd_engine::FileSummary>> =
        std::collections::BTreeMap::new();
    for f in entries {
        let parent = f.name.rsplit_once('/').map_or("", |(p, _)| p);
        children.entry(parent).or_default().push(f);
    }
    fn level(
        children: &std::collections::BTreeMap<&str, Vec<&syncd_engine::FileSummary>>,
        dir: &str,
        level_now: usize,
        depth: usize,
    ) -> Vec<Value> {
        let Some(list) = children.get(dir) else {
            return Vec::new();
        };
        list.iter()
            .map(|f| {
                let short = f.name.rsplit_once('/').map_or(f.name.as_str(), |(_, n)| n);
                let mut m = Map::new();
                m.insert("modTime".into(), json!(modified_time(f)));
                m.insert("name".into(), json!(short));
                m.insert("size".into(), json!(f.size));
                m.insert("type".into(), json!(file_info_type(f.kind)));
                if f.kind == FileKind::Directory && level_now < depth {
                    m.insert(
                        "children".into(),
                        Value::Array(level(children, &f.name, level_now + 1, depth)),
                    );
                }
                Value::Object(m)
            })
            .collect()
    }
    Value::Array(level(&children, base, 1, depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};
    use syncd_engine::FolderState;

    const ME: &str = "ZDQ4WGD-IV3NRYP-TRDL6DH-PFQ5EQN-QBLXLV5-4O4ZEZH-O4EYNCV-SIFLCAY";
    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

    fn me() -> DeviceId {
        ME.parse().unwrap()
    }

    /// Every key of `reference` exists in `ours` with the same JSON type (numbers are one type),
    /// recursively through objects.
    fn assert_same_shape(path: &str, reference: &Value, ours: &Value) {
        let kind = |v: &Value| match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if let (Value::Object(r), Value::Object(o)) = (reference, ours) {
            for (k, rv) in r {
                let ov = o.get(k).unwrap_or_else(|| panic!("{path}.{k} missing"));
                assert_same_shape(&format!("{path}.{k}"), rv, ov);
            }
        } else if !reference.is_null() {
            assert_eq!(kind(reference), kind(ours), "{path}");
        }
    }

    fn fixture(name: &str) -> Value {
        let p = format!(
            "{}/tests/fixtures/syncthing-1.19.2/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn status() -> FolderStatus {
        FolderStatus {
            state: FolderState::Syncing,
            state_changed: UNIX_EPOCH + Duration::from_secs(1_795_816_533),
            error: None,
            global: Counts {
                files: 3,
                directories: 1,
                symlinks: 0,
                deleted: 2,
                bytes: 300,
            },
            local: Counts {
                files: 1,
                directories: 1,
                symlinks: 0,
                deleted: 0,
                bytes: 100,
            },
            need: Counts {
                files: 2,
                directories: 0,
                symlinks: 0,
                deleted: 1,
                bytes: 200,
            },
            in_sync_files: 1,
            in_sync_bytes: 100,
            sequence: 7,
            errors: vec![],
            pull_errors: 0,
            remote_sequence: BTreeMap::from([(PEER.parse().unwrap(), 9)]),
            watch_error: None,
            receive_only_changed: None,
            damaged_blocks_refused: 0,
        }
    }

    #[test]
    fn db_status_has_syncthings_keys_and_types() {
        assert_same_shape(
            "db/status",
            &fixture("db_status.json"),
            &folder_summary(&status(), false),
        );
    }

    #[test]
    fn db_status_counts_are_the_engines() {
        let v = folder_summary(&status(), false);
        assert_eq!(v["globalFiles"], 3);
        assert_eq!(v["globalBytes"], 300);
        assert_eq!(v["needDeletes"], 1);
        assert_eq!(v["needTotalItems"], 3);
        assert_eq!(v["state"], "syncing");
        assert_eq!(v["stateChanged"], "2026-11-27T21:55:33Z");
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn db_status_of_a_healthy_folder_has_exactly_syncthing_1_19s_keys() {
        let reference = fixture("db_status.json");
        assert_eq!(keys(&folder_summary(&status(), false)), keys(&reference));
    }

    #[test]
    fn db_status_of_a_receive_only_folder_adds_the_receive_only_keys() {
        let mut s = status();
        s.receive_only_changed = Some(Counts {
            files: 2,
            directories: 1,
            symlinks: 0,
            deleted: 3,
            bytes: 40,
        });
        let v = folder_summary(&s, false);
        let reference = fixture("db_status.json");
        let mut expected = keys(&reference);
        expected.extend([
            "receiveOnlyChangedBytes",
            "receiveOnlyChangedDeletes",
            "receiveOnlyChangedDirectories",
            "receiveOnlyChangedFiles",
            "receiveOnlyChangedSymlinks",
            "receiveOnlyTotalItems",
        ]);
        expected.sort_unstable();
        assert_eq!(keys(&v), expected);
        assert_eq!(v["receiveOnlyChangedFiles"], 2);
        assert_eq!(v["receiveOnlyChangedDeletes"], 3);
        assert_eq!(v["receiveOnlyChangedBytes"], 40);
        assert_eq!(v["receiveOnlyTotalItems"], 6);
    }

    #[test]
    fn db_status_adds_error_and_watch_error_only_when_set() {
        let mut s = status();
        s.error = Some("folder path missing".into());
        s.watch_error = Some("too many watches".into());
        let v = folder_summary(&s, false);
        assert_eq!(v["error"], "folder path missing");
        assert_eq!(v["watchError"], "too many watches");
    }

    #[test]
    fn pending_lists_and_their_events_have_syncthings_keys_and_types() {
        let peer: DeviceId = ME.parse().unwrap();
        let d = syncd_engine::PendingDevice {
            device: peer,
            name: "n".into(),
            address: "127.0.0.1:1".into(),
            time: UNIX_EPOCH + Duration::from_secs(1_795_816_533),
        };
        let f = syncd_engine::PendingFolder {
            folder: FolderId::new("f").unwrap(),
            device: peer,
            label: "L".into(),
            time: UNIX_EPOCH + Duration::from_secs(1_795_816_533),
            receive_encrypted: false,
            remote_encrypted: false,
        };
        let first = |v: &Value| v.as_object().unwrap().values().next().unwrap().clone();
        assert_same_shape(
            "pending device",
            &first(&fixture("pending_devices.json")),
            &first(&pending_devices(std::slice::from_ref(&d))),
        );
        assert_same_shape(
            "pending folder",
            &first(&first(&fixture("pending_folders.json"))["offeredBy"]),
            &first(&first(&pending_folders(std::slice::from_ref(&f)))["offeredBy"]),
        );
        let events = [
            Event::PendingDevicesChanged {
                added: vec![d.clone()],
                removed: Vec::new(),
            },
            Event::DeviceRejected {
                device: peer,
                name: "n".into(),
                address: "127.0.0.1:1".parse().unwrap(),
            },
            Event::PendingFoldersChanged {
                added: vec![f.clone()],
                removed: Vec::new(),
            },
            Event::FolderRejected {
                folder: f.folder.clone(),
                label: "L".into(),
                device: peer,
            },
        ];
        for e in &events {
            let (kind, data) = event(e, 0.0).unwrap();
            let reference = fixture(&format!("event_{kind}.json"));
            assert_eq!(reference["type"], kind);
            // Arrays: the first element's shape.
            let norm = |v: &Value| -> Value {
                match v {
                    Value::Object(m) => Value::Object(
                        m.iter()
                            .map(|(k, x)| match x {
                                Value::Array(a) => {
                                    (k.clone(), a.first().cloned().unwrap_or(Value::Null))
                                }
                                other => (k.clone(), other.clone()),
                            })
                            .collect(),
                    ),
                    other => other.clone(),
                }
            };
            let (r, o) = (norm(&reference["data"]), norm(&data));
            for (k, rv) in r.as_object().unwrap() {
                let ov = o.get(k).unwrap_or_else(|| panic!("{kind}.{k} missing"));
                if !rv.is_null() {
                    assert_same_shape(&format!("{kind}.{k}"), rv, ov);
                }
            }
        }
    }

    #[test]
    fn config_has_syncthings_keys_and_types() {
        let mut c = Config::new_with_key("k".into());
        c.upsert_folder(FolderEntry::new(
            FolderId::new("default").unwrap(),
            "/tmp/x".into(),
        ));
        let ours = config(&c, me());
        let reference = fixture("config.json");
        for section in ["gui", "options"] {
            assert_same_shape(section, &reference[section], &ours[section]);
        }
        assert_same_shape("folder", &reference["folders"][0], &ours["folders"][0]);
        assert_same_shape("device", &reference["devices"][0], &ours["devices"][0]);
        assert_same_shape(
            "defaults.folder",
            &reference["defaults"]["folder"],
            &ours["defaults"]["folder"],
        );
        for key in reference.as_object().unwrap().keys() {
            assert!(ours.get(key).is_some(), "config.{key} missing");
        }
    }

    #[test]
    fn watcher_delay_is_shown_in_seconds() {
        for (ms, want) in [(10_000, json!(10)), (50, json!(0.05)), (1500, json!(1.5))] {
            let mut f = FolderEntry::new(FolderId::new("a").unwrap(), "/a".into());
            f.watcher_delay_ms = ms;
            assert_eq!(folder(&f, &me())["fsWatcherDelayS"], want, "{ms}");
        }
    }

    #[test]
    fn folder_json_round_trips_and_drops_own_device() {
        let mut f = FolderEntry::new(FolderId::new("work").unwrap(), "/srv/work".into());
        f.devices = vec![PEER.parse().unwrap()];
        f.watcher_delay_ms = 250;
        f.max_conflicts = -1;
        f.case_sensitive_fs = true;
        let v = folder(&f, &me());
        assert_eq!(v["caseSensitiveFS"], json!(true));
        assert_eq!(v["devices"].as_array().unwrap().len(), 2);
        let back = apply_folder(
            FolderEntry::new(FolderId::new("x").unwrap(), "/".into()),
            &v,
            &me(),
        )
        .unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn patch_changes_only_given_fields() {
        let f = FolderEntry::new(FolderId::new("work").unwrap(), "/srv/work".into());
        let patched = apply_folder(
            f.clone(),
            &json!({"paused": true, "fsWatcherDelayS": 2}),
            &me(),
        )
        .unwrap();
        assert!(patched.paused);
        assert_eq!(patched.watcher_delay_ms, 2000);
        assert_eq!((patched.path, patched.label), (f.path, f.label));
    }

    #[test]
    fn folder_type_is_read_from_a_body_and_listed() {
        let f = FolderEntry::new(FolderId::new("w").unwrap(), "/w".into());
        for (t, want) in [
            ("sendonly", "sendonly"),
            ("receiveonly", "receiveonly"),
            ("readonly", "sendonly"),
            ("sendreceive", "sendreceive"),
        ] {
            let g = apply_folder(f.clone(), &json!({"type": t}), &me()).unwrap();
            assert_eq!(folder(&g, &me())["type"], want, "{t}");
        }
        assert_eq!(folder(&f, &me())["type"], "sendreceive");
    }

    #[test]
    fn bad_bodies_are_errors() {
        let f = FolderEntry::new(FolderId::new("w").unwrap(), "/w".into());
        for body in [
            json!([1]),
            json!({"paused": "yes"}),
            json!({"type": "receiveencrypted"}),
            json!({"devices": [{"deviceID": "nope"}]}),
            json!({"rescanIntervalS": -1}),
        ] {
            assert!(apply_folder(f.clone(), &body, &me()).is_err(), "{body}");
        }
        let d = DeviceEntry::new(PEER.parse().unwrap());
        for body in [
            json!({"compression": "sometimes"}),
            json!({"deviceID": "x"}),
            json!({"addresses": "tcp://x"}),
        ] {
            assert!(apply_device(d.clone(), &body).is_err(), "{body}");
        }
    }

    #[test]
    fn device_json_round_trips() {
        let mut d = DeviceEntry::new(PEER.parse().unwrap());
        d.name = "mac".into();
        d.addresses = vec!["tcp://10.0.0.2:22000".into()];
        d.compression = Compression::Never;
        d.paused = true;
        let back = apply_device(DeviceEntry::new(DeviceId::default()), &device(&d)).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn connections_have_syncthings_shape_and_sum_totals() {
        let c = ConnectionStatus {
            device: PEER.parse().unwrap(),
            name: "mac".into(),
            connected: true,
            paused: false,
            address: Some("127.0.0.1:22000".parse().unwrap()),
            client_name: "syncthing".into(),
            client_version: "v1.19.2".into(),
            conn_type: "tcp-client",
            crypto: "TLS1.3-TLS_AES_128_GCM_SHA256".into(),
            started_at: Some(UNIX_EPOCH),
            in_bytes_total: 10,
            out_bytes_total: 20,
            derived_records_in: 0,
            derived_records_out: 0,
        };
        let v = connections(&[c], UNIX_EPOCH);
        let reference = fixture("system_connections.json");
        let ref_conn = reference["connections"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert_same_shape("connection", ref_conn, &v["connections"][PEER]);
        assert_eq!(keys(&v["connections"][PEER]), keys(ref_conn));
        assert_eq!(keys(&v["total"]), keys(&reference["total"]));
        assert_same_shape("total", &reference["total"], &v["total"]);
        assert_eq!(v["total"]["inBytesTotal"], 10);
        assert_eq!(v["connections"][PEER]["address"], "127.0.0.1:22000");
    }

    #[test]
    fn state_changed_event_carries_error_only_when_given() {
        let folder = FolderId::new("a").unwrap();
        let e = Event::StateChanged {
            folder: folder.clone(),
            from: FolderState::Syncing,
            to: FolderState::Idle,
            error: None,
        };
        let (ty, data) = event(&e, 1.5).unwrap();
        assert_eq!(ty, "StateChanged");
        assert_eq!(
            data,
            json!({"folder": "a", "from": "syncing", "to": "idle", "duration": 1.5})
        );
        let e = Event::StateChanged {
            folder,
            from: FolderState::Idle,
            to: FolderState::Error,
            error: Some("x".into()),
        };
        assert_eq!(event(&e, 0.0).unwrap().1["error"], "x");
    }

    fn entry(name: &str, kind: FileKind) -> syncd_engine::FileSummary {
        syncd_engine::FileSummary {
            name: name.into(),
            kind,
            size: 3,
            permissions: 0o644,
            ..syncd_engine::FileSummary::empty()
        }
    }

    #[test]
    fn browse_nests_children_under_their_directory_down_to_the_depth_asked() {
        // Index (byte) order puts "d.txt" between "d" and "d/b.txt".
        let entries = [
            entry("a.txt", FileKind::File),
            entry("d", FileKind::Directory),
            entry("d.txt", FileKind::File),
            entry("d/b.txt", FileKind::File),
            entry("d/e", FileKind::Directory),
            entry("d/e/f.txt", FileKind::File),
        ];
        let all = browse_tree(&entries, "", usize::MAX);
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(&all), ["a.txt", "d", "d.txt"]);
        assert_eq!(names(&all[1]["children"]), ["b.txt", "e"]);
        assert_eq!(names(&all[1]["children"][1]["children"]), ["f.txt"]);
        assert_eq!(all[0]["type"], "FILE_INFO_TYPE_FILE");
        assert!(all[0].get("children").is_none());
        let top = browse_tree(&entries[..3], "", 1);
        assert!(top[1].get("children").is_none(), "levels=0: no children");
        let below = browse_tree(&entries[3..], "d", usize::MAX);
        assert_eq!(names(&below), ["b.txt", "e"]);
    }

    #[test]
    fn file_info_has_syncthings_keys_and_formats() {
        let mut f = entry("x/y.txt", FileKind::File);
        f.version = vec![(syncd_types::ShortId::from(1), 7)];
        f.invalid = true;
        let v = file_info(&f, true);
        assert_eq!(v["permissions"], "0644");
        assert_eq!(v["version"][0], "AAAAAAA:7");
        assert_eq!(v["ignored"], true);
        assert_eq!(v["localFlags"], 2);
        assert_eq!(file_info(&f, false)["ignored"], false);
        assert_eq!(v["modified"], "1970-01-01T00:00:00Z");
    }
}
