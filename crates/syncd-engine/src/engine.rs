//! `Engine::start` and the cloneable `EngineHandle`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use syncd_types::{DeviceId, FolderId};
use tokio::sync::broadcast;

use crate::config::{DeviceConfig, EngineConfig, FolderConfig};
use crate::error::{EngineError, WaitError};
use crate::event::{Event, EventBus};
use crate::folder::FolderRuntime;
use crate::health;
use crate::status::{Completion, ConnectionStatus, Counts, FolderState, FolderStatus};

/// The engine's entry point.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Loads or creates the identity in `config.home`, opens the index, starts listeners,
    /// dialers and folders on the caller's tokio runtime.
    pub async fn start(config: EngineConfig) -> Result<EngineHandle, EngineError> {
        std::fs::create_dir_all(&config.home).map_err(|source| EngineError::Io {
            context: format!("create home {}", config.home.display()),
            source,
        })?;
        Err(EngineError::Identity {
            home: config.home.clone(),
            message: String::from("TLS identity is provided by syncd-transport, not yet wired"),
        })
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it (our state stays
/// consistent per field; a poisoned lock must not take the whole engine down).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One folder as the engine holds it.
#[derive(Debug)]
pub(crate) struct FolderEntry {
    pub(crate) config: FolderConfig,
    pub(crate) runtime: Arc<Mutex<FolderRuntime>>,
}

/// One configured peer as the engine holds it.
#[derive(Debug)]
pub(crate) struct DeviceEntry {
    pub(crate) config: DeviceConfig,
    pub(crate) status: ConnectionStatus,
}

/// State shared by the handle and every actor.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) device_id: DeviceId,
    pub(crate) config: Mutex<EngineConfig>,
    pub(crate) events: EventBus,
    pub(crate) listen_addrs: Vec<SocketAddr>,
    pub(crate) folders: Mutex<BTreeMap<FolderId, FolderEntry>>,
    pub(crate) devices: Mutex<BTreeMap<DeviceId, DeviceEntry>>,
}

/// A cloneable handle on a running engine: status, events, commands.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub(crate) shared: Arc<Shared>,
}

impl EngineHandle {
    /// Our device ID.
    pub fn device_id(&self) -> DeviceId {
        self.shared.device_id
    }

    /// The bound listen addresses (port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.shared.listen_addrs.clone()
    }

    /// The current configuration, including runtime changes.
    pub fn config(&self) -> EngineConfig {
        lock(&self.shared.config).clone()
    }

    /// IDs of every configured folder.
    pub fn folder_ids(&self) -> Vec<FolderId> {
        lock(&self.shared.folders).keys().cloned().collect()
    }

    /// A folder's status, or `None` if it is not configured.
    pub fn folder_status(&self, folder: &FolderId) -> Option<FolderStatus> {
        let folders = lock(&self.shared.folders);
        let entry = folders.get(folder)?;
        let rt = lock(&entry.runtime).clone();
        Some(FolderStatus {
            state: rt.state,
            state_changed: rt.state_changed,
            error: rt.error,
            global: Counts::default(),
            local: Counts::default(),
            need: Counts::default(),
            in_sync_files: 0,
            in_sync_bytes: 0,
            sequence: 0,
            errors: rt.errors,
            remote_sequence: BTreeMap::new(),
            watch_error: rt.watch_error,
        })
    }

    /// Every configured peer, connected or not.
    pub fn connections(&self) -> Vec<ConnectionStatus> {
        lock(&self.shared.devices)
            .values()
            .map(|d| d.status.clone())
            .collect()
    }

    /// Completion of `folder` on `device` (`None` = the local device).
    pub fn completion(&self, folder: &FolderId, device: Option<DeviceId>) -> Option<Completion> {
        let folders = lock(&self.shared.folders);
        let entry = folders.get(folder)?;
        let remote_state = match device {
            None => "valid",
            Some(d) if !entry.config.devices.contains(&d) => "notSharing",
            Some(_) => "unknown",
        };
        Some(Completion {
            completion: Completion::compute(0, 0, 0, 0),
            global_bytes: 0,
            need_bytes: 0,
            global_items: 0,
            need_items: 0,
            need_deletes: 0,
            remote_state,
            sequence: 0,
        })
    }

    /// Subscribes to the event stream.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Scans `folder` (or only `sub` inside it); completes when the scan has committed.
    pub async fn scan(&self, folder: &FolderId, sub: Option<&str>) -> Result<(), EngineError> {
        let _ = sub;
        let root = self.folder_config(folder)?.path;
        health::check(&root).map_err(|e| EngineError::FolderError {
            folder: folder.clone(),
            message: e.to_string(),
        })?;
        Err(EngineError::Scan {
            folder: folder.clone(),
            message: String::from("scanner not wired yet"),
        })
    }

    /// Pauses a device: disconnects it and neither dials nor accepts it.
    pub async fn pause_device(&self, id: DeviceId) -> Result<(), EngineError> {
        self.set_device_paused(id, true)
    }

    /// Resumes a paused device.
    pub async fn resume_device(&self, id: DeviceId) -> Result<(), EngineError> {
        self.set_device_paused(id, false)
    }

    /// Pauses a folder: no scan, no pull, no index exchange.
    pub async fn pause_folder(&self, folder: &FolderId) -> Result<(), EngineError> {
        self.set_folder_paused(folder, true)
    }

    /// Resumes a paused folder.
    pub async fn resume_folder(&self, folder: &FolderId) -> Result<(), EngineError> {
        self.set_folder_paused(folder, false)
    }

    /// Adds a device, or replaces the existing one with the same ID.
    pub async fn add_device(&self, d: DeviceConfig) -> Result<(), EngineError> {
        if d.id == self.shared.device_id {
            return Ok(());
        }
        {
            let mut cfg = lock(&self.shared.config);
            cfg.devices.retain(|x| x.id != d.id);
            cfg.devices.push(d.clone());
        }
        let mut devices = lock(&self.shared.devices);
        let status = devices
            .get(&d.id)
            .map(|e| e.status.clone())
            .unwrap_or_else(|| disconnected_status(&d));
        devices.insert(d.id, DeviceEntry { config: d, status });
        Ok(())
    }

    /// Removes a device (disconnecting it).
    pub async fn remove_device(&self, id: DeviceId) -> Result<(), EngineError> {
        if lock(&self.shared.devices).remove(&id).is_none() {
            return Err(EngineError::UnknownDevice(id));
        }
        lock(&self.shared.config).devices.retain(|d| d.id != id);
        Ok(())
    }

    /// Adds a folder, or replaces the existing one with the same ID.
    pub async fn add_folder(&self, f: FolderConfig) -> Result<(), EngineError> {
        {
            let mut cfg = lock(&self.shared.config);
            cfg.folders.retain(|x| x.id != f.id);
            cfg.folders.push(f.clone());
        }
        let runtime = Arc::new(Mutex::new(FolderRuntime::new(f.paused)));
        if !f.paused
            && let Err(e) = health::check(&f.path)
        {
            {
                lock(&runtime).set_state(
                    &f.id,
                    FolderState::Error,
                    Some(e.to_string()),
                    &self.shared.events,
                );
            }
        }
        lock(&self.shared.folders).insert(f.id.clone(), FolderEntry { config: f, runtime });
        Ok(())
    }

    /// Removes a folder (its files on disk are left alone).
    pub async fn remove_folder(&self, folder: &FolderId) -> Result<(), EngineError> {
        if lock(&self.shared.folders).remove(folder).is_none() {
            return Err(EngineError::UnknownFolder(folder.clone()));
        }
        lock(&self.shared.config)
            .folders
            .retain(|f| &f.id != folder);
        Ok(())
    }

    /// Waits until every device sharing `folder` has connected since start and sent its index
    /// up to the sequence it announced, we need nothing, and every such peer has 100% of our
    /// current state. Times out otherwise, saying what is still missing.
    pub async fn wait_until_synced(
        &self,
        folder: &FolderId,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let cfg = self
            .folder_config(folder)
            .map_err(|_| WaitError::UnknownFolder(folder.clone()))?;
        Err(WaitError::Timeout {
            folder: folder.clone(),
            waited: timeout,
            missing: cfg
                .devices
                .iter()
                .map(|d| format!("device {} not connected since start", d.short()))
                .collect(),
        })
    }

    /// Stops the engine: closes connections, finishes in-flight writes, stops folders.
    pub async fn shutdown(&self) {}

    fn folder_config(&self, folder: &FolderId) -> Result<FolderConfig, EngineError> {
        lock(&self.shared.folders)
            .get(folder)
            .map(|e| e.config.clone())
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))
    }

    fn set_device_paused(&self, id: DeviceId, paused: bool) -> Result<(), EngineError> {
        {
            let mut devices = lock(&self.shared.devices);
            let entry = devices.get_mut(&id).ok_or(EngineError::UnknownDevice(id))?;
            if entry.config.paused == paused {
                return Ok(());
            }
            entry.config.paused = paused;
            entry.status.paused = paused;
        }
        for d in lock(&self.shared.config)
            .devices
            .iter_mut()
            .filter(|d| d.id == id)
        {
            d.paused = paused;
        }
        self.shared.events.emit(if paused {
            Event::DevicePaused { device: id }
        } else {
            Event::DeviceResumed { device: id }
        });
        Ok(())
    }

    fn set_folder_paused(&self, folder: &FolderId, paused: bool) -> Result<(), EngineError> {
        {
            let mut folders = lock(&self.shared.folders);
            let entry = folders
                .get_mut(folder)
                .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
            if entry.config.paused == paused {
                return Ok(());
            }
            entry.config.paused = paused;
            let to = if paused {
                FolderState::Paused
            } else {
                FolderState::Idle
            };
            lock(&entry.runtime).set_state(folder, to, None, &self.shared.events);
        }
        for f in lock(&self.shared.config)
            .folders
            .iter_mut()
            .filter(|f| &f.id == folder)
        {
            f.paused = paused;
        }
        self.shared.events.emit(if paused {
            Event::FolderPaused {
                folder: folder.clone(),
            }
        } else {
            Event::FolderResumed {
                folder: folder.clone(),
            }
        });
        Ok(())
    }
}

pub(crate) fn disconnected_status(d: &DeviceConfig) -> ConnectionStatus {
    ConnectionStatus {
        device: d.id,
        name: d.name.clone(),
        connected: false,
        paused: d.paused,
        address: None,
        client_name: String::new(),
        client_version: String::new(),
        conn_type: "",
        crypto: String::new(),
        started_at: None,
        in_bytes_total: 0,
        out_bytes_total: 0,
    }
}
