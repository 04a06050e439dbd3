//! `syncd serve`: starts the engine and the REST server, prints what the operator needs, and
//! runs until SIGINT/SIGTERM or `POST /rest/system/shutdown`.
//!
//! `POST /rest/system/restart` stops the same way and then replaces the process with a new
//! run of the same binary and arguments (same PID on Unix), which reads the config anew. A GUI
//! address with port 0 comes back on the port it had: the old run passes it on in
//! [`RESTART_GUI_ADDRESS_ENV`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use serde_json::json;
use syncd_engine::{DeviceId, Engine};

use crate::config::Config;
use crate::events::EventLog;
use crate::home::REST_ADDRESS_FILE;
use crate::rest::RestState;

/// `println!` for the daemon: stdout may be a pipe whose reader went away (a launcher that
/// exited, `syncd serve | head`); `println!` would panic on the broken pipe and take the whole
/// daemon down with it. The banner is a courtesy, so a failed write is dropped (and logged once).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // With progress bars on the terminal, the line is written with the bars cleared.
        if let Err(e) = crate::logbuf::without_bars(|| writeln!(std::io::stdout(), $($arg)*)) {
            stdout_failed(&e);
        }
    }};
}

fn stdout_failed(e: &std::io::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tracing::warn!(error = %e, "stdout is not writable; banner lines are dropped, the daemon keeps running"));
}

/// Set by a restarting daemon for its next run: the GUI address it was bound to.
pub const RESTART_GUI_ADDRESS_ENV: &str = "SYNCD_RESTART_GUI_ADDRESS";

/// How long open requests (long polls) may take to finish once the daemon stops.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// What `serve` runs with.
#[derive(Debug)]
pub struct ServeOptions {
    /// The syncd home.
    pub home: PathBuf,
    /// The config, with this run's overrides applied (not saved).
    pub config: Config,
    /// Our device ID.
    pub my_id: DeviceId,
    /// Whether this start created the config.
    pub created: bool,
    /// Whether `--gui-address` overrode the config.
    pub gui_overridden: bool,
}

/// Runs the daemon until it is asked to stop.
pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    let ServeOptions {
        home,
        config,
        my_id,
        created,
        gui_overridden,
    } = opts;
    crate::logbuf::set_format(config.options.log_format);
    let gui_addr: std::net::SocketAddr = config
        .gui
        .address
        .parse()
        .with_context(|| format!("gui address `{}`", config.gui.address))?;
    // Bind the REST port before starting the engine, so a taken port fails fast.
    let listener = tokio::net::TcpListener::bind(gui_addr).await.with_context(|| {
        format!(
            "cannot listen for the REST API on {gui_addr} (is Syncthing or another syncd running?); \
             stop it or pass --gui-address 127.0.0.1:0"
        )
    })?;
    let bound = listener.local_addr()?;
    let tls = if config.gui.tls {
        Some(crate::tls::server_config(&home).context("setting up HTTPS for the GUI")?)
    } else {
        None
    };

    let engine = Engine::start(config.to_engine(&home))
        .await
        .context("starting the engine")?;
    if engine.device_id() != my_id {
        tracing::warn!(engine = %engine.device_id(), "the engine loaded another identity than the CLI");
    }
    let events = Arc::new(EventLog::new());
    events.push(
        "Starting",
        json!({"home": home.to_string_lossy(), "myID": my_id.to_string()}),
    );
    let feeder = {
        let events = events.clone();
        let rx = engine.subscribe();
        tokio::spawn(async move { events.feed(rx).await })
    };
    let progress = crate::progress::spawn(engine.clone());
    let stats = Arc::new(crate::stats::Stats::default());
    let stats_feeder = {
        let stats = stats.clone();
        let rx = engine.subscribe();
        tokio::spawn(async move { stats.feed(rx).await })
    };

    let durations = Arc::new(crate::metrics::Durations::default());
    let durations_feeder = {
        let durations = durations.clone();
        let rx = engine.subscribe();
        tokio::spawn(async move { durations.feed(rx).await })
    };

    let shutdown = Arc::new(tokio::sync::Notify::new());
    let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let state = Arc::new(RestState {
        engine: engine.clone(),
        home: home.clone(),
        api_key: config.gui.api_key.clone(),
        config: tokio::sync::Mutex::new(config.clone()),
        my_id,
        events: events.clone(),
        bound,
        gui_overridden,
        started: SystemTime::now(),
        started_at: Instant::now(),
        shutdown: shutdown.clone(),
        csrf: crate::gui::CsrfTokens::default(),
        stats,
        durations,
        auth: crate::auth::Auth::new(&config.gui),
        restart: restart.clone(),
        tls: tls.is_some(),
        gui_address: config.gui.address.clone(),
        debug: crate::debug::Facilities::default(),
    });
    let addr_file = home.join(REST_ADDRESS_FILE);
    std::fs::write(&addr_file, format!("{bound}\n"))
        .with_context(|| format!("writing {}", addr_file.display()))?;

    let listen: Vec<String> = engine
        .listen_addrs()
        .iter()
        .map(|a| format!("tcp://{a}"))
        .collect();
    tracing::info!(device = %my_id, rest = %bound, listen = ?listen, "syncd started");
    print_banner(
        &home,
        &config,
        my_id,
        bound,
        &listen,
        created,
        tls.is_some(),
    );
    events.push("StartupComplete", json!({"myID": my_id.to_string()}));

    let absorber = tokio::spawn(crate::rest::absorb_engine_changes(state.clone()));
    let app = crate::rest::router(state);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("signal received, shutting down"),
            _ = shutdown.notified() => tracing::info!("shutdown requested through the REST API"),
        }
        let _ = stopping_tx.send(());
    };
    // The peer address decides whether a GUI page may use a CSRF token (loopback only).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // `tap_io` only so that axum hands the peer address (ConnectInfo) through our listener.
    use axum::serve::ListenerExt as _;
    let listener = crate::tls::GuiListener::new(listener, tls.clone()).tap_io(|_| {});
    let mut server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .into_future(),
    );
    let served = tokio::select! {
        r = &mut server => r,
        _ = stopping_rx => match tokio::time::timeout(STOP_GRACE, &mut server).await {
            Ok(r) => r,
            Err(_) => {
                // A long poll (the GUI's event loop) would hold the stop for a minute.
                server.abort();
                Ok(Ok(()))
            }
        },
    };
    let served = served.context("REST server task")?;
    engine.shutdown().await;
    feeder.abort();
    stats_feeder.abort();
    durations_feeder.abort();
    absorber.abort();
    progress.abort();
    let _ = std::fs::remove_file(&addr_file);
    served.context("REST server failed")?;
    if restart.load(std::sync::atomic::Ordering::SeqCst) {
        say!("syncd restarting.");
        return Err(reexec(bound));
    }
    say!("syncd stopped.");
    Ok(())
}

/// Starts this binary again with the same arguments in place of this process; returns only
/// if that failed.
fn reexec(bound: std::net::SocketAddr) -> anyhow::Error {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return anyhow::anyhow!("restart: cannot find this program: {e}"),
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env(RESTART_GUI_ADDRESS_ENV, bound.to_string());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let e = cmd.exec();
        anyhow::anyhow!("restart: cannot run {} again: {e}", exe.display())
    }
    #[cfg(not(unix))]
    {
        match cmd.spawn() {
            Ok(_) => std::process::exit(0),
            Err(e) => anyhow::anyhow!("restart: cannot run {} again: {e}", exe.display()),
        }
    }
}

fn print_banner(
    home: &std::path::Path,
    config: &Config,
    my_id: DeviceId,
    bound: std::net::SocketAddr,
    listen: &[String],
    created: bool,
    tls: bool,
) {
    let scheme = if tls { "https" } else { "http" };
    say!("syncd {} started", crate::rest::VERSION);
    say!("Device ID: {my_id}");
    say!("REST API: {scheme}://{bound}");
    say!("GUI: {scheme}://{bound}/");
    if exposed_without_password(bound, &config.gui) {
        say!(
            "WARNING: the GUI listens on {bound}, beyond this machine, without a GUI password; \
             set one with `syncd gui set-password --user NAME --home {}`",
            home.display()
        );
        tracing::warn!(gui = %bound, "the GUI listens beyond loopback without a password");
    }
    say!("Listening for devices on: {}", listen.join(", "));
    say!("Home: {}", home.display());
    if created {
        say!("Created a new config with a random API key (show it with `syncd api-key`).");
    }
    for f in &config.folders {
        say!("Folder `{}`: {}", f.id, f.path.display());
    }
    let home_flag = format!(" --home {}", home.display());
    if config.devices.is_empty() {
        say!("Next: on the other machine run `syncd device-id`, then here:");
        say!(
            "  syncd device add <ITS-ID> --name <name> --address tcp://<its-host>:22000{home_flag}"
        );
        say!("  syncd folder add <folder-id> <path> --device <ITS-ID>{home_flag}");
        say!(
            "and the same there with this device's ID. Check progress with `syncd status{home_flag}`."
        );
    } else {
        say!("Check progress with `syncd status{home_flag}`; stop with Ctrl-C.");
    }
}

/// Whether the GUI is reachable from other machines with no login: worth a warning.
fn exposed_without_password(bound: std::net::SocketAddr, gui: &crate::config::Gui) -> bool {
    !bound.ip().is_loopback() && !gui.auth_enabled()
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_gui_beyond_loopback_without_a_login_is_flagged() {
        let mut gui = crate::config::Gui::default();
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        assert!(!exposed_without_password(at("127.0.0.1:8384"), &gui));
        assert!(!exposed_without_password(at("[::1]:8384"), &gui));
        assert!(exposed_without_password(at("0.0.0.0:8384"), &gui));
        assert!(exposed_without_password(at("192.168.1.5:8384"), &gui));
        gui.user = "u".into();
        assert!(
            exposed_without_password(at("0.0.0.0:8384"), &gui),
            "a user alone is no login"
        );
        gui.password = "$2b$10$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0".into();
        assert!(!exposed_without_password(at("0.0.0.0:8384"), &gui));
    }
}
