//! Network interfaces for local discovery, read from Linux's `/proc/net/route` and
//! `/sys/class/net` (no unsafe `getifaddrs`). Elsewhere both lists are empty and the
//! callers fall back to `255.255.255.255` and the default multicast interface.

use std::net::Ipv4Addr;

/// The directed broadcast address of every connected IPv4 route on an interface that is up
/// and can broadcast (Go's beacon writes to each of these).
pub(crate) fn ipv4_broadcasts() -> Vec<Ipv4Addr> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        let (Some(iface), Some(dest), Some(gw), Some(mask)) =
            (f.first(), f.get(1), f.get(2), f.get(7))
        else {
            continue;
        };
        // The kernel prints the network-order value as a native-endian hex number.
        let parse = |h: &str| {
            u32::from_str_radix(h, 16)
                .ok()
                .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
        };
        let (Some(dest), Some(gw), Some(mask)) = (parse(dest), parse(gw), parse(mask)) else {
            continue;
        };
        // Connected routes only (no gateway), not the default route nor host routes.
        if gw != 0 || mask == 0 || mask == u32::MAX || !flag_set(iface, 0x2) {
            continue;
        }
        let b = Ipv4Addr::from(dest | !mask);
        if !b.is_loopback() && !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// This machine's unicast addresses, loopback and link-local left out: IPv4 from the
/// `/32 host LOCAL` entries of `/proc/net/fib_trie`, IPv6 of global scope from
/// `/proc/net/if_inet6`. What `announceLANAddresses` adds for a listener on `0.0.0.0`.
pub(crate) fn host_addresses() -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<Ipv4Addr> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(ip) = t.strip_prefix("|-- ") {
                last = ip.trim().parse().ok();
            } else if t.starts_with("/32 host LOCAL")
                && let Some(ip) = last
                && !ip.is_loopback()
                && !ip.is_link_local()
                && !out.contains(&ip.into())
            {
                out.push(ip.into());
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            // address, ifindex, prefix length, scope (00 = global), flags, name.
            let (Some(hex), Some(&"00")) = (f.first(), f.get(3)) else {
                continue;
            };
            let Ok(v) = u128::from_str_radix(hex, 16) else {
                continue;
            };
            let ip = std::net::Ipv6Addr::from(v);
            if !ip.is_loopback() && !out.contains(&ip.into()) {
                out.push(ip.into());
            }
        }
    }
    out
}

/// Indexes of the interfaces that are up and multicast-capable, loopback excluded.
pub(crate) fn multicast_interfaces() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // IFF_UP 0x1, IFF_LOOPBACK 0x8, IFF_MULTICAST 0x1000.
        if !flag_set(name, 0x1) || flag_set(name, 0x8) || !flag_set(name, 0x1000) {
            continue;
        }
        let index = std::fs::read_to_string(entry.path().join("ifindex"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(i) = index {
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

fn flag_set(iface: &str, flag: u32) -> bool {
    if iface.contains('/') || iface.starts_with('.') {
        return false;
    }
    std::fs::read_to_string(format!("/sys/class/net/{iface}/flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & flag != 0 && (flag != 0x2 || f & 0x1 != 0))
}
