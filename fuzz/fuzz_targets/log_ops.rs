//! Run a sequence of operations on a log on SimFs against a model: see
//! `streamlog_testkit::fuzz_log_ops` for the input encoding and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamlog_testkit::fuzz_log_ops(data));
