//! Command-line interface: argument parsing (clap), the subcommands, and exit codes.
//!
//! Exit codes: 0 success (for `wait`: in sync), 1 error, 2 usage or config error, 3 timeout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use syncd_transport::Identity;
use syncd_types::{DeviceId, FolderId};

use crate::client::{Client, ClientError, encode_query};
use crate::config::{Compression, Config, ConfigError, DeviceEntry, FolderEntry};
use crate::home;

/// `println!` for command output. A reader that has gone away (`syncd status | head -1`) ends
/// the command quietly with exit code 0, as other Unix tools do; any other failure to write is
/// reported on stderr with exit code 1. (`println!` would panic on either.)
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::stdout_failed(&e);
        }
    }};
}

mod pending;
mod versions;

pub use versions::{VersioningArgs, VersionsCommand};

pub(crate) fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(EXIT_OK));
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "syncd: error: cannot write to standard output: {e}"
    );
    std::process::exit(i32::from(EXIT_ERROR));
}

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: bad usage or a bad config.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: `wait` timed out.
pub const EXIT_TIMEOUT: u8 = 3;

/// syncd: real-time two-way file sync that speaks Syncthing's protocol.
#[derive(Debug, Parser)]
#[command(name = "syncd", version, about, long_about = None)]
pub struct Cli {
    /// The syncd home directory (config, identity, index). Default: $SYNCD_HOME, else
    /// $XDG_CONFIG_HOME/syncd or ~/.config/syncd (macOS: ~/Library/Application Support/syncd).
    #[arg(long, global = true, value_name = "DIR", env = "SYNCD_HOME")]
    pub home: Option<PathBuf>,
    /// Print this device's ID and exit (same as `syncd device-id`).
    #[arg(long)]
    pub device_id: bool,
    /// Options for `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options of `syncd serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Accepted for compatibility with Syncthing's runbooks; syncd never opens a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// REST API address for this run, IP:port (port 0 picks a free port); the config is unchanged.
    #[arg(long, value_name = "ADDR")]
    pub gui_address: Option<String>,
    /// BEP listen address for this run, tcp://IP:port (repeatable; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// On first start, do not create the `default` folder at ~/Sync.
    #[arg(long)]
    pub no_default_folder: bool,
    /// Run without global and local discovery (nothing is announced; `dynamic` devices
    /// must dial us); the config is unchanged. Tests use it.
    #[arg(long)]
    pub no_discovery: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve(ServeArgs),
    /// Print this device's ID (creates the identity if missing).
    DeviceId,
    /// Create the home, identity and config if missing, print the device ID, and exit.
    Generate {
        /// Do not create the `default` folder at ~/Sync.
        #[arg(long)]
        no_default_folder: bool,
    },
    /// Print the REST API key (for `curl -H "X-API-Key: $(syncd api-key)" ...`).
    ApiKey,
    /// Manage peer devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manage shared folders.
    #[command(subcommand)]
    Folder(FolderCommand),
    /// List and restore the versions file versioning kept (needs a running daemon).
    #[command(subcommand)]
    Versions(VersionsCommand),
    /// The web GUI's login and HTTPS.
    #[command(subcommand)]
    Gui(GuiCommand),
    /// Ask the configured global discovery servers, now and uncached, where a device is
    /// (exit 0 when some server knows it, 1 when none does).
    Lookup {
        /// The device ID.
        id: String,
    },
    /// Move this machine from Syncthing to syncd: adopt its identity and import its config.
    ImportSyncthing {
        /// Syncthing's home (default: the platform's Syncthing location).
        dir: Option<PathBuf>,
        /// Replace an existing syncd config and identity.
        #[arg(long)]
        force: bool,
    },
    /// Show the device ID, peers, and each folder's state and need (needs a running daemon).
    Status {
        /// Only this folder.
        #[arg(long)]
        folder: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List devices that want to connect and folders that devices offer, with the commands
    /// that accept or ignore them (needs a running daemon).
    Pending {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script, e.g. `syncd completions bash >
    /// ~/.local/share/bash-completion/completions/syncd`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `syncd man | man -l -`.
    Man,
    /// Wait until a folder is in sync with every peer sharing it. Exit 0 in sync, 1 error,
    /// 2 usage/config error or unknown folder, 3 timeout.
    ///
    /// "In sync" is with what the peers announced: a peer still in its first scan has
    /// announced only what it scanned so far (its `syncd status` shows `scanning`).
    Wait {
        /// The folder to wait for.
        #[arg(long)]
        folder: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
        timeout: f64,
    },
}

/// `syncd device ...`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add (or update) a peer device.
    Add {
        /// The peer's device ID (see `syncd device-id` on that machine).
        id: String,
        /// A name for it.
        #[arg(long, default_value = "")]
        name: String,
        /// Where to dial it, tcp://host:port or `dynamic` (repeatable). Without one: `dynamic`,
        /// found by discovery (with discovery off, it must dial us).
        #[arg(long = "address", value_name = "ADDR")]
        addresses: Vec<String>,
        /// Compression: metadata (default), always or never.
        #[arg(long, default_value = "metadata")]
        compression: String,
    },
    /// Accept a device that wants to connect (see `syncd pending`): adds it, named as it
    /// introduced itself unless --name says otherwise.
    Accept {
        /// The device ID.
        id: String,
        /// A name for it (default: the name it announced).
        #[arg(long)]
        name: Option<String>,
        /// Where to dial it, tcp://host:port or `dynamic` (repeatable). Without one: `dynamic`,
        /// found by discovery (with discovery off, it must dial us).
        #[arg(long = "address", value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Ignore a device that wants to connect: it is refused and never offered again.
    Ignore {
        /// The device ID.
        id: String,
    },
    /// List peer devices.
    List {
        /// Print JSON (the entries in the shape of Syncthing's `/rest/config`).
        #[arg(long)]
        json: bool,
    },
    /// Remove a peer device (and unshare every folder with it).
    Remove {
        /// The device ID.
        id: String,
    },
}

/// `syncd folder ...`.
#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Add (or update) a shared folder; creates the directory and its .stfolder marker.
    Add {
        /// The folder ID, the same on every device sharing it.
        id: String,
        /// Where it lives on this machine.
        path: PathBuf,
        /// A human label (default: the ID).
        #[arg(long)]
        label: Option<String>,
        /// A device to share it with (repeatable; add the device first).
        #[arg(long = "device", value_name = "ID")]
        devices: Vec<String>,
        /// Folder type: sendreceive (default), sendonly or receiveonly.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// File versioning.
        #[command(flatten)]
        versioning: VersioningArgs,
    },
    /// Change a configured folder's settings (only those given).
    Set {
        /// The folder ID.
        id: String,
        /// A human label.
        #[arg(long)]
        label: Option<String>,
        /// Folder type: sendreceive, sendonly or receiveonly.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// File versioning.
        #[command(flatten)]
        versioning: VersioningArgs,
    },
    /// Send-only folder: make this device's versions win on every device ("Override
    /// Changes"; needs a running daemon).
    Override {
        /// The folder ID.
        id: String,
    },
    /// Receive-only folder: drop this device's local changes and bring the global versions
    /// back ("Revert Local Changes"; needs a running daemon). Files that exist only here are
    /// removed (to the versions when versioning is on).
    Revert {
        /// The folder ID.
        id: String,
    },
    /// Read every file the index says is unchanged and check each block against its recorded
    /// hash (needs a running daemon): finds files damaged on disk behind the scanner's back
    /// (bytes changed, size and modification time kept), which are then reported in the
    /// folder's errors and never sent to peers. Exit status 1 when damage was found.
    Verify {
        /// The folder ID.
        id: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Accept a folder a device offers (see `syncd pending`): shares it with the device,
    /// creating it (at --path, or under the default folder path) if it is new here.
    Accept {
        /// The folder ID.
        id: String,
        /// The device that offers it.
        #[arg(long, value_name = "ID")]
        from: String,
        /// Where it goes on this machine (default: `[defaults] folder_path`/LABEL).
        #[arg(long)]
        path: Option<PathBuf>,
        /// A human label (default: the label it was offered with).
        #[arg(long)]
        label: Option<String>,
    },
    /// Ignore a folder a device offers: it is never offered from that device again.
    Ignore {
        /// The folder ID.
        id: String,
        /// The device that offers it.
        #[arg(long, value_name = "ID")]
        from: String,
    },
    /// List shared folders.
    List {
        /// Print JSON (the entries in the shape of Syncthing's `/rest/config`).
        #[arg(long)]
        json: bool,
    },
    /// Remove a shared folder from the config (its files stay on disk).
    Remove {
        /// The folder ID.
        id: String,
    },
}

/// `syncd gui ...`.
#[derive(Debug, Subcommand)]
pub enum GuiCommand {
    /// Set the GUI user and password (the password is read from standard input, one line;
    /// only its bcrypt hash is stored). The GUI then asks for this login; scripts keep using
    /// the API key.
    SetPassword {
        /// The user name to log in with.
        #[arg(long)]
        user: String,
    },
    /// Remove the GUI password (the GUI then needs no login on loopback).
    ClearPassword,
    /// Serve the GUI over HTTPS (on) or plain HTTP (off); applies at the next start.
    Tls {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Failure {
    fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_USAGE,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = if error.downcast_ref::<ConfigError>().is_some() {
            EXIT_USAGE
        } else {
            EXIT_ERROR
        };
        Failure { code, error }
    }
}

type CliResult = Result<u8, Failure>;

/// Parses the process arguments, runs, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("syncd: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    // Generated from the CLI definition alone: no home needed.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "syncd", &mut script);
            return write_stdout(&script);
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut page)
                .context("rendering the man page")?;
            return write_stdout(&page);
        }
        _ => {}
    }
    let home = match cli.home.clone().or_else(home::default_home) {
        Some(h) => h,
        None => {
            return Err(Failure::usage(anyhow!(
                "cannot find a home directory: set HOME or pass --home DIR"
            )));
        }
    };
    if cli.device_id {
        return device_id(&home);
    }
    match cli.command {
        None => serve(&home, cli.serve),
        Some(Command::Serve(args)) => serve(&home, merge(cli.serve, args)),
        Some(Command::DeviceId) => device_id(&home),
        Some(Command::Generate { no_default_folder }) => {
            let (config, id, created) = load_or_init(&home, !no_default_folder)?;
            out!("Device ID: {id}");
            if created {
                out!(
                    "Created {} (API key: run `syncd api-key`).",
                    Config::path_in(&home).display()
                );
                for f in &config.folders {
                    out!("Default folder `{}` at {}", f.id, f.path.display());
                }
            }
            Ok(EXIT_OK)
        }
        Some(Command::ApiKey) => {
            let (config, _, _) = load_or_init(&home, true)?;
            out!("{}", config.gui.api_key);
            Ok(EXIT_OK)
        }
        Some(Command::Device(cmd)) => device_cmd(&home, cmd),
        Some(Command::Folder(cmd)) => folder_cmd(&home, cmd),
        Some(Command::Versions(cmd)) => versions::versions_cmd(&home, cmd),
        Some(Command::Gui(cmd)) => gui_cmd(&home, cmd),
        Some(Command::Lookup { id }) => lookup(&home, &id),
        Some(Command::ImportSyncthing { dir, force }) => import_syncthing(&home, dir, force),
        Some(Command::Status { folder, json }) => status(&home, folder.as_deref(), json),
        Some(Command::Wait { folder, timeout }) => wait(&home, &folder, timeout),
        Some(Command::Pending { json }) => pending::pending(&home, json),
        Some(Command::Completions { .. } | Command::Man) => Ok(EXIT_OK),
    }
}

/// Writes generated text to stdout, with `out!`'s handling of a closed or failing stdout.
fn write_stdout(bytes: &[u8]) -> CliResult {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        stdout_failed(&e);
    }
    Ok(EXIT_OK)
}

fn merge(top: ServeArgs, sub: ServeArgs) -> ServeArgs {
    ServeArgs {
        no_browser: top.no_browser || sub.no_browser,
        gui_address: sub.gui_address.or(top.gui_address),
        listen: if sub.listen.is_empty() {
            top.listen
        } else {
            sub.listen
        },
        no_default_folder: top.no_default_folder || sub.no_default_folder,
        no_discovery: top.no_discovery || sub.no_discovery,
    }
}

/// Loads the identity and config of `home`, creating whatever is missing: the directory, a
/// fresh identity, and a config with a random API key and (if `default_folder`) the `default`
/// folder at `~/Sync` with its marker. Returns whether the config was created.
pub fn load_or_init(
    home: &Path,
    default_folder: bool,
) -> Result<(Config, DeviceId, bool), Failure> {
    home::create_private_dir(home).with_context(|| format!("creating home {}", home.display()))?;
    let identity = Identity::load_or_generate(home)
        .with_context(|| format!("loading or creating the identity in {}", home.display()))?;
    let id = identity.device_id();
    if let Some(config) = Config::load(home)? {
        return Ok((config, id, false));
    }
    let mut config = Config::new_with_key(crate::config::random_api_key());
    if default_folder && let Some(user_home) = home::user_home() {
        let path = user_home.join("Sync");
        home::create_folder_root(&path)
            .with_context(|| format!("creating the default folder {}", path.display()))?;
        let mut f = FolderEntry::new(FolderId::new("default")?, path);
        f.label = "Default Folder".to_owned();
        config.upsert_folder(f);
    }
    config.save(home)?;
    tracing::info!(home = %home.display(), "created a new config");
    Ok((config, id, true))
}

fn device_id(home: &Path) -> CliResult {
    home::create_private_dir(home).with_context(|| format!("creating home {}", home.display()))?;
    let identity = Identity::load_or_generate(home)
        .with_context(|| format!("loading or creating the identity in {}", home.display()))?;
    out!("{}", identity.device_id());
    Ok(EXIT_OK)
}

/// A client for the daemon of `home` if one is running and is really ours (its
/// `X-Syncthing-ID` is our device ID).
fn running_daemon(home: &Path, config: &Config, my_id: &DeviceId) -> Option<Client> {
    let client = Client::for_home(home, config)?.with_timeout(Duration::from_secs(10));
    let resp = client.request("GET", "/rest/system/ping", None).ok()?;
    let ours = resp
        .header("x-syncthing-id")
        .is_some_and(|h| h == my_id.to_string());
    (resp.status == 200 && ours).then_some(client)
}

fn require_daemon(home: &Path) -> Result<(Config, DeviceId, Client), Failure> {
    let Some(config) = Config::load(home)? else {
        return Err(Failure::usage(anyhow!(
            "no config in {}: run `syncd serve` (or `syncd generate`) first",
            home.display()
        )));
    };
    let id = Identity::load(home)
        .with_context(|| format!("loading the identity in {}", home.display()))?
        .device_id();
    let client = Client::for_home(home, &config)
        .ok_or_else(|| Failure::usage(anyhow!("gui.address in the config is not IP:port")))?;
    match running_daemon(home, &config, &id) {
        Some(c) => Ok((config, id, c)),
        None => Err(anyhow!(
            "no syncd daemon for {} answers at {}; start it with `syncd serve --home {}`",
            home.display(),
            client.addr(),
            home.display()
        )
        .into()),
    }
}

fn parse_device(raw: &str) -> Result<DeviceId, Failure> {
    raw.parse()
        .map_err(|e| Failure::usage(anyhow!("`{raw}` is not a device ID: {e}")))
}

fn device_cmd(home: &Path, cmd: DeviceCommand) -> CliResult {
    let (mut config, my_id, _) = load_or_init(home, true)?;
    let daemon = running_daemon(home, &config, &my_id);
    match cmd {
        DeviceCommand::Add {
            id,
            name,
            addresses,
            compression,
        } => {
            let id = parse_device(&id)?;
            if id == my_id {
                return Err(Failure::usage(anyhow!(
                    "{id} is this device's own ID; add the other machine's ID"
                )));
            }
            for a in &addresses {
                if a != "dynamic"
                    && crate::config::parse_listen(a).is_none()
                    && !looks_like_tcp_host(a)
                {
                    return Err(Failure::usage(anyhow!(
                        "`{a}` is not an address like tcp://host:22000"
                    )));
                }
            }
            let mut entry = config
                .device(&id)
                .cloned()
                .unwrap_or_else(|| DeviceEntry::new(id));
            if !name.is_empty() {
                entry.name = name;
            }
            if !addresses.is_empty() {
                entry.addresses = addresses;
            }
            entry.compression = Compression::parse(&compression).ok_or_else(|| {
                Failure::usage(anyhow!(
                    "compression must be metadata, always or never, not `{compression}`"
                ))
            })?;
            match daemon {
                Some(c) => {
                    c.json(
                        "PUT",
                        &format!("/rest/config/devices/{id}"),
                        Some(&crate::json::device(&entry)),
                    )?;
                    out!("Added device {id} (applied to the running daemon).");
                }
                None => {
                    config.upsert_device(entry);
                    config.save(home)?;
                    out!("Added device {id}; it takes effect when the daemon starts.");
                }
            }
        }
        DeviceCommand::Accept {
            id,
            name,
            addresses,
        } => return pending::device_accept(home, id, name, addresses),
        DeviceCommand::Ignore { id } => return pending::device_ignore(home, &id),
        DeviceCommand::List { json } if json => {
            let list: Vec<Value> = config.devices.iter().map(crate::json::device).collect();
            out!("{}", serde_json::to_string_pretty(&list)?);
        }
        DeviceCommand::List { .. } => {
            for d in &config.devices {
                let paused = if d.paused { " (paused)" } else { "" };
                out!("{}  {}  {}{paused}", d.id, d.name, d.addresses.join(","));
            }
        }
        DeviceCommand::Remove { id } => {
            let id = parse_device(&id)?;
            if config.device(&id).is_none() {
                return Err(Failure::usage(anyhow!("no device {id} in the config")));
            }
            match daemon {
                Some(c) => {
                    c.json("DELETE", &format!("/rest/config/devices/{id}"), None)?;
                }
                None => {
                    config.remove_device(&id);
                    config.save(home)?;
                }
            }
            out!("Removed device {id}.");
        }
    }
    Ok(EXIT_OK)
}

fn lookup(home: &Path, id: &str) -> CliResult {
    let device = parse_device(id)?;
    let (config, _, _) = load_or_init(home, false)?;
    let servers = config.options.global_announce_servers.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results = runtime.block_on(syncd_engine::discovery::lookup_uncached(&servers, device));
    let mut found = false;
    for (server, result) in results {
        match result {
            Ok(Some(addresses)) => {
                found = true;
                out!("{server}: {}", addresses.join(" "));
            }
            Ok(None) => out!("{server}: not found"),
            Err(e) => out!("{server}: error: {e}"),
        }
    }
    Ok(if found { EXIT_OK } else { EXIT_ERROR })
}

fn gui_cmd(home: &Path, cmd: GuiCommand) -> CliResult {
    let (mut config, my_id, _) = load_or_init(home, true)?;
    let daemon = running_daemon(home, &config, &my_id);
    let (change, done) = match cmd {
        GuiCommand::SetPassword { user } => {
            if user.is_empty() || user.contains(':') {
                return Err(Failure::usage(anyhow!(
                    "the user name must not be empty or contain `:`"
                )));
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(Failure::usage(anyhow!(
                    "no password on standard input (e.g. `read -rs P; echo \"$P\" | syncd gui set-password --user {user}`)"
                )));
            }
            let hash = crate::auth::hash_password(password)?;
            (
                json!({"user": user, "password": hash}),
                format!("GUI login set for user `{user}`"),
            )
        }
        GuiCommand::ClearPassword => (json!({"password": ""}), "GUI password removed".to_owned()),
        GuiCommand::Tls { state } => (
            json!({"useTLS": state == "on"}),
            format!("GUI HTTPS {state}"),
        ),
    };
    match daemon {
        Some(c) => {
            c.json("PATCH", "/rest/config/gui", Some(&change))?;
            out!("{done} (applied to the running daemon; HTTPS changes need a restart).");
        }
        None => {
            if let Some(u) = change.get("user").and_then(Value::as_str) {
                config.gui.user = u.to_owned();
            }
            if let Some(p) = change.get("password").and_then(Value::as_str) {
                config.gui.password = p.to_owned();
            }
            if let Some(t) = change.get("useTLS").and_then(Value::as_bool) {
                config.gui.tls = t;
            }
            config.save(home)?;
            out!("{done}; it takes effect when the daemon starts.");
        }
    }
    Ok(EXIT_OK)
}

fn looks_like_tcp_host(a: &str) -> bool {
    a.strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Parses `--type`.
fn folder_type(raw: Option<&str>) -> Result<Option<crate::config::FolderType>, Failure> {
    raw.map(|t| {
        crate::config::FolderType::parse(t).map_err(|e| Failure::usage(anyhow!("--type: {e}")))
    })
    .transpose()
}

/// `syncd folder override|revert ID`: asks the running daemon; the folder must be of the
/// type the operation is for.
fn folder_type_op(home: &Path, id: &str, op: &str) -> CliResult {
    let (config, _, client) = require_daemon(home)?;
    let Some(entry) = config.folder(id) else {
        return Err(Failure::usage(anyhow!("no folder `{id}` in the config")));
    };
    let (wanted, verb) = match op {
        "override" => (
            crate::config::FolderType::Sendonly,
            "Override of remote changes",
        ),
        _ => (
            crate::config::FolderType::Receiveonly,
            "Revert of local changes",
        ),
    };
    if entry.kind != wanted {
        return Err(Failure::usage(anyhow!(
            "folder `{id}` is {}; {op} is for {} folders",
            entry.kind.as_str(),
            wanted.as_str()
        )));
    }
    client.json(
        "POST",
        &format!("/rest/db/{op}?folder={}", encode_query(id)),
        None,
    )?;
    out!("{verb} requested for folder `{id}`; the daemon applies it now.");
    Ok(EXIT_OK)
}

/// `syncd folder verify ID [--json]`: the running daemon reads the folder and reports.
fn folder_verify(home: &Path, id: &str, as_json: bool) -> CliResult {
    let (config, _, client) = require_daemon(home)?;
    if config.folder(id).is_none() {
        return Err(Failure::usage(anyhow!("no folder `{id}` in the config")));
    }
    if !as_json {
        out!("verifying folder `{id}` (reads every file; the daemon logs its progress)...");
    }
    let report = client.json(
        "POST",
        &format!("/rest/syncd/verify?folder={}", encode_query(id)),
        None,
    )?;
    let damaged = report
        .get("damaged")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if as_json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let n = |k: &str| report.get(k).and_then(Value::as_u64).unwrap_or(0);
        out!(
            "{} files ({:.1} MB) checked, {} changed since the last scan (left to it), {} unreadable, {} damaged",
            n("files"),
            n("bytes") as f64 / 1e6,
            n("changed"),
            report
                .get("unreadable")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            damaged.len()
        );
        for d in &damaged {
            out!(
                "  DAMAGED {} (blocks {})",
                d.get("path").and_then(Value::as_str).unwrap_or("?"),
                d.get("blocks").map(Value::to_string).unwrap_or_default()
            );
        }
        if !damaged.is_empty() {
            out!(
                "Damaged blocks are never sent to peers. The peers hold the good version: copy each file back from one of them (or restore it from .stversions); do not just touch it."
            );
        }
    }
    Ok(if damaged.is_empty() { EXIT_OK } else { 1 })
}

fn folder_cmd(home: &Path, cmd: FolderCommand) -> CliResult {
    let (mut config, my_id, _) = load_or_init(home, true)?;
    let daemon = running_daemon(home, &config, &my_id);
    match cmd {
        FolderCommand::Add {
            id,
            path,
            label,
            devices,
            kind,
            versioning,
        } => {
            let kind = folder_type(kind.as_deref())?;
            let fid = FolderId::new(id.as_str())
                .map_err(|e| Failure::usage(anyhow!("folder ID `{id}`: {e}")))?;
            let path = home::expand_tilde(&path);
            let path = if path.is_absolute() {
                path
            } else {
                std::env::current_dir()?.join(path)
            };
            let mut devs = Vec::new();
            for raw in &devices {
                let d = parse_device(raw)?;
                if d == my_id {
                    continue;
                }
                if config.device(&d).is_none() {
                    return Err(Failure::usage(anyhow!(
                        "device {d} is not configured; add it first with `syncd device add {d} --name NAME`"
                    )));
                }
                devs.push(d);
            }
            home::create_folder_root(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut entry = config
                .folder(&id)
                .cloned()
                .unwrap_or_else(|| FolderEntry::new(fid.clone(), path.clone()));
            entry.path = path.clone();
            if let Some(l) = label {
                entry.label = l;
            }
            if !devices.is_empty() {
                entry.devices = devs;
            }
            if let Some(k) = kind {
                entry.kind = k;
            }
            versioning.apply(&mut entry.versioning, &path)?;
            match daemon {
                Some(c) => {
                    let body = crate::json::folder(&entry, &my_id);
                    c.json(
                        "PUT",
                        &format!("/rest/config/folders/{}", encode_query(&id)),
                        Some(&body),
                    )?;
                    out!(
                        "Added folder `{id}` at {} (applied to the running daemon).",
                        path.display()
                    );
                }
                None => {
                    config.upsert_folder(entry);
                    config.save(home)?;
                    out!(
                        "Added folder `{id}` at {}; it takes effect when the daemon starts.",
                        path.display()
                    );
                }
            }
        }
        FolderCommand::Set {
            id,
            label,
            kind,
            versioning,
        } => {
            let kind = folder_type(kind.as_deref())?;
            let Some(mut entry) = config.folder(&id).cloned() else {
                return Err(Failure::usage(anyhow!(
                    "no folder `{id}` in the config (add it with `syncd folder add`)"
                )));
            };
            if let Some(l) = label {
                entry.label = l;
            }
            if let Some(k) = kind {
                entry.kind = k;
            }
            let root = home::expand_tilde(&entry.path);
            versioning.apply(&mut entry.versioning, &root)?;
            match daemon {
                Some(c) => {
                    let body = crate::json::folder(&entry, &my_id);
                    c.json(
                        "PUT",
                        &format!("/rest/config/folders/{}", encode_query(&id)),
                        Some(&body),
                    )?;
                    out!("Changed folder `{id}` (applied to the running daemon).");
                }
                None => {
                    config.upsert_folder(entry);
                    config.save(home)?;
                    out!("Changed folder `{id}`; it takes effect when the daemon starts.");
                }
            }
        }
        FolderCommand::Accept {
            id,
            from,
            path,
            label,
        } => return pending::folder_accept(home, id, &from, path, label),
        FolderCommand::Ignore { id, from } => return pending::folder_ignore(home, &id, &from),
        FolderCommand::Verify { id, json } => return folder_verify(home, &id, json),
        FolderCommand::Override { id } => return folder_type_op(home, &id, "override"),
        FolderCommand::Revert { id } => return folder_type_op(home, &id, "revert"),
        FolderCommand::List { json } if json => {
            let list: Vec<Value> = config
                .folders
                .iter()
                .map(|f| crate::json::folder(f, &my_id))
                .collect();
            out!("{}", serde_json::to_string_pretty(&list)?);
        }
        FolderCommand::List { .. } => {
            for f in &config.folders {
                let devs: Vec<String> = f.devices.iter().map(|d| d.short().to_string()).collect();
                let paused = if f.paused { " (paused)" } else { "" };
                let kind = match f.kind {
                    crate::config::FolderType::Sendreceive => String::new(),
                    k => format!(" ({})", k.as_str()),
                };
                out!(
                    "{}  {}  shared with: {}{kind}{paused}",
                    f.id,
                    f.path.display(),
                    devs.join(",")
                );
            }
        }
        FolderCommand::Remove { id } => {
            if config.folder(&id).is_none() {
                return Err(Failure::usage(anyhow!("no folder `{id}` in the config")));
            }
            match daemon {
                Some(c) => {
                    c.json(
                        "DELETE",
                        &format!("/rest/config/folders/{}", encode_query(&id)),
                        None,
                    )?;
                }
                None => {
                    config.remove_folder(&id);
                    config.save(home)?;
                }
            }
            out!("Removed folder `{id}` (its files stay on disk).");
        }
    }
    Ok(EXIT_OK)
}

fn import_syncthing(home: &Path, dir: Option<PathBuf>, force: bool) -> CliResult {
    let dir = dir.or_else(home::default_syncthing_home).ok_or_else(|| {
        Failure::usage(anyhow!(
            "cannot find Syncthing's home: pass it as an argument"
        ))
    })?;
    let xml_path = dir.join("config.xml");
    let text = std::fs::read_to_string(&xml_path).map_err(|e| {
        Failure::usage(anyhow!(
            "cannot read {}: {e}; pass Syncthing's home directory as an argument",
            xml_path.display()
        ))
    })?;
    let identity = Identity::load(&dir)
        .with_context(|| format!("reading Syncthing's identity in {}", dir.display()))?;
    let id = identity.device_id();
    if !force {
        if Config::path_in(home).exists() {
            return Err(Failure::usage(anyhow!(
                "{} already exists; pass --force to replace it with the imported config",
                Config::path_in(home).display()
            )));
        }
        if let Ok(existing) = Identity::load(home)
            && existing.device_id() != id
        {
            return Err(Failure::usage(anyhow!(
                "{} already holds another identity ({}); pass --force to replace it",
                home.display(),
                existing.device_id()
            )));
        }
    }
    let imported = crate::import::from_syncthing_xml(&text, id).map_err(Failure::usage)?;
    home::create_private_dir(home)?;
    for name in [
        syncd_transport::identity::CERT_FILE,
        syncd_transport::identity::KEY_FILE,
    ] {
        let (from, to) = (dir.join(name), home.join(name));
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        #[cfg(unix)]
        if name == syncd_transport::identity::KEY_FILE {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    imported.config.save(home)?;
    out!(
        "Imported Syncthing's home {} into {}.",
        dir.display(),
        home.display()
    );
    out!("Device ID (kept): {id}");
    out!(
        "Devices: {}, folders: {}, REST API: {}",
        imported.config.devices.len(),
        imported.config.folders.len(),
        imported.config.gui.address
    );
    for f in &imported.config.folders {
        out!("  folder `{}` at {}", f.id, f.path.display());
    }
    if imported.not_carried.is_empty() {
        out!("Every setting was carried over.");
    } else {
        out!("Not carried over ({}):", imported.not_carried.len());
        for n in &imported.not_carried {
            out!("  - {n}");
        }
    }
    out!("Stop Syncthing before starting syncd: both use the same ports and device ID.");
    Ok(EXIT_OK)
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units.get(u).copied().unwrap_or("B"))
    }
}

fn folder_status_or_exit(c: &Client, folder: &str) -> Result<Value, Failure> {
    match c.get(&format!("/rest/db/status?folder={}", encode_query(folder))) {
        Ok(v) => Ok(v),
        Err(ClientError::Status { status: 404, .. }) => Err(Failure::usage(anyhow!(
            "no folder `{folder}` (see `syncd folder list`)"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn status(home: &Path, only: Option<&str>, as_json: bool) -> CliResult {
    let (_, my_id, c) = require_daemon(home)?;
    let conns = c.get("/rest/system/connections")?;
    let cfg = c.get("/rest/config")?;
    let folder_ids: Vec<String> = match only {
        Some(f) => vec![f.to_owned()],
        None => cfg["folders"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut folders = serde_json::Map::new();
    for f in &folder_ids {
        folders.insert(f.clone(), folder_status_or_exit(&c, f)?);
    }
    let pending_devices = c.get("/rest/cluster/pending/devices")?;
    let pending_folders = c.get("/rest/cluster/pending/folders")?;
    // An older daemon has no such endpoint: then nothing was discovered.
    let discovered = c.get("/rest/syncd/discovery").unwrap_or(Value::Null);
    if as_json {
        let out = json!({"myID": my_id.to_string(), "connections": conns["connections"], "folders": folders, "pendingDevices": pending_devices, "pendingFolders": pending_folders, "discovered": discovered});
        out!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    out!("Device ID: {my_id}");
    out!("REST API:  http://{}", c.addr());
    let names: std::collections::HashMap<String, String> = cfg["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| {
                    Some((
                        d["deviceID"].as_str()?.to_owned(),
                        d["name"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    out!("Peers:");
    if let Some(map) = conns["connections"].as_object() {
        if map.is_empty() {
            out!(
                "  (none: add one with `syncd device add ID --name NAME --address tcp://host:22000`)"
            );
        }
        for (id, v) in map {
            let short = id.split('-').next().unwrap_or(id);
            let name = names.get(id).map(String::as_str).unwrap_or("");
            let state = if v["paused"].as_bool() == Some(true) {
                "paused".to_owned()
            } else if v["connected"].as_bool() == Some(true) {
                format!(
                    "connected {} ({})",
                    v["address"].as_str().unwrap_or(""),
                    v["clientVersion"].as_str().unwrap_or("")
                )
            } else {
                "not connected".to_owned()
            };
            out!("  {short} {name}: {state}");
            if let Some(d) = discovered.get(id.as_str()) {
                let list = |v: &Value| -> String {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                out!(
                    "    found by {}: {}",
                    list(&d["sources"]),
                    list(&d["addresses"])
                );
            }
        }
    }
    out!("Folders:");
    if folders.is_empty() {
        out!("  (none: add one with `syncd folder add ID PATH --device ID`)");
    }
    for (id, s) in &folders {
        let state = match s["state"].as_str() {
            Some("") => "paused",
            Some(st) => st,
            None => "?",
        };
        out!(
            "  {id}: {state}; need {} items, {}; global {} files, {}{}",
            s["needTotalItems"],
            human_bytes(s["needBytes"].as_u64().unwrap_or(0)),
            s["globalFiles"],
            human_bytes(s["globalBytes"].as_u64().unwrap_or(0)),
            match s["error"].as_str() {
                Some(e) if !e.is_empty() => format!("; error: {e}"),
                _ => String::new(),
            }
        );
        if let Some(n) = s["receiveOnlyTotalItems"].as_u64().filter(|n| *n > 0) {
            out!(
                "    {n} local changes kept here (receive-only), {}; `syncd folder revert {id}` drops them",
                human_bytes(s["receiveOnlyChangedBytes"].as_u64().unwrap_or(0))
            );
        }
    }
    let asking = pending_devices.as_object().is_some_and(|m| !m.is_empty())
        || pending_folders.as_object().is_some_and(|m| !m.is_empty());
    if asking {
        for line in pending::describe(&pending_devices, &pending_folders, &cfg) {
            out!("{line}");
        }
    }
    Ok(EXIT_OK)
}

fn wait(home: &Path, folder: &str, timeout: f64) -> CliResult {
    if !timeout.is_finite() || timeout < 0.0 {
        return Err(Failure::usage(anyhow!(
            "--timeout must be a number of seconds >= 0"
        )));
    }
    let (_, _, c) = require_daemon(home)?;
    let c = c.with_timeout(Duration::from_secs_f64(timeout) + Duration::from_secs(30));
    let path = format!(
        "/rest/syncd/wait?folder={}&timeout={timeout}",
        encode_query(folder)
    );
    match c.get(&path) {
        Ok(v) if v["inSync"].as_bool() == Some(true) => {
            out!("folder `{folder}` is in sync");
            Ok(EXIT_OK)
        }
        Ok(v) => {
            let missing: Vec<String> = v["missing"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            eprintln!(
                "syncd: folder `{folder}` not in sync after {timeout} s: {}",
                missing.join("; ")
            );
            Ok(EXIT_TIMEOUT)
        }
        Err(ClientError::Status { status: 404, .. }) => Err(Failure::usage(anyhow!(
            "no folder `{folder}` (see `syncd folder list`)"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn serve(home: &Path, args: ServeArgs) -> CliResult {
    let (mut config, my_id, created) = load_or_init(home, !args.no_default_folder)?;
    // A password typed into the config by hand is stored hashed from now on.
    if config.hash_plain_password()? {
        config.save(home)?;
        tracing::info!("hashed the plain-text GUI password in the config");
    }
    let gui_overridden = args.gui_address.is_some();
    if let Some(addr) = args.gui_address {
        let addr = addr
            .strip_prefix("http://")
            .unwrap_or(&addr)
            .trim_end_matches('/')
            .to_owned();
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(Failure::usage(anyhow!(
                "--gui-address `{addr}` is not IP:port (e.g. 127.0.0.1:8384)"
            )));
        }
        config.gui.address = addr;
    }
    // After `POST /rest/system/restart`: a port-0 address comes back on the port it had.
    if let Some(prev) = std::env::var(crate::serve::RESTART_GUI_ADDRESS_ENV)
        .ok()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        && let Ok(now) = config.gui.address.parse::<std::net::SocketAddr>()
        && now.port() == 0
        && now.ip() == prev.ip()
    {
        config.gui.address = prev.to_string();
    }
    if !args.listen.is_empty() {
        for l in &args.listen {
            if !crate::config::is_listen_address(l) {
                return Err(Failure::usage(anyhow!(
                    "--listen `{l}` is not tcp://IP:port (e.g. tcp://0.0.0.0:22000)"
                )));
            }
        }
        config.options.listen = args.listen;
    }
    if args.no_discovery {
        config.options.global_announce_enabled = false;
        config.options.local_announce_enabled = false;
    }
    // Before the runtime's threads exist: they pick their malloc arenas when they first allocate.
    crate::memory::tune_allocator();
    syncd_engine::raise_open_files();
    let _reclaimer = crate::memory::spawn_reclaimer();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::serve::run(crate::serve::ServeOptions {
        home: home.to_owned(),
        config,
        my_id,
        created,
        gui_overridden,
    }))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_flags_mean_serve() {
        let cli =
            Cli::try_parse_from(["syncd", "--no-browser", "--gui-address", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.serve.no_browser);
        assert_eq!(cli.serve.gui_address.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn home_works_after_a_subcommand() {
        let cli = Cli::try_parse_from(["syncd", "status", "--home", "/h", "--json"]).unwrap();
        assert_eq!(cli.home, Some(PathBuf::from("/h")));
    }

    #[test]
    fn wait_requires_a_folder() {
        assert!(Cli::try_parse_from(["syncd", "wait"]).is_err());
    }

    #[test]
    fn tcp_host_addresses_are_accepted() {
        assert!(looks_like_tcp_host("tcp://vps.example.com:22000"));
        assert!(!looks_like_tcp_host("vps:22000"));
        assert!(!looks_like_tcp_host("tcp://vps"));
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
