//! A temp file left by an earlier attempt is reused: its verified pieces are not fetched again,
//! and pieces that do not verify are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Dir, pair_with, random_bytes};

const SIZE: usize = 16 * 1024 * 1024;

fn received(e: &syncd_engine::EngineHandle) -> u64 {
    e.connections().iter().map(|c| c.in_bytes_total).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temp_file_left_behind_is_reused_and_only_the_missing_part_is_fetched() {
    let data = random_bytes(SIZE, 0xfeed);
    let temp = syncd_types::names::temp_name("big.bin");
    // b holds the first three quarters of the file in its temp file (as a killed pull leaves
    // it), with one corrupted byte in the middle, which must not be trusted.
    let mut partial = data[..SIZE / 4 * 3].to_vec();
    partial[SIZE / 2] ^= 0xff;
    let p = pair_with(|a: &Dir, b: &Dir| {
        a.write("dir/big.bin", &data);
        b.write(&format!("dir/{temp}"), &partial);
    })
    .await;
    p.synced().await;
    assert!(p.db.read("dir/big.bin") == data, "content differs");
    assert!(
        !p.db.exists(&format!("dir/{temp}")),
        "temp file left behind"
    );
    let moved = received(&p.b);
    // A quarter is missing, plus the chunk with the bad byte (chunks are at most 256 KiB).
    assert!(
        moved < (SIZE / 4 + 2 * 1024 * 1024) as u64,
        "b received {moved} bytes for a file it held three quarters of"
    );
    assert!(
        moved > (SIZE / 4) as u64,
        "b received only {moved} bytes; the missing quarter must cross the wire"
    );
    common::assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_temp_files_do_not_keep_a_deleted_directory_or_file_alive() {
    let p = pair_with(|a: &Dir, _: &Dir| {
        a.write("gone/inner.txt", "x");
        a.write("file.txt", "y");
    })
    .await;
    p.synced().await;
    // Temp files a failed pull would leave: one of a file never finished, one of file.txt.
    let (t1, t2) = (
        format!(
            "gone/{}",
            syncd_types::names::temp_name("never-finished.bin")
        ),
        syncd_types::names::temp_name("file.txt"),
    );
    p.db.write(&t1, "partial");
    p.db.write(&t2, "partial");
    std::fs::remove_dir_all(p.da.path("gone")).unwrap();
    std::fs::remove_file(p.da.path("file.txt")).unwrap();
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    assert!(!p.db.exists("gone"), "{:?}", p.db.entries());
    assert!(!p.db.exists("file.txt"));
    assert!(!p.db.exists(&t2), "the deleted file's temp file is left");
    common::assert_same(&p.da, &p.db);
}

/// Small files are pulled in groups (one blocking call prepares a group, one writes it): a
/// group reuses complete temp files too, and refetches a corrupted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_reuse_their_temp_files_and_refetch_corrupted_ones() {
    const FILES: usize = 20;
    const LEN: usize = 100_000;
    let files: Vec<Vec<u8>> = (0..FILES)
        .map(|i| random_bytes(LEN, 0x5eed + i as u64))
        .collect();
    let p = pair_with(|a: &Dir, b: &Dir| {
        for (i, data) in files.iter().enumerate() {
            a.write(&format!("s/f{i}.bin"), data);
            let temp = format!("s/{}", syncd_types::names::temp_name(&format!("f{i}.bin")));
            match i {
                // Complete and intact: nothing to fetch.
                0..10 => b.write(&temp, data),
                // Complete but with a flipped byte: must not be trusted.
                10..12 => {
                    let mut bad = data.clone();
                    bad[LEN / 2] ^= 0xff;
                    b.write(&temp, &bad);
                }
                _ => {}
            }
        }
    })
    .await;
    p.synced().await;
    for (i, data) in files.iter().enumerate() {
        let name = format!("s/f{i}.bin");
        assert!(p.db.read(&name) == *data, "{name}: content differs");
        let temp = format!("s/{}", syncd_types::names::temp_name(&format!("f{i}.bin")));
        assert!(!p.db.exists(&temp), "{temp} left behind");
    }
    let moved = received(&p.b);
    assert!(
        moved > (8 * LEN) as u64,
        "b received only {moved} bytes; 8 files it had nothing of must cross the wire"
    );
    assert!(
        moved < (10 * LEN + 150_000) as u64,
        "b received {moved} bytes; the 10 intact temp files were fetched again"
    );
    common::assert_same(&p.da, &p.db);
}
