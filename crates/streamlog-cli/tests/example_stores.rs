//! The `streamlog` commands against a store written by the README's main example
//! (`examples/quickstart.rs`, included here and run as `cargo run --example quickstart
//! -- --dir DIR` would): what they print agrees with what the example did.

mod common;

use common::ok;

use clap::Parser;

#[path = "../../../examples/quickstart.rs"]
#[allow(dead_code)] // its `main`
mod quickstart;

#[test]
fn the_commands_read_the_quickstart_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let args =
        quickstart::Args::try_parse_from(["quickstart", "--records", "2000", "--dir", d]).unwrap();
    let failed = quickstart::run(&args, &dir).unwrap();
    assert!(failed.is_empty(), "the example's own checks: {failed:?}");

    assert_eq!(ok(&["topics", "list", "--dir", d]), "clicks\n");
    let described = ok(&["topics", "describe", "--dir", d, "clicks"]);
    assert!(described.contains("PartitionCount: 4"), "{described}");
    let end_offsets: i64 = described
        .lines()
        .filter_map(|l| l.split("LogEndOffset: ").nth(1))
        .map(|rest| rest.split('\t').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(end_offsets, 2000, "{described}");

    let all = ok(&["consume", "--dir", d, "clicks", "--from-beginning"]);
    assert_eq!(all.lines().count(), 2000);
    let json = ok(&[
        "consume",
        "--dir",
        d,
        "clicks",
        "--from-beginning",
        "--partition",
        "0",
        "--format",
        "json",
        "--max-messages",
        "1",
    ]);
    let first: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (first["partition"].clone(), first["offset"].clone()),
        (0.into(), 0.into())
    );

    assert_eq!(ok(&["groups", "list", "--dir", d]), "quickstart\n");
    let group = ok(&["groups", "describe", "--dir", d, "quickstart"]);
    let lags: Vec<&str> = group
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(5).unwrap())
        .collect();
    assert_eq!(
        lags,
        ["0", "0", "0", "0"],
        "the example consumed and committed all: {group}"
    );
    assert!(ok(&["verify", d]).starts_with("ok: "));
}
