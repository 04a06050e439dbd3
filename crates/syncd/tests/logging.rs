//! The daemon's logging set-up (`syncd::logbuf::init`), in its own test binary: it installs the
//! process-wide subscriber and `log` logger. Each test here gets its own process under nextest.

/// The lines the daemon keeps for `/rest/system/log`, i.e. what its subscriber wrote.
fn kept_lines() -> Vec<String> {
    syncd::logbuf::json(None)["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|l| l["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_log_crate_warning_reaches_the_daemons_log_output() {
    syncd::logbuf::init();
    log::warn!(target: "rustls::conn", "peer sent a bad record (from the log crate)");
    let lines = kept_lines();
    assert!(
        lines.iter().any(
            |l| l.contains("WARN") && l.contains("peer sent a bad record (from the log crate)")
        ),
        "{lines:#?}"
    );
}

#[test]
fn log_crate_records_below_the_filter_are_dropped_until_a_debug_facility_raises_it() {
    // The test assumes the default `info` filter.
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    syncd::logbuf::init();
    log::debug!(target: "rustls::conn", "handshake detail before");
    assert!(
        !kept_lines()
            .iter()
            .any(|l| l.contains("handshake detail before")),
        "a debug record passed the info filter"
    );
    // Syncthing's `connections` facility covers TLS, i.e. the `rustls` target.
    syncd::debug::Facilities::default()
        .change(&["connections"], &[])
        .unwrap();
    log::debug!(target: "rustls::conn", "handshake detail after");
    let lines = kept_lines();
    assert!(
        lines.iter().any(|l| l.contains("handshake detail after")),
        "{lines:#?}"
    );
}

#[test]
fn the_json_format_writes_one_object_a_line_and_keeps_the_level_for_the_gui() {
    syncd::logbuf::init();
    syncd::logbuf::set_format(syncd::logbuf::LogFormat::Json);
    tracing::warn!(target: "syncd::test", peer = "mac", "a JSON line");
    let kept = syncd::logbuf::json(None);
    let messages = kept["messages"].as_array().cloned().unwrap_or_default();
    let last = messages
        .iter()
        .rev()
        .find(|m| {
            m["message"]
                .as_str()
                .is_some_and(|l| l.contains("a JSON line"))
        })
        .unwrap_or_else(|| panic!("{kept:#}"));
    let line: serde_json::Value = serde_json::from_str(last["message"].as_str().unwrap()).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["target"], "syncd::test");
    assert_eq!(line["fields"]["message"], "a JSON line");
    assert_eq!(line["fields"]["peer"], "mac");
    // /rest/system/log's level for the GUI: a warning.
    assert_eq!(last["level"], 3);
    syncd::logbuf::set_format(syncd::logbuf::LogFormat::Text);
}
