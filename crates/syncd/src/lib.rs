//! The `syncd` daemon: a thin binary over `syncd-engine` that adds a TOML config file, a CLI,
//! and a Syncthing-compatible REST API, so Syncthing's runbooks and REST clients work unchanged.
//!
//! Public, for the binary, tests and embedders of the CLI: [`cli`] (clap commands and exit
//! codes), [`config`] (the TOML file: model, errors with file/line/field, defaults, conversion
//! to the engine's `EngineConfig`), [`client`] (the CLI's blocking HTTP/1.1 client to its own
//! daemon), [`logbuf`] (logging set-up, formats, recent log lines), [`debug`]
//! (`/rest/system/debug`'s facilities).
//!
//! Inside the crate: `auth` (the GUI login: bcrypt, sessions, throttle), `tls` (HTTPS for the
//! GUI), `conflicts` (the GUI's conflicts view), `home` (where things live), `rest` (axum
//! routes, auth, host check), `json` (Syncthing's JSON shapes), `events` (the `/rest/events`
//! log), `gui` (the embedded web GUI, `/qr/`, CSRF tokens), `import` (`import-syncthing`),
//! `serve` (wiring), `stats` (`/rest/stats/*` from the engine's events), `progress` (bars or
//! log lines), `memory` (malloc arena cap, freed heap handed back to the kernel after work),
//! `metrics` (`/metrics` in Prometheus text format), `timefmt` (RFC 3339 as Go prints it).
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

pub(crate) mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub(crate) mod conflicts;
pub mod debug;
pub(crate) mod events;
pub(crate) mod gui;
pub(crate) mod home;
pub(crate) mod import;
pub(crate) mod json;
pub mod logbuf;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod progress;
pub(crate) mod rest;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod timefmt;
pub(crate) mod tls;
