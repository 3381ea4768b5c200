//! streamlog against the embedded peers, same records, same run (issue 15, item 1).
//!
//! Workload: `RECORDS` records with 15-byte keys and 100-byte values (half random,
//! half text), one partition or log, in a fresh temp directory per measurement. Rows:
//!
//! | row | what is timed |
//! |---|---|
//! | `streamlog send` | `Producer::send` of every record (`Acks::Leader`, default batching), then `flush()` |
//! | `streamlog send_batch` | `Producer::send_batch` of 1000 records per call, then `flush()` |
//! | `streamlog Log append` | `BatchBuilder` batches of 16 KiB appended with `Log::append_encoded` |
//! | `streamlog consumer` | a `Consumer` polling every record (touching each key and value) |
//! | `commitlog append` | `commitlog` 0.2: `MessageBuf`s of 16 KiB (key length, key, value per message) appended |
//! | `commitlog read` | reading every message back (`read` of 1 MiB at a time), touching each payload |
//! | `SQLite append` | `rusqlite`, WAL, `synchronous=OFF`, `INSERT` of (offset, key, value) in 1000-row transactions |
//! | `SQLite read` | `SELECT key, value ORDER BY offset`, touching each row |
//!
//! Nothing is fsync'd by any row (streamlog `Acks::Leader`, commitlog without `flush`,
//! SQLite `synchronous=OFF`): the rows compare the write paths, not the disk.
//!
//! Each round runs every row once, the order rotated from round to round; the table
//! gives each row's median over the rounds and the ratios the issue sets targets for.
//! Run with `cargo bench -p streamlog-peers` (`ROUNDS` and `RECORDS` can be set in the
//! environment; defaults 5 and 2000000).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use rusqlite::Connection;
use streamlog::format::BatchBuilder;
use streamlog::log::{Log, LogConfig};
use streamlog::{
    ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Store, TopicConfig, TopicPartition,
};

const TOPIC: &str = "bench";
const BATCH_BYTES: usize = 16 * 1024;
const SEND_BATCH: usize = 1000;
const SQL_TXN: usize = 1000;

type Records = Vec<(Bytes, Bytes)>;

/// The standard records: 15-byte keys, 100-byte values, half random, half text.
fn workload(n: usize) -> Records {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let key = format!("user-{:010}", i % 100_000);
            let mut value = Vec::with_capacity(100);
            while value.len() < 50 {
                value.extend_from_slice(&next().to_le_bytes());
            }
            value.truncate(50);
            let text = format!(r#"{{"page":"/item/{i}","ref":"search","n":{i:>8}}}"#);
            value.extend(text.bytes().cycle().take(50));
            (Bytes::from(key), Bytes::from(value))
        })
        .collect()
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("streamlog-peers")
        .tempdir()
        .expect("tempdir")
}

fn store(dir: &Path) -> Store {
    let store = Store::open(dir).expect("open");
    store
        .create_topic(TOPIC, TopicConfig::default())
        .expect("create topic");
    store
}

fn streamlog_send(dir: &Path, records: &Records, batched: bool) -> Duration {
    let store = store(dir);
    let producer = store.producer(ProducerConfig::default()).expect("producer");
    let start = Instant::now();
    if batched {
        send_batches(&producer, records);
    } else {
        for (k, v) in records {
            drop(
                producer
                    .send(ProducerRecord::new(TOPIC).key(k).value(v))
                    .expect("send"),
            );
        }
    }
    producer.flush().expect("flush");
    let took = start.elapsed();
    let end = store
        .topic(TOPIC)
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    assert_eq!(end, records.len() as i64);
    took
}

fn streamlog_log_append(dir: &Path, records: &Records) -> Duration {
    let log = Log::open(dir, LogConfig::default()).expect("open log");
    let start = Instant::now();
    let builder = || BatchBuilder::with_capacity(BATCH_BYTES + 1024);
    let mut b = builder();
    for (i, (k, v)) in records.iter().enumerate() {
        b.push(1_700_000_000_000 + i as i64, Some(k), Some(v), &[])
            .expect("push");
        if b.uncompressed_size() >= BATCH_BYTES {
            let full = std::mem::replace(&mut b, builder());
            log.append_encoded(&mut full.build().expect("build"))
                .expect("append");
        }
    }
    if !b.is_empty() {
        log.append_encoded(&mut b.build().expect("build"))
            .expect("append");
    }
    let took = start.elapsed();
    assert_eq!(log.log_end_offset(), records.len() as i64);
    took
}

/// Fills a store for the consumer row (not timed).
fn streamlog_prepare_read(dir: &Path, records: &Records) -> Store {
    let store = store(dir);
    streamlog_send_into(&store, records);
    store
}

fn streamlog_send_into(store: &Store, records: &Records) {
    let producer = store.producer(ProducerConfig::default()).expect("producer");
    send_batches(&producer, records);
    producer.close().expect("close");
}

/// `send_batch` of `SEND_BATCH` records per call (building the records included).
fn send_batches(producer: &streamlog::Producer, records: &Records) {
    for chunk in records.chunks(SEND_BATCH) {
        let batch: Vec<ProducerRecord> = chunk
            .iter()
            .map(|(k, v)| ProducerRecord::new(TOPIC).key(k).value(v))
            .collect();
        drop(producer.send_batch(&batch).expect("send_batch"));
    }
}

fn streamlog_consume(store: &Store, n: usize) -> Duration {
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .expect("consumer");
    c.assign(&[TopicPartition::new(TOPIC, 0)]).expect("assign");
    let start = Instant::now();
    let (mut seen, mut bytes) = (0usize, 0usize);
    while seen < n {
        let records = c.poll(Duration::from_secs(1)).expect("poll");
        for r in &records {
            bytes += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let took = start.elapsed();
    std::hint::black_box(bytes);
    assert_eq!(seen, n);
    took
}

/// A commitlog message: key length (u16), key, value.
fn message(k: &[u8], v: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(v);
}

fn commitlog_append(dir: &Path, records: &Records) -> (Duration, CommitLog) {
    let mut opts = LogOptions::new(dir);
    opts.segment_max_bytes(1 << 30);
    let mut log = CommitLog::new(opts).expect("commitlog");
    let start = Instant::now();
    let mut buf = MessageBuf::default();
    let mut size = 0;
    let mut m = Vec::with_capacity(128);
    for (k, v) in records {
        message(k, v, &mut m);
        buf.push(&m).expect("push");
        size += m.len();
        if size >= BATCH_BYTES {
            log.append(&mut buf).expect("append");
            buf = MessageBuf::default();
            size = 0;
        }
    }
    if size > 0 {
        log.append(&mut buf).expect("append");
    }
    let took = start.elapsed();
    assert_eq!(log.next_offset(), records.len() as u64);
    (took, log)
}

fn commitlog_read(log: &CommitLog, n: usize) -> Duration {
    let start = Instant::now();
    let (mut offset, mut bytes) = (0u64, 0usize);
    while (offset as usize) < n {
        let msgs = log
            .read(offset, ReadLimit::max_bytes(1 << 20))
            .expect("read");
        for m in msgs.iter() {
            let p = m.payload();
            let klen = u16::from_be_bytes([p[0], p[1]]) as usize;
            bytes += klen + (p.len() - 2 - klen);
            offset = m.offset() + 1;
        }
    }
    let took = start.elapsed();
    std::hint::black_box(bytes);
    took
}

fn sqlite_open(dir: &Path) -> Connection {
    let db = Connection::open(dir.join("bench.db")).expect("sqlite");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    db.pragma_update(None, "synchronous", "OFF")
        .expect("sync off");
    db.execute(
        "CREATE TABLE IF NOT EXISTS log (offset INTEGER PRIMARY KEY, key BLOB, value BLOB)",
        [],
    )
    .expect("table");
    db
}

fn sqlite_append(dir: &Path, records: &Records) -> (Duration, Connection) {
    let mut db = sqlite_open(dir);
    let start = Instant::now();
    for (c, chunk) in records.chunks(SQL_TXN).enumerate() {
        let tx = db.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO log (offset, key, value) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for (i, (k, v)) in chunk.iter().enumerate() {
                let offset = (c * SQL_TXN + i) as i64;
                insert
                    .execute(rusqlite::params![offset, &k[..], &v[..]])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    (start.elapsed(), db)
}

fn sqlite_read(db: &Connection, n: usize) -> Duration {
    let start = Instant::now();
    let mut stmt = db
        .prepare("SELECT key, value FROM log ORDER BY offset")
        .expect("select");
    let mut rows = stmt.query([]).expect("query");
    let (mut seen, mut bytes) = (0usize, 0usize);
    while let Some(row) = rows.next().expect("row") {
        let k = row.get_ref(0).expect("key").as_blob().expect("blob");
        let v = row.get_ref(1).expect("value").as_blob().expect("blob");
        bytes += k.len() + v.len();
        seen += 1;
    }
    let took = start.elapsed();
    std::hint::black_box(bytes);
    assert_eq!(seen, n);
    took
}

const ROWS: [&str; 8] = [
    "streamlog send",
    "streamlog send_batch",
    "streamlog Log append",
    "streamlog consumer",
    "commitlog append",
    "commitlog read",
    "SQLite append",
    "SQLite read",
];

/// Runs row `row` once on fresh files; returns its time.
fn run_row(row: usize, records: &Records) -> Duration {
    let d = tmp();
    let dir = d.path();
    let n = records.len();
    match row {
        0 => streamlog_send(dir, records, false),
        1 => streamlog_send(dir, records, true),
        2 => streamlog_log_append(dir, records),
        3 => streamlog_consume(&streamlog_prepare_read(dir, records), n),
        4 => commitlog_append(dir, records).0,
        5 => commitlog_read(&commitlog_append(dir, records).1, n),
        6 => sqlite_append(dir, records).0,
        _ => sqlite_read(&sqlite_append(dir, records).1, n),
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported (every row is
    // needed for the ratios).
    let rounds = env_or("ROUNDS", 5).max(1);
    let n = env_or("RECORDS", 2_000_000).max(1);
    let records = workload(n);
    println!("{n} records (15-byte keys, 100-byte values), {rounds} interleaved rounds");
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ROWS.len()];
    for round in 0..rounds {
        for i in 0..ROWS.len() {
            let row = (i + round) % ROWS.len();
            times[row].push(run_row(row, &records));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let median = |row: usize| {
        let mut t = times[row].clone();
        t.sort();
        t[t.len() / 2]
    };
    let rate = |row: usize| n as f64 / median(row).as_secs_f64();
    println!("\n{:<24} {:>14} {:>12}", "row", "records/s", "median");
    for (row, name) in ROWS.iter().enumerate() {
        println!("{name:<24} {:>14.0} {:>12.1?}", rate(row), median(row));
    }
    println!("\n{:<48} {:>8} {:>8}", "ratio", "measured", "target");
    let check = |label: &str, ours: usize, peer: usize, target: f64| {
        let ratio = rate(ours) / rate(peer);
        let verdict = if ratio >= target { "met" } else { "NOT met" };
        println!("{label:<48} {ratio:>7.2}x {:>7.1}x {verdict}", target);
    };
    check("send / commitlog append", 0, 4, 1.2);
    check("send_batch / commitlog append", 1, 4, 1.5);
    check("Log append / commitlog append", 2, 4, 1.0);
    check("consumer / commitlog read", 3, 5, 1.2);
    for (ours, name) in [(0, "send"), (1, "send_batch"), (2, "Log append")] {
        check(&format!("{name} / SQLite append"), ours, 6, 2.0);
    }
    check("consumer / SQLite read", 3, 7, 2.0);
}
