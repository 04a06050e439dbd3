//! `syncd pending` and the accept/ignore commands for devices and folders that ask to join.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde_json::{Value, json};
use syncd_types::{DeviceId, FolderId};

use super::{
    CliResult, DeviceCommand, EXIT_OK, Failure, FolderCommand, device_cmd, folder_cmd,
    load_or_init, parse_device, require_daemon, running_daemon,
};
use crate::client::Client;
use crate::config::{ObservedDevice, ObservedFolder};
use crate::timefmt::rfc3339;

/// `syncd pending [--json]`.
pub(super) fn pending(home: &Path, as_json: bool) -> CliResult {
    let (_, _, c) = require_daemon(home)?;
    let devices = c.get("/rest/cluster/pending/devices")?;
    let folders = c.get("/rest/cluster/pending/folders")?;
    if as_json {
        let out = json!({"devices": devices, "folders": folders});
        out!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    for line in describe(&devices, &folders, &c.get("/rest/config")?) {
        out!("{line}");
    }
    Ok(EXIT_OK)
}

/// Text lines for pending devices and folders, each with the commands that settle it.
pub(super) fn describe(devices: &Value, folders: &Value, config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let names: std::collections::HashMap<&str, &str> = config["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| Some((d["deviceID"].as_str()?, d["name"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    match devices.as_object() {
        Some(m) if !m.is_empty() => {
            out.push("Devices that want to connect:".to_owned());
            for (id, d) in m {
                out.push(format!(
                    "  {id} \"{}\" from {} at {}",
                    d["name"].as_str().unwrap_or(""),
                    d["address"].as_str().unwrap_or("?"),
                    d["time"].as_str().unwrap_or("?")
                ));
                out.push(format!(
                    "    accept: syncd device accept {id}    ignore: syncd device ignore {id}"
                ));
            }
        }
        _ => out.push("Devices that want to connect: none".to_owned()),
    }
    match folders.as_object() {
        Some(m) if !m.is_empty() => {
            out.push("Folders offered by devices:".to_owned());
            for (folder, f) in m {
                let Some(by) = f["offeredBy"].as_object() else {
                    continue;
                };
                for (dev, o) in by {
                    let name = names.get(dev.as_str()).copied().unwrap_or("");
                    out.push(format!(
                        "  `{folder}` \"{}\" offered by {dev} ({name}) at {}",
                        o["label"].as_str().unwrap_or(""),
                        o["time"].as_str().unwrap_or("?")
                    ));
                    out.push(format!(
                        "    accept: syncd folder accept {folder} --from {dev}    ignore: syncd folder ignore {folder} --from {dev}"
                    ));
                }
            }
        }
        _ => out.push("Folders offered by devices: none".to_owned()),
    }
    out
}

/// The pending entry of `id` from a running daemon, if any.
fn pending_device(daemon: Option<&Client>, id: DeviceId) -> Option<Value> {
    let all = daemon?.get("/rest/cluster/pending/devices").ok()?;
    all.get(id.to_string()).cloned()
}

/// The pending offer of `folder` by `device` from a running daemon, if any.
fn pending_folder(daemon: Option<&Client>, folder: &str, device: DeviceId) -> Option<Value> {
    let path = format!("/rest/cluster/pending/folders?device={device}");
    let all = daemon?.get(&path).ok()?;
    all.get(folder)?
        .get("offeredBy")?
        .get(device.to_string())
        .cloned()
}

/// `syncd device accept ID [--name N] [--address A]`: adds the device, named as its Hello
/// said unless `--name` says otherwise.
pub(super) fn device_accept(
    home: &Path,
    id: String,
    name: Option<String>,
    addresses: Vec<String>,
) -> CliResult {
    let (config, my_id, _) = load_or_init(home, true)?;
    let did = parse_device(&id)?;
    let daemon = running_daemon(home, &config, &my_id);
    let entry = pending_device(daemon.as_ref(), did);
    if daemon.is_some() && entry.is_none() && config.device(&did).is_none() {
        eprintln!("syncd: note: {did} is not among the pending devices; adding it anyway");
    }
    let pending_name = entry
        .as_ref()
        .and_then(|e| e["name"].as_str())
        .unwrap_or_default()
        .to_owned();
    device_cmd(
        home,
        DeviceCommand::Add {
            id,
            name: name.unwrap_or(pending_name),
            addresses,
            compression: "metadata".to_owned(),
        },
    )
}

/// `syncd device ignore ID`: refuses the device from now on without offering it again.
pub(super) fn device_ignore(home: &Path, id: &str) -> CliResult {
    let (mut config, my_id, _) = load_or_init(home, true)?;
    let did = parse_device(id)?;
    if config.device(&did).is_some() {
        return Err(Failure::usage(anyhow!(
            "device {did} is configured; remove it first with `syncd device remove {did}`"
        )));
    }
    let daemon = running_daemon(home, &config, &my_id);
    let seen = pending_device(daemon.as_ref(), did);
    let observed = ObservedDevice {
        id: did,
        name: seen
            .as_ref()
            .and_then(|e| e["name"].as_str())
            .unwrap_or_default()
            .to_owned(),
        address: seen
            .as_ref()
            .and_then(|e| e["address"].as_str())
            .unwrap_or_default()
            .to_owned(),
        time: rfc3339(std::time::SystemTime::now()),
    };
    match daemon {
        Some(c) => {
            let mut cfg = c.get("/rest/config")?;
            let list = cfg["remoteIgnoredDevices"]
                .as_array_mut()
                .ok_or_else(|| anyhow!("the daemon's config has no remoteIgnoredDevices list"))?;
            if !list.iter().any(|d| d["deviceID"] == did.to_string()) {
                list.push(json!({"deviceID": did.to_string(), "name": observed.name, "address": observed.address, "time": observed.time}));
            }
            c.json("PUT", "/rest/config", Some(&cfg))?;
            out!("Ignoring device {did} (applied to the running daemon).");
        }
        None => {
            if !config.ignored_devices.iter().any(|d| d.id == did) {
                config.ignored_devices.push(observed);
            }
            config.save(home)?;
            out!("Ignoring device {did}; it takes effect when the daemon starts.");
        }
    }
    Ok(EXIT_OK)
}

/// `syncd folder accept FOLDER --from ID [--path P] [--label L]`: shares an existing folder
/// with the device, or creates the folder (at `--path`, or under the default folder path,
/// named after its label) shared with it.
pub(super) fn folder_accept(
    home: &Path,
    folder: String,
    from: &str,
    path: Option<PathBuf>,
    label: Option<String>,
) -> CliResult {
    let (config, my_id, _) = load_or_init(home, true)?;
    let dev = parse_device(from)?;
    if config.device(&dev).is_none() {
        return Err(Failure::usage(anyhow!(
            "device {dev} is not configured; accept it first with `syncd device accept {dev}`"
        )));
    }
    FolderId::new(folder.as_str())
        .map_err(|e| Failure::usage(anyhow!("folder ID `{folder}`: {e}")))?;
    let daemon = running_daemon(home, &config, &my_id);
    let offer = pending_folder(daemon.as_ref(), &folder, dev);
    if daemon.is_some() && offer.is_none() {
        eprintln!("syncd: note: {dev} does not offer `{folder}` right now; sharing it anyway");
    }
    let (path, mut devices) = match config.folder(&folder) {
        Some(existing) => (
            path.unwrap_or_else(|| existing.path.clone()),
            existing.devices.iter().map(ToString::to_string).collect(),
        ),
        None => {
            let offered_label = offer
                .as_ref()
                .and_then(|o| o["label"].as_str())
                .filter(|l| !l.is_empty());
            let name = syncd_engine::folder_dir_name(
                label.as_deref().or(offered_label).unwrap_or(&folder),
            );
            let name = if name.is_empty() {
                syncd_engine::folder_dir_name(&folder)
            } else {
                name
            };
            if name.is_empty() && path.is_none() {
                return Err(Failure::usage(anyhow!(
                    "cannot make a directory name of `{folder}`; pass --path"
                )));
            }
            let root = crate::home::expand_tilde(&config.defaults.folder_path);
            (path.unwrap_or_else(|| root.join(name)), Vec::new())
        }
    };
    let label = label.or_else(|| {
        config.folder(&folder).map_or_else(
            || {
                offer
                    .as_ref()
                    .and_then(|o| o["label"].as_str())
                    .map(str::to_owned)
            },
            |f| Some(f.label.clone()),
        )
    });
    if !devices.contains(&dev.to_string()) {
        devices.push(dev.to_string());
    }
    folder_cmd(
        home,
        FolderCommand::Add {
            id: folder,
            path,
            label,
            devices,
            kind: None,
            versioning: super::VersioningArgs::default(),
        },
    )
}

/// `syncd folder ignore FOLDER --from ID`: never offer this folder from this device again.
pub(super) fn folder_ignore(home: &Path, folder: &str, from: &str) -> CliResult {
    let (mut config, my_id, _) = load_or_init(home, true)?;
    let dev = parse_device(from)?;
    let fid =
        FolderId::new(folder).map_err(|e| Failure::usage(anyhow!("folder ID `{folder}`: {e}")))?;
    let Some(mut entry) = config.device(&dev).cloned() else {
        return Err(Failure::usage(anyhow!("device {dev} is not configured")));
    };
    let daemon = running_daemon(home, &config, &my_id);
    let offer = pending_folder(daemon.as_ref(), folder, dev);
    if !entry.ignored_folders.iter().any(|f| f.id == fid) {
        entry.ignored_folders.push(ObservedFolder {
            id: fid,
            label: offer
                .as_ref()
                .and_then(|o| o["label"].as_str())
                .unwrap_or_default()
                .to_owned(),
            time: rfc3339(std::time::SystemTime::now()),
        });
    }
    match daemon {
        Some(c) => {
            c.json(
                "PUT",
                &format!("/rest/config/devices/{dev}"),
                Some(&crate::json::device(&entry)),
            )?;
            out!("Ignoring folder `{folder}` from {dev} (applied to the running daemon).");
        }
        None => {
            config.upsert_device(entry);
            config.save(home)?;
            out!("Ignoring folder `{folder}` from {dev}; it takes effect when the daemon starts.");
        }
    }
    Ok(EXIT_OK)
}
