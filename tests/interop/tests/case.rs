//! Case-insensitive folders (Syncthing's `caseSensitiveFS = false`, the default): syncd runs on
//! a real case-insensitive, case-preserving filesystem (a FUSE view of an ext4 directory, see
//! `syncd_interop_tests::casefold`), a stock Syncthing 1.19.2 on plain ext4, where `Readme.md`
//! and `README.md` can be two files.
//!
//! Skips (loudly) without Syncthing or without FUSE (not root, no `/dev/fuse`); with
//! `SYNCD_REQUIRE_SYNCTHING=1` (CI) both are required.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{Cluster, cluster, name_set as set, names, poll};
use syncd_interop_tests::casefold::CaseFoldMount;

const CONFLICT_TEXT: &str = "uses different upper or lowercase characters than local";

/// A cluster whose syncd folder is the case-folding view of `backing`. Fields drop in order:
/// the processes stop before the view is unmounted.
struct CaseCluster {
    c: Cluster,
    _mount: CaseFoldMount,
    backing: PathBuf,
    _dir: tempfile::TempDir,
}

fn case_cluster(setup: impl FnOnce(&Cluster)) -> Option<CaseCluster> {
    let mut c = cluster()?;
    let dir = tempfile::Builder::new()
        .prefix("syncd-case-")
        .tempdir()
        .unwrap();
    let backing = dir.path().join("backing");
    std::fs::create_dir_all(&backing).unwrap();
    // What `folder add` put in the folder (its marker) moves to the backing directory.
    std::fs::create_dir_all(&c.sd.folder).unwrap();
    for e in std::fs::read_dir(&c.sd.folder).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), backing.join(e.file_name())).unwrap();
    }
    std::fs::create_dir_all(backing.join(syncd_types::names::MARKER)).unwrap();
    let mount = CaseFoldMount::mount_or_skip(&backing, &c.sd.folder)?;
    setup(&c);
    c.start();
    Some(CaseCluster {
        c,
        _mount: mount,
        backing,
        _dir: dir,
    })
}

/// Renames `from` to `to`, another case of the same name, through the view. Linux's VFS
/// takes a rename between two names of one inode for a no-op before asking the filesystem
/// (POSIX: hard links to the same file), so this goes through a third name, as `mv` on a
/// case-insensitive Linux filesystem has to.
fn case_only_rename(from: &Path, to: &Path) {
    let between = from.with_extension("case-rename");
    std::fs::rename(from, &between).unwrap();
    std::fs::rename(&between, to).unwrap();
}

fn errors(c: &Cluster) -> Vec<(String, String)> {
    c.sd.folder_errors()
}

fn context(k: &CaseCluster) -> String {
    format!(
        "errors: {:?}\nbacking: {:?}\n{}",
        errors(&k.c),
        names(&k.backing),
        k.c.sd.log_tail()
    )
}

/// Waits until syncd reports the case conflict and holds the other name; returns (the name
/// synced, the name in conflict).
fn wait_for_case_conflict(k: &CaseCluster) -> (String, String) {
    poll(
        "one name synced to syncd, the other a case-conflict error",
        || context(k),
        || {
            let (path, error) = errors(&k.c)
                .into_iter()
                .find(|(_, e)| e.contains(CONFLICT_TEXT))?;
            let synced = if path == "README.md" {
                "Readme.md"
            } else {
                "README.md"
            };
            let want = format!(
                "remote \"{path}\" uses different upper or lowercase characters than local \"{synced}\"; change the casing on either side to match the other"
            );
            assert_eq!(error, want);
            let done = names(&k.backing) == set(&[synced])
                && std::fs::read(k.backing.join(synced)).ok()? == k.c.st.read(synced);
            done.then(|| (synced.to_owned(), path))
        },
    )
}

#[test]
fn names_differing_only_in_case_on_syncthing_one_syncs_the_other_is_a_case_conflict_on_syncd() {
    let Some(k) = case_cluster(|c| {
        c.st.write("Readme.md", "title case");
        c.st.write("README.md", "upper case");
    }) else {
        return;
    };
    let (_synced, conflicted) = wait_for_case_conflict(&k);
    // Retried on later pulls (a scan makes one), and still refused: nothing is overwritten.
    k.c.sd.scan();
    k.c.st.scan();
    poll(
        "the conflict is still reported after another pull",
        || context(&k),
        || {
            errors(&k.c)
                .iter()
                .any(|(p, e)| p == &conflicted && e.contains(CONFLICT_TEXT))
                .then_some(())
        },
    );
    wait_for_case_conflict(&k);
    // Syncthing's side is untouched.
    assert_eq!(names(&k.c.st.folder), set(&["README.md", "Readme.md"]));
    assert_eq!(k.c.st.read("Readme.md"), b"title case");
    assert_eq!(k.c.st.read("README.md"), b"upper case");
    k.c.assert_clean_logs(&[]);
}

#[test]
fn deleting_the_conflicting_name_on_syncthing_leaves_syncds_other_case_alone_and_converges() {
    let Some(k) = case_cluster(|c| {
        c.st.write("Readme.md", "title case");
        c.st.write("README.md", "upper case");
    }) else {
        return;
    };
    let (synced, conflicted) = wait_for_case_conflict(&k);
    let content = k.c.st.read(&synced);
    std::fs::remove_file(k.c.st.path(&conflicted)).unwrap();
    k.c.converge();
    assert!(errors(&k.c).is_empty(), "{:?}", errors(&k.c));
    assert_eq!(names(&k.backing), set(&[&synced]));
    assert_eq!(std::fs::read(k.backing.join(&synced)).unwrap(), content);
    assert_eq!(names(&k.c.st.folder), set(&[&synced]));
    k.c.assert_clean_logs(&[]);
}

#[test]
fn a_case_only_rename_on_syncthing_renames_the_file_on_syncd() {
    let Some(k) = case_cluster(|c| {
        c.st.write("Notes.txt", "notes");
        c.st.write("dir/Inner.txt", "inner");
    }) else {
        return;
    };
    k.c.converge();
    std::fs::rename(k.c.st.path("Notes.txt"), k.c.st.path("NOTES.txt")).unwrap();
    std::fs::rename(k.c.st.path("dir/Inner.txt"), k.c.st.path("dir/inner.TXT")).unwrap();
    k.c.converge();
    assert!(errors(&k.c).is_empty(), "{:?}", errors(&k.c));
    assert_eq!(names(&k.backing), set(&["NOTES.txt", "dir"]));
    assert_eq!(names(&k.backing.join("dir")), set(&["inner.TXT"]));
    assert_eq!(
        std::fs::read(k.backing.join("NOTES.txt")).unwrap(),
        b"notes"
    );
    assert_eq!(names(&k.c.st.folder), set(&["NOTES.txt", "dir"]));
    // Renamed in place, not by deleting and fetching again after a retry.
    assert_eq!(k.c.sd.log_text().matches("case-only rename").count(), 2);
    k.c.assert_clean_logs(&[]);
}

#[test]
fn a_case_only_rename_on_syncd_renames_the_file_on_syncthing() {
    let Some(k) = case_cluster(|c| c.st.write("Notes.txt", "notes")) else {
        return;
    };
    k.c.converge();
    // Through the case-insensitive view, as a user on a Mac would.
    case_only_rename(&k.c.sd.path("Notes.txt"), &k.c.sd.path("NOTES.txt"));
    assert_eq!(names(&k.backing), set(&["NOTES.txt"]));
    k.c.converge();
    assert!(errors(&k.c).is_empty(), "{:?}", errors(&k.c));
    assert_eq!(names(&k.c.st.folder), set(&["NOTES.txt"]));
    assert_eq!(k.c.st.read("NOTES.txt"), b"notes");
    assert_eq!(names(&k.backing), set(&["NOTES.txt"]));
    k.c.assert_clean_logs(&[]);
}

/// The view itself behaves like APFS: names fold, case is preserved, a case-only rename
/// changes the case, creating another case of an existing name finds the existing file.
#[test]
fn the_case_folding_view_is_case_insensitive_and_case_preserving() {
    let dir = tempfile::tempdir().unwrap();
    let (backing, view) = (dir.path().join("b"), dir.path().join("v"));
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&view).unwrap();
    let Some(m) = CaseFoldMount::mount_or_skip(&backing, &view) else {
        return;
    };
    std::fs::create_dir(view.join("Docs")).unwrap();
    std::fs::write(view.join("Docs/Readme.md"), "one").unwrap();
    assert_eq!(std::fs::read(view.join("docs/README.MD")).unwrap(), b"one");
    std::fs::write(view.join("DOCS/readme.md"), "two").unwrap();
    assert_eq!(names(&backing.join("Docs")), set(&["Readme.md"]));
    assert_eq!(
        std::fs::read(backing.join("Docs/Readme.md")).unwrap(),
        b"two"
    );
    assert_eq!(
        std::fs::create_dir(view.join("docs")).unwrap_err().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    case_only_rename(&view.join("Docs/Readme.md"), &view.join("Docs/README.md"));
    assert_eq!(names(&backing.join("Docs")), set(&["README.md"]));
    std::fs::remove_file(view.join("docs/readme.md")).unwrap();
    assert!(names(&backing.join("Docs")).is_empty());
    drop(m);
    // Unmounted: the mount point is an empty directory again.
    assert!(names(&view).is_empty());
}

/// On a case-sensitive filesystem (ext4) with `caseSensitiveFS` off, as Syncthing on Linux:
/// a name that does not exist on disk is no conflict, so both spellings are two files.
#[test]
fn on_a_case_sensitive_disk_both_names_sync_as_two_files() {
    let Some(mut c) = cluster() else {
        return;
    };
    c.st.write("Readme.md", "title case");
    c.st.write("README.md", "upper case");
    c.start();
    c.converge();
    assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    assert_eq!(c.sd.read("Readme.md"), b"title case");
    assert_eq!(c.sd.read("README.md"), b"upper case");
    c.assert_clean_logs(&[]);
}
