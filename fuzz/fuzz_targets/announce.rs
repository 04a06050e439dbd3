//! Arbitrary bytes as a local discovery packet (`syncd_proto::discovery`): decoding returns
//! an announcement or a typed error, never a panic; what decodes is bounded and encodes back
//! to a packet that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncd_proto::discovery::{
    MAX_ADDRESS_LEN, MAX_LOCAL_ADDRESSES, decode_local_announce, encode_local_announce,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = decode_local_announce(data) {
        assert!(a.addresses.len() <= MAX_LOCAL_ADDRESSES);
        assert!(a.addresses.iter().all(|s| !s.is_empty() && s.len() <= MAX_ADDRESS_LEN));
        let again = encode_local_announce(a.device, &a.addresses, a.instance_id);
        assert_eq!(decode_local_announce(&again).ok(), Some(a));
    }
});
