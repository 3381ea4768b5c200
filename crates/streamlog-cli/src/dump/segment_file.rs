//! Reading a segment one batch at a time, so that a dump holds one batch in memory, not
//! the file. A batch of up to [`WHOLE_READ`] bytes is read whole and then checked. A
//! larger one has its frame and CRC checked in [`CHUNK`]-sized reads first and is read
//! whole only if they pass, so a damaged length that claims gigabytes costs a read of
//! them, not an allocation. Reads go through a window of [`CHUNK`] bytes, so a file of
//! small batches costs a read per window, not two per batch.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use streamlog::Error;
use streamlog::format::batch::{self, ATTRIBUTES_OFFSET, LOG_OVERHEAD, MAGIC_V2};
use streamlog::format::{Batch, BatchHeader};

/// Batches up to this size are read whole before any check.
pub(super) const WHOLE_READ: usize = 8 << 20;
/// The size of the read-ahead window, and of the reads of a larger batch's CRC check.
const CHUNK: usize = 1 << 20;

/// One batch as read and checked.
pub(super) enum Checked {
    /// It passed every check of [`Batch::parse`].
    Valid(Batch),
    /// It failed one.
    Damaged {
        /// Its header, when it is a v2 header at all (to print what it claims).
        header: Option<BatchHeader>,
        /// Whether the stored CRC matched (meaningful only with a v2 header).
        crc_valid: bool,
        error: Error,
    },
}

/// A segment file open for reading, and its length when the dump started (a writer
/// appending meanwhile is not followed).
pub(super) struct SegmentFile {
    file: File,
    len: u64,
    /// The file's bytes from `window_start` on, as last read.
    window: Vec<u8>,
    window_start: u64,
}

impl SegmentFile {
    pub(super) fn open(file: File) -> io::Result<SegmentFile> {
        let len = file.metadata()?.len();
        Ok(SegmentFile {
            file,
            len,
            window: Vec::new(),
            window_start: 0,
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Reads up to [`LOG_OVERHEAD`] bytes at `position`: the batch prefix holding its
    /// base offset and length, or what is left of the file (the bytes read, and how
    /// many).
    pub(super) fn prefix(&mut self, position: u64) -> io::Result<([u8; LOG_OVERHEAD], usize)> {
        let left = self.len.saturating_sub(position);
        let n = usize::try_from(left).map_or(LOG_OVERHEAD, |l| l.min(LOG_OVERHEAD));
        let mut prefix = [0; LOG_OVERHEAD];
        self.read_at(position, &mut prefix[..n])?;
        Ok((prefix, n))
    }

    /// Reads and checks the batch of `size` bytes at `position` (the file holds that
    /// many bytes there; the caller checked).
    pub(super) fn batch(&mut self, position: u64, size: usize) -> io::Result<Checked> {
        if size > WHOLE_READ
            && let Some(damaged) = self.check_streaming(position, size)?
        {
            return Ok(damaged);
        }
        let mut buf = Vec::new();
        if let Err(e) = buf.try_reserve_exact(size) {
            let reason = format!("a batch of {size} bytes does not fit in memory: {e}");
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, reason));
        }
        buf.resize(size, 0);
        self.read_at(position, &mut buf)?;
        let bytes = Bytes::from(buf);
        Ok(match Batch::parse(bytes.clone()) {
            Ok(batch) => Checked::Valid(batch),
            Err(error) => {
                let header = BatchHeader::parse(&bytes)
                    .ok()
                    .filter(|h| h.magic == MAGIC_V2);
                let crc_valid = header.is_some_and(|h| batch::compute_crc(&bytes) == h.crc);
                Checked::Damaged {
                    header,
                    crc_valid,
                    error,
                }
            }
        })
    }

    /// The frame and CRC checks of a batch too large to read before checking; `None`
    /// if both pass.
    fn check_streaming(&mut self, position: u64, size: usize) -> io::Result<Option<Checked>> {
        let mut head = [0; batch::RECORD_BATCH_OVERHEAD];
        self.read_at(position, &mut head)?;
        let damaged = |header: Option<BatchHeader>, error| Checked::Damaged {
            header,
            crc_valid: false,
            error,
        };
        let header = match BatchHeader::parse(&head) {
            Ok(header) => header,
            Err(error) => return Ok(Some(damaged(None, error))),
        };
        if let Err(error) = header.check_frame(size) {
            return Ok(Some(damaged(None, error)));
        }
        let mut crc = 0;
        let mut at = ATTRIBUTES_OFFSET;
        while at < size {
            let n = (size - at).min(CHUNK);
            crc = crc32c::crc32c_append(crc, self.window_at(position + at as u64, n)?);
            at += n;
        }
        Ok(header
            .check_crc(crc)
            .err()
            .map(|error| damaged(Some(header), error)))
    }

    /// Fills `buf` with the file's bytes at `position`.
    fn read_at(&mut self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() > CHUNK {
            self.file.seek(SeekFrom::Start(position))?;
            return self.file.read_exact(buf);
        }
        buf.copy_from_slice(self.window_at(position, buf.len())?);
        Ok(())
    }

    /// The `n` (at most [`CHUNK`]) bytes at `position`, from the window, which moves to
    /// `position` first if it does not hold them.
    fn window_at(&mut self, position: u64, n: usize) -> io::Result<&[u8]> {
        let held = position
            .checked_sub(self.window_start)
            .and_then(|from| usize::try_from(from).ok())
            .filter(|&from| from + n <= self.window.len());
        let from = match held {
            Some(from) => from,
            None => {
                let left = self.len.saturating_sub(position);
                let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK)).max(n);
                self.window.resize(want, 0);
                self.window_start = position;
                self.file.seek(SeekFrom::Start(position))?;
                // A file that shrank since it was opened still serves what it holds.
                let mut got = 0;
                while got < want {
                    match self.file.read(&mut self.window[got..]) {
                        Ok(0) => break,
                        Ok(k) => got += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            self.window.clear();
                            return Err(e);
                        }
                    }
                }
                self.window.truncate(got);
                if got < n {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ends at {}: it shrank", position + got as u64),
                    ));
                }
                0
            }
        };
        Ok(&self.window[from..from + n])
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use streamlog::format::BatchBuilder;
    use streamlog::format::batch::BATCH_LENGTH_OFFSET;

    use super::{CHUNK, WHOLE_READ};
    use crate::dump::testing::{T, dump, write_segment};

    /// A batch with one record whose value is `len` bytes that do not compress.
    fn batch_of(len: usize, key: &[u8]) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let value: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut b = BatchBuilder::new();
        b.push(T, Some(key), Some(&value), &[]).unwrap();
        b.finish().unwrap()
    }

    /// Batches larger than a whole read are checked chunk by chunk before they are read:
    /// a good one dumps as any other, and damage in its last chunk is found, printed
    /// with `crcValid: false`, and stepped over to the next batch.
    #[test]
    fn a_batch_larger_than_a_whole_read_is_checked_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let big = batch_of(WHOLE_READ + CHUNK / 2, b"big");
        assert!(big.len() > WHOLE_READ && !big.len().is_multiple_of(CHUNK));
        let small = batch_of(10, b"small");
        let path = write_segment(tmp.path(), 0, vec![small.clone(), big, small]);

        let o = dump(&["--verify-index"], &[&path]);
        assert_eq!(o.summary.batches, 3, "{}\n{}", o.out, o.err);
        assert_eq!(o.summary.records, 3);
        let json = dump(&["--json"], &[&path]);
        assert_eq!(json.summary.problems, 0, "{}", json.err);
        assert!(json.out.lines().nth(1).unwrap().contains(r#""key":"big""#));

        // One flipped bit in the last (partial) chunk of the large batch.
        let mut data = fs::read(&path).unwrap();
        let third = data.len() - batch_of(10, b"small").len();
        data[third - 3] ^= 0x10;
        fs::write(&path, &data).unwrap();
        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert_eq!(o.summary.batches, 2, "the dump goes on after it");
        let lines: Vec<&str> = o.out.lines().collect();
        assert!(lines[2].contains(" crcValid: false "), "{}", lines[2]);
        assert!(lines[3].contains(" crcValid: true "), "{}", lines[3]);
        let position = batch_of(10, b"small").len();
        assert!(
            o.err.contains(&format!(
                "corruption at position {position}: malformed record batch"
            )) && o.err.contains("`crc`: stored"),
            "{}",
            o.err
        );

        // A length claiming more than is left is truncation, found without reading it.
        data[position + BATCH_LENGTH_OFFSET..position + BATCH_LENGTH_OFFSET + 4]
            .copy_from_slice(&i32::MAX.to_be_bytes());
        fs::write(&path, &data).unwrap();
        let o = dump(&[], &[&path]);
        assert!(
            o.err.contains(&format!(
                "position {position}: truncated batch: it declares {} bytes",
                i64::from(i32::MAX) + 12
            )),
            "{}",
            o.err
        );
    }

    /// Small batches are served from the read-ahead window, including those that
    /// straddle its end.
    #[test]
    fn small_batches_across_many_windows_all_dump() {
        let tmp = tempfile::tempdir().unwrap();
        let batches: Vec<Vec<u8>> = (0..3000)
            .map(|i| batch_of(1100 + i % 97, format!("k{i}").as_bytes()))
            .collect();
        let total: usize = batches.iter().map(Vec::len).sum();
        assert!(total > 3 * CHUNK, "{total}");
        let path = write_segment(tmp.path(), 0, batches);
        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert_eq!(o.summary.batches, 3000);
        let json = dump(&["--json"], &[&path]);
        let keys: Vec<String> = json
            .out
            .lines()
            .map(|l| crate::dump::testing::parse_json(l)["key"].to_string())
            .collect();
        let want: Vec<String> = (0..3000).map(|i| format!("\"k{i}\"")).collect();
        assert_eq!(keys, want);
    }

    /// From a review: a file that shrank after it was opened (a writer's rollback)
    /// failed the window's read at once, so the whole batches still in it were not
    /// dumped. They are; the read past the new end says the file shrank.
    #[test]
    fn batches_still_in_a_file_that_shrank_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let batches: Vec<Vec<u8>> = (0..3).map(|i| batch_of(100, &[b'k', i])).collect();
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        let path = write_segment(tmp.path(), 0, batches);
        let mut file = super::SegmentFile::open(fs::File::open(&path).unwrap()).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len((sizes[0] + sizes[1]) as u64)
            .unwrap();
        assert!(matches!(
            file.batch(0, sizes[0]),
            Ok(super::Checked::Valid(_))
        ));
        let second = file.batch(sizes[0] as u64, sizes[1]);
        assert!(matches!(second, Ok(super::Checked::Valid(_))));
        let third = file.batch((sizes[0] + sizes[1]) as u64, sizes[2]);
        let e = third.err().expect("past the new end");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("shrank"), "{e}");
    }
}
