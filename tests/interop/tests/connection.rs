//! Connection between syncd and a stock Syncthing: both dial each other, exactly one
//! connection results, both REST APIs report it, and it stays up while idle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, cluster};

/// How many connections Syncthing's log says it established with syncd.
fn established(c: &Cluster) -> usize {
    c.st.log_text()
        .lines()
        .filter(|l| l.contains("Established secure connection to") && l.contains(&c.sd.id[..7]))
        .count()
}

fn assert_no_reconnect_over(idle: Duration) {
    let Some(mut c) = cluster() else { return };
    c.start();
    let sd_started = c.sd.connection(&c.st.id)["startedAt"].clone();
    let st_started = c.st.connection(&c.sd.id)["startedAt"].clone();
    let first = established(&c);
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
    assert_eq!(
        established(&c),
        first,
        "Syncthing re-established the connection:\n{}",
        c.st.log_tail()
    );
    assert_eq!(
        c.sd.connection(&c.st.id)["startedAt"],
        sd_started,
        "syncd reconnected"
    );
    assert_eq!(
        c.st.connection(&c.sd.id)["startedAt"],
        st_started,
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
fn simultaneous_dials_leave_one_connection_that_survives_20s_idle() {
    assert_no_reconnect_over(Duration::from_secs(20));
}

#[test]
#[ignore = "60 s idle soak; run with --include-ignored"]
fn simultaneous_dials_leave_one_connection_that_survives_60s_idle() {
    assert_no_reconnect_over(Duration::from_secs(60));
}
