//! Starting a stock Syncthing on loopback for tests and benches — one implementation for the
//! transport tests, the interop suite and `cargo xtask bench`/`torture`.
//!
//! Key items:
//! - [`SyncthingConfig`]: the loopback-only `config.xml` (one folder shared with one peer;
//!   global and local discovery, relays, NAT traversal, usage and crash reporting and upgrades
//!   off; BEP and REST on 127.0.0.1 only). Per-caller choices (watcher, reconnection interval,
//!   `maxConflicts`, versioning, names, the full set of stock defaults) are builder methods.
//! - [`generate`], [`serve_command`], [`Syncthing`]: keys, the `syncthing serve` command line
//!   and a running process (`STMONITORED=1`, so the PID is the worker itself).
//! - [`stop_by_pid`]: SIGTERM, then SIGKILL after a grace period, both by PID.
//! - [`Rest`]: a minimal HTTP/1.1 client that sends `X-API-Key` on every request.
//! - [`Discosrv`]: Debian's `stdiscosrv` on 127.0.0.1 (global discovery tests), stopped by PID.
//! - [`free_port`], [`find_device_id`], [`syncthing_or_skip`].
//!
//! Invariants: nothing listens beyond 127.0.0.1; a
//! process is only ever stopped through its own PID, never by name; every REST request carries
//! the API key (Syncthing 1.19.2 answers "CSRF Error" without it, even on `/rest/noauth/`).
//!
//! Not here: anything about syncd itself (its CLI, its config), polling policies and log
//! checks of a particular suite, and any claim about timing. It depends on std only (plus
//! `thiserror`), so dev-depending on it pulls nothing heavy into a crate.
//!
//! ```no_run
//! use std::time::Duration;
//! use syncd_testkit::{Rest, SyncthingConfig, Syncthing, Watcher};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bin = std::path::Path::new("/usr/bin/syncthing");
//! let home = std::path::Path::new("/tmp/st-home");
//! let my_id = syncd_testkit::generate(bin, home)?;
//! let (listen, gui) = (syncd_testkit::free_port()?, syncd_testkit::free_port()?);
//! SyncthingConfig::new(&my_id, "PEER-ID", "default", "/tmp/st-folder")
//!     .ports(listen, gui)
//!     .api_key("key")
//!     .watcher(Watcher::Delay(1))
//!     .write(home)?;
//! let st = Syncthing::start(bin, home, &home.join("syncthing.log"))?;
//! let rest = Rest::loopback(gui, "key");
//! let status = rest.get("/rest/system/status", Duration::from_secs(5))?;
//! # drop((st, status)); Ok(()) }
//! ```

// The README's example runs as a doctest, so the published front page stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod config;
mod process;
mod rest;

pub use config::{SyncthingConfig, Versioning, Watcher};
pub use process::{
    Discosrv, ProcessError, Syncthing, discosrv_on_path, find_device_id, free_port, generate,
    serve_command, stop_by_pid, syncthing_on_path, syncthing_or_skip,
};
pub use rest::{Rest, RestError, parse_response};
