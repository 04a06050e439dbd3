//! Conflict copies: their local-time names and `maxConflicts` pruning (spec sync-semantics
//! §2.3–§2.4). The decision itself (who wins, whether a copy is kept) is `syncd-conflict`'s.

use std::path::Path;
use std::time::SystemTime;

use syncd_conflict::{LocalTime, MaxConflicts};
use syncd_types::RelPath;

use crate::fsutil;

/// The local wall-clock time of `t` in the process's time zone (`TZ`, else the system zone),
/// as conflict-copy names carry it. Falls back to UTC when the zone cannot be read.
pub(crate) fn local_time(t: SystemTime) -> LocalTime {
    let secs = fsutil::split_time(t).0;
    LocalTime::from_unix(secs, utc_offset_at(secs))
}

/// The local zone's offset from UTC, in seconds, at `unix_secs` (0 when unknown).
// `time_t` is 32 bits on some targets, so the conversion is fallible there.
#[allow(
    unsafe_code,
    irrefutable_let_patterns,
    clippy::unnecessary_fallible_conversions
)]
pub(crate) fn utc_offset_at(unix_secs: i64) -> i32 {
    let Ok(t) = libc::time_t::try_from(unix_secs) else {
        return 0;
    };
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` and `tm` are valid for the call; localtime_r writes only into `tm` and
    // returns null on failure, and an all-zero `tm` is a valid value of the plain C struct.
    let res = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if res.is_null() {
        return 0;
    }
    // SAFETY: zero-initialised above and filled by a successful localtime_r.
    let tm = unsafe { tm.assume_init() };
    // Real zones are within ±26 h; anything else is garbage.
    i32::try_from(tm.tm_gmtoff)
        .ok()
        .filter(|o| o.abs() <= 26 * 3600)
        .unwrap_or(0)
}

/// After a new conflict copy of `name` was made: deletes the oldest copies beyond `max`
/// among the siblings in the directory `dir` (which holds `name`), returning the removed
/// paths so they are rescanned (recorded as deleted). Errors removing one copy are skipped:
/// pruning is housekeeping and must never fail the pull.
pub(crate) fn prune(root: &Path, name: &RelPath, dir: &Path, max: MaxConflicts) -> Vec<RelPath> {
    if max == MaxConflicts::Unlimited {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = name
        .as_str()
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/"))
        .unwrap_or_default();
    let siblings: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().map(|s| format!("{prefix}{s}")))
        .collect();
    let mut removed = Vec::new();
    for old in syncd_conflict::conflicts_to_remove(name.as_str(), siblings, max) {
        let Ok(rel) = RelPath::new(&old) else {
            continue;
        };
        let Ok(path) = fsutil::safe_path(root, &rel) else {
            continue;
        };
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(rel),
            Err(e) => tracing::warn!(path = %old, error = %e, "pruning conflict copy"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_is_utc_shifted_by_the_zone_offset() {
        let now = SystemTime::now();
        let secs = fsutil::split_time(now).0;
        assert_eq!(
            local_time(now),
            LocalTime::from_unix(secs, utc_offset_at(secs))
        );
    }

    #[test]
    fn offsets_of_absurd_times_do_not_panic() {
        for t in [i64::MIN, -1, 0, i64::MAX] {
            let o = utc_offset_at(t);
            assert!(o.abs() <= 26 * 3600);
        }
    }

    /// `TZ` is read once per process, so the zone is checked in a child process of this
    /// test binary (POSIX `XST-05:30` is UTC+05:30 and needs no zone database).
    #[test]
    fn offset_follows_the_tz_variable() {
        if std::env::var_os("SYNCD_TZ_CHILD").is_some() {
            assert_eq!(utc_offset_at(1_767_366_245), 5 * 3600 + 1800);
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_366_245);
            assert_eq!(local_time(t).to_string(), "20260102-203405");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "puller::conflicts::tests::offset_follows_the_tz_variable",
                "--nocapture",
            ])
            .env("SYNCD_TZ_CHILD", "1")
            .env("TZ", "XST-05:30")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {text}");
        assert!(text.contains("1 passed"), "child ran no test: {text}");
    }

    #[test]
    fn prune_keeps_the_newest_copies_and_ignores_other_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("docs");
        std::fs::create_dir(&dir).unwrap();
        for n in [
            "a.sync-conflict-20200101-000000-AAAAAAA.txt",
            "a.sync-conflict-20210101-000000-AAAAAAA.txt",
            "a.sync-conflict-20220101-000000-AAAAAAA.txt",
            "b.sync-conflict-20190101-000000-AAAAAAA.txt",
            "a.txt",
        ] {
            std::fs::write(dir.join(n), n).unwrap();
        }
        let name = RelPath::new("docs/a.txt").unwrap();
        let removed = prune(d.path(), &name, &dir, MaxConflicts::Keep(2));
        assert_eq!(
            removed,
            vec![RelPath::new("docs/a.sync-conflict-20200101-000000-AAAAAAA.txt").unwrap()]
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a.sync-conflict-20210101-000000-AAAAAAA.txt",
                "a.sync-conflict-20220101-000000-AAAAAAA.txt",
                "a.txt",
                "b.sync-conflict-20190101-000000-AAAAAAA.txt",
            ]
        );
    }

    #[test]
    fn prune_with_unlimited_copies_removes_nothing() {
        let d = tempfile::tempdir().unwrap();
        for y in 2000..2020 {
            std::fs::write(
                d.path()
                    .join(format!("a.sync-conflict-{y}0101-000000-AAAAAAA")),
                "x",
            )
            .unwrap();
        }
        let name = RelPath::new("a").unwrap();
        assert!(prune(d.path(), &name, d.path(), MaxConflicts::Unlimited).is_empty());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 20);
    }
}
