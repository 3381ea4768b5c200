//! Open and recover an arbitrary partition-directory image on SimFs: see
//! `streamlog_testkit::fuzz_recover_log` for the image encoding and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamlog_testkit::fuzz_recover_log(data));
