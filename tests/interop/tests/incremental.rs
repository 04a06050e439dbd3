//! Incremental changes on either side (modify, append, truncate, delete, rename a file and a
//! directory) reach the other side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use common::{Node, cluster};

fn seed(n: &Node) {
    n.write("modify.txt", "original content");
    n.write("append.log", "line 1\n");
    n.write("truncate.bin", vec![9u8; 300_000]);
    n.write("delete-me.txt", "bye");
    n.write("old-name.txt", "renamed file");
    n.write("old-dir/inner/x.txt", "in a renamed dir");
    n.write("old-dir/y.txt", "also");
}

fn change(n: &Node) {
    n.write("modify.txt", "changed content, longer than before");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(n.path("append.log"))
        .unwrap();
    f.write_all(b"line 2\n").unwrap();
    drop(f);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(n.path("truncate.bin"))
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    std::fs::remove_file(n.path("delete-me.txt")).unwrap();
    std::fs::rename(n.path("old-name.txt"), n.path("new-name.txt")).unwrap();
    std::fs::rename(n.path("old-dir"), n.path("new-dir")).unwrap();
}

fn assert_changed(n: &Node) {
    assert_eq!(n.read("modify.txt"), b"changed content, longer than before");
    assert_eq!(n.read("append.log"), b"line 1\nline 2\n");
    assert_eq!(n.read("truncate.bin"), vec![9u8; 1000]);
    assert!(!n.exists("delete-me.txt"));
    assert!(!n.exists("old-name.txt") && !n.exists("old-dir"));
    assert_eq!(n.read("new-name.txt"), b"renamed file");
    assert_eq!(n.read("new-dir/inner/x.txt"), b"in a renamed dir");
}

#[test]
fn changes_made_on_syncthing_reach_syncd() {
    let Some(mut c) = cluster() else { return };
    seed(&c.st);
    c.start();
    c.converge();
    change(&c.st);
    c.converge();
    assert_changed(&c.sd);
    c.assert_clean_logs(&[]);
}

#[test]
fn changes_made_on_syncd_reach_syncthing() {
    let Some(mut c) = cluster() else { return };
    seed(&c.sd);
    c.start();
    c.converge();
    change(&c.sd);
    c.converge();
    assert_changed(&c.st);
    c.assert_clean_logs(&[]);
}
