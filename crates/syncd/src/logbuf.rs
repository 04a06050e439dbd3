//! The daemon's recent log lines, for `/rest/system/log` (as Syncthing's GUI shows them). The
//! binary's log writer ([`Tee`]) writes every line to stderr as before and keeps a copy here,
//! at most [`MAX_LINES`] of them (the oldest go first).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

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
