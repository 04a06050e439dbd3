//! A flood of devices asking to join, against the real `syncd` daemon over real TLS: many
//! unknown devices, then one device reconnecting again and again with a new, long, hostile
//! name each time. The pending list stays at its bound (`MAX_PENDING_DEVICES`, least
//! recently seen evicted), the daemon's memory stays flat, and names are cut to
//! `MAX_NAME_BYTES` and kept as text (control characters replaced, markup kept literally).
//!
//! `SYNCD_FLOOD_DEVICES` (default 1,000) and `SYNCD_FLOOD_RECONNECTS` (default 10,000) set the
//! sizes; the closing note of the pending-devices issue quotes a 10,000-device run.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "hostile/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use syncd_engine::{MAX_NAME_BYTES, MAX_PENDING_DEVICES};
use syncd_transport::Identity;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn pending(d: &Daemon) -> serde_json::Map<String, serde_json::Value> {
    let (status, body) = http(
        d.rest,
        "GET",
        "/rest/cluster/pending/devices",
        &[("X-API-Key", &d.api_key)],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_object()
        .cloned()
        .unwrap()
}

/// Connects `n` times, 16 at a time; `each(i)` gives the identity and the Hello name.
async fn connect_many(
    listen: std::net::SocketAddr,
    n: usize,
    each: Arc<dyn Fn(usize) -> (Arc<Identity>, String) + Send + Sync>,
) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (next, each) = (next.clone(), each.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let (id, name) = each(i);
                // The daemon refuses after Hello; whether we see Hello complete or the
                // connection close first does not matter.
                let _ = Peer::connect_named(listen, &id, &name).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_devices_keeps_the_pending_list_bounded_and_memory_flat() {
    let devices = env_usize("SYNCD_FLOOD_DEVICES", 1000).max(2 * MAX_PENDING_DEVICES);
    let reconnects = env_usize("SYNCD_FLOOD_RECONNECTS", 10_000);
    let mut d = tokio::task::spawn_blocking(|| start_daemon(&[]))
        .await
        .unwrap();
    let pid = d.child.id();
    let ids: Arc<Vec<Arc<Identity>>> = Arc::new(
        (0..devices)
            .map(|_| Arc::new(Identity::generate().unwrap()))
            .collect(),
    );

    // Warm-up: the list fills to its bound; what a full list costs is measured after it.
    let warm = MAX_PENDING_DEVICES + 20;
    let first = ids.clone();
    connect_many(
        d.listen,
        warm,
        Arc::new(move |i| (first[i].clone(), format!("stranger-{i}"))),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let p = loop {
        let p = pending(&d);
        if p.len() >= MAX_PENDING_DEVICES || std::time::Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(p.len(), MAX_PENDING_DEVICES, "bounded after {warm} devices");
    let rss_full = rss_of(pid);

    // The rest of the flood: every device new.
    let rest = ids.clone();
    connect_many(
        d.listen,
        devices - warm,
        Arc::new(move |i| (rest[warm + i].clone(), format!("stranger-{}", warm + i))),
    )
    .await;
    // The daemon records a device after its Hello, asynchronously to closing the connection:
    // the last connections of the flood may have closed before they are recorded.
    let last = ids[devices - 1].device_id().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let p = loop {
        let p = pending(&d);
        if p.contains_key(&last) || std::time::Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        p.len(),
        MAX_PENDING_DEVICES,
        "bounded after {devices} devices"
    );
    assert!(p.contains_key(&last), "the newest device is listed");
    let oldest = ids[0].device_id().to_string();
    assert!(
        !p.contains_key(&oldest),
        "the least recently seen was evicted"
    );

    // One device again and again, with a new, long, hostile name each time.
    let one = Identity::generate().unwrap();
    let one_id = one.device_id().to_string();
    let one = Arc::new(one);
    let hostile = |i: usize| format!("<img src=x onerror=alert({i})>\u{7}\n{}", "é".repeat(600));
    connect_many(
        d.listen,
        reconnects,
        Arc::new(move |i| (one.clone(), hostile(i))),
    )
    .await;
    let p = pending(&d);
    assert_eq!(p.len(), MAX_PENDING_DEVICES);
    let entry = p
        .get(&one_id)
        .unwrap_or_else(|| panic!("the reconnecting device is listed once: {p:?}"));
    let name = entry["name"].as_str().unwrap();
    assert!(
        name.len() <= MAX_NAME_BYTES,
        "name cut: {} bytes",
        name.len()
    );
    assert!(
        name.starts_with("<img src=x onerror=alert("),
        "markup kept as text: {name}"
    );
    assert!(
        name.contains("\u{fffd}\u{fffd}") && !name.chars().any(char::is_control),
        "control characters replaced: {name:?}"
    );
    let rss_end = rss_of(pid);
    let growth = rss_end.saturating_sub(rss_full);
    println!(
        "FLOOD devices={devices} reconnects={reconnects} pending={} rss_full_list={} KiB rss_end={} KiB growth={} KiB",
        p.len(),
        rss_full >> 10,
        rss_end >> 10,
        growth >> 10
    );
    // Flat: the list is bounded, so the flood leaves no more than allocator noise. (16
    // MiB is far below what even 10 KiB per refused connection would leave.)
    assert!(
        growth < 16 << 20,
        "memory grew by {} KiB during the flood",
        growth >> 10
    );
    assert!(d.healthy(), "the daemon survives the flood");
}
