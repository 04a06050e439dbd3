//! Many files are pulled in durability batches (many temp files made durable together, one
//! index transaction per batch): every file arrives whole, with its mode and mtime, and the
//! index records each of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Dir, pair_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_larger_than_one_batch_arrives_whole_and_is_recorded() {
    const FILES: usize = 1500;
    let p = pair_with(|a: &Dir, _: &Dir| {
        for i in 0..FILES {
            let name = format!("tree/d{:02}/f{i:04}.txt", i % 30);
            a.write(&name, format!("file {i} ").repeat(1 + i % 50));
            if i % 7 == 0 {
                a.chmod(&name, 0o600);
            }
        }
    })
    .await;
    p.synced().await;
    common::assert_same(&p.da, &p.db);
    let (sa, sb) = (
        p.a.folder_status(&p.folder).unwrap(),
        p.b.folder_status(&p.folder).unwrap(),
    );
    assert_eq!(sb.local.files, FILES as u64, "{sb:#?}");
    assert_eq!(sb.local, sa.local);
    assert_eq!(sb.need.items(), 0, "{sb:#?}");
}
