//! What the dump's tests share: running a dump in memory from a command line, and writing
//! segments to dump, with `Log` or byte by byte.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::Value;
use streamlog::format::{BatchBuilder, BatchHeader, Compression, Header};
use streamlog::log::{AppendInfo, Log, LogConfig};

use super::{Summary, run};
use crate::{Cli, Command};

/// The first timestamp the tests write.
pub const T: i64 = 1_700_000_000_000;

/// What one run printed and counted.
pub struct Output {
    pub summary: Summary,
    pub out: String,
    pub err: String,
}

/// Runs `streamlog dump FLAGS... PATHS...` with its output in memory.
pub fn dump(flags: &[&str], paths: &[&Path]) -> Output {
    let mut args: Vec<OsString> = ["streamlog", "dump"].map(OsString::from).into();
    args.extend(flags.iter().map(OsString::from));
    args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
    let Ok(Cli {
        command: Command::Dump(options),
    }) = Cli::try_parse_from(args)
    else {
        panic!("not a dump command line: {flags:?}");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = run(&options, &mut out, &mut err).unwrap();
    Output {
        summary,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// One appended batch and what we know about it.
pub struct Appended {
    pub info: AppendInfo,
    pub size: usize,
    pub codec: Compression,
}

fn available_codecs() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_available())
        .collect()
}

/// Writes `batches` batches with `Log` into `dir` (small segments and a small index
/// interval, so there are several segments with several index entries each), cycling
/// through the codecs. Batch 7's timestamps go backwards, so the time index has to
/// carry an earlier batch's maximum past it.
pub fn write_log(dir: &Path, batches: usize) -> Vec<Appended> {
    let config = LogConfig::default()
        .segment_bytes(1024)
        .index_interval_bytes(100);
    let log = Log::open(dir, config).unwrap();
    let codecs = available_codecs();
    let mut appended = Vec::new();
    for i in 0..batches {
        let codec = codecs[i % codecs.len()];
        let mut b = BatchBuilder::new().compression(codec);
        for j in 0..1 + i % 4 {
            let ts = if i == 7 { T } else { T + (i * 10 + j) as i64 };
            let key = format!("key-{i}");
            let value = format!("value {i}.{j}: some text that compresses");
            let headers = [Header::new("j", j.to_string())];
            b.push(ts, Some(key.as_bytes()), Some(value.as_bytes()), &headers)
                .unwrap();
        }
        let mut bytes = b.finish().unwrap();
        let size = bytes.len();
        let info = log.append(&mut bytes).unwrap();
        appended.push(Appended { info, size, codec });
    }
    log.close().unwrap();
    appended
}

/// Writes a segment file `<base>.log` in `dir` from encoded batches, giving them
/// contiguous offsets from `base` (the base offset is outside the CRC).
pub fn write_segment(dir: &Path, base: i64, batches: Vec<Vec<u8>>) -> PathBuf {
    let mut file = Vec::new();
    let mut next = base;
    for mut b in batches {
        let h = BatchHeader::parse(&b).unwrap();
        b[..8].copy_from_slice(&next.to_be_bytes());
        next += i64::from(h.last_offset_delta) + 1;
        file.extend_from_slice(&b);
    }
    let path = dir.join(format!("{base:020}.log"));
    fs::write(&path, file).unwrap();
    path
}

/// The file `<base>.<suffix>` of the segment at `base` in `dir`.
pub fn segment_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// Parses one line of `--json` output: one JSON value and nothing after it.
pub fn parse_json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e} in {line:?}"))
}

/// The value of `key` in the object `v`, which must have it.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or_else(|| panic!("no {key} in {v:?}"))
}

/// The fields of the object `v`, in the order of the text.
pub fn fields(v: &Value) -> Vec<(&str, &Value)> {
    let Value::Object(map) = v else {
        panic!("{v:?} is not an object");
    };
    map.iter().map(|(k, v)| (k.as_str(), v)).collect()
}
