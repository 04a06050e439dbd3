//! `syncd serve`: starts the engine and the REST server, prints what the operator needs, and
//! runs until SIGINT/SIGTERM or `POST /rest/system/shutdown`.

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
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(&e);
        }
    }};
}

fn stdout_failed(e: &std::io::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tracing::warn!(error = %e, "stdout is not writable; banner lines are dropped, the daemon keeps running"));
}

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

    let shutdown = Arc::new(tokio::sync::Notify::new());
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
    print_banner(&home, &config, my_id, bound, &listen, created);
    events.push("StartupComplete", json!({"myID": my_id.to_string()}));

    let absorber = tokio::spawn(crate::rest::absorb_engine_changes(state.clone()));
    let app = crate::rest::router(state);
    let stop = async move {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("signal received, shutting down"),
            _ = shutdown.notified() => tracing::info!("shutdown requested through the REST API"),
        }
    };
    // The peer address decides whether a GUI page may use a CSRF token (loopback only).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await;
    engine.shutdown().await;
    feeder.abort();
    stats_feeder.abort();
    absorber.abort();
    progress.abort();
    let _ = std::fs::remove_file(&addr_file);
    served.context("REST server failed")?;
    say!("syncd stopped.");
    Ok(())
}

fn print_banner(
    home: &std::path::Path,
    config: &Config,
    my_id: DeviceId,
    bound: std::net::SocketAddr,
    listen: &[String],
    created: bool,
) {
    say!("syncd {} started", crate::rest::VERSION);
    say!("Device ID: {my_id}");
    say!("REST API: http://{bound}");
    say!("GUI: http://{bound}/");
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
