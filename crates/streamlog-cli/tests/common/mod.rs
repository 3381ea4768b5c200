//! Running the built `streamlog` binary, for the store command tests.

use std::process::{Command, Output};

/// Runs `streamlog ARGS...` to completion.
pub fn streamlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .output()
        .expect("run the streamlog binary")
}

/// Runs `streamlog ARGS...`, which must succeed; its stdout.
#[allow(dead_code)] // not every test file checks output this way
pub fn ok(args: &[&str]) -> String {
    let out = streamlog(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
