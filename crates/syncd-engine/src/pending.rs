//! Devices and folders that ask to join: an unknown device that completed TLS and Hello,
//! and a folder a known device offers that we do not share with it. Both are recorded
//! (bounded, persisted in the index's observed table), reported as events, and cleared when
//! the user accepts, ignores or dismisses them, or when the offer ends.
//!
//! Bounds (a peer chooses what it sends us): at most [`MAX_PENDING_DEVICES`] devices, the
//! least recently seen evicted first, so a flood of strangers cannot grow the list and a
//! device that keeps trying stays on it; at most [`MAX_PENDING_FOLDERS_PER_DEVICE`] folders
//! per known device; names and labels cut to [`MAX_NAME_BYTES`] with control characters
//! replaced. Writes to disk are coalesced (one transaction per
//! [`FLUSH_DELAY`] at most), so reconnecting in a loop costs no disk write per attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syncd_index::Index;
use syncd_types::{DeviceId, FolderId};

use crate::config::EngineConfig;

/// Pending devices kept at most; the least recently seen is evicted for a new one.
pub const MAX_PENDING_DEVICES: usize = 100;
/// Pending folders kept per offering device at most; further offers are not recorded.
pub const MAX_PENDING_FOLDERS_PER_DEVICE: usize = 256;
/// Longest name or label kept, in bytes (cut at a character boundary).
pub const MAX_NAME_BYTES: usize = 256;
/// Changes are written to the index at most this often.
pub(crate) const FLUSH_DELAY: Duration = Duration::from_millis(500);

const DEVICE_PREFIX: &str = "pending-device/";
const FOLDER_PREFIX: &str = "pending-folder/";
const FORMAT: u8 = 1;

/// A device that connected, is not configured and was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    /// Its ID.
    pub device: DeviceId,
    /// The name from its Hello (cut and cleaned, see the module documentation).
    pub name: String,
    /// The address it connected from.
    pub address: String,
    /// When it last connected.
    pub time: SystemTime,
}

/// A folder a known device offered in its ClusterConfig that we do not share with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFolder {
    /// The folder ID.
    pub folder: FolderId,
    /// The offering device.
    pub device: DeviceId,
    /// The label it gave the folder.
    pub label: String,
    /// When it last offered it.
    pub time: SystemTime,
    /// It holds an encryption password token for us (we would receive encrypted data).
    pub receive_encrypted: bool,
    /// It holds the folder encrypted itself.
    pub remote_encrypted: bool,
}

/// Text from a peer as we keep it: control characters replaced, at most
/// [`MAX_NAME_BYTES`] bytes.
pub(crate) fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_NAME_BYTES));
    for c in s.chars() {
        let c = if c.is_control() { '\u{fffd}' } else { c };
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// The pending entries, in memory, with what still has to reach the index.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    devices: BTreeMap<DeviceId, PendingDevice>,
    folders: BTreeMap<(DeviceId, FolderId), PendingFolder>,
    dirty_put: BTreeMap<String, Vec<u8>>,
    dirty_remove: BTreeSet<String>,
}

fn device_key(d: DeviceId) -> String {
    format!("{DEVICE_PREFIX}{d}")
}

fn folder_key(d: DeviceId, f: &FolderId) -> String {
    format!("{FOLDER_PREFIX}{d}/{}", f.as_str())
}

impl Pending {
    /// The entries stored in `index`; an entry that does not decode is dropped with a warning.
    pub(crate) fn load(index: &Index) -> Pending {
        let mut p = Pending::default();
        let mut bad = Vec::new();
        match index.observed(DEVICE_PREFIX) {
            Ok(rows) => {
                for (k, v) in rows {
                    match decode_device(&v) {
                        Some(d) => {
                            p.devices.insert(d.device, d);
                        }
                        None => bad.push(k),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the pending devices"),
        }
        match index.observed(FOLDER_PREFIX) {
            Ok(rows) => {
                for (k, v) in rows {
                    match decode_folder(&v) {
                        Some(f) => {
                            p.folders.insert((f.device, f.folder.clone()), f);
                        }
                        None => bad.push(k),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the pending folders"),
        }
        if !bad.is_empty() {
            tracing::warn!(
                entries = bad.len(),
                "dropping pending entries that do not decode"
            );
            p.dirty_remove.extend(bad);
        }
        p
    }

    pub(crate) fn devices(&self) -> Vec<PendingDevice> {
        self.devices.values().cloned().collect()
    }

    pub(crate) fn folders(&self, device: Option<DeviceId>) -> Vec<PendingFolder> {
        self.folders
            .values()
            .filter(|f| device.is_none_or(|d| d == f.device))
            .cloned()
            .collect()
    }

    fn put_device(&mut self, d: PendingDevice) {
        let k = device_key(d.device);
        self.dirty_remove.remove(&k);
        self.dirty_put.insert(k, encode_device(&d));
        self.devices.insert(d.device, d);
    }

    fn drop_device(&mut self, id: DeviceId) -> bool {
        let k = device_key(id);
        self.dirty_put.remove(&k);
        let had = self.devices.remove(&id).is_some();
        if had {
            self.dirty_remove.insert(k);
        }
        had
    }

    fn put_folder(&mut self, f: PendingFolder) {
        let k = folder_key(f.device, &f.folder);
        self.dirty_remove.remove(&k);
        self.dirty_put.insert(k, encode_folder(&f));
        self.folders.insert((f.device, f.folder.clone()), f);
    }

    fn drop_folder(&mut self, device: DeviceId, folder: &FolderId) -> bool {
        let k = folder_key(device, folder);
        self.dirty_put.remove(&k);
        let had = self.folders.remove(&(device, folder.clone())).is_some();
        if had {
            self.dirty_remove.insert(k);
        }
        had
    }

    /// Records (or refreshes) an unknown device; returns the devices evicted to make room.
    pub(crate) fn record_device(&mut self, d: PendingDevice) -> Vec<DeviceId> {
        let mut evicted = Vec::new();
        if !self.devices.contains_key(&d.device) {
            while self.devices.len() >= MAX_PENDING_DEVICES {
                let Some(oldest) = self
                    .devices
                    .values()
                    .min_by_key(|x| x.time)
                    .map(|x| x.device)
                else {
                    break;
                };
                self.drop_device(oldest);
                evicted.push(oldest);
            }
        }
        self.put_device(d);
        evicted
    }

    /// Removes a device's entry (dismissed); whether there was one.
    pub(crate) fn dismiss_device(&mut self, id: DeviceId) -> bool {
        self.drop_device(id)
    }

    /// Replaces what `device` offers: `offered` are the folders of its latest ClusterConfig
    /// that are pending. Returns the entries new or changed and the folders no longer pending.
    pub(crate) fn offered(
        &mut self,
        device: DeviceId,
        offered: Vec<PendingFolder>,
    ) -> (Vec<PendingFolder>, Vec<FolderId>) {
        let now: BTreeSet<FolderId> = offered.iter().map(|f| f.folder.clone()).collect();
        let gone: Vec<FolderId> = self
            .folders
            .keys()
            .filter(|(d, f)| *d == device && !now.contains(f))
            .map(|(_, f)| f.clone())
            .collect();
        for f in &gone {
            self.drop_folder(device, f);
        }
        let mut added = Vec::new();
        for f in offered {
            let held = self.folders.keys().filter(|(d, _)| *d == device).count();
            let known = self.folders.contains_key(&(device, f.folder.clone()));
            if !known && held >= MAX_PENDING_FOLDERS_PER_DEVICE {
                tracing::warn!(%device, folder = %f.folder,
                    "device offers more than {MAX_PENDING_FOLDERS_PER_DEVICE} folders we do not share; not recording the rest");
                break;
            }
            // Reported when new or changed; a repeated offer only refreshes its time.
            let news = self
                .folders
                .get(&(device, f.folder.clone()))
                .is_none_or(|old| {
                    old.label != f.label
                        || old.receive_encrypted != f.receive_encrypted
                        || old.remote_encrypted != f.remote_encrypted
                });
            self.put_folder(f.clone());
            if news {
                added.push(f);
            }
        }
        (added, gone)
    }

    /// Removes the entries of `folder` (offered by `device`, or by anyone); returns the
    /// devices whose entry went.
    pub(crate) fn dismiss_folder(
        &mut self,
        folder: &FolderId,
        device: Option<DeviceId>,
    ) -> Vec<DeviceId> {
        let hit: Vec<DeviceId> = self
            .folders
            .keys()
            .filter(|(d, f)| f == folder && device.is_none_or(|x| x == *d))
            .map(|(d, _)| *d)
            .collect();
        for d in &hit {
            self.drop_folder(*d, folder);
        }
        hit
    }

    /// Drops what the configuration settled: devices now configured or ignored; folders of
    /// devices no longer configured, ignored by their device, or now shared with it.
    pub(crate) fn clean(
        &mut self,
        cfg: &EngineConfig,
    ) -> (Vec<DeviceId>, Vec<(FolderId, Option<DeviceId>)>) {
        let settled: Vec<DeviceId> = self
            .devices
            .keys()
            .filter(|d| cfg.devices.iter().any(|c| c.id == **d) || cfg.ignored_devices.contains(d))
            .copied()
            .collect();
        for d in &settled {
            self.drop_device(*d);
        }
        let folders: Vec<(DeviceId, FolderId)> = self
            .folders
            .keys()
            .filter(|(d, f)| {
                let Some(dev) = cfg.devices.iter().find(|c| c.id == *d) else {
                    return true;
                };
                dev.ignored_folders.contains(f)
                    || cfg
                        .folders
                        .iter()
                        .any(|c| &c.id == f && c.devices.contains(d))
            })
            .cloned()
            .collect();
        for (d, f) in &folders {
            self.drop_folder(*d, f);
        }
        (
            settled,
            folders.into_iter().map(|(d, f)| (f, Some(d))).collect(),
        )
    }

    /// What has to be written and removed since the last call.
    pub(crate) fn take_dirty(&mut self) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        (
            std::mem::take(&mut self.dirty_put).into_iter().collect(),
            std::mem::take(&mut self.dirty_remove).into_iter().collect(),
        )
    }
}

/// Writes the pending changes to the index (blocking; call from a blocking thread).
pub(crate) fn flush(index: &Arc<Index>, put: &[(String, Vec<u8>)], remove: &[String]) {
    if put.is_empty() && remove.is_empty() {
        return;
    }
    if let Err(e) = index.update_observed(put, remove) {
        tracing::error!(error = %e, "cannot save the pending devices and folders");
    }
}

// ---------- encoding: version byte, time (i64 s + u32 ns BE), fields ----------

fn put_time(out: &mut Vec<u8>, t: SystemTime) {
    let (s, ns) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(_) => (0, 0),
    };
    out.extend_from_slice(&s.to_be_bytes());
    out.extend_from_slice(&ns.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&u16::try_from(b.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    fn time(&mut self) -> Option<SystemTime> {
        let s = i64::from_be_bytes(self.take(8)?.try_into().ok()?);
        let ns = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        let secs = u64::try_from(s).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, ns.min(999_999_999)))
    }
    fn str(&mut self) -> Option<String> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        let b = self.take(usize::from(n))?;
        Some(clean_text(std::str::from_utf8(b).ok()?))
    }
    fn device(&mut self) -> Option<DeviceId> {
        DeviceId::from_slice(self.take(32)?)
    }
}

fn encode_device(d: &PendingDevice) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(d.device.as_bytes());
    put_time(&mut out, d.time);
    put_str(&mut out, &d.name);
    put_str(&mut out, &d.address);
    out
}

fn decode_device(b: &[u8]) -> Option<PendingDevice> {
    let mut r = Rd(b);
    if r.u8()? != FORMAT {
        return None;
    }
    Some(PendingDevice {
        device: r.device()?,
        time: r.time()?,
        name: r.str()?,
        address: r.str()?,
    })
}

fn encode_folder(f: &PendingFolder) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(f.device.as_bytes());
    put_time(&mut out, f.time);
    put_str(&mut out, f.folder.as_str());
    put_str(&mut out, &f.label);
    out.push(u8::from(f.receive_encrypted) | (u8::from(f.remote_encrypted) << 1));
    out
}

fn decode_folder(b: &[u8]) -> Option<PendingFolder> {
    let mut r = Rd(b);
    if r.u8()? != FORMAT {
        return None;
    }
    let device = r.device()?;
    let time = r.time()?;
    let folder = FolderId::new(r.str()?).ok()?;
    let label = r.str()?;
    let flags = r.u8()?;
    Some(PendingFolder {
        folder,
        device,
        label,
        time,
        receive_encrypted: flags & 1 != 0,
        remote_encrypted: flags & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8, t: u64) -> PendingDevice {
        PendingDevice {
            device: DeviceId::from_slice(&[n; 32]).unwrap_or_default(),
            name: format!("d{n}"),
            address: "127.0.0.1:1".into(),
            time: UNIX_EPOCH + Duration::from_secs(t),
        }
    }

    fn fold(d: u8, id: &str) -> PendingFolder {
        PendingFolder {
            folder: FolderId::new(id).unwrap_or_else(|_| unreachable!()),
            device: DeviceId::from_slice(&[d; 32]).unwrap_or_default(),
            label: format!("L {id}"),
            time: UNIX_EPOCH + Duration::from_secs(7),
            receive_encrypted: true,
            remote_encrypted: false,
        }
    }

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let d = dev(3, 1_700_000_000);
        assert_eq!(decode_device(&encode_device(&d)), Some(d.clone()));
        let f = fold(4, "a/b");
        assert_eq!(decode_folder(&encode_folder(&f)), Some(f));
        let bytes = encode_device(&d);
        for cut in 0..bytes.len() {
            assert_eq!(decode_device(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_folder(&[9, 9, 9]), None);
    }

    #[test]
    fn the_device_list_is_bounded_and_evicts_the_least_recently_seen() {
        let mut p = Pending::default();
        for n in 0..=u8::try_from(MAX_PENDING_DEVICES).unwrap_or(u8::MAX) {
            p.record_device(dev(n, 1000 + u64::from(n)));
        }
        assert_eq!(p.devices.len(), MAX_PENDING_DEVICES);
        assert!(!p.devices.contains_key(&dev(0, 0).device), "oldest evicted");
        // The same device again: refreshed, nothing evicted.
        assert!(p.record_device(dev(5, 99_999)).is_empty());
        assert_eq!(p.devices.len(), MAX_PENDING_DEVICES);
    }

    #[test]
    fn offers_replace_the_previous_offer_of_the_device() {
        let mut p = Pending::default();
        let (added, gone) = p.offered(fold(1, "x").device, vec![fold(1, "x"), fold(1, "y")]);
        assert_eq!((added.len(), gone.len()), (2, 0));
        p.offered(fold(2, "x").device, vec![fold(2, "x")]);
        let (_, gone) = p.offered(fold(1, "x").device, vec![fold(1, "y")]);
        assert_eq!(gone, vec![fold(1, "x").folder]);
        assert_eq!(p.folders(None).len(), 2);
        assert_eq!(p.dismiss_folder(&fold(1, "x").folder, None).len(), 1);
        let (put, remove) = p.take_dirty();
        assert_eq!(put.len(), 1, "only (1, y) is left to write");
        assert_eq!(remove.len(), 2);
    }

    #[test]
    fn text_is_cut_and_cleaned() {
        let long = "é".repeat(400);
        let c = clean_text(&long);
        assert!(c.len() <= MAX_NAME_BYTES && c.chars().all(|x| x == 'é'));
        assert_eq!(clean_text("a\nb\u{0}"), "a\u{fffd}b\u{fffd}");
    }
}
