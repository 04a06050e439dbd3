//! The Syncthing process: finding the binary, keys, the `serve` command, start and stop.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`Syncthing::stop`] (and drop) waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A process that could not be run, or ran and failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and exited unsuccessfully.
    #[error("{command} exited with {status}: {output}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its stdout and stderr.
        output: String,
    },
    /// Its output held no device ID.
    #[error("no device ID in the output of {command}: {output:?}")]
    NoDeviceId {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
    /// A file next to the process (its log) could not be opened.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The first `syncthing` on `PATH`.
pub fn syncthing_on_path() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("syncthing"))
            .find(|p| p.is_file())
    })
}

/// The test policy around [`syncthing_on_path`]: `None` (the caller skips, and a `SKIPPED`
/// line says why) when there is no `syncthing`.
///
/// # Panics
///
/// When `SYNCD_REQUIRE_SYNCTHING=1` and there is no `syncthing`: CI must not skip silently.
pub fn syncthing_or_skip() -> Option<PathBuf> {
    let found = syncthing_on_path();
    if found.is_none() {
        if std::env::var("SYNCD_REQUIRE_SYNCTHING").as_deref() == Ok("1") {
            panic!("SYNCD_REQUIRE_SYNCTHING=1 but no `syncthing` binary on PATH");
        }
        eprintln!(
            "SKIPPED: `syncthing` not found on PATH (apt-get install -y syncthing); \
             set SYNCD_REQUIRE_SYNCTHING=1 to make this a failure"
        );
    }
    found
}

/// A port that was free on 127.0.0.1 a moment ago, for a process that must be told its
/// listening port (Syncthing's GUI address). It is taken below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): a port from bind port 0 comes from that range,
/// and an outgoing connection of another test could take it as its source port before the
/// process binds it (seen in CI: Syncthing's GUI failed with "address already in use" because
/// a syncd dial had the port). Falls back to bind port 0 when the range is unknown.
pub fn free_port() -> std::io::Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(0);
    if ephemeral_start > 4096 {
        let (lo, span) = (ephemeral_start / 2, ephemeral_start - ephemeral_start / 2);
        // Spread parallel test processes over the range.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = std::process::id().wrapping_mul(7919) ^ nanos;
        for _ in 0..512 {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = lo + seed.wrapping_add(n.wrapping_mul(104_729)) % span;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The first whitespace-separated token shaped like a device ID (8 groups of 7 letters and
/// digits, dash-separated).
pub fn find_device_id(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .find(|t| {
            let groups: Vec<&str> = t.split('-').collect();
            groups.len() == 8
                && groups
                    .iter()
                    .all(|g| g.len() == 7 && g.chars().all(|c| c.is_ascii_alphanumeric()))
        })
        .map(str::to_string)
}

fn output(cmd: &mut Command) -> Result<String, ProcessError> {
    let program = PathBuf::from(cmd.get_program());
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ProcessError::Spawn { program, source })?;
    if !out.status.success() {
        return Err(ProcessError::Failed {
            command: format!("{cmd:?}"),
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `syncthing generate --no-default-folder --skip-port-probing` into `home` (created if
/// missing); returns the device ID `syncthing serve --device-id` prints.
pub fn generate(bin: &Path, home: &Path) -> Result<String, ProcessError> {
    std::fs::create_dir_all(home).map_err(|source| ProcessError::File {
        path: home.to_path_buf(),
        source,
    })?;
    let home_arg = format!("--home={}", home.display());
    output(Command::new(bin).args([
        "generate",
        &home_arg,
        "--no-default-folder",
        "--skip-port-probing",
    ]))?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", &home_arg, "--device-id"]);
    let out = output(&mut cmd)?;
    find_device_id(&out).ok_or_else(|| ProcessError::NoDeviceId {
        command: format!("{cmd:?}"),
        output: out,
    })
}

/// `syncthing serve` on `home`: no browser, no restart, no upgrade, no default folder, log to
/// stdout with date and time, and `STMONITORED=1` so the spawned PID is the worker itself
/// (its RSS and CPU are the real ones; there is no monitor parent to outlive a stop).
/// stdin, stdout and stderr are the caller's to set.
pub fn serve_command(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg(format!("--home={}", home.display()))
        .args([
            "--no-browser",
            "--no-restart",
            "--no-upgrade",
            "--no-default-folder",
            "--logflags=3",
            "--logfile=-",
        ])
        .env("STMONITORED", "1")
        .env("STNORESTART", "1")
        .env("STNOUPGRADE", "1")
        .env("STNODEFAULTFOLDER", "1");
    cmd
}

/// Stops `child` through its PID: SIGTERM (`kill -TERM PID`), then, if it has not exited after
/// `grace`, SIGKILL; then reaps it. Never signals anything by name.
pub fn stop_by_pid(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // std's Child::kill is SIGKILL to this PID on Unix.
    let _ = child.kill();
    let _ = child.wait();
}

/// A running `syncthing serve` (see [`serve_command`]); stopped by PID on [`stop`](Self::stop)
/// or drop.
#[derive(Debug)]
pub struct Syncthing {
    child: Child,
    log: PathBuf,
}

impl Syncthing {
    /// Starts Syncthing on `home`, appending its stdout and stderr to `log`. Returns once the
    /// process exists; wait for its REST API with [`Rest`](crate::Rest).
    pub fn start(bin: &Path, home: &Path, log: &Path) -> Result<Self, ProcessError> {
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| ProcessError::File {
                    path: log.to_path_buf(),
                    source,
                })
        };
        let child = serve_command(bin, home)
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                program: bin.to_path_buf(),
                source,
            })?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The log's text so far (empty when unreadable).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it: SIGTERM, SIGKILL after 20 s, both by PID.
    pub fn stop(mut self) {
        stop_by_pid(&mut self.child, STOP_GRACE);
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        stop_by_pid(&mut self.child, STOP_GRACE);
    }
}

/// A running Debian `stdiscosrv` (global discovery server) on `127.0.0.1:<free port>`, with
/// its database and generated key pair in a directory of the caller's. Stopped by PID on drop.
#[derive(Debug)]
pub struct Discosrv {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its certificate's device ID (what clients pin with `?id=`).
    pub id: String,
    log: PathBuf,
}

/// `stdiscosrv` on the PATH (`/usr/bin/stdiscosrv` from Debian's `syncthing-discosrv`).
pub fn discosrv_on_path() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("stdiscosrv"))
            .find(|p| p.is_file())
    })
}

impl Discosrv {
    /// Starts it in `dir` and waits (up to 60 s) until it has logged its device ID and
    /// accepts connections.
    pub fn start(bin: &Path, dir: &Path) -> Result<Self, ProcessError> {
        let log = dir.join("stdiscosrv.log");
        let port = free_port().map_err(|source| ProcessError::File {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| ProcessError::File {
                    path: p.to_path_buf(),
                    source,
                })
        };
        let child = Command::new(bin)
            .arg("-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-db-dir")
            .arg(dir.join("db"))
            .arg("-cert")
            .arg(dir.join("cert.pem"))
            .arg("-key")
            .arg(dir.join("key.pem"))
            .arg("-debug")
            .stdin(Stdio::null())
            .stdout(file(&log)?)
            .stderr(file(&log)?)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                program: bin.to_path_buf(),
                source,
            })?;
        let mut srv = Discosrv {
            child,
            port,
            id: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if srv.id.is_empty() {
                let text = srv.log_text();
                if let Some(line) = text.lines().find(|l| l.contains("Server device ID is")) {
                    srv.id = find_device_id(line).unwrap_or_default();
                }
            }
            if !srv.id.is_empty() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(srv);
            }
            if let Ok(Some(_)) = srv.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ProcessError::NoDeviceId {
            command: format!("{} -listen 127.0.0.1:{port}", bin.display()),
            output: srv.log_text(),
        })
    }

    /// `https://127.0.0.1:PORT/v2/?id=ID`: the server, pinned.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/v2/?id={}", self.port, self.id)
    }

    /// The log's text so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Discosrv {
    fn drop(&mut self) {
        stop_by_pid(&mut self.child, Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_is_found_in_cli_output() {
        let id = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
        let table = [
            (format!("Device ID: {id}\nCreated ..."), Some(id)),
            (format!("{id}\n"), Some(id)),
            ("no id here MFZWI3D-BONSGYC".to_string(), None),
        ];
        for (text, want) in table {
            assert_eq!(find_device_id(&text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_bindable() {
        let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        for _ in 0..20 {
            let p = free_port().unwrap();
            assert!(p < start, "{p} is in the ephemeral range from {start}");
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }

    #[test]
    fn serve_command_runs_the_worker_itself_without_upgrades() {
        let cmd = serve_command(Path::new("syncthing"), Path::new("/h"));
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args.first().map(|a| a.as_ref()), Some("serve"));
        assert!(args.iter().any(|a| a == "--home=/h"));
        assert!(args.iter().any(|a| a == "--no-upgrade"));
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(env.contains(&("STMONITORED".as_ref(), Some("1".as_ref()))));
    }

    /// A `sleep 600` that ignores SIGTERM when `ignore_term`, once it runs (it says "ready").
    fn sleeper(ignore_term: bool) -> Child {
        use std::io::Read as _;
        let trap = if ignore_term { "trap '' TERM; " } else { "" };
        let mut child = Command::new("sh")
            .args(["-c", &format!("{trap}echo ready; exec sleep 600")])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        child
    }

    #[test]
    fn stop_by_pid_ends_a_process_with_sigterm() {
        use std::os::unix::process::ExitStatusExt as _;
        let mut child = sleeper(false);
        stop_by_pid(&mut child, Duration::from_secs(60));
        assert_eq!(child.try_wait().unwrap().and_then(|s| s.signal()), Some(15));
    }

    #[test]
    fn stop_by_pid_kills_a_process_that_ignores_sigterm() {
        use std::os::unix::process::ExitStatusExt as _;
        let mut child = sleeper(true);
        stop_by_pid(&mut child, Duration::from_millis(300));
        assert_eq!(child.try_wait().unwrap().and_then(|s| s.signal()), Some(9));
    }
}
