//! `.stignore` parsing and matching never panic: input is `.stignore` text, a NUL, then paths
//! (one a line; also the text of an `#include inc`). See `syncd_ignore::fuzzing::stignore`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    syncd_ignore::fuzzing::stignore(data);
});
