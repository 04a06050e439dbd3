//! The daemon's logging: [`init`] sets up the process's subscriber, and this module keeps the
//! recent log lines for `/rest/system/log` (as Syncthing's GUI shows them). The log writer
//! ([`Tee`]) writes every line to stderr and keeps a copy here, at most [`MAX_LINES`] of them
//! (the oldest go first).
//!
//! Records of the `log` crate (rustls, notify, mio use it, not `tracing`) go through the same
//! subscriber, filter and writer: [`init`] installs the `log` → `tracing` bridge.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde_json::{Value, json};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Lines as JSON objects (`log_format = "json"`) instead of text.
static JSON: AtomicBool = AtomicBool::new(false);

/// The progress bars on the terminal, when shown: log lines are written with the bars
/// cleared and drawn again after, so a line and a bar never share a row.
static BARS: OnceLock<indicatif::MultiProgress> = OnceLock::new();

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-07T18:00:00.123Z  INFO syncd::serve: message key=value` (the default).
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (with `message`), for
    /// journald's JSON mode and log shippers.
    Json,
}

impl LogFormat {
    /// `SYNCD_LOG_FORMAT` (`text` or `json`), if set to one of them.
    pub fn from_env() -> Option<Self> {
        match std::env::var("SYNCD_LOG_FORMAT").ok()?.trim() {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => None,
        }
    }
}

/// Switches the format of the lines written from now on (the config's `log_format`; the
/// `SYNCD_LOG_FORMAT` environment variable wins over it).
pub fn set_format(format: LogFormat) {
    let format = LogFormat::from_env().unwrap_or(format);
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Registers the progress bars drawn on the terminal: from now on log lines are written with
/// them cleared ([`without_bars`]).
pub fn set_bars(bars: indicatif::MultiProgress) {
    let _ = BARS.set(bars);
}

/// Runs `f` (which writes to the terminal) with the progress bars cleared, and draws them
/// again after; just runs it when no bars are shown.
pub fn without_bars<R>(f: impl FnOnce() -> R) -> R {
    match BARS.get() {
        Some(bars) => bars.suspend(f),
        None => f(),
    }
}

/// Formats each event as text or JSON, whichever [`set_format`] chose last.
struct Switch {
    text: format::Format<format::Full>,
    json: format::Format<format::Json>,
}

impl<S, N> FormatEvent<S, N> for Switch
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    FormattedFields<N>: 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if JSON.load(Ordering::Relaxed) {
            self.json.format_event(ctx, writer, event)
        } else {
            self.text.format_event(ctx, writer, event)
        }
    }
}

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
    set_format(LogFormat::Text);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // When stderr is a closed pipe, tracing reports the failed write with eprintln!, which
        // panics on the broken pipe and would take the daemon down: drop the lines instead.
        .log_internal_errors(false)
        .event_format(Switch {
            text: format::format(),
            // Spans carry no fields worth a JSON key here; the event's own fields and target
            // are the line.
            json: format::format()
                .json()
                .with_current_span(false)
                .with_span_list(false),
        })
        // stderr, and a copy of the recent lines for /rest/system/log.
        .with_writer(Tee)
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
        without_bars(|| {
            let _ = std::io::stderr().write_all(&self.0);
        });
        record(SystemTime::now(), &String::from_utf8_lossy(&self.0));
    }
}

/// Keeps one line (ANSI colours removed; the level read from the line).
pub fn record(when: SystemTime, raw: &str) {
    let line = strip_ansi(raw.trim_end());
    if line.is_empty() {
        return;
    }
    let level = if line.contains(" WARN ")
        || line.contains(" ERROR ")
        || line.contains("\"level\":\"WARN\"")
        || line.contains("\"level\":\"ERROR\"")
    {
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
