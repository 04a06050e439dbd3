//! Identity: generation, persistence, and loading key pairs made by Syncthing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use syncd_transport::{Identity, IdentityError};

/// Key pairs captured with Syncthing 1.19.2 (copied from the shared fixtures so the crate
/// stands on its own).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn generated_certificate_names_syncthing_in_cn_and_san() {
    let id = Identity::generate().unwrap();
    let der = id.cert_der().as_ref();
    // SAN dNSName [2] "syncthing".
    assert!(contains(der, b"\x82\x09syncthing"));
    // CN attribute (OID 2.5.4.3) with a 9-byte string value "syncthing".
    let cn_utf8 = contains(der, b"\x06\x03\x55\x04\x03\x0c\x09syncthing");
    let cn_printable = contains(der, b"\x06\x03\x55\x04\x03\x13\x09syncthing");
    assert!(cn_utf8 || cn_printable);
}

#[test]
fn device_id_is_sha256_of_certificate_der() {
    let id = Identity::generate().unwrap();
    assert_eq!(
        id.device_id(),
        syncd_types::DeviceId::from_cert_der(id.cert_der().as_ref())
    );
}

#[test]
fn two_generated_identities_differ() {
    assert_ne!(
        Identity::generate().unwrap().device_id(),
        Identity::generate().unwrap().device_id()
    );
}

#[test]
fn load_or_generate_creates_then_reloads_the_same_identity() {
    let dir = tempfile::tempdir().unwrap();
    let first = Identity::load_or_generate(dir.path()).unwrap();
    assert!(dir.path().join("cert.pem").exists());
    assert!(dir.path().join("key.pem").exists());
    let second = Identity::load_or_generate(dir.path()).unwrap();
    assert_eq!(first.device_id(), second.device_id());
}

#[cfg(unix)]
#[test]
fn saved_key_is_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    Identity::load_or_generate(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn half_present_identity_is_refused_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    std::fs::write(dir.path().join("cert.pem"), id.cert_pem()).unwrap();
    let err = Identity::load_or_generate(dir.path()).unwrap_err();
    assert!(matches!(err, IdentityError::HalfPresent { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cert.pem")).unwrap(),
        id.cert_pem()
    );
}

#[test]
fn key_of_another_certificate_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    Identity::load_or_generate(a.path()).unwrap();
    Identity::load_or_generate(b.path()).unwrap();
    let cert = std::fs::read(a.path().join("cert.pem")).unwrap();
    let key = std::fs::read(b.path().join("key.pem")).unwrap();
    let err = Identity::from_pem(&cert, &key).unwrap_err();
    assert!(matches!(err, IdentityError::KeyMismatch), "{err}");
}

#[test]
fn garbage_pem_is_a_typed_error() {
    let err = Identity::from_pem(b"not pem", b"not pem").unwrap_err();
    assert!(matches!(err, IdentityError::NoCertificate { .. }), "{err}");
    let id = Identity::generate().unwrap();
    let err = Identity::from_pem(id.cert_pem().as_bytes(), b"nothing").unwrap_err();
    assert!(matches!(err, IdentityError::NoPrivateKey { .. }), "{err}");
}

#[test]
fn probe_fixture_keys_load_with_the_ids_syncthing_reported() {
    // (directory, device ID printed by `syncthing serve --device-id` for that cert)
    let table = [
        (
            "probe-a",
            "H6IKMXR-FVRCHYK-2Y4RIDD-YCHDN5K-SRPJA6J-AB43CTY-CMJ525C-EOTX2QS",
        ),
        (
            "probe-b-ed25519",
            "GPDYI5C-2ZSRK7M-PYGK4C7-KHNR4VT-MON32AB-OOMJRAL-LKSLHVD-AZIUFA5",
        ),
        (
            "probe-e-p384",
            "MPCCDDO-KDJTSOK-T2Z7K42-3XPELA5-2L7FPTD-L3EQY6W-V6ZX5IW-EID5TQZ",
        ),
    ];
    for (dir, want) in table {
        let path = Path::new(FIXTURES).join(dir);
        let id = Identity::load(&path).unwrap();
        assert_eq!(id.device_id().to_string(), want, "{dir}");
    }
}

#[test]
fn pair_made_by_syncthing_generate_loads_with_syncthings_device_id() {
    let Some(st) = syncd_testkit::syncthing_or_skip() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let want = syncd_testkit::generate(&st, home.path()).unwrap();
    let key = std::fs::read_to_string(home.path().join("key.pem")).unwrap();
    // Syncthing 1.19 writes its ECDSA key in SEC1 form.
    assert!(key.contains("EC PRIVATE KEY"), "{key}");
    let id = Identity::load(home.path()).unwrap();
    assert_eq!(id.device_id().to_string(), want);
}
