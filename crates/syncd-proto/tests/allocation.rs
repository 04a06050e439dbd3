//! A peer that declares a 500 MB message and sends 10 bytes must not make us allocate 500 MB.
//!
//! This test counts every byte the process allocates, which takes a `#[global_allocator]`
//! wrapper; implementing `GlobalAlloc` is `unsafe`, so this file alone allows `unsafe_code`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use syncd_proto::Decoder;

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The only test in this binary, so no other thread allocates while it counts.
#[test]
fn declared_500_mb_with_10_bytes_sent_allocates_under_1_mib() {
    let mut frames: Vec<(&str, Vec<u8>)> = Vec::new();
    // Index, uncompressed, declared 500,000,000 bytes, then 10 body bytes.
    let mut plain = vec![0, 2, 0x08, 0x01];
    plain.extend_from_slice(&500_000_000u32.to_be_bytes());
    plain.extend_from_slice(&[0x0a; 10]);
    frames.push(("plain", plain));
    // Index, LZ4, declared 500,000,000 bytes of body and 500,000,000 uncompressed, 10 sent.
    let mut lz4 = vec![0, 4, 0x08, 0x01, 0x10, 0x01];
    lz4.extend_from_slice(&500_000_000u32.to_be_bytes());
    lz4.extend_from_slice(&500_000_000u32.to_be_bytes());
    lz4.extend_from_slice(&[0xff; 6]);
    frames.push(("lz4", lz4));

    for (what, frame) in frames {
        let before = ALLOCATED.load(Ordering::SeqCst);
        let mut d = Decoder::new();
        d.feed(&frame);
        let r = d.next_message();
        let used = ALLOCATED.load(Ordering::SeqCst) - before;
        assert_eq!(r, Ok(None), "{what}: still waiting for the body");
        assert!(used < 1024 * 1024, "{what}: allocated {used} bytes");
    }
}
