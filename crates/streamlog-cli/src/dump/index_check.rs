//! `--verify-index`: a segment's `.index` and `.timeindex` compared with its batches.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use streamlog::Error;
use streamlog::log::{OffsetEntry, TimeEntry};

use super::{BatchInfo, Dumper};

/// Bytes per `.index` entry: u32 relative offset, u32 position.
const OFFSET_ENTRY_BYTES: usize = 2 * size_of::<u32>();
/// Bytes per `.timeindex` entry: i64 timestamp, u32 relative offset.
const TIME_ENTRY_BYTES: usize = size_of::<i64>() + size_of::<u32>();

impl<O: Write, E: Write> Dumper<'_, O, E> {
    /// Reads an index file; `None` (after a note) if it does not exist, or (after a
    /// problem) if it is no regular file (a FIFO's read would wait for a writer).
    fn read_index(&mut self, path: &Path, missing: &str) -> io::Result<Option<Vec<u8>>> {
        if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            self.problem(Error::InvalidArgument {
                name: "index file",
                reason: format!("{} is not a regular file", path.display()),
            })?;
            return Ok(None);
        }
        match fs::read(path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.note(format_args!("{}: missing ({missing})", path.display()))?;
                Ok(None)
            }
            Err(source) => {
                self.problem(Error::Io {
                    context: format!("read {}", path.display()),
                    source,
                })?;
                Ok(None)
            }
        }
    }

    /// Reports a partial entry at the end, and returns how many entries are real
    /// (up to and including the last one that is not all zero).
    fn real_entries<const N: usize>(&mut self, path: &Path, data: &[u8]) -> io::Result<usize> {
        let (entries, partial) = data.as_chunks::<N>();
        if !partial.is_empty() {
            let reason = format!(
                "the file is {} bytes, not a multiple of the {N}-byte entry size",
                data.len()
            );
            self.corruption(path, (data.len() - partial.len()) as u64, reason)?;
        }
        Ok(entries
            .iter()
            .rposition(|e| e.iter().any(|&b| b != 0))
            .map_or(0, |last| last + 1))
    }

    /// The verdict line for one index file.
    fn index_verdict(
        &mut self,
        path: &Path,
        checked: usize,
        mismatches: u64,
        untrimmed: usize,
    ) -> io::Result<()> {
        let verdict = if mismatches == 0 {
            format!("{checked} entries match the log")
        } else {
            format!("{checked} entries, {mismatches} do not match the log")
        };
        let trailer = if untrimmed > 0 {
            format!("; untrimmed: {untrimmed} all-zero preallocated entries after the last one")
        } else {
            String::new()
        };
        self.note(format_args!("{}: {verdict}{trailer}", path.display()))
    }

    /// Checks `.index` entries against the batches of the segment at `base`.
    pub(super) fn verify_offset_index(
        &mut self,
        path: &Path,
        base: i64,
        batches: &[BatchInfo],
    ) -> io::Result<()> {
        let Some(data) = self.read_index(path, "Kafka rebuilds a missing .index")? else {
            return Ok(());
        };
        let real = self.real_entries::<OFFSET_ENTRY_BYTES>(path, &data)?;
        let (entries, _) = data.as_chunks::<OFFSET_ENTRY_BYTES>();
        let entries = entries.get(..real).unwrap_or_default();
        // Kafka's rule: each entry at the start of a batch ending at or before the
        // entry's offset, which is in the segment. (Before 3.8 Kafka wrote one entry
        // per append: its last offset at its first batch's position.)
        let last_offset_at: HashMap<u64, i64> = batches
            .iter()
            .map(|b| (b.position, b.last_offset))
            .collect();
        let segment_last = batches.last().map_or(base - 1, |b| b.last_offset);
        let mut mismatches = 0;
        let mut previous: Option<OffsetEntry> = None;
        for (i, &[o0, o1, o2, o3, p0, p1, p2, p3]) in entries.iter().enumerate() {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes([o0, o1, o2, o3]),
                position: u32::from_be_bytes([p0, p1, p2, p3]),
            };
            let offset = base.saturating_add(i64::from(e.relative_offset));
            let describe = format!("entry {i} (offset {offset}, position {})", e.position);
            let mut reasons = Vec::new();
            if let Some(p) = previous
                && (e.relative_offset <= p.relative_offset || e.position <= p.position)
            {
                reasons.push(format!(
                    "{describe} does not follow entry {} (offset {}, position {}): entries \
                     must be strictly increasing",
                    i - 1,
                    base.saturating_add(i64::from(p.relative_offset)),
                    p.position
                ));
            }
            match last_offset_at.get(&u64::from(e.position)) {
                Some(&last) if last <= offset && offset <= segment_last => {}
                Some(&last) => reasons.push(format!(
                    "{describe}: the batch at that position ends at offset {last}, and \
                     the segment at offset {segment_last}"
                )),
                None => reasons.push(format!(
                    "{describe}: no valid batch starts at that position"
                )),
            }
            for reason in reasons {
                mismatches += 1;
                self.corruption(path, (i * OFFSET_ENTRY_BYTES) as u64, reason)?;
            }
            previous = Some(e);
        }
        self.summary.index_entries += entries.len() as u64;
        let untrimmed = data.len() / OFFSET_ENTRY_BYTES - real;
        self.index_verdict(path, real, mismatches, untrimmed)
    }

    /// Checks `.timeindex` entries against the batches of the segment at `base`.
    pub(super) fn verify_time_index(
        &mut self,
        path: &Path,
        base: i64,
        batches: &[BatchInfo],
    ) -> io::Result<()> {
        let Some(data) = self.read_index(path, "Kafka recreates a missing .timeindex empty")?
        else {
            return Ok(());
        };
        let real = self.real_entries::<TIME_ENTRY_BYTES>(path, &data)?;
        let (entries, _) = data.as_chunks::<TIME_ENTRY_BYTES>();
        let entries = entries.get(..real).unwrap_or_default();
        // Each entry's offset in a batch whose maxTimestamp is the entry's (Kafka names
        // the record with that timestamp, or the batch's last offset).
        let max_timestamp_of = |offset: i64| {
            let i = batches.partition_point(|b| b.last_offset < offset);
            batches
                .get(i)
                .filter(|b| b.base_offset <= offset)
                .map(|b| b.max_timestamp)
        };
        let mut mismatches = 0;
        let mut previous: Option<TimeEntry> = None;
        for (i, &[t0, t1, t2, t3, t4, t5, t6, t7, o0, o1, o2, o3]) in entries.iter().enumerate() {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
                relative_offset: u32::from_be_bytes([o0, o1, o2, o3]),
            };
            let offset = base.saturating_add(i64::from(e.relative_offset));
            let describe = format!("entry {i} (timestamp {}, offset {offset})", e.timestamp);
            let mut reasons = Vec::new();
            if let Some(p) = previous {
                if e.timestamp <= p.timestamp {
                    reasons.push(format!(
                        "{describe}: timestamps must be strictly increasing, entry {} has {}",
                        i - 1,
                        p.timestamp
                    ));
                }
                if e.relative_offset < p.relative_offset {
                    reasons.push(format!(
                        "{describe}: offsets must not decrease, entry {} has {}",
                        i - 1,
                        base.saturating_add(i64::from(p.relative_offset))
                    ));
                }
            }
            match max_timestamp_of(offset) {
                Some(ts) if ts == e.timestamp => {}
                Some(ts) => reasons.push(format!(
                    "{describe}: the batch holding that offset has maxTimestamp {ts}"
                )),
                None => reasons.push(format!("{describe}: no valid batch holds that offset")),
            }
            for reason in reasons {
                mismatches += 1;
                self.corruption(path, (i * TIME_ENTRY_BYTES) as u64, reason)?;
            }
            previous = Some(e);
        }
        self.summary.time_index_entries += entries.len() as u64;
        let untrimmed = data.len() / TIME_ENTRY_BYTES - real;
        self.index_verdict(path, real, mismatches, untrimmed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::PathBuf;

    use streamlog::format::BatchBuilder;
    use streamlog::log::{Log, LogConfig};

    use super::OFFSET_ENTRY_BYTES;
    use crate::dump::testing::{T, dump, segment_path, write_log};
    use crate::dump::{EXIT_OK, EXIT_PROBLEMS};

    #[test]
    fn verify_index_passes_on_a_good_log_and_reports_damaged_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx-0");
        let appended = write_log(&dir, 30);
        let bases: BTreeSet<i64> = appended.iter().map(|a| a.info.segment_base).collect();

        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        assert_eq!(o.summary.exit_status(), EXIT_OK);
        assert!(o.summary.index_entries >= 10, "{:?}", o.summary);
        assert!(
            o.summary.time_index_entries >= 2 * bases.len() as u64,
            "{:?}",
            o.summary
        );
        assert_eq!(
            o.out.matches("entries match the log").count(),
            2 * bases.len()
        );
        assert!(!o.out.contains("untrimmed"));

        // Preallocated zero entries after the real ones are reported, not an error.
        let last = *bases.last().unwrap();
        let index = segment_path(&dir, last, "index");
        let mut bytes = fs::read(&index).unwrap();
        bytes.extend_from_slice(&[0; 3 * OFFSET_ENTRY_BYTES]);
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert!(
            o.out.contains("untrimmed: 3 all-zero preallocated entries"),
            "{}",
            o.out
        );

        // The last entry of the first segment's index naming an offset past the segment
        // (the last entry, so that it still follows the one before). One naming a later
        // offset of the segment is fine: Kafka before 3.8 wrote the last offset of a
        // whole append at its first batch's position.
        let first = *bases.first().unwrap();
        let index = segment_path(&dir, first, "index");
        let mut bytes = fs::read(&index).unwrap();
        assert!(
            bytes.len() >= 2 * OFFSET_ENTRY_BYTES,
            "too few index entries"
        );
        let at = bytes.len() - OFFSET_ENTRY_BYTES;
        let entry = at / OFFSET_ENTRY_BYTES;
        let rel = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        let second = *bases.iter().nth(1).unwrap();
        let past = u32::try_from(second - first).unwrap();
        bytes[at..at + 4].copy_from_slice(&past.to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert_eq!(o.summary.exit_status(), EXIT_PROBLEMS);
        let want = format!(
            "error: {}: corruption at position {at}: entry {entry} (offset {}",
            index.display(),
            second
        );
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert!(o.err.contains("and the segment at offset"), "{}", o.err);
        assert!(o.out.contains("1 do not match the log"), "{}", o.out);
        // A later offset of the segment at that position passes.
        bytes[at..at + 4].copy_from_slice(&(past - 1).to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);

        // An entry pointing into the middle of a batch.
        bytes[at..at + 4].copy_from_slice(&rel.to_be_bytes());
        let pos = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        bytes[at + 4..at + 8].copy_from_slice(&(pos + 1).to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.err.contains("no valid batch starts at that position"),
            "{}",
            o.err
        );

        // Restore it, then damage a time index entry's timestamp.
        bytes[at + 4..at + 8].copy_from_slice(&pos.to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let timeindex = segment_path(&dir, first, "timeindex");
        let mut bytes = fs::read(&timeindex).unwrap();
        let ts = i64::from_be_bytes(bytes[..8].try_into().unwrap());
        bytes[..8].copy_from_slice(&(ts - 1).to_be_bytes());
        fs::write(&timeindex, &bytes).unwrap();
        let o = dump(&["--verify-index", "--json"], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        let want = format!(
            "error: {}: corruption at position 0: entry 0 (timestamp {}",
            timeindex.display(),
            ts - 1
        );
        // With --json the verdicts go to stderr too, so the error is not the first line.
        assert!(o.err.contains(&want), "{}", o.err);
        assert!(
            o.err.contains(&format!("has maxTimestamp {ts}")),
            "{}",
            o.err
        );
        // With --json the verdicts go to stderr; stdout holds only records.
        assert!(
            o.out.lines().all(|l| l.starts_with("{\"offset\":")),
            "{}",
            o.out
        );
        assert_eq!(o.out.lines().count() as u64, o.summary.records);
    }

    /// The tool only reads: it works on a directory a `Log` has open (and locked), where
    /// the active segment's indexes are still preallocated, and changes no file.
    #[test]
    fn a_live_log_dumps_read_only_with_untrimmed_indexes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("live-0");
        let config = LogConfig::default().index_interval_bytes(100);
        let log = Log::open(&dir, config).unwrap();
        for i in 0..10 {
            let mut b = BatchBuilder::new();
            let value = format!("value {i} with enough bytes to pass the index interval");
            b.push(T + i, Some(b"k"), Some(value.as_bytes()), &[])
                .unwrap();
            b.push(T + i, Some(b"k"), Some(value.as_bytes()), &[])
                .unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
        log.flush().unwrap();
        let listing = || {
            let mut files: Vec<(PathBuf, u64, std::time::SystemTime)> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| {
                    let meta = e.as_ref().unwrap().metadata().unwrap();
                    (e.unwrap().path(), meta.len(), meta.modified().unwrap())
                })
                .collect();
            files.sort();
            files
        };
        let before = listing();

        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert_eq!(o.summary.batches, 10);
        assert!(o.summary.index_entries >= 5, "{:?}", o.summary);
        let index = segment_path(&dir, 0, "index");
        let real = o.summary.index_entries as usize;
        let untrimmed = fs::metadata(&index).unwrap().len() as usize / OFFSET_ENTRY_BYTES - real;
        let want = format!(
            "{}: {real} entries match the log; untrimmed: {untrimmed} all-zero",
            index.display()
        );
        assert!(o.out.contains(&want), "{}", o.out);
        assert_eq!(listing(), before, "the dump changed the directory");

        // The lock was not taken: the log keeps working and closes cleanly.
        let mut b = BatchBuilder::new();
        b.push(T, None, Some(b"after"), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.close().unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert_eq!(o.summary.batches, 11);
        assert!(!o.out.contains("untrimmed"), "{}", o.out);
    }
}
