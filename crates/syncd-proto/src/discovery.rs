//! Local discovery v4 packets: a big-endian `u32` magic followed by a protobuf `Announce`
//! (Syncthing's `lib/discover/local.proto`): field 1 the raw 32-byte device ID, field 2 the
//! addresses, field 3 a per-process instance ID.

use prost::Message as _;
use syncd_types::DeviceId;

/// The magic that opens a v4 local discovery packet.
pub const LOCAL_MAGIC: u32 = 0x2EA7_D90B;
/// The magic of the old v0.13 packets, recognised only to be ignored with a warning.
pub const LOCAL_V13_MAGIC: u32 = 0x7D79_BC40;
/// The largest packet we read or write (Syncthing's receiver reads up to 64 KiB).
pub const MAX_LOCAL_PACKET: usize = 65_536;
/// At most this many addresses are kept from one announcement (the rest are dropped).
pub const MAX_LOCAL_ADDRESSES: usize = 64;
/// An address longer than this is dropped.
pub const MAX_ADDRESS_LEN: usize = 1024;

/// The protobuf body of a local announcement, as on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnnounceWire {
    /// The announcing device's raw 32-byte ID.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Its listen addresses (`tcp://0.0.0.0:22000` style; unspecified hosts are filled in by
    /// the receiver with the packet's source address).
    #[prost(string, repeated, tag = "2")]
    pub addresses: Vec<String>,
    /// Random per process; a change means the device restarted.
    #[prost(int64, tag = "3")]
    pub instance_id: i64,
}

/// A decoded, checked local announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnnounce {
    /// Who announced.
    pub device: DeviceId,
    /// Its addresses, at most [`MAX_LOCAL_ADDRESSES`], each at most [`MAX_ADDRESS_LEN`] bytes.
    pub addresses: Vec<String>,
    /// Its instance ID.
    pub instance_id: i64,
}

/// Why a local discovery packet was not an announcement we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// Shorter than the magic.
    #[error("packet of {len} bytes is too short")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Longer than [`MAX_LOCAL_PACKET`].
    #[error("packet of {len} bytes is too long")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A v0.13 packet (old Syncthing).
    #[error("v0.13 discovery packet (old Syncthing)")]
    OldVersion,
    /// Another magic: not a discovery packet.
    #[error("unknown magic {magic:#010x}")]
    BadMagic {
        /// The magic found.
        magic: u32,
    },
    /// The protobuf body does not decode.
    #[error("malformed announcement: {0}")]
    Protobuf(String),
    /// The device ID is not 32 bytes.
    #[error("device ID of {len} bytes (expected 32)")]
    BadDeviceId {
        /// Its length.
        len: usize,
    },
}

/// Encodes an announcement packet (magic + protobuf).
pub fn encode_local_announce(device: DeviceId, addresses: &[String], instance_id: i64) -> Vec<u8> {
    let body = AnnounceWire {
        id: device.as_bytes().to_vec(),
        addresses: addresses.to_vec(),
        instance_id,
    };
    let mut out = Vec::with_capacity(4 + body.encoded_len());
    out.extend_from_slice(&LOCAL_MAGIC.to_be_bytes());
    body.encode_raw(&mut out);
    out
}

/// Decodes and checks a packet. Addresses beyond [`MAX_LOCAL_ADDRESSES`], empty ones and ones
/// longer than [`MAX_ADDRESS_LEN`] are dropped rather than refusing the whole packet.
pub fn decode_local_announce(packet: &[u8]) -> Result<LocalAnnounce, AnnounceError> {
    if packet.len() > MAX_LOCAL_PACKET {
        return Err(AnnounceError::TooLong { len: packet.len() });
    }
    let Some((magic, body)) = packet.split_first_chunk::<4>() else {
        return Err(AnnounceError::TooShort { len: packet.len() });
    };
    match u32::from_be_bytes(*magic) {
        LOCAL_MAGIC => {}
        LOCAL_V13_MAGIC => return Err(AnnounceError::OldVersion),
        magic => return Err(AnnounceError::BadMagic { magic }),
    }
    let wire = AnnounceWire::decode(body).map_err(|e| AnnounceError::Protobuf(e.to_string()))?;
    let id: [u8; 32] = wire
        .id
        .as_slice()
        .try_into()
        .map_err(|_| AnnounceError::BadDeviceId { len: wire.id.len() })?;
    let addresses = wire
        .addresses
        .into_iter()
        .filter(|a| !a.is_empty() && a.len() <= MAX_ADDRESS_LEN)
        .take(MAX_LOCAL_ADDRESSES)
        .collect();
    Ok(LocalAnnounce {
        device: DeviceId::from_bytes(id),
        addresses,
        instance_id: wire.instance_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dev() -> DeviceId {
        DeviceId::from_bytes([7; 32])
    }

    #[test]
    fn encoding_is_magic_then_protobuf() {
        let p = encode_local_announce(dev(), &["tcp://0.0.0.0:22000".into()], 1);
        let mut want = hex::decode("2ea7d90b0a20").unwrap_or_default();
        want.extend_from_slice(&[7; 32]);
        want.extend_from_slice(&[0x12, 19]);
        want.extend_from_slice(b"tcp://0.0.0.0:22000");
        want.extend_from_slice(&[0x18, 1]);
        assert_eq!(p, want);
    }

    #[test]
    fn round_trip() {
        let addrs = vec!["tcp://0.0.0.0:22000".to_owned(), "quic://[::]:1".to_owned()];
        let p = encode_local_announce(dev(), &addrs, -5);
        assert_eq!(
            decode_local_announce(&p),
            Ok(LocalAnnounce {
                device: dev(),
                addresses: addrs,
                instance_id: -5
            })
        );
    }

    #[test]
    fn refusals_are_typed() {
        assert_eq!(
            decode_local_announce(&[0x2e, 0xa7]),
            Err(AnnounceError::TooShort { len: 2 })
        );
        assert_eq!(
            decode_local_announce(&0x7D79_BC40u32.to_be_bytes()),
            Err(AnnounceError::OldVersion)
        );
        assert_eq!(
            decode_local_announce(b"GET / HTTP/1.1"),
            Err(AnnounceError::BadMagic { magic: 0x4745_5420 })
        );
        assert_eq!(
            decode_local_announce(&vec![0; MAX_LOCAL_PACKET + 1]),
            Err(AnnounceError::TooLong {
                len: MAX_LOCAL_PACKET + 1
            })
        );
        let mut short_id = LOCAL_MAGIC.to_be_bytes().to_vec();
        short_id.extend_from_slice(&[0x0a, 2, 1, 2]);
        assert_eq!(
            decode_local_announce(&short_id),
            Err(AnnounceError::BadDeviceId { len: 2 })
        );
        let mut garbage = LOCAL_MAGIC.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_local_announce(&garbage),
            Err(AnnounceError::Protobuf(_))
        ));
    }

    #[test]
    fn address_count_and_length_are_bounded() {
        let mut addrs: Vec<String> = (0..200).map(|i| format!("tcp://10.0.0.1:{i}")).collect();
        addrs.insert(0, "x".repeat(MAX_ADDRESS_LEN + 1));
        addrs.insert(0, String::new());
        let got = decode_local_announce(&encode_local_announce(dev(), &addrs, 0));
        let got = got.map(|a| a.addresses).unwrap_or_default();
        assert_eq!(got.len(), MAX_LOCAL_ADDRESSES);
        assert_eq!(got[0], "tcp://10.0.0.1:0");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_local_announce(&bytes);
            let mut p = LOCAL_MAGIC.to_be_bytes().to_vec();
            p.extend_from_slice(&bytes);
            let _ = decode_local_announce(&p);
        }
    }
}
