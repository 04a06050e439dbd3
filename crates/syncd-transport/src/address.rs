//! Peer addresses as they appear in configuration: `tcp://host:port` or `dynamic`.

use std::fmt;

/// Errors parsing a [`PeerAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The scheme is not `tcp`, `tcp4` or `tcp6` (QUIC and relays are not supported yet).
    #[error("unsupported address scheme in {address:?} (expected tcp://host:port or dynamic)")]
    UnsupportedScheme {
        /// The address as given.
        address: String,
    },
    /// No `:port`, or the port is not a number in 1..=65535.
    #[error("missing or invalid port in {address:?}")]
    BadPort {
        /// The address as given.
        address: String,
    },
    /// The host part is empty.
    #[error("missing host in {address:?}")]
    MissingHost {
        /// The address as given.
        address: String,
    },
}

/// Where to reach a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddress {
    /// Dial this host (name or IP literal; IPv6 without brackets) and port over TCP.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `dynamic`: found by discovery (with discovery off: "accept incoming only").
    Dynamic,
}

impl PeerAddress {
    /// Parses `tcp://host:port`, `tcp4://…`, `tcp6://…`, `tcp://[v6]:port` or `dynamic`.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("dynamic") {
            return Ok(Self::Dynamic);
        }
        let rest = ["tcp://", "tcp4://", "tcp6://"]
            .iter()
            .find_map(|p| s.strip_prefix(p))
            .ok_or_else(|| AddressError::UnsupportedScheme {
                address: s.to_string(),
            })?;
        // Drop any trailing path or query (Syncthing allows `?opts`).
        let rest = rest.split(['/', '?']).next().unwrap_or_default();
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| AddressError::BadPort {
            address: s.to_string(),
        })?;
        let port: u16 =
            port.parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| AddressError::BadPort {
                    address: s.to_string(),
                })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(AddressError::MissingHost {
                address: s.to_string(),
            });
        }
        Ok(Self::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl PeerAddress {
    /// A LAN address (private, link-local, unique-local or loopback IP literal): dialled
    /// before others, as Syncthing gives LAN addresses priority.
    pub fn is_lan(&self) -> bool {
        let Self::Tcp { host, .. } = self else {
            return false;
        };
        match host
            .split('%')
            .next()
            .unwrap_or("")
            .parse::<std::net::IpAddr>()
        {
            Ok(std::net::IpAddr::V4(v4)) => {
                v4.is_private() || v4.is_link_local() || v4.is_loopback()
            }
            Ok(std::net::IpAddr::V6(v6)) => {
                v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local()
            }
            Err(_) => false,
        }
    }

    /// An address with an unspecified IP (`0.0.0.0`, `::`): announced, never dialled.
    pub fn is_unspecified(&self) -> bool {
        matches!(self, Self::Tcp { host, .. }
            if host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified()))
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Dynamic => f.write_str("dynamic"),
        }
    }
}

impl std::str::FromStr for PeerAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> PeerAddress {
        PeerAddress::Tcp {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn address_parsing_table() {
        let ok = [
            ("dynamic", PeerAddress::Dynamic),
            ("DYNAMIC", PeerAddress::Dynamic),
            ("tcp://127.0.0.1:22000", tcp("127.0.0.1", 22000)),
            ("tcp4://example.org:1", tcp("example.org", 1)),
            ("tcp6://[::1]:22001", tcp("::1", 22001)),
            ("tcp://[::1]:22001", tcp("::1", 22001)),
            ("tcp://host:22000/?x=y", tcp("host", 22000)),
        ];
        for (input, want) in ok {
            assert_eq!(PeerAddress::parse(input), Ok(want), "{input}");
        }
        let bad = [
            "quic://127.0.0.1:22000",
            "relay://x:1",
            "127.0.0.1:22000",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:0",
            "tcp://127.0.0.1:70000",
            "tcp://:22000",
            "",
        ];
        for input in bad {
            assert!(PeerAddress::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["tcp://127.0.0.1:22000", "tcp://[::1]:5", "dynamic"] {
            let a = PeerAddress::parse(s).unwrap();
            assert_eq!(a.to_string(), s);
        }
    }
}
