use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A device's identity: the SHA-256 of its TLS certificate's DER encoding.
///
/// Displayed in Syncthing's 63-character form (base32, a luhn32 check character per 13
/// characters, dashes every 7); the all-zero ID displays as the empty string, as in Syncthing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DeviceId([u8; 32]);

/// The first 8 bytes of a [`DeviceId`], read big-endian: the device's ID in version vectors
/// and `modified_by`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct ShortId(pub u64);

/// Why a string is not a device ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceIdError {
    /// After removing dashes and spaces the string is neither 56 (current) nor 52 (old) characters.
    #[error(
        "device ID has {len} characters after removing dashes and spaces; expected 56 (or the old 52)"
    )]
    IncorrectLength {
        /// The length found.
        len: usize,
    },
    /// A character outside the base32 alphabet.
    #[error("device ID contains {ch:?}, which is not in the base32 alphabet A-Z 2-7")]
    InvalidCharacter {
        /// The offending character.
        ch: char,
    },
    /// A check character does not match its group: a typo.
    #[error("device ID check character {group} is wrong (typo?)")]
    CheckCharacter {
        /// Which group (0-3) failed.
        group: usize,
    },
    /// The base32 data does not decode to 32 bytes.
    #[error("device ID does not decode to 32 bytes")]
    Decode,
}

impl DeviceId {
    /// The all-zero ID (formats as `""`).
    pub const EMPTY: DeviceId = DeviceId([0; 32]);

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        DeviceId(bytes)
    }

    /// The device ID of the certificate whose DER encoding is `der`.
    pub fn from_cert_der(der: &[u8]) -> Self {
        DeviceId(Sha256::digest(der).into())
    }

    /// Reads 32 bytes from a slice (the wire form); `None` when the length is not 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(DeviceId)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short ID: the first 8 bytes, big-endian.
    pub fn short(&self) -> ShortId {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        ShortId(u64::from_be_bytes(b))
    }

    /// True for the all-zero ID.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 32]
    }
}

/// Syncthing's check character over one group (not textbook Luhn: see the spec, §2).
pub(crate) fn luhn32(group: &[u8]) -> Result<u8, DeviceIdError> {
    let mut factor = 1u32;
    let mut sum = 0u32;
    for &c in group {
        let cp = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(DeviceIdError::InvalidCharacter { ch: char::from(c) })? as u32;
        let a = factor * cp;
        factor = if factor == 1 { 2 } else { 1 };
        sum += a / 32 + a % 32;
    }
    Ok(ALPHABET[((32 - sum % 32) % 32) as usize])
}

fn base32_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(5) * 8);
    let mut buf: u64 = 0;
    let mut bits = 0u32;
    for &b in data {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize]);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize]);
    }
    out
}

fn base32_decode(s: &[u8]) -> Result<Vec<u8>, DeviceIdError> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buf: u64 = 0;
    let mut bits = 0u32;
    for &c in s {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(DeviceIdError::InvalidCharacter { ch: char::from(c) })? as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        let b32 = base32_encode(&self.0); // 52 characters, no padding
        let mut with_check = Vec::with_capacity(56);
        for group in b32.chunks(13) {
            with_check.extend_from_slice(group);
            // Every character comes from ALPHABET, so the check cannot fail.
            with_check.push(luhn32(group).unwrap_or(b'A'));
        }
        for (i, chunk) in with_check.chunks(7).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            for &c in chunk {
                fmt::Write::write_char(f, char::from(c))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    /// Parses every spelling Syncthing accepts: any case, dashes and spaces anywhere, the
    /// 0/1/8 → O/I/B typo fixes, padding `=`, and the old 52-character form without checks.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cleaned: Vec<u8> = s
            .trim_matches('=')
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| match c.to_ascii_uppercase() {
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                u => u,
            })
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(0))
            .collect();
        let data: Vec<u8> = match cleaned.len() {
            0 => return Ok(DeviceId::EMPTY),
            52 => cleaned,
            56 => {
                let mut data = Vec::with_capacity(52);
                for (group, chunk) in cleaned.chunks(14).enumerate() {
                    let (body, check) = chunk.split_at(13);
                    if luhn32(body)? != check[0] {
                        return Err(DeviceIdError::CheckCharacter { group });
                    }
                    data.extend_from_slice(body);
                }
                data
            }
            len => return Err(DeviceIdError::IncorrectLength { len }),
        };
        let bytes = base32_decode(&data)?;
        DeviceId::from_slice(&bytes).ok_or(DeviceIdError::Decode)
    }
}

impl ShortId {
    /// The raw 64-bit value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ShortId {
    /// The first 7 base32 characters of the 8 bytes: equal to the first 7 characters of the
    /// full device ID string, as used in conflict-copy names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b32 = base32_encode(&self.0.to_be_bytes());
        for &c in &b32[..7] {
            fmt::Write::write_char(f, char::from(c))?;
        }
        Ok(())
    }
}

impl From<u64> for ShortId {
    fn from(v: u64) -> Self {
        ShortId(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn spec_test_vectors_format_exactly() {
        let table = [
            (
                "479403ffdef496b5f5e5bc9c0a15221e70073164509fa30761af63094f6f945c",
                "I6KAH76-66SLLLB-5PFXSOA-UFJCDZC-YAOMLEK-CP2GB32-BV5RQST-3PSROAU",
            ),
            (
                "64516fb94d24e7b637d20d9846ebaeffb09556ef3968c8276fefc3fe24c144c2",
                "MRIW7OK-NETT3M4-N6SBWME-N25O76W-YJKVXPH-FUMQJ3S-P57B74J-GBITBAC",
            ),
            (
                "dff67945f05bdab4270acd6057f1eacfa3ac93cade07ce6a89384c181ad6b80e",
                "373HSRP-QLPNLIE-JYKZVQF-P4PKZ63-R2ZE6K3-YD442U2-JHBGBQG-WWXAHAU",
            ),
            (
                "7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205",
                "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
            ),
            (
                "3f90a65e25ac447c6b1c8a063c08e36f6517a41e4803cd8a62627bae888e9df5",
                "H6IKMXR-FVRCHYK-2Y4RIDD-YCHDN5K-SRPJA6J-AB43CTY-CMJ525C-EOTX2QS",
            ),
        ];
        for (hex, text) in table {
            let id = DeviceId::from_bytes(hex32(hex));
            assert_eq!(id.to_string(), text);
            assert_eq!(text.parse::<DeviceId>().unwrap(), id);
        }
        let asdl: [u8; 32] = b"asdlasdlasdlasdlasdlasdlasdlasdl".to_owned();
        assert_eq!(
            DeviceId::from_bytes(asdl).to_string(),
            "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
        );
    }

    #[test]
    fn luhn32_matches_syncthing_test_vector_and_rejects_digit_one() {
        assert_eq!(luhn32(b"AB725E4GHIQPL3ZFGT").unwrap(), b'G');
        assert_eq!(
            luhn32(b"AB1"),
            Err(DeviceIdError::InvalidCharacter { ch: '1' })
        );
    }

    #[test]
    fn all_accepted_spellings_normalise_to_one_id() {
        let want: DeviceId = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
            .parse()
            .unwrap();
        for s in [
            "P56IOI-7MZJNU-2IQGDR-EYDM2M-GTMGL3-BXNPQ6-W5BTBB-Z4TJXZ-WICQ",
            "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",
            "p56ioi7-mzjnu2y-iqgdrey-dm2mgti-mgl3bxn-pq6w5bm-tbbz4tj-xzwicq2",
            "p561017mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmt88z4tjxzwicq2",
            "P56IOI7 MZJNU2Y IQGDREY DM2MGTI MGL3BXN PQ6W5BM TBBZ4TJ XZWICQ2",
        ] {
            assert_eq!(s.parse::<DeviceId>().unwrap(), want, "{s}");
        }
    }

    #[test]
    fn wrong_lengths_and_check_characters_are_rejected() {
        assert!(matches!(
            "a".parse::<DeviceId>(),
            Err(DeviceIdError::IncorrectLength { len: 1 })
        ));
        let bad = "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQCCCC";
        assert!(matches!(
            bad.parse::<DeviceId>(),
            Err(DeviceIdError::CheckCharacter { .. })
        ));
        assert!(
            "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ3"
                .parse::<DeviceId>()
                .is_err()
        );
        assert!("ÄÖÜ".repeat(20).parse::<DeviceId>().is_err());
    }

    #[test]
    fn empty_id_formats_as_empty_string_and_parses_back() {
        assert_eq!(DeviceId::EMPTY.to_string(), "");
        assert_eq!("".parse::<DeviceId>().unwrap(), DeviceId::EMPTY);
    }

    #[test]
    fn short_id_is_first_eight_bytes_big_endian_and_prints_seven_chars() {
        let id: DeviceId = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
            .parse()
            .unwrap();
        assert_eq!(id.short(), ShortId(0x7f7c_8723_ecca_5b4d));
        assert_eq!(id.short().to_string(), "P56IOI7");
        let st: DeviceId = "ZXLMUHB-XXVWOZW-S4324AT-7JQF7N4-Z3X47QD-ONS23D3-UDQYFGD-3HZVTAE"
            .parse()
            .unwrap();
        assert_eq!(st.short().get(), 0xcdd6_ca1c_37bd_6cec);
        assert_eq!(st.short().to_string(), "ZXLMUHB");
    }

    #[test]
    fn from_cert_der_hashes_the_whole_der() {
        let id = DeviceId::from_cert_der(b"abc");
        assert_eq!(
            id.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "sha256(\"abc\") starts ba7816bf"
        );
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_round_trips(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let id = DeviceId::from_bytes(bytes);
            let s = id.to_string();
            proptest::prop_assert_eq!(s.parse::<DeviceId>().unwrap(), id);
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = s.parse::<DeviceId>();
        }
    }
}
