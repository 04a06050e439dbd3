//! Local discovery v4: announcements by IPv4 broadcast and IPv6 multicast, and the receiver
//! that fills the local cache.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use syncd_proto::discovery::{MAX_LOCAL_PACKET, decode_local_announce, encode_local_announce};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{Inner, netif};

/// `IPv4 local` or `IPv6 local` (Syncthing's finder names, the keys of `discoveryStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4 local",
            Family::V6 => "IPv6 local",
        }
    }
}

/// Binds the receiving socket: `0.0.0.0:port` (no address reuse, as Go) or the IPv6 group's
/// port with reuse, joined on every multicast interface.
fn bind_receiver(family: Family, port: u16, group: Ipv6Addr) -> std::io::Result<UdpSocket> {
    match family {
        Family::V4 => {
            let s = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s)
        }
        Family::V6 => {
            let s = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            s.set_only_v6(true)?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
            let mut joined = 0;
            for ifindex in netif::multicast_interfaces() {
                if s.join_multicast_v6(&group, ifindex).is_ok() {
                    joined += 1;
                }
            }
            if joined == 0 {
                s.join_multicast_v6(&group, 0)?;
            }
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s.into())
        }
    }
}

/// Sends one announcement on every interface of the family.
async fn send_once(
    family: Family,
    port: u16,
    group: Ipv6Addr,
    packet: &[u8],
) -> Result<(), String> {
    let mut sent = 0;
    let mut last_err = String::from("no interface to send on");
    match family {
        Family::V4 => {
            let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
                .await
                .map_err(|e| e.to_string())?;
            s.set_broadcast(true).map_err(|e| e.to_string())?;
            let mut targets = netif::ipv4_broadcasts();
            if targets.is_empty() {
                targets.push(Ipv4Addr::BROADCAST);
            }
            for b in targets {
                match timeout(s.send_to(packet, SocketAddr::from((b, port)))).await {
                    Ok(_) => sent += 1,
                    Err(e) => last_err = format!("send to {b}: {e}"),
                }
            }
        }
        Family::V6 => {
            let mut ifaces = netif::multicast_interfaces();
            if ifaces.is_empty() {
                ifaces.push(0);
            }
            for ifindex in ifaces {
                let sock = socket2::Socket::new(
                    socket2::Domain::IPV6,
                    socket2::Type::DGRAM,
                    Some(socket2::Protocol::UDP),
                )
                .and_then(|s| {
                    s.set_multicast_if_v6(ifindex)?;
                    s.set_multicast_hops_v6(1)?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                })
                .and_then(|s| UdpSocket::from_std(s.into()));
                let s = match sock {
                    Ok(s) => s,
                    Err(e) => {
                        last_err = e.to_string();
                        continue;
                    }
                };
                let to = SocketAddr::V6(std::net::SocketAddrV6::new(group, port, 0, ifindex));
                match timeout(s.send_to(packet, to)).await {
                    Ok(_) => sent += 1,
                    Err(e) => last_err = format!("send on interface {ifindex}: {e}"),
                }
            }
        }
    }
    if sent > 0 { Ok(()) } else { Err(last_err) }
}

async fn timeout<T>(
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    // Go's beacon: write deadline 1 s.
    tokio::time::timeout(Duration::from_secs(1), f)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The sender of one family: announces at start, every `interval`, and when kicked (a new
/// device appeared). Never returns until shutdown.
pub(crate) async fn sender(
    inner: Arc<Inner>,
    family: Family,
    port: u16,
    group: Ipv6Addr,
    mut shutdown: watch::Receiver<bool>,
) {
    let instance_id = inner.instance_id;
    loop {
        let addresses = inner.announce.clone();
        if !addresses.is_empty() {
            let packet = encode_local_announce(inner.me, &addresses, instance_id);
            let result = send_once(family, port, group, &packet).await;
            inner.set_status(family.name(), result.err());
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(inner.config.local_interval) => {}
            _ = inner.kick(family).notified() => {}
        }
    }
}

/// The receiver of one family. When the port cannot be bound it says so once and returns
/// (the sender keeps announcing; lookups use the other finders).
pub(crate) async fn receiver(
    inner: Arc<Inner>,
    family: Family,
    port: u16,
    group: Ipv6Addr,
    mut shutdown: watch::Receiver<bool>,
) {
    let socket = match bind_receiver(family, port, group) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot listen on UDP port {port}: {e}");
            tracing::warn!(finder = family.name(), error = %msg,
                "local discovery cannot receive (is another Syncthing or syncd running on this machine?); continuing without it");
            inner.set_sticky(family.name(), msg);
            return;
        }
    };
    let mut buf = vec![0u8; MAX_LOCAL_PACKET + 1];
    loop {
        let got = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, from) = match got {
            Ok(x) => x,
            Err(e) => {
                inner.log_once(
                    family.name(),
                    &format!("receive: {:?}", e.kind()),
                    &e.to_string(),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(packet) = buf.get(..n) else { continue };
        match decode_local_announce(packet) {
            Ok(a) => {
                if a.device == inner.me {
                    continue;
                }
                let addresses = fix_addresses(&a.addresses, from.ip());
                inner.register_local(a.device, addresses, a.instance_id, family);
            }
            Err(e) => {
                let cause = format!("{:?}", std::mem::discriminant(&e));
                inner.log_once(family.name(), &cause, &format!("{e} from {from}"));
            }
        }
    }
}

/// Syncthing's `registerDevice` fix-up: an empty or unspecified host becomes the packet's
/// source address (port kept); `tcp4`/`tcp6` that do not match the source family are
/// dropped; everything else is kept verbatim.
pub(crate) fn fix_addresses(addresses: &[String], source: IpAddr) -> Vec<String> {
    let mut out = Vec::new();
    for a in addresses {
        let Some((scheme, rest)) = a.split_once("://") else {
            continue;
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let (host, port) = match authority.strip_prefix('[') {
            Some(r) => match r.split_once("]:") {
                Some((h, p)) => (h, p),
                None => continue,
            },
            None => match authority.rsplit_once(':') {
                Some(hp) => hp,
                None => continue,
            },
        };
        let unspecified = host.is_empty()
            || host
                .parse::<IpAddr>()
                .map(|ip| ip.is_unspecified())
                .unwrap_or(false);
        if !unspecified {
            if !out.contains(a) {
                out.push(a.clone());
            }
            continue;
        }
        match (scheme.strip_suffix('4'), scheme.strip_suffix('6'), source) {
            (Some(_), _, IpAddr::V6(_)) | (_, Some(_), IpAddr::V4(_)) => continue,
            _ => {}
        }
        let tail = &rest[authority.len()..];
        let host = match source {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let fixed = format!("{scheme}://{host}:{port}{tail}");
        if !out.contains(&fixed) {
            out.push(fixed);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_hosts_take_the_senders_address() {
        let src: IpAddr = "192.168.1.7"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let got = fix_addresses(
            &[
                "tcp://0.0.0.0:22000".into(),
                "tcp://:22001".into(),
                "tcp6://[::]:22002".into(),
                "tcp4://0.0.0.0:22003".into(),
                "tcp://10.0.0.1:5".into(),
                "relay://1.2.3.4:443/?id=X".into(),
                "garbage".into(),
            ],
            src,
        );
        assert_eq!(
            got,
            [
                "tcp://192.168.1.7:22000",
                "tcp://192.168.1.7:22001",
                "tcp4://192.168.1.7:22003",
                "tcp://10.0.0.1:5",
                "relay://1.2.3.4:443/?id=X",
            ]
        );
        let v6: IpAddr = "fd00::2".parse().unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            fix_addresses(&["tcp://[::]:1".into(), "tcp4://0.0.0.0:2".into()], v6),
            ["tcp://[fd00::2]:1"]
        );
    }
}
