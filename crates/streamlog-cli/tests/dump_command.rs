//! `streamlog dump` as a user runs it: the built binary, what it prints on stdout and
//! stderr, and its exit statuses (0 ok, 1 problems, 2 usage error).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use streamlog::format::BatchBuilder;
use streamlog::format::batch::MAX_TIMESTAMP_OFFSET;
use streamlog::log::{Log, LogConfig};

const T: i64 = 1_700_000_000_000;

fn streamlog<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .output()
        .expect("run the streamlog binary")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// A partition directory with `batches` batches of two records each, closed cleanly.
fn write_log(dir: &Path, batches: i64) {
    let log = Log::open(dir, LogConfig::default().index_interval_bytes(100)).unwrap();
    for i in 0..batches {
        let mut b = BatchBuilder::new();
        for j in 0..2 {
            let value = format!("value {i}.{j} with a few bytes more");
            b.push(T + i, Some(b"key"), Some(value.as_bytes()), &[])
                .unwrap();
        }
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    log.close().unwrap();
}

#[test]
fn a_good_log_exits_0_and_a_damaged_one_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-0");
    write_log(&dir, 3);

    let o = streamlog(&[
        OsStr::new("dump"),
        OsStr::new("--verify-index"),
        dir.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    let stdout = text(&o.stdout);
    assert!(stdout.starts_with("Dumping "), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("position: "))
            .count(),
        3
    );
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("Summary: files: 1 batches: 3 records: 6 indexEntries: "),
        "{summary}"
    );
    assert!(summary.ends_with(" problems: 0"), "{summary}");

    let o = streamlog(&[OsStr::new("dump"), OsStr::new("--json"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let offsets: Vec<i64> = text(&o.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["offset"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);

    // A flipped bit in the first batch's maxTimestamp, which its CRC covers.
    let segment = dir.join(format!("{:020}.log", 0));
    let mut bytes = fs::read(&segment).unwrap();
    bytes[MAX_TIMESTAMP_OFFSET + 7] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let o = streamlog(&[OsStr::new("dump"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let want = format!("error: {}: corruption at position 0: ", segment.display());
    assert!(text(&o.stderr).starts_with(&want), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(" problems: 1"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for bad in [
        &["dump"][..],
        &["dump", "--jsn", "x.log"],
        &["dump", "--verify-index"],
        &["frobnicate"],
        &[],
    ] {
        let o = streamlog(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("Usage: streamlog"), "{bad:?}");
        assert_eq!(text(&o.stdout), "", "{bad:?}");
    }

    let o = streamlog(&["dump", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = text(&o.stdout);
    for part in ["--json", "--verify-index", "<PATH>...", "Exit status: 0"] {
        assert!(help.contains(part), "no {part} in {help}");
    }
    assert_eq!(streamlog(&["--version"]).status.code(), Some(0));
}

/// `streamlog dump DIR | head`: the reader going away ends the dump quietly, status 0.
#[test]
fn a_closed_stdout_ends_the_dump_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many-0");
    // Far more output than a pipe holds.
    write_log(&dir, 2000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args([OsStr::new("dump"), OsStr::new("--json"), dir.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
}
