//! Connection between syncd and a stock Syncthing: both dial each other, exactly one
//! connection results, both REST APIs report it, and it stays up while idle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Cluster, Node, cluster};

/// How many connections Syncthing's log says it established with syncd.
fn established(c: &Cluster) -> usize {
    c.st.log_text()
        .lines()
        .filter(|l| l.contains("Established secure connection to") && l.contains(&c.sd.id[..7]))
        .count()
}

/// The `DeviceConnected`/`DeviceDisconnected` events a node's `/rest/events` holds after
/// event `since` (waits one second when there are none). Filtered here, not with `events=`:
/// Syncthing buffers events from startup only for its default event mask.
fn connection_events(n: &Node, since: u64) -> Vec<Value> {
    let all = n.get_ok(&format!("/rest/events?since={since}&timeout=1"));
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "DeviceConnected" || e["type"] == "DeviceDisconnected")
        .cloned()
        .collect()
}

/// The newest event ID a node has (0 if none).
fn newest_event(n: &Node) -> u64 {
    last_id(
        n.get_ok("/rest/events?since=0&timeout=1")
            .as_array()
            .unwrap(),
    )
}

fn last_id(events: &[Value]) -> u64 {
    events
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .max()
        .unwrap_or(0)
}

/// What identifies one connection on one side: when it started and the peer's address.
fn connection_identity(n: &Node, peer: &str) -> (Value, Value) {
    let c = n.connection(peer);
    (c["startedAt"].clone(), c["address"].clone())
}

fn assert_no_reconnect_over(idle: Duration) {
    let Some(mut c) = cluster() else { return };
    c.start();
    let sd_conn = connection_identity(&c.sd, &c.st.id);
    let st_conn = connection_identity(&c.st, &c.sd.id);
    let first = established(&c);
    // Both sides reported the connection as an event; only events after now count below.
    for n in [&c.sd, &c.st] {
        let ev = connection_events(n, 0);
        assert!(
            ev.iter().any(|e| e["type"] == "DeviceConnected"),
            "{}: {ev:#?}",
            n.name()
        );
    }
    let (sd_seen, st_seen) = (newest_event(&c.sd), newest_event(&c.st));
    let t0 = Instant::now();
    // Idle window: observe every few seconds that both still report the peer connected.
    while t0.elapsed() < idle {
        std::thread::sleep(Duration::from_secs(2));
        assert!(c.sd.sees_connected(&c.st.id), "syncd lost the connection");
        assert!(
            c.st.sees_connected(&c.sd.id),
            "Syncthing lost the connection"
        );
    }
    let sd_new = connection_events(&c.sd, sd_seen);
    let st_new = connection_events(&c.st, st_seen);
    assert!(sd_new.is_empty(), "syncd: {sd_new:#?}");
    assert!(st_new.is_empty(), "Syncthing: {st_new:#?}");
    assert_eq!(
        established(&c),
        first,
        "Syncthing re-established the connection:\n{}",
        c.st.log_tail()
    );
    assert_eq!(
        connection_identity(&c.sd, &c.st.id),
        sd_conn,
        "syncd reconnected"
    );
    assert_eq!(
        connection_identity(&c.st, &c.sd.id),
        st_conn,
        "Syncthing reconnected"
    );
    c.assert_clean_logs(&[]);
}

#[test]
fn each_rest_api_reports_the_other_side_connected() {
    let Some(mut c) = cluster() else { return };
    c.start();
    let on_st = c.st.connection(&c.sd.id);
    let on_sd = c.sd.connection(&c.st.id);
    assert_eq!(on_st["connected"], true, "{on_st}");
    assert_eq!(on_sd["connected"], true, "{on_sd}");
    assert!(
        on_st["clientVersion"]
            .as_str()
            .unwrap()
            .starts_with("syncd"),
        "{on_st}"
    );
    assert!(
        on_sd["clientVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.19.2"),
        "{on_sd}"
    );
    assert_eq!(established(&c), 1, "{}", c.st.log_tail());
    c.assert_clean_logs(&[]);
}

#[test]
fn simultaneous_dials_leave_one_connection_that_survives_60s_idle() {
    assert_no_reconnect_over(Duration::from_secs(60));
}
