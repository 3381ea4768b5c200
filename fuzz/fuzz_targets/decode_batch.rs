//! Arbitrary bytes through the batch decoder: see `streamlog_testkit::fuzz_decode_batch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamlog_testkit::fuzz_decode_batch(data));
