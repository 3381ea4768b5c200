//! Producer ids, allocated durably: no two producers of a store ever get the same id,
//! also across crashes and reopens (Kafka's `ProducerIdManager`, which hands out
//! blocks of ids recorded in the cluster's metadata).
//!
//! The store records in `.producer-ids` the end of the block of ids it may hand out.
//! Handing out the first id of a new block first writes the block's end (temporary
//! file, fsync, rename, directory fsync); ids then come from memory until the block is
//! used up. An open continues after the recorded end, so ids a crash left unused are
//! skipped, never reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::fs::FileSystem;

/// The file in the store directory holding the end of the current block.
pub(crate) const PRODUCER_IDS_FILE: &str = ".producer-ids";
/// Its temporary copy while it is rewritten.
pub(crate) const PRODUCER_IDS_TMP: &str = ".producer-ids.tmp";
/// Ids per block: one durable write per this many producers.
const BLOCK: i64 = 1000;
/// The first id a store hands out (2^48). Kafka's controllers hand out producer ids
/// from 0 in blocks of 1,000, and no cluster comes near this: a Kafka topic imported
/// later (its partitions remember Kafka's producers) never names a producer of this
/// store, whose batches it would take for that one's (answered as duplicates of
/// Kafka's and dropped, or refused as out of order). `reserve_past` covers imports
/// after the first; this covers the producers made before one. A store that handed
/// out lower ids before keeps them where they are still held (a transactional id's).
const FIRST_ID: i64 = 1 << 48;
/// The file's first line: what it is and its version.
const HEADER: &str = "streamlog producer ids v1";

/// Hands out producer ids of one store.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    state: Mutex<Block>,
}

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
    /// A write of the file failed: no more ids until the store is reopened (an fsync
    /// that failed is never retried).
    failed: Option<String>,
}

/// Where the last block of store `dir` ended (0 for a store that never allocated one).
///
/// # Errors
/// `Io` if the file cannot be read; `Corruption` if it is not one a store wrote.
pub(crate) fn read_block_end(fs: &dyn FileSystem, dir: &Path) -> Result<i64> {
    let path = dir.join(PRODUCER_IDS_FILE);
    match crate::log::read_small_file(fs, &path)
        .map_err(crate::error::io_ctx(format!("read {}", path.display())))?
    {
        None => Ok(0),
        Some(bytes) => parse(&bytes).ok_or_else(|| {
            Error::corruption(
                &path,
                0,
                format!("expected `{HEADER}` and a non-negative block end"),
            )
        }),
    }
}

impl ProducerIds {
    /// Reads where the last block ended (0 for a store that never allocated one).
    ///
    /// # Errors
    /// `Io` if the file cannot be read; `Corruption` if it is not one this store wrote.
    pub(crate) fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<ProducerIds> {
        let end = read_block_end(fs.as_ref(), dir)?;
        Ok(ProducerIds {
            fs,
            dir: dir.to_path_buf(),
            state: Mutex::new(Block {
                next: end,
                end,
                failed: None,
            }),
        })
    }

    /// A producer id never handed out before by this store.
    ///
    /// # Errors
    /// `Io` if the new block cannot be recorded (then `Poisoned` until the store is
    /// reopened); `InvalidArgument` once every id up to `i64::MAX` is used.
    pub(crate) fn allocate(&self) -> Result<i64> {
        let mut b = self.state.lock();
        if b.next == b.end {
            let from = b.end.max(FIRST_ID);
            self.record_block(&mut b, from)?;
        } else {
            self.check_usable(&b)?;
        }
        let id = b.next;
        b.next += 1;
        Ok(id)
    }

    /// Makes every id handed out from now on larger than `id` (one that data the store
    /// did not write already uses: an imported Kafka producer's), durably.
    ///
    /// # Errors
    /// As [`allocate`](Self::allocate).
    pub(crate) fn reserve_past(&self, id: i64) -> Result<()> {
        let mut b = self.state.lock();
        self.check_usable(&b)?;
        if id < b.next {
            return Ok(());
        }
        let from = id.checked_add(1).ok_or_else(used_up)?.max(FIRST_ID);
        self.record_block(&mut b, from)
    }

    fn check_usable(&self, b: &Block) -> Result<()> {
        match &b.failed {
            Some(reason) => Err(Error::Poisoned {
                path: self.dir.join(PRODUCER_IDS_FILE),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the block `from..from + BLOCK` as the one ids come from (its end first,
    /// synced).
    fn record_block(&self, b: &mut Block, from: i64) -> Result<()> {
        self.check_usable(b)?;
        let end = from.checked_add(BLOCK).ok_or_else(used_up)?;
        let text = format!("{HEADER}\n{end}\n");
        if let Err(e) = crate::log::write_file_atomically_via(
            self.fs.as_ref(),
            &self.dir,
            PRODUCER_IDS_FILE,
            PRODUCER_IDS_TMP,
            text.as_bytes(),
        ) {
            let reason = format!(
                "recording producer ids in {}: {e}",
                self.dir.join(PRODUCER_IDS_FILE).display()
            );
            b.failed = Some(reason.clone());
            return Err(Error::io(reason, e));
        }
        b.next = from;
        b.end = end;
        Ok(())
    }
}

fn used_up() -> Error {
    Error::InvalidArgument {
        name: "producer id",
        reason: "every producer id of this store is used".into(),
    }
}

fn parse(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    lines.next()?.trim().parse().ok().filter(|&n: &i64| n >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{CrashImage, SimFs};

    #[test]
    fn ids_are_unique_across_reopens_and_crashes() {
        let sim = SimFs::new();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let dir = Path::new("/store");
        fs.create_dir_all(dir).unwrap();
        let ids = ProducerIds::open(fs.clone(), dir).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, [FIRST_ID, FIRST_ID + 1, FIRST_ID + 2]);
        // A power cut now: the block was synced, so a reopen continues after it.
        let image: Arc<dyn FileSystem> = Arc::new(sim.crash_image(CrashImage::DropAll));
        let again = ProducerIds::open(image, dir).unwrap();
        let next = again.allocate().unwrap();
        assert_eq!(
            next,
            FIRST_ID + BLOCK,
            "ids of the crashed block are skipped, not reused"
        );
        for _ in 1..BLOCK {
            again.allocate().unwrap();
        }
        assert_eq!(again.allocate().unwrap(), FIRST_ID + 2 * BLOCK);
    }

    #[test]
    fn reserved_ids_are_skipped_also_after_a_crash() {
        let sim = SimFs::new();
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let dir = Path::new("/store");
        fs.create_dir_all(dir).unwrap();
        let ids = ProducerIds::open(fs.clone(), dir).unwrap();
        assert_eq!(ids.allocate().unwrap(), FIRST_ID);
        ids.reserve_past(FIRST_ID).unwrap();
        assert_eq!(
            ids.allocate().unwrap(),
            FIRST_ID + 1,
            "ids past it are kept"
        );
        ids.reserve_past(FIRST_ID + 5_000).unwrap();
        assert_eq!(ids.allocate().unwrap(), FIRST_ID + 5_001);
        ids.reserve_past(10).unwrap();
        assert_eq!(
            ids.allocate().unwrap(),
            FIRST_ID + 5_002,
            "a lower id changes nothing"
        );
        let image: Arc<dyn FileSystem> = Arc::new(sim.crash_image(CrashImage::DropAll));
        let again = ProducerIds::open(image, dir).unwrap();
        assert!(again.allocate().unwrap() > FIRST_ID + 5_002);
        assert!(matches!(
            again.reserve_past(i64::MAX),
            Err(Error::InvalidArgument { .. })
        ));
    }

    /// A store that handed out ids from 0 (before ids started at 2^48), or whose first
    /// import reserved Kafka's, goes on from 2^48: a later import of a Kafka topic, whose
    /// producers are numbered from 0, names none of its new producers.
    #[test]
    fn ids_go_on_from_2_pow_48_after_low_ones() {
        let sim = SimFs::new();
        let fs: Arc<dyn FileSystem> = Arc::new(sim);
        let dir = Path::new("/store");
        fs.create_dir_all(dir).unwrap();
        let f = fs.open(&dir.join(PRODUCER_IDS_FILE), true).unwrap();
        f.write_all_at(format!("{HEADER}\n1000\n").as_bytes(), 0)
            .unwrap();
        let ids = ProducerIds::open(fs.clone(), dir).unwrap();
        assert_eq!(ids.allocate().unwrap(), FIRST_ID);
        let fresh = Path::new("/fresh");
        fs.create_dir_all(fresh).unwrap();
        let ids = ProducerIds::open(fs, fresh).unwrap();
        ids.reserve_past(7).unwrap(); // an import of Kafka's producers 0..=7
        assert_eq!(ids.allocate().unwrap(), FIRST_ID);
    }

    #[test]
    fn a_damaged_file_is_corruption_not_a_reset() {
        let sim = SimFs::new();
        let fs: Arc<dyn FileSystem> = Arc::new(sim);
        let dir = Path::new("/store");
        fs.create_dir_all(dir).unwrap();
        let f = fs.open(&dir.join(PRODUCER_IDS_FILE), true).unwrap();
        f.write_all_at(b"garbage\n", 0).unwrap();
        let err = ProducerIds::open(fs, dir).unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }), "{err:?}");
    }
}
