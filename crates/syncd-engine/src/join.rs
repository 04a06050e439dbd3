//! What the engine does with devices and folders that ask to join (Syncthing 1.19.2's
//! rules): records them as pending ([`crate::pending`]), accepts offered folders from a
//! device with `auto_accept_folders`, and adds (and removes) the devices an introducer shares
//! our folders with.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use syncd_proto::bep;
use syncd_types::{DeviceId, FolderId};

use crate::config::{DeviceConfig, FolderConfig};
use crate::engine::{EngineHandle, Shared};
use crate::event::Event;
use crate::pending::{PendingDevice, PendingFolder, clean_text};

impl Shared {
    /// An unconfigured device completed TLS and Hello and was refused: record it as pending
    /// (unless the user ignores it) and say so.
    pub(crate) fn unknown_device(&self, u: syncd_transport::UnknownDevice) {
        let cfg = self.config.snapshot();
        if cfg.devices.iter().any(|d| d.id == u.device) {
            // A configured but paused device: not a new device to offer the user.
            return;
        }
        if cfg.ignored_devices.contains(&u.device) {
            tracing::debug!(device = %u.device, "refused an ignored device");
            return;
        }
        let entry = PendingDevice {
            device: u.device,
            name: clean_text(&u.name),
            address: u.address.to_string(),
            time: SystemTime::now(),
        };
        let evicted = self.state(|r| r.pending.record_device(entry.clone()));
        self.pending_changed.notify_one();
        self.events.emit(Event::PendingDevicesChanged {
            added: vec![entry.clone()],
            removed: evicted,
        });
        self.events.emit(Event::DeviceRejected {
            device: u.device,
            name: entry.name,
            address: u.address,
        });
    }

    /// Writes pending changes to the index.
    pub(crate) async fn flush_pending(&self) {
        let (put, remove) = self.state(|r| r.pending.take_dirty());
        if put.is_empty() && remove.is_empty() {
            return;
        }
        let index = self.index.clone();
        let _ =
            tokio::task::spawn_blocking(move || crate::pending::flush(&index, &put, &remove)).await;
    }

    /// Drops pending entries the configuration settled and says so.
    pub(crate) fn clean_pending(&self) {
        let cfg = self.config.snapshot();
        let (devices, folders) = self.state(|r| r.pending.clean(&cfg));
        self.pending_removed(devices, folders);
    }

    fn pending_removed(&self, devices: Vec<DeviceId>, folders: Vec<(FolderId, Option<DeviceId>)>) {
        if !devices.is_empty() {
            self.pending_changed.notify_one();
            self.events.emit(Event::PendingDevicesChanged {
                added: Vec::new(),
                removed: devices,
            });
        }
        if !folders.is_empty() {
            self.pending_changed.notify_one();
            self.events.emit(Event::PendingFoldersChanged {
                added: Vec::new(),
                removed: folders,
            });
        }
    }
}

/// What a folder entry of a peer's ClusterConfig says, kept for the offer handling.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    folder: FolderId,
    label: String,
    /// The devices listed for it (the peer and us included).
    devices: Vec<bep::Device>,
    receive_encrypted: bool,
    remote_encrypted: bool,
}

/// The folders of a peer's ClusterConfig as offers (entries with an invalid ID skipped).
pub(crate) fn offers(me: DeviceId, peer: DeviceId, cc: &bep::ClusterConfig) -> Vec<Offer> {
    let token = |id: DeviceId, f: &bep::Folder| {
        f.devices
            .iter()
            .find(|d| d.id == id.as_bytes())
            .is_some_and(|d| !d.encryption_password_token.is_empty())
    };
    cc.folders
        .iter()
        .filter_map(|f| {
            Some(Offer {
                folder: FolderId::new(f.id.clone()).ok()?,
                label: clean_text(&f.label),
                devices: f.devices.clone(),
                receive_encrypted: token(me, f),
                remote_encrypted: token(peer, f),
            })
        })
        .collect()
}

/// Handles the folders a known peer offers in its latest ClusterConfig: accepts them
/// automatically if the device allows it, records the others as pending (and drops the
/// pending entries it no longer offers), and applies its introductions if it is an
/// introducer. Changes the configuration through the handle, one change at a time.
pub(crate) async fn handle_offers(shared: Arc<Shared>, peer: DeviceId, offers: Vec<Offer>) {
    let handle = EngineHandle {
        shared: shared.clone(),
    };
    let mut changed = Vec::new();
    let Some(dev) = shared.config.device(peer) else {
        return;
    };
    // 1. Auto-accept.
    if dev.auto_accept_folders {
        for o in &offers {
            let cfg = shared.config.snapshot();
            let ours = cfg.folders.iter().find(|f| f.id == o.folder);
            if ours.is_some_and(|f| f.devices.contains(&peer))
                || dev.ignored_folders.contains(&o.folder)
            {
                continue;
            }
            if o.receive_encrypted || o.remote_encrypted {
                tracing::info!(device = %peer, folder = %o.folder,
                    "not accepting an encrypted folder automatically (untrusted devices are not supported)");
                continue;
            }
            let accepted = match ours {
                Some(existing) => {
                    let mut f = existing.clone();
                    f.devices.push(peer);
                    handle.add_folder(f).await.map(|()| "shared with")
                }
                None => match auto_accept_path(&cfg.folder_defaults.path, o) {
                    Ok(path) => {
                        let f = FolderConfig {
                            id: o.folder.clone(),
                            label: o.label.clone(),
                            path,
                            devices: vec![peer],
                            introduced_by: Default::default(),
                            ..cfg.folder_defaults.clone()
                        };
                        handle.add_folder(f).await.map(|()| "created for")
                    }
                    Err(why) => {
                        tracing::warn!(device = %peer, folder = %o.folder, "cannot accept the folder automatically: {why}");
                        continue;
                    }
                },
            };
            match accepted {
                Ok(how) => {
                    tracing::info!(device = %peer, folder = %o.folder, "accepted the offered folder automatically ({how} the device)");
                    changed.push(format!("folder {} accepted from {peer}", o.folder));
                }
                Err(e) => tracing::warn!(device = %peer, folder = %o.folder, error = %e,
                    "cannot accept the folder automatically"),
            }
        }
    }
    // 2. Pending folders: what is still offered and neither shared nor ignored.
    let cfg = shared.config.snapshot();
    let Some(dev) = cfg.devices.iter().find(|d| d.id == peer).cloned() else {
        return;
    };
    let now = SystemTime::now();
    let pending: Vec<PendingFolder> = offers
        .iter()
        .filter(|o| {
            !dev.ignored_folders.contains(&o.folder)
                && !cfg
                    .folders
                    .iter()
                    .any(|f| f.id == o.folder && f.devices.contains(&peer))
        })
        .map(|o| PendingFolder {
            folder: o.folder.clone(),
            device: peer,
            label: o.label.clone(),
            time: now,
            receive_encrypted: o.receive_encrypted,
            remote_encrypted: o.remote_encrypted,
        })
        .collect();
    let (added, gone) = shared.state(|r| r.pending.offered(peer, pending));
    for f in &added {
        shared.events.emit(Event::FolderRejected {
            folder: f.folder.clone(),
            label: f.label.clone(),
            device: peer,
        });
    }
    if !added.is_empty() || !gone.is_empty() {
        shared.pending_changed.notify_one();
        shared.events.emit(Event::PendingFoldersChanged {
            added,
            removed: gone.into_iter().map(|f| (f, Some(peer))).collect(),
        });
    }
    // 3. Introductions.
    if dev.introducer {
        changed.extend(introduce(&handle, &dev, &offers).await);
    }
    if !changed.is_empty() {
        shared.events.emit(Event::ConfigChanged {
            why: changed.join("; "),
        });
    }
}

/// Where an automatically accepted folder goes: `<root>/<label>`, or `<root>/<id>` when that
/// exists, with both names made safe as one path component; neither free is a conflict.
fn auto_accept_path(root: &Path, o: &Offer) -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    for name in [
        folder_dir_name(&o.label),
        folder_dir_name(o.folder.as_str()),
    ] {
        if name.is_empty() || tried.contains(&name) {
            continue;
        }
        let path = root.join(&name);
        if std::fs::symlink_metadata(&path).is_err() {
            std::fs::create_dir_all(&path)
                .and_then(|()| crate::health::create_marker(&path))
                .map_err(|e| format!("create {}: {e}", path.display()))?;
            return Ok(path);
        }
        tried.push(name);
    }
    Err(format!(
        "path conflict: {} exists already (label and ID)",
        tried
            .iter()
            .map(|n| root.join(n).display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    ))
}

/// A label or ID as one safe directory name: characters that are unprintable or special on
/// some filesystem or shell dropped, runs of spaces collapsed, ends trimmed, `.`/`..` refused.
pub fn folder_dir_name(s: &str) -> String {
    const DROPPED: &str = "<>:\"'/\\|?*[]{};!@$%&^#\u{7f}\u{fffd}";
    let mut out = String::new();
    let mut prev_space = true;
    for c in s.chars() {
        if c.is_control() || DROPPED.contains(c) {
            continue;
        }
        let space = c.is_whitespace();
        if space && prev_space {
            continue;
        }
        out.push(if space { ' ' } else { c });
        prev_space = space;
    }
    let out = out.trim().to_owned();
    if out.chars().all(|c| c == '.') {
        return String::new();
    }
    out
}

/// Applies an introducer's ClusterConfig: devices it shares our folders with are added
/// (and share those folders); unless it skips removals, shares and devices it introduced and
/// no longer lists are removed. Returns what changed.
async fn introduce(handle: &EngineHandle, intro: &DeviceConfig, offers: &[Offer]) -> Vec<String> {
    let shared = &handle.shared;
    let me = shared.device_id;
    let mut changed = Vec::new();
    // (folder, device) pairs the introducer lists, for the removals below.
    let mut listed: BTreeSet<(FolderId, DeviceId)> = BTreeSet::new();
    for o in offers {
        let cfg = shared.config.snapshot();
        let Some(ours) = cfg.folders.iter().find(|f| f.id == o.folder) else {
            continue;
        };
        if !ours.devices.contains(&intro.id) {
            continue;
        }
        let mut folder = ours.clone();
        for d in &o.devices {
            let Some(id) = DeviceId::from_slice(&d.id) else {
                continue;
            };
            listed.insert((o.folder.clone(), id));
            if id == me || id == intro.id || !d.encryption_password_token.is_empty() {
                continue;
            }
            if !cfg.devices.iter().any(|c| c.id == id) {
                let mut addresses = vec![String::from("dynamic")];
                addresses.extend(
                    d.addresses
                        .iter()
                        .filter(|a| a.as_str() != "dynamic")
                        .take(16)
                        .map(|a| clean_text(a)),
                );
                let new = DeviceConfig {
                    name: clean_text(&d.name),
                    addresses,
                    compression: intro.compression,
                    introducer: d.introducer,
                    skip_introduction_removals: d.introducer && intro.skip_introduction_removals,
                    introduced_by: Some(intro.id),
                    ..DeviceConfig::new(id)
                };
                match handle.add_device(new).await {
                    Ok(()) => {
                        tracing::info!(device = %id, introducer = %intro.id, "device added by its introducer");
                        changed.push(format!("device {id} introduced by {}", intro.id));
                    }
                    Err(e) => {
                        tracing::warn!(device = %id, error = %e, "cannot add an introduced device");
                        continue;
                    }
                }
            }
            if !folder.devices.contains(&id) {
                folder.devices.push(id);
                folder.introduced_by.insert(id, intro.id);
            }
        }
        if folder.devices != ours.devices {
            let fid = folder.id.clone();
            match handle.add_folder(folder).await {
                Ok(()) => {
                    changed.push(format!("folder {fid} shared as introduced by {}", intro.id))
                }
                Err(e) => {
                    tracing::warn!(folder = %fid, error = %e, "cannot share an introduced folder")
                }
            }
        }
    }
    if intro.skip_introduction_removals {
        return changed;
    }
    // Shares the introducer introduced and no longer lists.
    let cfg = shared.config.snapshot();
    for f in &cfg.folders {
        let stale: Vec<DeviceId> = f
            .introduced_by
            .iter()
            .filter(|(d, by)| **by == intro.id && !listed.contains(&(f.id.clone(), **d)))
            .map(|(d, _)| *d)
            .collect();
        if stale.is_empty() {
            continue;
        }
        let mut folder = f.clone();
        folder.devices.retain(|d| !stale.contains(d));
        for d in &stale {
            folder.introduced_by.remove(d);
        }
        let fid = folder.id.clone();
        match handle.add_folder(folder).await {
            Ok(()) => changed.push(format!(
                "folder {fid} no longer shared with {} (its introducer {} stopped)",
                stale
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                intro.id
            )),
            Err(e) => {
                tracing::warn!(folder = %fid, error = %e, "cannot remove an introduced share")
            }
        }
    }
    // Devices it introduced that it lists nowhere and that share nothing else with us.
    let cfg = shared.config.snapshot();
    for d in &cfg.devices {
        if d.introduced_by != Some(intro.id) || listed.iter().any(|(_, x)| *x == d.id) {
            continue;
        }
        let shares_otherwise = cfg
            .folders
            .iter()
            .any(|f| f.devices.contains(&d.id) && f.introduced_by.get(&d.id) != Some(&intro.id));
        if shares_otherwise {
            continue;
        }
        match handle.remove_device(d.id).await {
            Ok(()) => {
                tracing::info!(device = %d.id, introducer = %intro.id, "device removed: its introducer no longer shares it");
                changed.push(format!(
                    "device {} removed with its introducer {}",
                    d.id, intro.id
                ));
            }
            Err(e) => {
                tracing::warn!(device = %d.id, error = %e, "cannot remove an introduced device")
            }
        }
    }
    changed
}

impl EngineHandle {
    /// Devices that connected, are not configured and were refused (bounded: see [`MAX_PENDING_DEVICES`](crate::MAX_PENDING_DEVICES)).
    pub fn pending_devices(&self) -> Vec<PendingDevice> {
        self.shared.state(|r| r.pending.devices())
    }

    /// Folders offered by known devices that we do not share with them (of one device, or all).
    pub fn pending_folders(&self, device: Option<DeviceId>) -> Vec<PendingFolder> {
        self.shared.state(|r| r.pending.folders(device))
    }

    /// Forgets a pending device (it is recorded again when it connects again); whether it
    /// was pending.
    pub fn dismiss_pending_device(&self, device: DeviceId) -> bool {
        let had = self.shared.state(|r| r.pending.dismiss_device(device));
        if had {
            self.shared.pending_removed(vec![device], Vec::new());
        }
        had
    }

    /// Forgets a pending folder offered by `device`, or by every device (recorded again at
    /// the device's next ClusterConfig).
    pub fn dismiss_pending_folder(&self, folder: &FolderId, device: Option<DeviceId>) {
        let hit = self
            .shared
            .state(|r| r.pending.dismiss_folder(folder, device));
        if hit.is_empty() {
            return;
        }
        let removed = match device {
            Some(d) => vec![(folder.clone(), Some(d))],
            None => vec![(folder.clone(), None)],
        };
        self.shared.pending_removed(Vec::new(), removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe_path_components() {
        assert_eq!(folder_dir_name("Project X"), "Project X");
        assert_eq!(folder_dir_name("  a//b:c  d  "), "abc d");
        assert_eq!(folder_dir_name("../.."), "");
        assert_eq!(folder_dir_name(".."), "");
        assert_eq!(folder_dir_name("x\u{0}y\n"), "xy");
        assert_eq!(folder_dir_name("<img src=x>"), "img src=x");
    }

    #[test]
    fn auto_accept_falls_back_to_the_id_then_refuses() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let o = Offer {
            folder: FolderId::new("proj-y").unwrap_or_else(|_| unreachable!()),
            label: "Project X".into(),
            devices: Vec::new(),
            receive_encrypted: false,
            remote_encrypted: false,
        };
        let first = auto_accept_path(root.path(), &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, root.path().join("Project X"));
        assert!(first.join(".stfolder").is_dir());
        let second = auto_accept_path(root.path(), &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second, root.path().join("proj-y"));
        assert!(auto_accept_path(root.path(), &o).is_err());
    }
}
