//! A need set larger than one pull pass (the puller handles at most a few thousand items per
//! pass, to bound its memory) is pulled completely: each pass that stops early starts the next.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Dir, assert_same, pair_with};

/// More items than one pass takes (8,000 at the time of writing), spread over directories.
const FILES: usize = 8_500;
const PER_DIR: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_need_set_larger_than_one_pass_is_pulled_completely() {
    let p = pair_with(|a: &Dir, _: &Dir| {
        for i in 0..FILES {
            a.write(&format!("d{:02}/f{i:05}", i / PER_DIR), "");
        }
    })
    .await;
    // Generous: thousands of fsyncs on a shared, loaded machine.
    let wait = Duration::from_secs(600);
    for e in [&p.b, &p.a] {
        e.wait_until_synced(&p.folder, wait).await.unwrap();
    }
    assert_eq!(p.db.entries().len(), FILES + FILES / PER_DIR);
    assert_same(&p.da, &p.db);
}
