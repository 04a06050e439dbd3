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
