//! The daemon's TOML config file: its model, loading with errors that point at a line, saving,
//! first-start defaults and the conversion to the engine's [`EngineConfig`].
//!
//! The file lives at `<home>/config.toml`. Every field has a default, so a minimal file is
//! valid; unknown fields are errors (a typo must not be silently ignored).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use syncd_engine::{CompressionPolicy, DeviceConfig, DiscoveryConfig, EngineConfig, FolderConfig};
use syncd_types::{DeviceId, FolderId};

/// The config file's name inside the home directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The REST address used when the config does not name one (Syncthing's).
pub const DEFAULT_GUI_ADDRESS: &str = "127.0.0.1:8384";
/// The BEP listen address used when the config does not name one (Syncthing's).
pub const DEFAULT_LISTEN: &str = "tcp://0.0.0.0:22000";
/// Default full-rescan interval, seconds (Syncthing's).
pub const DEFAULT_RESCAN_INTERVAL_S: u32 = 3600;
/// Default delay between a filesystem event and the scan it triggers, milliseconds.
pub const DEFAULT_WATCHER_DELAY_MS: u32 = 50;
/// Default number of conflict copies kept per file (Syncthing's).
pub const DEFAULT_MAX_CONFLICTS: i32 = 10;
/// Default redb page cache for the index, MiB: 8, half the index crate's general-purpose 16
/// (`syncd_index::DEFAULT_CACHE_SIZE`). Measured with `cargo xtask bench` (issue 12): the
/// 1 GB / 20,000-file initial sync ran at the same receiver CPU as with 16 MiB, while the
/// cache's pages, resident for the life of the daemon, no longer push an idle daemon over
/// the 48 MB target; 4 MiB cost that sync ~30 % more receiver CPU (block-map lookups missing
/// the cache). `index_cache_mib` in `[options]` overrides it.
pub const DEFAULT_INDEX_CACHE_MIB: u64 = 8;
/// Length of a generated API key (Syncthing's).
pub const API_KEY_LEN: usize = 32;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Daemon-wide options.
    #[serde(default)]
    pub options: Options,
    /// The REST API ("GUI" in Syncthing's words).
    #[serde(default)]
    pub gui: Gui,
    /// Peer devices, as `[[device]]` tables.
    #[serde(default, rename = "device", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceEntry>,
    /// Shared folders, as `[[folder]]` tables.
    #[serde(default, rename = "folder", skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<FolderEntry>,
    /// What new folders start from (`[defaults]`).
    #[serde(default, skip_serializing_if = "Defaults::is_default")]
    pub defaults: Defaults,
    /// Devices the user ignores (Syncthing's `remoteIgnoredDevices`): refused without being
    /// offered again, as `[[ignored_device]]` tables.
    #[serde(
        default,
        rename = "ignored_device",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignored_devices: Vec<ObservedDevice>,
}

/// `[defaults]`: what a new folder starts from, in particular one accepted automatically
/// from a device with `auto_accept_folders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// The directory new folders are created in (`~` is expanded): an accepted folder goes
    /// to `<folder_path>/<label>`, or `<folder_path>/<id>` when that exists.
    pub folder_path: PathBuf,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            folder_path: PathBuf::from("~"),
        }
    }
}

impl Defaults {
    fn is_default(&self) -> bool {
        *self == Defaults::default()
    }
}

/// A device the user chose to ignore, as it was when ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedDevice {
    /// Its ID.
    #[serde(with = "as_string")]
    pub id: DeviceId,
    /// The name it announced.
    #[serde(default)]
    pub name: String,
    /// The address it connected from.
    #[serde(default)]
    pub address: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub time: String,
}

/// A folder the user chose to ignore from one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedFolder {
    /// The folder ID.
    #[serde(with = "as_string")]
    pub id: FolderId,
    /// Its label as offered.
    #[serde(default)]
    pub label: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub time: String,
}

/// `[options]`: daemon-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// This device's name, announced to peers.
    pub device_name: String,
    /// BEP listen addresses, `tcp://host:port` (port 0 = any free port).
    pub listen: Vec<String>,
    /// The index's page cache, MiB (default [`DEFAULT_INDEX_CACHE_MIB`]); more can help a
    /// very large folder whose random lookups (block map) miss the cache.
    pub index_cache_mib: u64,
    /// Announce to and look up at the global discovery servers (Syncthing's
    /// `globalAnnounceEnabled`, default on).
    pub global_announce_enabled: bool,
    /// Global discovery servers (`globalAnnounceServers`): `default` (Syncthing's public
    /// servers), `default-v4`, `default-v6`, or `https://host:port/path?id=…` URLs with the
    /// options `id`, `insecure`, `noannounce`, `nolookup`.
    pub global_announce_servers: Vec<String>,
    /// Local discovery by broadcast and multicast on the LAN (`localAnnounceEnabled`,
    /// default on).
    pub local_announce_enabled: bool,
    /// Local discovery's UDP port (`localAnnouncePort`, 21027).
    pub local_announce_port: u16,
    /// Local discovery's IPv6 multicast group (`localAnnounceMCAddr`, `[ff12::8384]:21027`).
    pub local_announce_mc_addr: String,
    /// Also announce LAN addresses to global servers (`announceLANAddresses`, default on).
    pub announce_lan_addresses: bool,
    /// `text` (the default) or `json`: one JSON object a log line, for journald and log
    /// shippers. `SYNCD_LOG_FORMAT` overrides it.
    #[serde(skip_serializing_if = "is_default")]
    pub log_format: crate::logbuf::LogFormat,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Default for Options {
    fn default() -> Self {
        Options {
            device_name: crate::home::hostname(),
            listen: vec![DEFAULT_LISTEN.to_owned()],
            index_cache_mib: DEFAULT_INDEX_CACHE_MIB,
            global_announce_enabled: true,
            global_announce_servers: vec!["default".to_owned()],
            local_announce_enabled: true,
            local_announce_port: syncd_engine::discovery::DEFAULT_LOCAL_PORT,
            local_announce_mc_addr: syncd_engine::discovery::DEFAULT_LOCAL_MC_ADDR.to_owned(),
            announce_lan_addresses: true,
            log_format: crate::logbuf::LogFormat::Text,
        }
    }
}

/// `[gui]`: the REST API's address, key, optional GUI login and HTTPS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gui {
    /// `host:port` the REST API listens on (port 0 = any free port).
    pub address: String,
    /// The API key clients send as `X-API-Key` or `Authorization: Bearer`.
    pub api_key: String,
    /// The GUI user name; with [`Gui::password`] set, the GUI asks for a login (as
    /// Syncthing's `gui.user`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The GUI password as a bcrypt hash (Syncthing's `gui.password`). A plain-text password
    /// written here by hand is hashed, and the file rewritten, when the daemon starts
    /// ([`Config::hash_plain_password`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// Serve the GUI and REST API over HTTPS with a self-signed certificate made at first
    /// start (`https-cert.pem`/`https-key.pem` in the home; Syncthing's `useTLS`).
    pub tls: bool,
}

impl Default for Gui {
    fn default() -> Self {
        Gui {
            address: DEFAULT_GUI_ADDRESS.to_owned(),
            api_key: String::new(),
            user: String::new(),
            password: String::new(),
            tls: false,
        }
    }
}

impl Gui {
    /// Whether the GUI asks for a login: a user and a password are both set (Syncthing's
    /// rule for static auth).
    pub fn auth_enabled(&self) -> bool {
        !self.user.is_empty() && !self.password.is_empty()
    }

    /// Whether the configured address is a loopback one (then a missing password is fine).
    pub fn address_is_loopback(&self) -> bool {
        self.address
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }
}

/// How much of the BEP traffic to a device is LZ4-compressed (Syncthing's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Only metadata messages (Index, ClusterConfig): Syncthing's default.
    #[default]
    Metadata,
    /// Every message, data included.
    Always,
    /// Nothing.
    Never,
}

impl Compression {
    /// Syncthing's string for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Metadata => "metadata",
            Compression::Always => "always",
            Compression::Never => "never",
        }
    }

    /// Parses Syncthing's strings, including the legacy `true`/`false`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "metadata" | "true" => Some(Compression::Metadata),
            "always" => Some(Compression::Always),
            "never" | "false" => Some(Compression::Never),
            _ => None,
        }
    }

    fn to_engine(self) -> CompressionPolicy {
        match self {
            Compression::Metadata => CompressionPolicy::Metadata,
            Compression::Always => CompressionPolicy::Always,
            Compression::Never => CompressionPolicy::Never,
        }
    }

    fn from_engine(c: CompressionPolicy) -> Self {
        match c {
            CompressionPolicy::Always => Compression::Always,
            CompressionPolicy::Never => Compression::Never,
            _ => Compression::Metadata,
        }
    }
}

/// One `[[device]]`: a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// The peer's device ID.
    #[serde(with = "as_string")]
    pub id: DeviceId,
    /// A human name for it.
    #[serde(default)]
    pub name: String,
    /// Where to dial it: `tcp://host:port`, or `dynamic` (found by discovery).
    #[serde(default = "dynamic")]
    pub addresses: Vec<String>,
    /// Compression policy towards it.
    #[serde(default)]
    pub compression: Compression,
    /// A paused device is neither dialled nor accepted.
    #[serde(default)]
    pub paused: bool,
    /// An introducer: the devices it shares our folders with are added and share them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub introducer: bool,
    /// Keep what this introducer introduced when it stops listing it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_introduction_removals: bool,
    /// The introducer that added this device.
    #[serde(
        default,
        with = "as_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub introduced_by: Option<DeviceId>,
    /// Accept the folders this device offers without asking.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_accept_folders: bool,
    /// Folders this device offers that the user ignores, as `[[device.ignored_folder]]`.
    #[serde(
        default,
        rename = "ignored_folder",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignored_folders: Vec<ObservedFolder>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn dynamic() -> Vec<String> {
    vec!["dynamic".to_owned()]
}

impl DeviceEntry {
    /// A device with defaults for everything but its ID.
    pub fn new(id: DeviceId) -> Self {
        DeviceEntry {
            id,
            name: String::new(),
            addresses: dynamic(),
            compression: Compression::Metadata,
            paused: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            auto_accept_folders: false,
            ignored_folders: Vec::new(),
        }
    }
}

/// A folder's type (TOML `type`, Syncthing's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FolderType {
    /// Both directions (Syncthing's `sendreceive`).
    #[default]
    Sendreceive,
    /// Local changes are sent, remote ones never applied (`sendonly`).
    Sendonly,
    /// Remote changes are applied, local ones kept local (`receiveonly`).
    Receiveonly,
}

impl FolderType {
    /// Syncthing's name.
    pub fn as_str(self) -> &'static str {
        self.to_engine().as_str()
    }

    /// The engine's value.
    pub fn to_engine(self) -> syncd_engine::FolderType {
        match self {
            FolderType::Sendreceive => syncd_engine::FolderType::SendReceive,
            FolderType::Sendonly => syncd_engine::FolderType::SendOnly,
            FolderType::Receiveonly => syncd_engine::FolderType::ReceiveOnly,
        }
    }

    /// From the engine's value.
    pub fn from_engine(t: syncd_engine::FolderType) -> FolderType {
        match t {
            syncd_engine::FolderType::SendReceive => FolderType::Sendreceive,
            syncd_engine::FolderType::SendOnly => FolderType::Sendonly,
            syncd_engine::FolderType::ReceiveOnly => FolderType::Receiveonly,
        }
    }

    /// Parses Syncthing's name, or its old names `readwrite` and `readonly` (which Syncthing
    /// still reads as send-receive and send-only).
    pub fn parse(s: &str) -> Result<FolderType, syncd_engine::UnknownFolderType> {
        match s {
            "readwrite" => Ok(FolderType::Sendreceive),
            "readonly" => Ok(FolderType::Sendonly),
            other => other.parse().map(FolderType::from_engine),
        }
    }
}

/// One `[[folder]]`: a shared folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderEntry {
    /// The cluster-wide folder ID.
    #[serde(with = "as_string")]
    pub id: FolderId,
    /// A human label.
    #[serde(default)]
    pub label: String,
    /// Where it lives on this machine (`~` is expanded).
    pub path: PathBuf,
    /// Folder type: `sendreceive` (default), `sendonly` or `receiveonly`.
    #[serde(default, rename = "type")]
    pub kind: FolderType,
    /// Seconds between full rescans (0 = never).
    #[serde(default = "default_rescan")]
    pub rescan_interval_s: u32,
    /// Whether a filesystem watcher triggers scans.
    #[serde(default = "yes")]
    pub watcher_enabled: bool,
    /// Milliseconds between a filesystem event and its scan.
    #[serde(default = "default_watcher_delay")]
    pub watcher_delay_ms: u32,
    /// Ignore permission bits.
    #[serde(default)]
    pub ignore_perms: bool,
    /// Rename names not spelt in Unicode NFC on disk to NFC (Syncthing's `autoNormalize`).
    #[serde(default = "yes")]
    pub auto_normalize: bool,
    /// Names differing only in case are different files (Syncthing's `caseSensitiveFS`,
    /// default false: the puller refuses a name that differs only in case from a local one).
    #[serde(default)]
    pub case_sensitive_fs: bool,
    /// Conflict copies kept per file (-1 = unlimited, 0 = none).
    #[serde(default = "default_max_conflicts")]
    pub max_conflicts: i32,
    /// A paused folder neither scans nor syncs.
    #[serde(default)]
    pub paused: bool,
    /// The peers it is shared with.
    #[serde(default, with = "as_strings")]
    pub devices: Vec<DeviceId>,
    /// Of those, the ones an introducer added: device ID → introducer ID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub introduced_by: BTreeMap<String, String>,
    /// File versioning (`[folder.versioning]`; absent = off).
    #[serde(default, skip_serializing_if = "Versioning::is_off")]
    pub versioning: Versioning,
}

/// A folder's `[folder.versioning]` table, Syncthing's `versioning` object:
///
/// ```toml
/// [folder.versioning]
/// type = "simple"            # "", "trashcan", "simple", "staggered" or "external"
/// params = { keep = "5", cleanoutDays = "30" }   # strings, as Syncthing keeps them
/// cleanup_interval_s = 3600  # 0: no periodic cleanup
/// fs_path = ""               # "": <folder>/.stversions; relative: under the folder
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Versioning {
    /// `""` (off), `trashcan`, `simple`, `staggered` or `external`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's parameters: `keep`, `cleanoutDays`, `maxAge` (seconds), `command`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Seconds between cleanups (0 = none).
    pub cleanup_interval_s: u32,
    /// Where versions go (empty: `.stversions` in the folder).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fs_path: String,
    /// The filesystem type of `fs_path` (only `basic`).
    pub fs_type: String,
}

impl Default for Versioning {
    fn default() -> Self {
        Versioning::from_engine(&syncd_engine::versioner::VersioningConfig::default())
    }
}

impl Versioning {
    /// Whether this is the default "off" setting (left out of the file).
    pub fn is_off(&self) -> bool {
        *self == Versioning::default()
    }

    /// The engine's value, or why it is not a valid setting for a folder at `root`.
    pub fn to_engine(
        &self,
        root: &Path,
    ) -> Result<syncd_engine::versioner::VersioningConfig, String> {
        let kind = self.kind.parse().map_err(|e| format!("{e}"))?;
        let cfg = syncd_engine::versioner::VersioningConfig {
            kind,
            params: self.params.clone(),
            cleanup_interval_s: self.cleanup_interval_s,
            fs_path: self.fs_path.clone(),
            fs_type: self.fs_type.clone(),
        };
        syncd_engine::versioner::Versioner::new(root, &cfg).map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// The table for the engine's value.
    pub fn from_engine(v: &syncd_engine::versioner::VersioningConfig) -> Versioning {
        Versioning {
            kind: v.kind.as_str().to_owned(),
            params: v.params.clone(),
            cleanup_interval_s: v.cleanup_interval_s,
            fs_path: v.fs_path.clone(),
            fs_type: v.fs_type.clone(),
        }
    }
}

fn default_rescan() -> u32 {
    DEFAULT_RESCAN_INTERVAL_S
}
fn yes() -> bool {
    true
}
fn default_watcher_delay() -> u32 {
    DEFAULT_WATCHER_DELAY_MS
}
fn default_max_conflicts() -> i32 {
    DEFAULT_MAX_CONFLICTS
}

impl FolderEntry {
    /// A folder with defaults for everything but its ID and path.
    pub fn new(id: FolderId, path: PathBuf) -> Self {
        FolderEntry {
            label: id.as_str().to_owned(),
            id,
            path,
            kind: FolderType::Sendreceive,
            rescan_interval_s: DEFAULT_RESCAN_INTERVAL_S,
            watcher_enabled: true,
            watcher_delay_ms: DEFAULT_WATCHER_DELAY_MS,
            ignore_perms: false,
            auto_normalize: true,
            case_sensitive_fs: false,
            max_conflicts: DEFAULT_MAX_CONFLICTS,
            paused: false,
            devices: Vec::new(),
            introduced_by: BTreeMap::new(),
            versioning: Versioning::default(),
        }
    }
}

/// An optional `T` as its `Display` string (absent = `None`).
mod as_opt_string {
    use super::*;
    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let raw = String::deserialize(d)?;
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// `T` as its `Display` string, parsed back with `FromStr`.
mod as_string {
    use super::*;
    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

/// `Vec<T>` as a list of `Display` strings.
mod as_strings {
    use super::*;
    use serde::ser::SerializeSeq;
    pub fn serialize<T: Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v {
            seq.serialize_element(&item.to_string())?;
        }
        seq.end()
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let strings = Vec::<String>::deserialize(d)?;
        strings
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
            })
            .collect()
    }
}

/// Why the config could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write config {}: {source}", path.display())]
    Write {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file's content is wrong at a known place.
    #[error(
        "{}:{line}: bad config field `{field}`: {message}\n  what to do: {hint}",
        path.display()
    )]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field (`section.key`) at fault.
        field: String,
        /// What is wrong.
        message: String,
        /// What the operator should do.
        hint: String,
    },
}

impl Config {
    /// A fresh config: the given API key, no devices, no folders.
    pub fn new_with_key(api_key: String) -> Self {
        Config {
            gui: Gui {
                api_key,
                ..Gui::default()
            },
            ..Config::default()
        }
    }

    /// The config file's path inside `home`.
    pub fn path_in(home: &Path) -> PathBuf {
        home.join(CONFIG_FILE)
    }

    /// Parses `text` (the content of `path`), validating it. Errors name the file, line and field.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let message = e.message().trim().to_owned();
            let hint = hint_for(&message);
            ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of_offset(text, offset),
                field: field_at(text, offset),
                message,
                hint,
            }
        })?;
        config.validate(path, text)?;
        Ok(config)
    }

    /// Loads `<home>/config.toml`; `Ok(None)` when it does not exist.
    pub fn load(home: &Path) -> Result<Option<Config>, ConfigError> {
        let path = Self::path_in(home);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Writes the config to `<home>/config.toml` atomically (temp file + rename), mode 0600
    /// on Unix because it holds the API key.
    pub fn save(&self, home: &Path) -> Result<(), ConfigError> {
        let path = Self::path_in(home);
        let wrap = |source| ConfigError::Write {
            path: path.clone(),
            source,
        };
        let body = toml::to_string_pretty(self)
            .map_err(|e| wrap(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let text = format!(
            "# syncd configuration. Edit while the daemon is stopped, or use `syncd device ...` /\n\
             # `syncd folder ...` / the REST API (which apply changes to a running daemon).\n\n{body}"
        );
        let tmp = home.join(format!(".{CONFIG_FILE}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(wrap)?;
        f.write_all(text.as_bytes()).map_err(wrap)?;
        f.sync_all().map_err(wrap)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(wrap)
    }

    /// Checks rules serde cannot express: unique IDs, parsable addresses.
    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let invalid = |needle: &str, nth: usize, field: &str, message: String, hint: &str| {
            ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of_nth(text, needle, nth),
                field: field.to_owned(),
                message,
                hint: hint.to_owned(),
            }
        };
        if self.gui.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                &self.gui.address,
                0,
                "gui.address",
                format!("`{}` is not an IP:port address", self.gui.address),
                "write it as IP:port, e.g. \"127.0.0.1:8384\" (port 0 picks a free port)",
            ));
        }
        for addr in &self.options.listen {
            if !is_listen_address(addr) {
                return Err(invalid(
                    addr,
                    0,
                    "options.listen",
                    format!("`{addr}` is not a tcp://IP:port or tcp://host:port address"),
                    "write listen addresses as \"tcp://0.0.0.0:22000\" (port 0 picks a free port)",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.devices {
            if !seen.insert(d.id) {
                let id = d.id.to_string();
                return Err(invalid(
                    &id,
                    1,
                    "device.id",
                    format!("device {id} is listed twice"),
                    "delete one of the two [[device]] tables",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.folders {
            if !seen.insert(f.id.as_str()) {
                return Err(invalid(
                    &format!("\"{}\"", f.id),
                    1,
                    "folder.id",
                    format!("folder `{}` is listed twice", f.id),
                    "delete one of the two [[folder]] tables or give one another id",
                ));
            }
            if f.path.as_os_str().is_empty() {
                return Err(invalid(
                    &format!("\"{}\"", f.id),
                    0,
                    "folder.path",
                    format!("folder `{}` has an empty path", f.id),
                    "set path to the folder's directory, e.g. path = \"~/Sync\"",
                ));
            }
            if let Err(e) = f.versioning.to_engine(&f.path) {
                return Err(invalid(
                    &format!("\"{}\"", f.id),
                    0,
                    "folder.versioning",
                    format!("folder `{}`: {e}", f.id),
                    "type is one of trashcan, simple, staggered, external (with params.command)",
                ));
            }
        }
        Ok(())
    }

    /// Replaces a plain-text `gui.password` (written by hand) with its bcrypt hash; whether
    /// it changed anything (the caller saves the file then). A value that already is a bcrypt
    /// hash is kept as it is, as Syncthing does.
    pub fn hash_plain_password(&mut self) -> Result<bool, crate::auth::HashError> {
        if self.gui.password.is_empty() || crate::auth::is_bcrypt_hash(&self.gui.password) {
            return Ok(false);
        }
        self.gui.password = crate::auth::hash_password(&self.gui.password)?;
        Ok(true)
    }

    /// The folder with this ID.
    pub fn folder(&self, id: &str) -> Option<&FolderEntry> {
        self.folders.iter().find(|f| f.id.as_str() == id)
    }

    /// The device with this ID.
    pub fn device(&self, id: &DeviceId) -> Option<&DeviceEntry> {
        self.devices.iter().find(|d| d.id == *id)
    }

    /// Adds or replaces (same ID) a device.
    pub fn upsert_device(&mut self, entry: DeviceEntry) {
        match self.devices.iter_mut().find(|d| d.id == entry.id) {
            Some(slot) => *slot = entry,
            None => self.devices.push(entry),
        }
    }

    /// Adds or replaces (same ID) a folder.
    pub fn upsert_folder(&mut self, entry: FolderEntry) {
        match self.folders.iter_mut().find(|f| f.id == entry.id) {
            Some(slot) => *slot = entry,
            None => self.folders.push(entry),
        }
    }

    /// Removes a device (and its share of every folder); whether it was there.
    pub fn remove_device(&mut self, id: &DeviceId) -> bool {
        let before = self.devices.len();
        self.devices.retain(|d| d.id != *id);
        for f in &mut self.folders {
            f.devices.retain(|d| d != id);
        }
        self.devices.len() != before
    }

    /// Removes a folder; whether it was there.
    pub fn remove_folder(&mut self, id: &str) -> bool {
        let before = self.folders.len();
        self.folders.retain(|f| f.id.as_str() != id);
        self.folders.len() != before
    }

    /// The engine's view of this config, with `~` expanded in folder paths.
    pub fn to_engine(&self, home: &Path) -> EngineConfig {
        EngineConfig {
            home: home.to_owned(),
            device_name: self.options.device_name.clone(),
            listen: self.options.listen.clone(),
            devices: self.devices.iter().map(DeviceEntry::to_engine).collect(),
            folders: self.folders.iter().map(FolderEntry::to_engine).collect(),
            index_cache_bytes: usize::try_from(
                self.options.index_cache_mib.saturating_mul(1 << 20),
            )
            .unwrap_or(usize::MAX),
            ignored_devices: self.ignored_devices.iter().map(|d| d.id).collect(),
            folder_defaults: self.folder_defaults(),
            discovery: self.discovery(),
        }
    }

    /// The engine's discovery settings from `[options]`.
    pub fn discovery(&self) -> DiscoveryConfig {
        let o = &self.options;
        DiscoveryConfig {
            global_enabled: o.global_announce_enabled,
            global_servers: o.global_announce_servers.clone(),
            local_enabled: o.local_announce_enabled,
            local_port: o.local_announce_port,
            local_mc_addr: o.local_announce_mc_addr.clone(),
            announce_lan_addresses: o.announce_lan_addresses,
            ..DiscoveryConfig::disabled()
        }
    }

    /// What an automatically accepted folder starts from (the engine's `folder_defaults`).
    pub fn folder_defaults(&self) -> FolderConfig {
        let placeholder = FolderId::new("default").unwrap_or_else(|_| unreachable!());
        let mut f = FolderEntry::new(placeholder, self.defaults.folder_path.clone()).to_engine();
        f.label = String::new();
        f
    }

    /// Takes in the changes the engine made to its own configuration (folders accepted
    /// automatically, devices and shares added or removed by an introducer); returns
    /// whether anything changed.
    pub fn absorb_engine(&mut self, e: &EngineConfig) -> bool {
        let before = self.clone();
        self.devices
            .retain(|d| e.devices.iter().any(|x| x.id == d.id));
        for d in &e.devices {
            if self.device(&d.id).is_none() {
                self.devices.push(DeviceEntry::from_engine(d));
            }
        }
        for f in &e.folders {
            match self.folders.iter_mut().find(|x| x.id == f.id) {
                Some(ours) => {
                    ours.devices = f.devices.clone();
                    ours.introduced_by = introduced_map(f);
                }
                None => self.folders.push(FolderEntry::from_engine(f)),
            }
        }
        *self != before
    }
}

impl DeviceEntry {
    /// The engine's view of this device.
    pub fn to_engine(&self) -> DeviceConfig {
        DeviceConfig {
            id: self.id,
            name: self.name.clone(),
            addresses: self.addresses.clone(),
            compression: self.compression.to_engine(),
            paused: self.paused,
            introducer: self.introducer,
            skip_introduction_removals: self.skip_introduction_removals,
            introduced_by: self.introduced_by,
            auto_accept_folders: self.auto_accept_folders,
            ignored_folders: self.ignored_folders.iter().map(|f| f.id.clone()).collect(),
        }
    }

    /// A device the engine added (introduced).
    pub fn from_engine(d: &DeviceConfig) -> DeviceEntry {
        DeviceEntry {
            name: d.name.clone(),
            addresses: d.addresses.clone(),
            compression: Compression::from_engine(d.compression),
            paused: d.paused,
            introducer: d.introducer,
            skip_introduction_removals: d.skip_introduction_removals,
            introduced_by: d.introduced_by,
            auto_accept_folders: d.auto_accept_folders,
            ..DeviceEntry::new(d.id)
        }
    }
}

fn introduced_map(f: &FolderConfig) -> BTreeMap<String, String> {
    f.introduced_by
        .iter()
        .map(|(d, by)| (d.to_string(), by.to_string()))
        .collect()
}

impl FolderEntry {
    /// The engine's view of this folder, with `~` expanded.
    pub fn to_engine(&self) -> FolderConfig {
        FolderConfig {
            id: self.id.clone(),
            label: self.label.clone(),
            path: crate::home::expand_tilde(&self.path),
            devices: self.devices.clone(),
            introduced_by: self
                .introduced_by
                .iter()
                .filter_map(|(d, by)| Some((d.parse().ok()?, by.parse().ok()?)))
                .filter(|(d, _)| self.devices.contains(d))
                .collect(),
            rescan_interval_s: self.rescan_interval_s,
            watcher_delay_ms: self.watcher_delay_ms,
            watcher_enabled: self.watcher_enabled,
            ignore_perms: self.ignore_perms,
            auto_normalize: self.auto_normalize,
            case_sensitive_fs: self.case_sensitive_fs,
            max_conflicts: self.max_conflicts,
            paused: self.paused,
            scan_progress_interval_ms: syncd_engine::DEFAULT_SCAN_PROGRESS_INTERVAL_MS,
            // Checked when the file is loaded and when REST or the CLI changes it.
            versioning: self.versioning.to_engine(&self.path).unwrap_or_default(),
            folder_type: self.kind.to_engine(),
        }
    }

    /// A folder the engine added (accepted automatically).
    pub fn from_engine(f: &FolderConfig) -> FolderEntry {
        FolderEntry {
            label: f.label.clone(),
            rescan_interval_s: f.rescan_interval_s,
            watcher_enabled: f.watcher_enabled,
            watcher_delay_ms: f.watcher_delay_ms,
            ignore_perms: f.ignore_perms,
            auto_normalize: f.auto_normalize,
            case_sensitive_fs: f.case_sensitive_fs,
            max_conflicts: f.max_conflicts,
            paused: f.paused,
            devices: f.devices.clone(),
            introduced_by: introduced_map(f),
            versioning: Versioning::from_engine(&f.versioning),
            kind: FolderType::from_engine(f.folder_type),
            ..FolderEntry::new(f.id.clone(), f.path.clone())
        }
    }
}

/// Parses a BEP listen address (`tcp://IP:port`, `tcp4://`, `tcp6://`).
/// Whether `addr` is a listen address we accept: `tcp://IP:port`, or `tcp://name:port` with
/// a host name (resolved at start; discovery announces the name, so a test on loopback can
/// announce `tcp://localhost:PORT`, which a discovery server keeps).
pub fn is_listen_address(addr: &str) -> bool {
    if parse_listen(addr).is_some() {
        return true;
    }
    let Some(rest) = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("tcp4://"))
        .or_else(|| addr.strip_prefix("tcp6://"))
    else {
        return false;
    };
    rest.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && port.parse::<u16>().is_ok()
    })
}

/// `tcp://IP:port` as a socket address.
pub fn parse_listen(addr: &str) -> Option<std::net::SocketAddr> {
    let rest = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("tcp4://"))
        .or_else(|| addr.strip_prefix("tcp6://"))?;
    rest.parse().ok()
}

/// A random API key: `API_KEY_LEN` characters of `[A-Za-z0-9]`.
pub fn random_api_key() -> String {
    random_alphanumeric(API_KEY_LEN)
}

/// `len` random characters of `[A-Za-z0-9]` (API keys, GUI tokens, `/rest/svc/random/string`).
pub fn random_alphanumeric(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// 1-based line number of a byte offset.
fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// 1-based line of the `nth` (0-based) occurrence of `needle`, or 1.
fn line_of_nth(text: &str, needle: &str, nth: usize) -> usize {
    if needle.is_empty() {
        return 1;
    }
    text.match_indices(needle)
        .nth(nth)
        .map_or(1, |(at, _)| line_of_offset(text, at))
}

/// `section.key` of the line holding `offset`: the key before `=` on that line (if any),
/// prefixed by the nearest `[section]`/`[[section]]` header above it.
fn field_at(text: &str, offset: usize) -> String {
    let line_no = line_of_offset(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let idx = line_no.saturating_sub(1);
    let key = lines
        .get(idx)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    let section = lines
        .get(..=idx.min(lines.len().saturating_sub(1)))
        .unwrap_or(&[])
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    match (section, key) {
        (Some(s), Some(k)) => format!("{s}.{k}"),
        (Some(s), None) => s,
        (None, Some(k)) => k,
        (None, None) => "(top level)".to_owned(),
    }
}

fn hint_for(message: &str) -> String {
    if message.contains("unknown field") {
        "remove that line or fix the spelling (the message lists the known fields)".to_owned()
    } else if message.contains("missing field") {
        "add the missing field to that table".to_owned()
    } else if message.contains("invalid type") {
        "give the value the type the message expects (strings need quotes)".to_owned()
    } else {
        "fix the value on that line and start syncd again; delete the file to start over with \
         defaults (cert.pem/key.pem keep the device ID)"
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/h/config.toml"), text)
    }

    fn invalid(text: &str) -> (usize, String, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line,
                field,
                message,
                ..
            }) => (line, field, message),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gets_every_default() {
        let c = parse("").unwrap();
        assert_eq!(c.gui.address, DEFAULT_GUI_ADDRESS);
        assert_eq!(c.options.listen, vec![DEFAULT_LISTEN.to_owned()]);
        assert!(c.devices.is_empty() && c.folders.is_empty());
    }

    #[test]
    fn folder_type_is_read_written_back_and_reaches_the_engine() {
        for (name, want) in [
            ("sendreceive", syncd_engine::FolderType::SendReceive),
            ("sendonly", syncd_engine::FolderType::SendOnly),
            ("receiveonly", syncd_engine::FolderType::ReceiveOnly),
        ] {
            let c = parse(&format!(
                "[[folder]]\nid = \"w\"\npath = \"/w\"\ntype = \"{name}\"\n"
            ))
            .unwrap();
            assert_eq!(c.folders[0].to_engine().folder_type, want, "{name}");
            assert_eq!(
                FolderEntry::from_engine(&c.folders[0].to_engine()).kind,
                c.folders[0].kind
            );
            let dir = tempfile::tempdir().unwrap();
            c.save(dir.path()).unwrap();
            assert_eq!(Config::load(dir.path()).unwrap(), Some(c));
        }
        assert!(
            parse("[[folder]]\nid = \"w\"\npath = \"/w\"\ntype = \"receiveencrypted\"\n").is_err()
        );
    }

    #[test]
    fn folder_versioning_is_read_written_back_and_checked() {
        let text = "[[folder]]\nid = \"w\"\npath = \"/w\"\n[folder.versioning]\n\
                    type = \"simple\"\nparams = { keep = \"3\" }\n";
        let c = parse(text).unwrap();
        let v = &c.folders[0].versioning;
        assert_eq!(
            (v.kind.as_str(), v.params["keep"].as_str()),
            ("simple", "3")
        );
        assert_eq!(v.cleanup_interval_s, 3600);
        let e = c.folders[0].to_engine().versioning;
        assert_eq!(e.kind, syncd_engine::versioner::VersioningType::Simple);
        let dir = tempfile::tempdir().unwrap();
        c.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Some(c));
        // Off by default, and then not written at all.
        let off = parse("[[folder]]\nid = \"w\"\npath = \"/w\"\n").unwrap();
        assert!(off.folders[0].versioning.is_off());
        let bad = text.replace("simple", "weekly");
        let (_, field, message) = invalid(&bad);
        assert_eq!(field, "folder.versioning");
        assert!(message.contains("weekly"), "{message}");
        let (_, _, message) = invalid(&text.replace("simple", "external"));
        assert!(message.contains("command"), "{message}");
    }

    #[test]
    fn saved_config_parses_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::new_with_key(random_api_key());
        let mut d = DeviceEntry::new(PEER.parse().unwrap());
        d.addresses = vec!["tcp://10.0.0.2:22000".into()];
        d.compression = Compression::Always;
        c.upsert_device(d);
        let mut f = FolderEntry::new(FolderId::new("photos").unwrap(), "~/Photos".into());
        f.devices = vec![PEER.parse().unwrap()];
        f.watcher_delay_ms = 250;
        c.upsert_folder(f);
        c.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Some(c));
    }

    #[test]
    fn join_settings_are_saved_and_parse_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let peer: DeviceId = PEER.parse().unwrap();
        let other = DeviceId::from_slice(&[7; 32]).unwrap();
        let mut c = Config::new_with_key(random_api_key());
        let mut d = DeviceEntry::new(peer);
        d.introducer = true;
        d.skip_introduction_removals = true;
        d.auto_accept_folders = true;
        d.introduced_by = Some(other);
        d.ignored_folders = vec![ObservedFolder {
            id: FolderId::new("nope").unwrap(),
            label: "Nope".into(),
            time: "2026-12-07T08:00:00Z".into(),
        }];
        c.upsert_device(d);
        let mut f = FolderEntry::new(FolderId::new("team").unwrap(), "/t".into());
        f.devices = vec![peer];
        f.introduced_by.insert(peer.to_string(), other.to_string());
        c.upsert_folder(f);
        c.ignored_devices.push(ObservedDevice {
            id: other,
            name: "<b>x</b>".into(),
            address: "1.2.3.4:5".into(),
            time: String::new(),
        });
        c.defaults.folder_path = "/srv/sync".into();
        c.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(Config::path_in(dir.path())).unwrap();
        for key in [
            "introducer = true",
            "auto_accept_folders = true",
            "[[ignored_device]]",
            "[[device.ignored_folder]]",
            "folder_path = \"/srv/sync\"",
        ] {
            assert!(text.contains(key), "{key} missing in\n{text}");
        }
        assert_eq!(Config::load(dir.path()).unwrap(), Some(c.clone()));
        let e = c.to_engine(dir.path());
        assert_eq!(e.ignored_devices, vec![other]);
        assert_eq!(e.folder_defaults.path, PathBuf::from("/srv/sync"));
        assert_eq!(e.devices[0].ignored_folders[0].as_str(), "nope");
        assert_eq!(e.folders[0].introduced_by.get(&peer), Some(&other));
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let (line, field, message) =
            invalid("[gui]\naddress = \"127.0.0.1:8384\"\napikey = \"x\"\n");
        assert_eq!(line, 3);
        assert_eq!(field, "gui.apikey");
        assert!(message.contains("unknown field"), "{message}");
    }

    #[test]
    fn bad_device_id_names_line_and_field() {
        let text =
            format!("[[device]]\nid = \"{PEER}\"\n\n[[device]]\nname = \"x\"\nid = \"NOPE\"\n");
        let (line, field, message) = invalid(&text);
        assert_eq!((line, field.as_str()), (6, "device.id"));
        assert!(message.contains("NOPE"), "{message}");
    }

    #[test]
    fn wrong_type_names_line_and_field() {
        let (line, field, _) =
            invalid("[[folder]]\nid = \"a\"\npath = \"/tmp/a\"\nrescan_interval_s = \"often\"\n");
        assert_eq!((line, field.as_str()), (4, "folder.rescan_interval_s"));
    }

    #[test]
    fn duplicate_folder_id_names_second_occurrence() {
        let text = "[[folder]]\nid = \"a\"\npath = \"/x\"\n[[folder]]\nid = \"a\"\npath = \"/y\"\n";
        let (line, field, _) = invalid(text);
        assert_eq!((line, field.as_str()), (5, "folder.id"));
    }

    #[test]
    fn bad_gui_address_is_rejected() {
        let (line, field, _) = invalid("[gui]\naddress = \"localhost\"\n");
        assert_eq!((line, field.as_str()), (2, "gui.address"));
    }

    #[test]
    fn error_message_names_file_line_and_what_to_do() {
        let err = parse("[options]\nlisten = [\"udp://x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/h/config.toml:2: bad config field `options.listen`"),
            "{err}"
        );
        assert!(err.contains("what to do:"), "{err}");
    }

    #[test]
    fn api_keys_are_random_and_alphanumeric() {
        let (a, b) = (random_api_key(), random_api_key());
        assert_eq!(a.len(), API_KEY_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn removing_a_device_unshares_it_from_folders() {
        let id: DeviceId = PEER.parse().unwrap();
        let mut c = Config::default();
        c.upsert_device(DeviceEntry::new(id));
        let mut f = FolderEntry::new(FolderId::new("a").unwrap(), "/a".into());
        f.devices.push(id);
        c.upsert_folder(f);
        assert!(c.remove_device(&id));
        assert!(c.folders[0].devices.is_empty());
    }

    #[test]
    fn compression_accepts_legacy_booleans() {
        for (s, want) in [
            ("metadata", Some(Compression::Metadata)),
            ("true", Some(Compression::Metadata)),
            ("always", Some(Compression::Always)),
            ("never", Some(Compression::Never)),
            ("false", Some(Compression::Never)),
            ("sometimes", None),
        ] {
            assert_eq!(Compression::parse(s), want, "{s}");
        }
    }
}
