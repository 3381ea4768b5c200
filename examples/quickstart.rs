//! The README's main example: writes a partition log with every codec in a fresh
//! directory, flushes, closes, reopens (showing the recovery report), reads everything
//! back, verifies it, and prints what it did.
//!
//! ```text
//! cargo run --release --example quickstart -- [--dir DIR] [--records N]
//! ```
//! Without `--dir` a fresh directory under the system temp dir is used (and kept, so the
//! files can be inspected with `cargo run --example dump_log -- DIR`).

use std::error::Error;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use streamlog::format::{BatchBuilder, Compression, Header};
use streamlog::log::{Log, LogConfig};

struct Args {
    dir: PathBuf,
    records: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut dir = None;
    let mut records = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(args.next().ok_or("--dir needs a path")?)),
            "--records" => {
                records = args
                    .next()
                    .ok_or("--records needs a number")?
                    .parse()
                    .map_err(|e| format!("--records: {e}"))?;
                if records == 0 {
                    return Err("--records must be at least 1".into());
                }
            }
            "-h" | "--help" => {
                println!("usage: quickstart [--dir DIR] [--records N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    let dir = dir.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!(
            "streamlog-quickstart-{}-{nanos}",
            std::process::id()
        ))
    });
    Ok(Args { dir, records })
}

fn value_for(i: usize) -> String {
    format!(
        r#"{{"user":"user-{}","page":"/item/{}","seq":{i}}}"#,
        i % 1000,
        i % 97
    )
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args().map_err(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })?;
    let partition_dir = args.dir.join("clicks-0");
    println!(
        "streamlog quickstart: partition log in {}",
        partition_dir.display()
    );
    let config = LogConfig::default().segment_bytes(4 << 20);
    let log = Log::open(&partition_dir, config.clone())?;
    if log.log_end_offset() != 0 {
        return Err(format!(
            "{} already holds a log; pass a fresh --dir",
            partition_dir.display()
        )
        .into());
    }

    // Produce: batches of 500 records, cycling through every codec.
    let start = Instant::now();
    let mut written_bytes = 0u64;
    let mut per_codec = [0usize; 5];
    let base_ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let mut i = 0;
    let mut batch_no = 0;
    while i < args.records {
        let codec = Compression::ALL[batch_no % 5];
        let mut b = BatchBuilder::new().compression(codec);
        let n = 500.min(args.records - i);
        for j in i..i + n {
            let key = format!("user-{}", j % 1000);
            let headers = [Header::new("source", "quickstart")];
            b.push(
                base_ts + j as i64,
                Some(key.as_bytes()),
                Some(value_for(j).as_bytes()),
                &headers,
            )?;
        }
        let mut bytes = b.finish()?;
        written_bytes += bytes.len() as u64;
        let info = log.append(&mut bytes)?;
        assert_eq!(info.base_offset, i as i64);
        per_codec[batch_no % 5] += n;
        i += n;
        batch_no += 1;
    }
    let durable = log.flush()?;
    let elapsed = start.elapsed();
    println!(
        "appended {} records in {batch_no} batches ({:.1} MB on disk) in {:.2?}: {:.0} records/s; flushed, durable offset {durable}",
        args.records,
        written_bytes as f64 / 1e6,
        elapsed,
        args.records as f64 / elapsed.as_secs_f64()
    );
    for (codec, n) in Compression::ALL.iter().zip(per_codec) {
        println!("  {codec:>6}: {n} records");
    }
    let segments = log.segments().len();
    log.close()?;
    println!("closed cleanly ({segments} segments)");

    // Reopen: a clean shutdown scans nothing.
    let log = Log::open(&partition_dir, config)?;
    let r = log.recovery_report();
    println!(
        "reopened: clean shutdown = {}, segments scanned = {}, log end offset = {}",
        r.clean_shutdown,
        r.segments_scanned,
        log.log_end_offset()
    );

    // Consume everything back and verify every value.
    let start = Instant::now();
    let mut offset = log.log_start_offset();
    let mut read = 0usize;
    while offset < log.log_end_offset() {
        for rec in log.read_records(offset, 1 << 20)? {
            let expected = value_for(rec.offset as usize);
            if rec.value.as_deref() != Some(expected.as_bytes()) {
                return Err(format!("offset {} read back wrong bytes", rec.offset).into());
            }
            offset = rec.offset + 1;
            read += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "read back and verified {read} records in {:.2?}: {:.0} records/s",
        elapsed,
        read as f64 / elapsed.as_secs_f64()
    );
    let target = base_ts + (args.records / 2) as i64;
    if let Some((offset, ts)) = log.offset_for_timestamp(target)? {
        println!("first record at or after timestamp {target}: offset {offset} (timestamp {ts})");
    }
    log.close()?;
    println!(
        "done; inspect the files with: cargo run --example dump_log -- {}",
        partition_dir.display()
    );
    Ok(())
}
