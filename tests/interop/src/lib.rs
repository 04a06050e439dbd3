//! The interoperability suite of syncd: the real `syncd` daemon and a stock Syncthing 1.19.2,
//! both as separate processes on loopback, sharing the folder `workspaces` and dialling each
//! other as in a real deployment.
//!
//! Its parts:
//! - `src/bin/syncd-interop-daemon.rs`: the `syncd` binary (it calls `syncd::cli::main`, the
//!   very entry point of `crates/syncd`), built here so the tests can find it through
//!   `CARGO_BIN_EXE_syncd-interop-daemon`. Env `SYNCD_BIN` points the tests at another build
//!   (e.g. a release binary) instead.
//! - [`casefold`]: a case-insensitive, case-preserving FUSE view of a directory (like APFS),
//!   which the case tests (`tests/case.rs`) run syncd on.
//! - `tests/`: the scenarios (connection, initial sync both ways, incremental changes,
//!   `.stignore`, conflicts, delete-vs-edit, restart with delta indexes, REST parity), each in its
//!   own cluster of two fresh processes. Syncthing's log is scanned for protocol errors at the
//!   end of every scenario.
//!
//! Invariants: nothing leaves 127.0.0.1 (Syncthing runs with discovery, relays, NAT, usage and
//! crash reporting and upgrades off); every process is stopped by its PID, never by name.
//!
//! It does NOT test Syncthing itself, discovery or relays (syncd has neither), and it skips
//! (with a message) when `syncthing` is not on PATH, unless `SYNCD_REQUIRE_SYNCTHING=1`.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-interop cargo test -p syncd-interop-tests
//! SYNCD_REQUIRE_SYNCTHING=1 cargo test -p syncd-interop-tests -- --include-ignored
//! ```

#[cfg(target_os = "linux")]
pub mod casefold;
/// Elsewhere the case tests skip: the FUSE view is Linux-only (macOS runs them on APFS).
#[cfg(not(target_os = "linux"))]
pub mod casefold {
    /// Never mounted outside Linux.
    pub struct CaseFoldMount(());

    impl CaseFoldMount {
        /// Always `None` (with the reason on stderr) outside Linux.
        pub fn mount_or_skip(
            _backing: &std::path::Path,
            _mountpoint: &std::path::Path,
        ) -> Option<CaseFoldMount> {
            eprintln!("SKIPPED: the case-folding FUSE view is Linux-only");
            None
        }

        /// Where the view is mounted.
        pub fn path(&self) -> &std::path::Path {
            std::path::Path::new("")
        }
    }
}
