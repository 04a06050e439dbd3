//! The `syncd` daemon: a thin binary over `syncd-engine` that adds a TOML config file, a CLI,
//! and a Syncthing-compatible REST API, so Syncthing's runbooks and REST clients work unchanged.
//!
//! Modules: [`auth`] (the GUI login: bcrypt, sessions, throttle), [`tls`] (HTTPS for the GUI), [`debug`] (`/rest/system/debug`), [`conflicts`] (the GUI's conflicts view), [`config`] (the TOML file: model, errors with file/line/field, defaults, conversion
//! to the engine's `EngineConfig`), [`home`] (where things live), [`cli`] (clap commands and
//! exit codes), [`rest`] (axum routes, auth, host check), [`json`] (Syncthing's JSON shapes), [`logbuf`] (logging set-up, recent log lines),
//! [`events`] (the `/rest/events` log), [`gui`] (the embedded web GUI, `/qr/`, CSRF tokens), [`client`] (the CLI's tiny HTTP/1.1 client to its own
//! daemon), [`import`] (`import-syncthing`), [`serve`] (wiring), [`stats`] (`/rest/stats/*` from the engine's events), [`progress`] (bars or log lines),
//! [`memory`] (malloc arena cap, freed heap handed back to the kernel after work), [`metrics`]
//! (`/metrics` in Prometheus text format).
//!
//! Invariants: the REST API never answers `/rest/*` (except `/rest/noauth/*`) without the API
//! key or a GUI CSRF token (and, with a GUI login set, a login); a GUI password exists only as
//! a bcrypt hash; a config change through REST reaches the running engine before it is saved;
//! nothing in a config file, a Syncthing `config.xml` or an HTTP request can panic the daemon.
//!
//! It does NOT sync anything itself (the engine does), find devices (the transport's
//! discovery does; the daemon only configures it) or use relays.
//!
//! ```no_run
//! // The binary is `syncd::cli::main()`; embedders use `syncd-engine` directly.
//! let code = syncd::cli::run(<syncd::cli::Cli as clap::Parser>::parse_from(["syncd", "device-id"]));
//! assert!(code.is_ok());
//! ```
#![recursion_limit = "256"]

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod conflicts;
pub mod debug;
pub mod events;
pub mod gui;
pub mod home;
pub mod import;
pub mod json;
pub mod logbuf;
pub mod memory;
pub mod metrics;
pub mod progress;
pub mod rest;
pub mod serve;
pub mod stats;
pub mod timefmt;
pub mod tls;
