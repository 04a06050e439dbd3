//! The daemon's logging: [`init`] sets up the process's subscriber, and this module keeps the
//! recent log lines for `/rest/system/log` (as Syncthing's GUI shows them). The log writer
//! ([`Tee`]) writes every line to stderr and keeps a copy here, at most [`MAX_LINES`] of them
//! (the oldest go first).
//!
//! Records of the `log` crate (rustls, notify, mio use it, not `tracing`) go through the same
//! subscriber, filter and writer: [`init`] installs the `log` → `tracing` bridge.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

/// Sets the process's `tracing` subscriber: the `RUST_LOG` filter (`info` when unset or
/// invalid), ANSI colours only on a terminal, [`Tee`] as the writer, a filter that
/// `/rest/system/debug` can change at run time ([`crate::debug::install`]), and the `log`
/// bridge, so records of crates that log through `log` are filtered and written like ours.
/// A second call in the same process does nothing.
pub fn init() {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| tracing_subscriber::EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::new(&base);
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // stderr, and a copy of the recent lines for /rest/system/log.
        .with_writer(Tee)
        // When stderr is a closed pipe, tracing reports the failed write with eprintln!, which
        // panics on the broken pipe and would take the daemon down: drop the lines instead.
        .log_internal_errors(false)
        // `/rest/system/debug` turns log targets to debug at run time.
        .with_filter_reloading();
    let handle = builder.reload_handle();
    // With tracing-subscriber's `tracing-log` feature this also installs the `log` bridge
    // (`LogTracer`), its max level set from this filter.
    if builder.try_init().is_err() {
        return;
    }
    crate::debug::install(base, move |directives| {
        let filter =
            tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())?;
        // `log` checks its own max level before a record reaches the bridge: follow the
        // filter, or a debug facility turned on here would never see rustls' debug records.
        log::set_max_level(log_level(tracing::level_filters::LevelFilter::current()));
        Ok(())
    });
}

/// `tracing`'s most verbose enabled level as `log`'s.
fn log_level(level: tracing::level_filters::LevelFilter) -> log::LevelFilter {
    use tracing::Level;
    match level.into_level() {
        None => log::LevelFilter::Off,
        Some(Level::ERROR) => log::LevelFilter::Error,
        Some(Level::WARN) => log::LevelFilter::Warn,
        Some(Level::INFO) => log::LevelFilter::Info,
        Some(Level::DEBUG) => log::LevelFilter::Debug,
        Some(Level::TRACE) => log::LevelFilter::Trace,
    }
}

/// How many lines are kept.
pub const MAX_LINES: usize = 250;

/// Syncthing's log levels as its JSON carries them.
const LEVEL_INFO: u8 = 2;
const LEVEL_WARN: u8 = 3;

static LINES: Mutex<VecDeque<(SystemTime, String, u8)>> = Mutex::new(VecDeque::new());

/// A `tracing_subscriber` writer factory: stderr plus the in-memory copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tee;

/// One log line being written; it goes out when dropped.
#[derive(Debug, Default)]
pub struct TeeWriter(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Tee {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter::default()
    }
}

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        // A closed stderr must not take the daemon down: the error is dropped.
        let _ = std::io::stderr().write_all(&self.0);
        record(SystemTime::now(), &String::from_utf8_lossy(&self.0));
    }
}

/// Keeps one line (ANSI colours removed; the level read from the line).
pub fn record(when: SystemTime, raw: &str) {
    let line = strip_ansi(raw.trim_end());
    if line.is_empty() {
        return;
    }
    let level = if line.contains(" WARN ") || line.contains(" ERROR ") {
        LEVEL_WARN
    } else {
        LEVEL_INFO
    };
    if let Ok(mut l) = LINES.lock() {
        l.push_back((when, line, level));
        while l.len() > MAX_LINES {
            l.pop_front();
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `{"messages": [{"when", "message", "level"}]}`, oldest first; with `since` (as this daemon
/// prints times), only later lines.
pub fn json(since: Option<&str>) -> Value {
    let lines = LINES.lock().map(|l| l.clone()).unwrap_or_default();
    let messages: Vec<Value> = lines
        .iter()
        .map(|(t, m, level)| (crate::timefmt::rfc3339(*t), m, level))
        .filter(|(when, _, _)| since.is_none_or(|s| when.as_str() > s))
        .map(|(when, m, level)| json!({"when": when, "message": m, "level": level}))
        .collect();
    json!({ "messages": messages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_are_kept_without_colours_with_their_level_and_bounded() {
        let t = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        record(
            t,
            "\u{1b}[2m2033-05-18\u{1b}[0m \u{1b}[33m WARN \u{1b}[0m disk low\n",
        );
        let got = json(None);
        let last = got["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["message"], "2033-05-18  WARN  disk low");
        assert_eq!(last["level"], 3);
        assert!(
            json(Some("2100-01-01T00:00:00Z"))["messages"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        for i in 0..MAX_LINES + 5 {
            record(t, &format!("line {i}"));
        }
        let got = json(None);
        assert_eq!(got["messages"].as_array().unwrap().len(), MAX_LINES);
    }
}
