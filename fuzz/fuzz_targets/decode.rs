//! Arbitrary bytes into the Hello decoder and the message decoder, whole and split: neither may
//! panic, and the decoder may only return messages or typed errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncd_proto::{Decoder, decode_hello};

fuzz_target!(|data: &[u8]| {
    let _ = decode_hello(data);

    let mut whole = Decoder::new();
    whole.feed(data);
    let mut from_whole = Vec::new();
    while let Ok(Some(m)) = whole.next_message() {
        from_whole.push(m);
    }

    // The first byte picks a split size: any split must give the same messages.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut split = Decoder::new();
    let mut from_split = Vec::new();
    let mut failed = false;
    for chunk in data.chunks(step) {
        split.feed(chunk);
        loop {
            match split.next_message() {
                Ok(Some(m)) => from_split.push(m),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    assert_eq!(from_whole, from_split);
});
