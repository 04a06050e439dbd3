//! Restarting either side resumes with a delta index: after the restart the peer sends only
//! what changed, not its whole index again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Kind, Node, cluster};

const FILES: usize = 2000;
/// A full index of FILES files with distinct contents carries FILES distinct SHA-256 block
/// hashes of 32 bytes each, which no compression shrinks: at least 64,000 bytes. A delta
/// with one changed file stays far below half of that.
const DELTA_BOUND: u64 = (FILES as u64 * 32) / 2;

fn seed(n: &Node) {
    for i in 0..FILES {
        n.write(
            &format!("many/dir-{}/file-{i:05}.txt", i % 20),
            format!("content {i}"),
        );
    }
}

fn restart_resumes_with_a_delta(restarted: Kind) {
    let Some(mut c) = cluster() else { return };
    // The side that is not restarted owns the tree and makes the change while the other is down.
    match restarted {
        Kind::Syncd => seed(&c.st),
        Kind::Syncthing => seed(&c.sd),
    }
    c.start();
    c.converge();
    c.restart(restarted, |up| {
        up.write(
            "many/dir-3/file-00003.txt",
            "changed while the peer was down",
        );
        up.scan();
    });
    c.converge();
    let received = c.in_bytes(restarted);
    eprintln!("after restart the restarted side received {received} bytes (bound {DELTA_BOUND})");
    assert!(
        received < DELTA_BOUND,
        "restarted side received {received} bytes: the peer re-sent its full index"
    );
    c.assert_clean_logs(&[]);
}

#[test]
fn restarted_syncd_gets_only_a_delta_index_from_syncthing() {
    restart_resumes_with_a_delta(Kind::Syncd);
}

#[test]
fn restarted_syncthing_gets_only_a_delta_index_from_syncd() {
    restart_resumes_with_a_delta(Kind::Syncthing);
}
