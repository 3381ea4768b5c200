//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod intercept;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::format::batch::{ATTRIBUTES_OFFSET, CRC_OFFSET, compute_crc};
use streamlog::format::{BatchBuilder, Compression, Record};
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::log::{Log, LogConfig};
use streamlog::{Producer, ProducerRecord, RecordMetadata, Store, StoreConfig, TopicConfig};

/// How long a test waits for something that happens by itself (a thread starting, a
/// background pass, a reader going to sleep) before it calls that a hang: a failure
/// guard, never what makes a test pass.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until `done` holds, checking every millisecond; panics naming `what` after
/// [`HANG`]. For conditions another thread makes true (the test then acts on them, so
/// nothing depends on how long that took).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < HANG, "{what}: not after {HANG:?}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Receives from a channel another thread sends to when it got somewhere; panics naming
/// `what` after [`HANG`].
pub fn recv<T>(rx: &std::sync::mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(HANG)
        .unwrap_or_else(|e| panic!("{what}: nothing after {HANG:?} ({e}); a hang?"))
}

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

/// Appends one uncompressed [`batch`] of `n` records for each tag of `tags`.
pub fn append_batches(log: &Log, tags: std::ops::Range<u64>, n: usize) {
    for tag in tags {
        log.append(&mut batch(tag, n, Compression::None)).unwrap();
    }
}

/// The value of record `i` of batch `tag`.
pub fn value(tag: u64, i: usize) -> String {
    format!(
        "value-{tag}-{i}-{}",
        "x".repeat((tag as usize * 7 + i) % 40)
    )
}

/// A fresh SimFs and a log on it with [`small_config`].
pub fn small_sim_log() -> (SimFs, Log) {
    let fs = SimFs::new();
    let log = open_sim(&fs, small_config()).unwrap();
    (fs, log)
}

/// Opens a log on SimFs.
pub fn open_sim(fs: &SimFs, config: LogConfig) -> streamlog::Result<Log> {
    open_sim_limited(fs, config, None)
}

/// Opens a log on SimFs, through a [`CachingFs`](streamlog::fs::CachingFs) keeping at
/// most `max_open` files open if given.
pub fn open_sim_limited(
    fs: &SimFs,
    config: LogConfig,
    max_open: Option<usize>,
) -> streamlog::Result<Log> {
    let sim = Arc::new(fs.clone()) as Arc<dyn FileSystem>;
    let fs = match max_open {
        Some(n) => Arc::new(streamlog::fs::CachingFs::new(sim, n)) as Arc<dyn FileSystem>,
        None => sim,
    };
    Log::open_with_fs(fs, dir(), config)
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

/// The values of every record of the log (UTF-8, lossy), read as [`read_all`] does.
pub fn read_values(log: &Log) -> streamlog::Result<Vec<String>> {
    Ok(read_all(log)?
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect())
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

/// What a workload observed: the values appended at each offset, and the highest
/// durable offset a completed flush reported.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub appended: Vec<String>,
    pub acked: i64,
    pub closed_cleanly: bool,
}

/// A deterministic workload: appends (every codec, varying sizes) with rolls from small
/// segments, a flush every third append, an explicit roll, a reopen in the middle, and a
/// clean close at the end. Stops at the first error (as a crashed process would) and
/// reports what it saw.
pub fn workload(fs: &SimFs) -> Observed {
    workload_limited(fs, None)
}

/// [`workload`] with the log's files opened through a cache of `max_open` files.
pub fn workload_limited(fs: &SimFs, max_open: Option<usize>) -> Observed {
    let mut obs = Observed::default();
    let _ = workload_inner(fs, &mut obs, max_open);
    obs
}

fn workload_inner(
    fs: &SimFs,
    obs: &mut Observed,
    max_open: Option<usize>,
) -> streamlog::Result<()> {
    let config = small_config();
    let mut log = open_sim_limited(fs, config.clone(), max_open)?;
    for tag in 0..24u64 {
        let n = 1 + (tag as usize % 4);
        let codec = Compression::ALL[tag as usize % 5];
        let info = log.append(&mut batch(tag, n, codec))?;
        assert_eq!(
            info.base_offset as usize,
            obs.appended.len(),
            "offsets are assigned contiguously"
        );
        obs.appended.extend((0..n).map(|i| value(tag, i)));
        if tag % 3 == 2 {
            obs.acked = log.flush()?;
        }
        if tag == 10 {
            log.roll()?;
        }
        if tag == 15 {
            log.close()?;
            log = open_sim_limited(fs, config.clone(), max_open)?;
        }
    }
    log.close()?;
    obs.acked = obs.appended.len() as i64;
    obs.closed_cleanly = true;
    Ok(())
}

/// Checks invariants I1-I4 on a reopened log against what the workload observed.
pub fn check_invariants(log: &Log, obs: &Observed) -> Result<(), String> {
    let end = log.log_end_offset();
    if end < obs.acked {
        return Err(format!(
            "I1: log ends at {end} but {} was acknowledged",
            obs.acked
        ));
    }
    if end as usize > obs.appended.len() {
        return Err(format!(
            "I2: log ends at {end} but only {} records were appended",
            obs.appended.len()
        ));
    }
    let records = read_all(log).map_err(|e| format!("read failed: {e}"))?;
    if records.len() as i64 != end - log.log_start_offset() {
        return Err(format!(
            "I2: read {} records, log claims {}",
            records.len(),
            end
        ));
    }
    for r in &records {
        let got = r
            .value
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if got.as_deref() != Some(obs.appended[r.offset as usize].as_str()) {
            return Err(format!(
                "I3: offset {} holds {got:?}, appended {:?}",
                r.offset, obs.appended[r.offset as usize]
            ));
        }
    }
    // I4: timestamp lookup agrees with a scan.
    for target in [
        1_700_000_000_000i64,
        1_700_000_000_005,
        1_700_000_000_013,
        1_800_000_000_000,
    ] {
        let by_index = log
            .offset_for_timestamp(target)
            .map_err(|e| format!("timestamp lookup: {e}"))?;
        let by_scan = records
            .iter()
            .find(|r| r.timestamp >= target)
            .map(|r| (r.offset, r.timestamp));
        if by_index != by_scan {
            return Err(format!(
                "I4: timestamp {target}: index says {by_index:?}, scan says {by_scan:?}"
            ));
        }
    }
    Ok(())
}

/// The crash images a crash test checks: every unsynced change kept, none kept, and a
/// random mix (seeded with `seed`).
pub fn crash_modes(seed: u64) -> [CrashImage; 3] {
    [
        CrashImage::KeepAll,
        CrashImage::DropAll,
        CrashImage::Random(seed),
    ]
}

/// A store at `/store` on SimFs, maintenance off (tests run passes by hand).
pub fn sim_store(fs: &SimFs) -> streamlog::Result<Store> {
    sim_store_with(fs, StoreConfig::default().background_maintenance(false))
}

/// A store at `/store` on SimFs with the default config (background maintenance on).
pub fn sim_store_maintained(fs: &SimFs) -> streamlog::Result<Store> {
    sim_store_with(fs, StoreConfig::default())
}

/// A store at `/store` on SimFs with `config` (its file system replaced by `fs`).
pub fn sim_store_with(fs: &SimFs, config: StoreConfig) -> streamlog::Result<Store> {
    sim_store_at(fs, "/store", config)
}

/// A store at `dir` on SimFs with `config` (its file system replaced by `fs`).
pub fn sim_store_at(fs: &SimFs, dir: &str, config: StoreConfig) -> streamlog::Result<Store> {
    Store::open_with(
        dir,
        config.file_system(Arc::new(fs.clone()) as Arc<dyn FileSystem>),
    )
}

/// A fresh SimFs, and a store on it (default config, see [`sim_store_maintained`]) with
/// the topic `t` of `partitions` partitions.
pub fn sim_topic_t(partitions: i32) -> (SimFs, Store) {
    let fs = SimFs::new();
    let store = with_topic_t(sim_store_maintained(&fs).unwrap(), partitions);
    (fs, store)
}

/// A store in a fresh temp dir (default config) with the topic `t` of `partitions`
/// partitions; the dir is removed when the returned guard drops.
pub fn temp_topic_t(partitions: i32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = with_topic_t(Store::open(dir.path()).unwrap(), partitions);
    (dir, store)
}

/// `store` with the topic `t` of `partitions` partitions (default config) created.
pub fn with_topic_t(store: Store, partitions: i32) -> Store {
    store
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    store
}

/// The log end offset of `topic`'s partition `partition`.
pub fn log_end(store: &Store, topic: &str, partition: i32) -> i64 {
    store
        .topic(topic)
        .unwrap()
        .partition(partition)
        .unwrap()
        .log_end_offset()
}

/// Sends `record` and waits until it is delivered.
pub fn send_wait(producer: &Producer, record: ProducerRecord<'_>) -> RecordMetadata {
    producer.send(record).unwrap().wait().unwrap()
}

/// Recomputes the CRC-32C of an encoded batch (over the bytes from its attributes on,
/// stored at [`CRC_OFFSET`]) after a test changed its bytes, so that the change gets
/// past the CRC check.
pub fn reseal_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
}

/// A store in `dir` on a [`ManualClock`](streamlog::log::ManualClock) (returned, at
/// 1_700_000_000_000 ms), maintenance run by hand only, other knobs from `config`.
pub fn clocked_store(dir: &Path, config: StoreConfig) -> (Arc<streamlog::log::ManualClock>, Store) {
    let clock = Arc::new(streamlog::log::ManualClock::new(1_700_000_000_000));
    let store = Store::open_with(
        dir,
        config.clock(clock.clone()).background_maintenance(false),
    )
    .unwrap();
    (clock, store)
}
