//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::format::{BatchBuilder, Compression, Record};
use streamlog::fs::{FileSystem, SimFs};
use streamlog::log::{Log, LogConfig};

/// The partition directory used on SimFs.
pub fn dir() -> PathBuf {
    PathBuf::from("/data/clicks-0")
}

/// A small-segment config so tests roll often.
pub fn small_config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .segment_index_bytes(240)
        .index_interval_bytes(256)
}

/// A batch of `n` records whose values encode (tag, i), so any record can be checked.
pub fn batch(tag: u64, n: usize, codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new().compression(codec);
    for i in 0..n {
        let key = format!("k{}", (tag as usize + i) % 7);
        b.push(
            1_700_000_000_000 + tag as i64,
            Some(key.as_bytes()),
            Some(value(tag, i).as_bytes()),
            &[],
        )
        .unwrap();
    }
    b.finish().unwrap()
}

/// The value of record `i` of batch `tag`.
pub fn value(tag: u64, i: usize) -> String {
    format!(
        "value-{tag}-{i}-{}",
        "x".repeat((tag as usize * 7 + i) % 40)
    )
}

/// Opens a log on SimFs.
pub fn open_sim(fs: &SimFs, config: LogConfig) -> streamlog::Result<Log> {
    Log::open_with_fs(Arc::new(fs.clone()) as Arc<dyn FileSystem>, dir(), config)
}

/// Every record of the log, read from the start in small steps.
pub fn read_all(log: &Log) -> streamlog::Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let recs = log.read_records(offset, 700)?;
        assert!(
            !recs.is_empty(),
            "read at {offset} returned nothing before the end"
        );
        for r in recs {
            assert_eq!(r.offset, offset, "offsets must be contiguous");
            offset += 1;
            out.push(r);
        }
    }
    Ok(out)
}

/// Files below `dir` on the real file system, for debugging output.
pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
