//! The recovery fuzz entry point: open an image, read it, append, crash, reopen, and
//! check invariants I1-I5 (ARCHITECTURE.md) on the way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::Error;
use streamlog::Result;
use streamlog::format::{Batch, BatchBuilder, Compression, Record};
use streamlog::fs::{CrashImage, SimFs};
use streamlog::log::Log;

use crate::decode_batch::decode;
use crate::*;

/// Everything a log holds, read batch by batch from its start to its end.
#[derive(Debug, PartialEq)]
struct Contents {
    start: i64,
    end: i64,
    batches: Vec<Batch>,
    /// The records of each batch.
    records: Vec<Vec<Record>>,
}

impl Contents {
    /// Kafka's `offsetsForTimes` by a full scan: the first record at or after `ts` in a
    /// batch whose maxTimestamp is at least `ts`.
    fn first_at_or_after(&self, ts: i64) -> Option<(i64, i64)> {
        self.batches
            .iter()
            .zip(&self.records)
            .filter(|(b, _)| b.header().max_timestamp >= ts)
            .flat_map(|(_, rs)| rs)
            .find(|r| r.timestamp >= ts && r.offset >= self.start)
            .map(|r| (r.offset, r.timestamp))
    }

    fn timestamp_targets(&self) -> Vec<i64> {
        let mut ts: Vec<i64> = self.records.iter().flatten().map(|r| r.timestamp).collect();
        ts.sort_unstable();
        let mut targets = vec![i64::MIN, -1, 0, FUZZ_CLOCK_MS];
        if let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) {
            targets.extend([lo, ts[ts.len() / 2], hi, hi.saturating_add(1)]);
        }
        targets
    }
}

/// Reads the whole log. Batches must be contiguous from the log start to the log end
/// (asserted); a read or decode error is returned (it must be a typed error).
fn read_contents(log: &Log) -> Result<Contents> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(start <= end, "log start {start} is past the log end {end}");
    let options = fuzz_options();
    let mut contents = Contents {
        start,
        end,
        batches: Vec::new(),
        records: Vec::new(),
    };
    let mut next = start;
    while next < end {
        let batches = log.read(next, READ_BUDGET)?;
        assert!(
            !batches.is_empty(),
            "read({next}) returned nothing below the log end {end}"
        );
        for b in batches {
            assert_eq!(
                b.base_offset(),
                next,
                "batches are not contiguous: {}..={} where offset {next} was due",
                b.base_offset(),
                b.last_offset()
            );
            assert!(
                b.last_offset() < end,
                "batch {next}..={} passes the log end {end}",
                b.last_offset()
            );
            let decoded = decode(&b, &options);
            if let Some(e) = decoded.error {
                return Err(e);
            }
            next = b.last_offset() + 1;
            contents.batches.push(b);
            contents.records.push(decoded.records);
        }
    }
    Ok(contents)
}

/// Offset-for-timestamp lookups agree with a full scan (I4); returns the answers.
fn check_timestamps(log: &Log, contents: &Contents) -> Vec<Option<(i64, i64)>> {
    contents
        .timestamp_targets()
        .into_iter()
        .map(|ts| {
            if ts < 0 {
                // Not a time (Kafka's special offsets): refused, never answered.
                let refused = log.offset_for_timestamp(ts);
                assert!(
                    matches!(refused, Err(streamlog::Error::InvalidArgument { .. })),
                    "offset_for_timestamp({ts}) = {refused:?}"
                );
                return None;
            }
            let got = log.offset_for_timestamp(ts).unwrap_or_else(|e| {
                panic!("offset_for_timestamp({ts}) failed on a readable log: {e}")
            });
            let want = contents.first_at_or_after(ts);
            assert_eq!(
                got, want,
                "I4: offset_for_timestamp({ts}) = {got:?}, a scan says {want:?}"
            );
            got
        })
        .collect()
}

pub(crate) fn open(fs: &SimFs) -> Result<Log> {
    Log::open_with_fs(Arc::new(fs.clone()), FUZZ_DIR, fuzz_config())
}

/// Every file of the partition directory, with its contents.
fn dir_files(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    fs.files(Path::new(FUZZ_DIR))
        .into_iter()
        .filter_map(|(p, _)| fs.read_file(&p).map(|data| (p, data)))
        .collect()
}

/// Fuzz entry point for opening and recovering a partition directory: decodes `data`
/// into a directory image (see the module docs) and opens it on `SimFs`.
///
/// If opening fails, the error must be `Corruption` (on a fault-free `SimFs` nothing
/// else can go wrong), the directory must be byte-for-byte unchanged (no file changed,
/// created or removed), and opening again must fail the same way (I5). If it succeeds:
/// every batch from the log start to the log end is read (contiguous offsets),
/// timestamp lookups must agree with a scan, one batch is appended and flushed and must
/// read back; a power cut right then must recover the same log; after a clean close the
/// log must reopen cleanly with the same end offset and contents. Only if that first
/// read found damage (flushed data an open need not check) may the later
/// opens fail instead, with `Corruption` in the bytes of the image.
///
/// # Panics
/// Only if one of those invariants is violated.
pub fn fuzz_recover_log(data: &[u8]) {
    let fs = decode_image(data);
    let before = dir_files(&fs);
    let log = match open(&fs) {
        Ok(log) => log,
        Err(e) => {
            assert!(
                e.is_corruption(),
                "open of a directory image failed with {e:?}, not Corruption"
            );
            assert!(
                dir_files(&fs) == before,
                "I5: open failed with `{e}` but changed, created or removed files"
            );
            match open(&fs) {
                Ok(_) => panic!("I5: open failed with `{e}`, then succeeded on the same image"),
                Err(e2) => assert!(
                    e2.is_corruption(),
                    "I5: open failed with `{e}`, then with {e2:?}"
                ),
            }
            return;
        }
    };
    exercise(&fs, log, data.len(), &before);
}

/// Whether `e` reports damage to bytes the image held before the log was opened: a
/// `Corruption` naming a file of `image` at a position inside its original contents.
fn is_damage_in(e: &Error, image: &[(PathBuf, Vec<u8>)]) -> bool {
    match e {
        Error::Corruption { path, position, .. } => image
            .iter()
            .any(|(p, data)| p == path && *position < data.len() as u64),
        _ => false,
    }
}

/// The log recovered from a power cut right after a flush holds what the flushed log
/// held (I1, I5).
fn check_power_cut(crashed: Log, bounds: (i64, i64), flushed: &Result<Contents>) {
    assert_eq!(
        (crashed.log_start_offset(), crashed.log_end_offset()),
        bounds,
        "I1: a power cut after a flush lost or invented offsets"
    );
    if let Ok(c1) = flushed {
        let c2 = read_contents(&crashed).unwrap_or_else(|e| {
            panic!("I1: after a power cut the flushed log cannot be read: {e}")
        });
        assert_eq!(&c2, c1, "I1/I5: a power cut after a flush changed the log");
    }
    crashed
        .close()
        .unwrap_or_else(|e| panic!("close of the recovered image failed: {e}"));
}

fn exercise(fs: &SimFs, log: Log, salt: usize, image: &[(PathBuf, Vec<u8>)]) {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    let initial = read_contents(&log);
    // Flushed data the open did not have to check can be damaged: a clean open scans
    // nothing and trusts the segments below the recovery point, so the
    // damage shows at the first read. Once a power cut makes recovery scan such a
    // segment, or an index found damaged at a reopen makes it rebuild one, that open
    // reports the same damage. That is loud corruption (I6), not a recovery that
    // differs (I5): such an open may fail, with `Corruption` in the image's own bytes.
    // A log whose every batch read back fine gets no such allowance.
    let damaged = matches!(&initial, Err(e) if e.is_corruption());
    let names_old_damage = |e: &Error| damaged && is_damage_in(e, image);
    if let Ok(c) = &initial {
        check_timestamps(&log, c);
    }

    // Append one batch and flush it: the log must accept it and read it back.
    let codec = Compression::ALL[salt % Compression::ALL.len()];
    let mut b = BatchBuilder::new().compression(codec);
    let values: Vec<String> = (0..3).map(|i| format!("appended-{salt}-{i}")).collect();
    for (i, v) in values.iter().enumerate() {
        b.push(
            FUZZ_CLOCK_MS + i as i64,
            Some(b"fuzz"),
            Some(v.as_bytes()),
            &[],
        )
        .expect("a small record fits a batch");
    }
    let mut batch = b
        .finish()
        .unwrap_or_else(|e| panic!("encoding with {codec}: {e}"));
    let info = log
        .append(&mut batch)
        .unwrap_or_else(|e| panic!("append to a freshly opened log at {end} failed: {e}"));
    assert_eq!(
        info.base_offset, end,
        "append did not continue at the log end"
    );
    assert_eq!(log.log_end_offset(), end + 3);
    let durable = log
        .flush()
        .unwrap_or_else(|e| panic!("flush on a fault-free SimFs failed: {e}"));
    assert_eq!(durable, end + 3, "flush did not cover the append");
    let appended = log
        .read_records(end, 1 << 20)
        .unwrap_or_else(|e| panic!("I1: the batch just appended at {end} cannot be read: {e}"));
    let got: Vec<(i64, Option<&[u8]>)> = appended
        .iter()
        .map(|r| (r.offset, r.value.as_deref()))
        .collect();
    let want: Vec<(i64, Option<&[u8]>)> = values
        .iter()
        .zip(end..)
        .map(|(v, o)| (o, Some(v.as_bytes())))
        .collect();
    assert_eq!(got, want, "I1/I3: the appended batch reads back wrong");

    let after = read_contents(&log);
    match (&initial, &after) {
        (Ok(c0), Ok(c1)) => {
            assert_eq!(
                c1.batches[..c1.batches.len() - 1],
                c0.batches[..],
                "I2: the append changed earlier batches"
            );
            assert_eq!(c1.start, start);
        }
        (Ok(_), Err(e)) => panic!("the log was readable before the append, not after: {e}"),
        _ => {}
    }
    let answers = after.as_ref().ok().map(|c| check_timestamps(&log, c));

    // I1/I5: a power cut now (everything flushed) recovers the same log.
    match open(&fs.crash_image(CrashImage::DropAll)) {
        Err(e) if names_old_damage(&e) => {}
        Err(e) => panic!("I5: the image of a power cut after a flush does not open: {e}"),
        Ok(crashed) => check_power_cut(crashed, (start, end + 3), &after),
    }

    // I5: a clean close reopens cleanly to the same log.
    log.close()
        .unwrap_or_else(|e| panic!("close on a fault-free SimFs failed: {e}"));
    let reopened = match open(fs) {
        Err(e) if names_old_damage(&e) => return,
        Err(e) => panic!("I5: reopen after a clean close failed: {e}"),
        Ok(log) => log,
    };
    assert!(
        reopened.recovery_report().clean_shutdown,
        "a clean close did not give a clean reopen: {:?}",
        reopened.recovery_report()
    );
    assert_eq!(
        (reopened.log_start_offset(), reopened.log_end_offset()),
        (start, end + 3),
        "I5: the reopened log has other bounds"
    );
    let again = read_contents(&reopened);
    match (&after, &again) {
        (Ok(c1), Ok(c2)) => assert_eq!(c2, c1, "I5: the reopened log holds other batches"),
        (Ok(_), Err(e)) => panic!("I5: readable before the close, not after the reopen: {e}"),
        _ => {}
    }
    if let (Some(a1), Ok(c2)) = (answers, &again) {
        assert_eq!(
            check_timestamps(&reopened, c2),
            a1,
            "I5: timestamp lookups changed"
        );
    }
    reopened
        .close()
        .unwrap_or_else(|e| panic!("close of the reopened log failed: {e}"));
}

// ------------------------------------------------------------------------------------
// Test hooks
// ------------------------------------------------------------------------------------
