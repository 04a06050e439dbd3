//! `/rest/system/debug`: Syncthing's debug facilities, mapped onto syncd's log targets. Turning
//! a facility on adds `<target>=debug` to the running log filter (the binary installs the
//! reload hook with [`install`]; without it, as in a library embedding, only the list changes).

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

/// Facility name, description, and the log targets it turns to `debug`.
pub const FACILITIES: &[(&str, &str, &[&str])] = &[
    (
        "api",
        "REST API",
        &["syncd::rest", "syncd::gui", "syncd::auth", "syncd::tls"],
    ),
    (
        "config",
        "Configuration loading and saving",
        &["syncd::config"],
    ),
    (
        "connections",
        "Connection handling",
        // rustls logs the TLS handshake through the `log` crate (bridged into tracing).
        &["syncd_transport", "rustls"],
    ),
    ("db", "The database layer", &["syncd_index"]),
    ("events", "Event generation and logging", &["syncd::events"]),
    ("main", "Main package", &["syncd::serve", "syncd::cli"]),
    ("model", "The root hub", &["syncd_engine"]),
    ("protocol", "The BEP protocol", &["syncd_proto"]),
    (
        "scanner",
        "File change detection and hashing",
        &["syncd_scan"],
    ),
];

type Reload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static RELOAD: OnceLock<(String, Reload)> = OnceLock::new();

/// Lets [`Facilities`] change the process's log filter: `base` is the filter the daemon
/// started with, `reload` replaces the filter with the directives it is given.
pub fn install(base: String, reload: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let _ = RELOAD.set((base, Box::new(reload)));
}

/// The facilities turned on.
#[derive(Debug, Default)]
pub struct Facilities {
    enabled: Mutex<BTreeSet<&'static str>>,
}

impl Facilities {
    /// The names turned on, sorted.
    pub fn enabled(&self) -> Vec<&'static str> {
        self.enabled
            .lock()
            .map(|e| e.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Turns the named facilities on and off (unknown names are ignored) and applies the log
    /// filter.
    pub fn change(&self, enable: &[&str], disable: &[&str]) -> Result<(), String> {
        let Ok(mut set) = self.enabled.lock() else {
            return Err("debug facilities unavailable".into());
        };
        for (name, _, _) in FACILITIES {
            if enable.contains(name) {
                set.insert(name);
            }
            if disable.contains(name) {
                set.remove(name);
            }
        }
        if let Some((base, reload)) = RELOAD.get() {
            let mut directives = base.clone();
            for (name, _, targets) in FACILITIES {
                if set.contains(name) {
                    for t in *targets {
                        directives.push_str(&format!(",{t}=debug"));
                    }
                }
            }
            reload(&directives)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn facilities_turn_on_and_off_and_unknown_names_are_ignored() {
        let f = Facilities::default();
        f.change(&["model", "api", "bogus"], &[]).unwrap();
        assert_eq!(f.enabled(), vec!["api", "model"]);
        f.change(&[], &["api", "bogus"]).unwrap();
        assert_eq!(f.enabled(), vec!["model"]);
    }
}
