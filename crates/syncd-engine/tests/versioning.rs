//! File versioning on real engines over loopback TLS and on real files: what a peer deletes
//! or replaces is kept under Syncthing's names; `.stversions` is neither scanned nor synced;
//! versioning is changed on a running engine. The time-dependent rules (keep, buckets,
//! cleanout) run on the versioner directly with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::pair_with;
use syncd_engine::versioner::{Archived, Versioner, VersioningConfig, VersioningType, untag_name};
use syncd_engine::{FolderConfig, RelPath};

fn versioning(kind: VersioningType, params: &[(&str, &str)]) -> VersioningConfig {
    VersioningConfig {
        kind,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..VersioningConfig::default()
    }
}

/// The files under `dir` (relative, sorted) with their content.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.map(Result::unwrap) {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Whether `name` is `stem~YYYYMMDD-HHMMSS.ext` in the directory of `want`, for `want`.
fn tagged_as(name: &str, want: &str) -> bool {
    let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
    let (wdir, wbase) = want.rsplit_once('/').unwrap_or(("", want));
    dir == wdir && base != wbase && untag_name(base).is_some_and(|(n, _)| n == wbase)
}

/// For each type, switched on at run time on `b`: a file `a` modifies and one it deletes
/// are on `b` under the type's names, with their old content; `a` never sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_replaced_files_are_versioned_by_each_type() {
    let p = pair_with(|_, _| {}).await;
    p.synced().await;
    let ext_dir = p._tmp.path().join("external");
    std::fs::create_dir(&ext_dir).unwrap();
    let command = format!(
        "/bin/sh -c 'mv \"$0/$1\" \"{}/$(echo \"$1\" | tr / _)\"' %FOLDER_PATH% %FILE_PATH%",
        ext_dir.display()
    );
    let kinds = [
        (VersioningType::Trashcan, vec![]),
        (VersioningType::Simple, vec![("keep", "3")]),
        (VersioningType::Staggered, vec![]),
        (
            VersioningType::External,
            vec![("command", command.as_str())],
        ),
    ];
    for (kind, params) in kinds {
        let t = kind.as_str();
        let mut cfg: FolderConfig = p.b.config().folders[0].clone();
        cfg.versioning = versioning(kind, &params);
        p.b.add_folder(cfg).await.unwrap();
        let (m, d) = (format!("{t}/mod.txt"), format!("{t}/del.txt"));
        p.da.write(&m, format!("{t} old"));
        p.da.write(&d, format!("{t} deleted"));
        p.a.scan(&p.folder, None).await.unwrap();
        p.synced().await;
        p.da.write(&m, format!("{t} new, longer"));
        std::fs::remove_file(p.da.path(&d)).unwrap();
        p.a.scan(&p.folder, None).await.unwrap();
        p.synced().await;
        assert_eq!(p.db.read(&m), format!("{t} new, longer").as_bytes());
        assert!(!p.db.exists(&d));
        let kept = match kind {
            VersioningType::External => files_under(&ext_dir)
                .into_iter()
                .filter(|(n, _)| n.starts_with(t))
                .collect(),
            _ => files_under(&p.db.path(".stversions").join(t))
                .into_iter()
                .map(|(n, c)| (format!("{t}/{n}"), c))
                .collect::<Vec<_>>(),
        };
        assert_eq!(kept.len(), 2, "{t}: {kept:?}");
        for (name, content) in &kept {
            let (want, old) = if content == format!("{t} old").as_bytes() {
                (&m, "old")
            } else {
                assert_eq!(content, format!("{t} deleted").as_bytes(), "{t}: {name}");
                (&d, "deleted")
            };
            match kind {
                VersioningType::Trashcan => assert_eq!(name, want, "{t} {old}"),
                VersioningType::External => {
                    assert_eq!(name, &want.replace('/', "_"), "{t} {old}")
                }
                _ => assert!(tagged_as(name, want), "{t}: {name} is no tagged {want}"),
            }
        }
    }
    // Versions are never scanned nor synced: `a` has none, and `b` announces none.
    assert!(!p.da.exists(".stversions"));
    let tree = p.b.global_tree(&p.folder, None, usize::MAX).await.unwrap();
    let listed = format!("{tree:?}");
    assert!(!listed.contains("stversions"), "{listed}");
    p.b.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    assert!(!p.da.exists(".stversions"));
    p.a.shutdown().await;
    p.b.shutdown().await;
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const T0: u64 = 1_767_366_245;

fn versioner(root: &Path, kind: VersioningType, params: &[(&str, &str)]) -> Versioner {
    Versioner::new(root, &versioning(kind, params))
        .unwrap()
        .unwrap()
        .with_utc_offset(|_| 3600)
}

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// Archives `content` as `name` at `now` (writes the file, then versions it).
fn archive_at(v: &Versioner, root: &Path, name: &str, content: &str, now: u64) -> Archived {
    let p = root.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    v.archive(&rel(name), at(now)).unwrap()
}

#[test]
fn simple_keeps_the_newest_n_versions_named_in_local_time() {
    let d = tempfile::tempdir().unwrap();
    let v = versioner(d.path(), VersioningType::Simple, &[("keep", "2")]);
    for i in 0..4 {
        assert_eq!(
            archive_at(&v, d.path(), "sub/a.tar.gz", &format!("v{i}"), T0 + i),
            Archived::Renamed
        );
    }
    // UTC+1: 2026-01-02 15:04:05 UTC is 16:04:05 local.
    assert_eq!(
        files_under(&d.path().join(".stversions")),
        vec![
            ("sub/a.tar~20260102-160407.gz".to_owned(), b"v2".to_vec()),
            ("sub/a.tar~20260102-160408.gz".to_owned(), b"v3".to_vec()),
        ]
    );
    let listed = v.list().unwrap();
    let versions = &listed["sub/a.tar.gz"];
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].version_time, at(T0 + 3));
    assert_eq!(versions[0].size, 2);
}

#[test]
fn staggered_thins_versions_by_its_buckets_as_time_passes() {
    let d = tempfile::tempdir().unwrap();
    let v = versioner(d.path(), VersioningType::Staggered, &[]);
    // Within the first hour versions 30 s apart stay; one 10 s after a kept one goes.
    for (i, dt) in [0, 40, 50, 80].into_iter().enumerate() {
        archive_at(&v, d.path(), "f.txt", &format!("v{i}"), T0 + dt);
    }
    let kept = |v: &Versioner| v.list().unwrap().get("f.txt").map_or(0, Vec::len);
    assert_eq!(kept(&v), 3);
    assert_eq!(v.clean(at(T0 + 100)).unwrap(), 0);
    // Two days on, all three are in the 1-day bucket: only the oldest stays.
    assert_eq!(v.clean(at(T0 + 2 * 86_400)).unwrap(), 2);
    assert_eq!(kept(&v), 1);
    assert_eq!(v.list().unwrap()["f.txt"][0].version_time, at(T0));
    // Past maxAge it goes too.
    let v = versioner(d.path(), VersioningType::Staggered, &[("maxAge", "86400")]);
    assert_eq!(v.clean(at(T0 + 3 * 86_400)).unwrap(), 1);
    assert!(v.list().unwrap().is_empty());
}

#[test]
fn trashcan_replaces_same_name_versions_and_cleans_out_by_days() {
    let d = tempfile::tempdir().unwrap();
    let v = versioner(d.path(), VersioningType::Trashcan, &[("cleanoutDays", "3")]);
    archive_at(&v, d.path(), "deep/dir/f.txt", "first", T0);
    archive_at(&v, d.path(), "deep/dir/f.txt", "second", T0 + 86_400);
    let trash = d.path().join(".stversions");
    assert_eq!(
        files_under(&trash),
        vec![("deep/dir/f.txt".to_owned(), b"second".to_vec())]
    );
    // The trash can's time is the deletion time.
    assert_eq!(
        v.list().unwrap()["deep/dir/f.txt"][0].version_time,
        at(T0 + 86_400)
    );
    assert_eq!(v.clean(at(T0 + 3 * 86_400)).unwrap(), 0);
    assert_eq!(v.clean(at(T0 + 5 * 86_400)).unwrap(), 1);
    // The emptied directories go as well; the versions directory stays.
    assert!(files_under(&trash).is_empty());
    assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 0);
}

#[test]
fn restoring_over_an_existing_file_versions_that_file_first() {
    let d = tempfile::tempdir().unwrap();
    for kind in [VersioningType::Simple, VersioningType::Trashcan] {
        let root = d.path().join(kind.as_str());
        let v = versioner(&root, kind, &[]);
        archive_at(&v, &root, "f.txt", "old", T0);
        std::fs::write(root.join("f.txt"), "current").unwrap();
        let t = v.list().unwrap()["f.txt"][0].version_time;
        v.restore(&rel("f.txt"), t, at(T0 + 60)).unwrap();
        assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"old");
        let listed = v.list().unwrap();
        assert_eq!(listed["f.txt"].len(), 1, "{kind:?}: {listed:?}");
        let back = files_under(&root.join(".stversions"));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, b"current", "{kind:?}");
        // No temp file is left beside the target.
        assert_eq!(
            files_under(&root)
                .iter()
                .filter(|(n, _)| !n.starts_with(".stversions"))
                .count(),
            1
        );
        // A time nobody archived at is refused, and nothing moves.
        assert!(v.restore(&rel("f.txt"), at(T0 + 7), at(T0 + 61)).is_err());
        assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"old");
    }
}

/// A versions directory on another filesystem (`fsPath` on tmpfs): the file is copied and
/// fsynced, the caller is told so, and the log says it (never a silent cross-device move).
#[test]
fn versions_on_another_filesystem_are_copied_not_lost() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped: no /dev/shm to put versions on another filesystem");
        return;
    };
    let (dev_a, dev_b) = (
        std::fs::metadata(d.path()).unwrap().dev(),
        std::fs::metadata(other.path()).unwrap().dev(),
    );
    if dev_a == dev_b {
        eprintln!("skipped: /dev/shm is on the same filesystem as the temp directory");
        return;
    }
    let mut cfg = versioning(VersioningType::Simple, &[]);
    cfg.fs_path = other.path().to_string_lossy().into_owned();
    let v = Versioner::new(d.path(), &cfg).unwrap().unwrap();
    assert_eq!(
        archive_at(&v, d.path(), "x/f.txt", "data", T0),
        Archived::Copied
    );
    assert!(!d.path().join("x/f.txt").exists());
    let kept = files_under(other.path());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, b"data");
    // Restoring copies it back the same way.
    let t = v.list().unwrap()["x/f.txt"][0].version_time;
    v.restore(&rel("x/f.txt"), t, at(T0 + 1)).unwrap();
    assert_eq!(std::fs::read(d.path().join("x/f.txt")).unwrap(), b"data");
}

#[test]
fn a_symlinked_versions_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), d.path().join(".stversions")).unwrap();
    let v = versioner(d.path(), VersioningType::Simple, &[]);
    std::fs::write(d.path().join("f"), "x").unwrap();
    assert!(v.archive(&rel("f"), at(T0)).is_err());
    assert!(d.path().join("f").exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn unknown_types_and_external_without_a_command_are_config_errors() {
    assert!("bogus".parse::<VersioningType>().is_err());
    let cfg = versioning(VersioningType::External, &[]);
    assert!(Versioner::new(Path::new("/r"), &cfg).is_err());
}

/// The engine cleans each versioned folder every `cleanupIntervalS`: a trash can version
/// older than `cleanoutDays` goes, a recent one stays (a 1 s interval keeps this short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_cleans_out_old_versions_every_cleanup_interval() {
    let p = pair_with(|_, b| {
        b.write(".stversions/old.txt", "old");
        b.write(".stversions/new.txt", "new");
    })
    .await;
    let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(p.db.path(".stversions/old.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut cfg: FolderConfig = p.b.config().folders[0].clone();
    cfg.versioning = versioning(VersioningType::Trashcan, &[("cleanoutDays", "2")]);
    cfg.versioning.cleanup_interval_s = 1;
    p.b.add_folder(cfg).await.unwrap();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while p.db.exists(".stversions/old.txt") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "old version never cleaned out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(p.db.exists(".stversions/new.txt"));
    p.a.shutdown().await;
    p.b.shutdown().await;
}
