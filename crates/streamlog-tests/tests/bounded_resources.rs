//! Bounded resources: memory-mapped segments are capped process-wide (this file is its
//! own test binary, so the cap it sets touches no other test binary; its tests that
//! count mappings take turns), and a refused mapping
//! falls back to `pread` instead of failing the read.
mod common;

use std::sync::Arc;

use common::intercept::{Hooks, InterceptFs};
use common::{batch, read_values, reseal_crc, value};
use streamlog::format::Compression;
use streamlog::fs::{FileSystem, SimFs};
use streamlog::log::{Log, LogConfig};

/// Held by the tests that count mappings: the cap is process-wide, so one test's reads
/// (or its cap of 8) could evict the other's mappings while it counts them.
static MAPPINGS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn many_segments(log: &Log) -> Vec<String> {
    let mut expected = Vec::new();
    for tag in 0..300u64 {
        log.append(&mut batch(tag, 2, Compression::None)).unwrap();
        expected.extend((0..2).map(|i| value(tag, i)));
    }
    expected
}

fn config() -> LogConfig {
    LogConfig::default().segment_bytes(1024)
}

/// Reading every one of 40+ segments leaves at most the cap mapped (counted in the
/// process's own map list), and every record still reads back.
#[cfg(target_os = "linux")]
#[test]
fn mapped_segments_stay_under_the_cap() {
    let _one = MAPPINGS.lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clicks-0");
    let log = Log::open(&dir, config()).unwrap();
    let expected = many_segments(&log);
    assert!(
        log.segments().len() > 40,
        "{} segments",
        log.segments().len()
    );
    streamlog::log::set_max_mapped_segments(8);
    for _ in 0..2 {
        assert_eq!(read_values(&log).unwrap(), expected);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let ours = maps
            .lines()
            .filter(|l| l.contains(dir.to_str().unwrap()))
            .count();
        assert!(
            ours <= 8,
            "{ours} mappings of {} segments",
            log.segments().len()
        );
        assert!(ours > 0, "reads still map segments");
    }
    streamlog::log::set_max_mapped_segments(streamlog::log::DEFAULT_MAX_MAPPED_SEGMENTS);
}

/// Lowering the cap drops the mappings past it at once (it used to act only when a
/// segment was next mapped, so a cap of 0, which maps nothing, released nothing).
#[cfg(target_os = "linux")]
#[test]
fn lowering_the_cap_releases_mappings_at_once() {
    let _one = MAPPINGS.lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pages-0");
    let log = Log::open(&dir, config()).unwrap();
    let expected = many_segments(&log);
    let mapped = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| l.contains(dir.to_str().unwrap()))
            .count()
    };
    assert_eq!(read_values(&log).unwrap(), expected);
    assert!(mapped() > 8, "{} mappings before lowering", mapped());
    streamlog::log::set_max_mapped_segments(8);
    assert!(mapped() <= 8, "{} mappings under a cap of 8", mapped());
    streamlog::log::set_max_mapped_segments(0);
    assert_eq!(mapped(), 0, "mappings under a cap of 0");
    assert_eq!(read_values(&log).unwrap(), expected, "reads with pread");
    assert_eq!(mapped(), 0, "a cap of 0 maps nothing");
    streamlog::log::set_max_mapped_segments(streamlog::log::DEFAULT_MAX_MAPPED_SEGMENTS);
}

/// Opening a log maps none of its segments: the checks at open read batch headers with
/// `pread`, so that a store of thousands of idle partitions holds no mapping (and
/// opening does not churn the process-wide mapping budget). The first read maps.
#[cfg(target_os = "linux")]
#[test]
fn opening_a_log_maps_no_segment() {
    let _one = MAPPINGS.lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("views-0");
    let expected = {
        let log = Log::open(&dir, config()).unwrap();
        let expected = many_segments(&log);
        log.close().unwrap();
        expected
    };
    let mapped = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| l.contains(dir.to_str().unwrap()) && l.ends_with(".log"))
            .count()
    };
    for clean in [true, false] {
        if !clean {
            // Without the clean marker, open checks every segment's tail.
            std::fs::remove_file(dir.join(".kafka_cleanshutdown")).unwrap();
        }
        let log = Log::open(&dir, config()).unwrap();
        assert_eq!(log.recovery_report().clean_shutdown, clean);
        assert!(log.segments().len() > 40);
        assert_eq!(mapped(), 0, "segments mapped by open (clean: {clean})");
        assert_eq!(read_values(&log).unwrap(), expected);
        assert!(mapped() > 0, "reads map segments");
        log.close().unwrap();
    }
}

/// A file system that refuses every mapping (as at `vm.max_map_count`): reads of
/// sealed segments succeed with `pread`.
#[test]
fn a_refused_mapping_falls_back_to_pread() {
    let hooks = Hooks {
        before_map: Box::new(|_| Err(std::io::Error::other("ENOMEM: no more mappings"))),
        ..Hooks::default()
    };
    let fs = Arc::new(InterceptFs::new(SimFs::new(), hooks)) as Arc<dyn FileSystem>;
    let log = Log::open_with_fs(fs, common::dir(), config()).unwrap();
    let expected = many_segments(&log);
    assert!(log.segments().len() > 40);
    assert_eq!(read_values(&log).unwrap(), expected);
}

/// A gzip batch whose records section is damaged behind a valid batch CRC (the CRC is
/// recomputed, so only decompression can tell).
fn undecompressable_batch() -> Vec<u8> {
    let mut b = streamlog::BatchBuilder::new().compression(Compression::Gzip);
    b.push(1_700_000_000_000, Some(b"k"), Some(b"lost"), &[])
        .unwrap();
    let mut bytes = b.finish().unwrap();
    let mid = 61 + (bytes.len() - 61) / 2;
    bytes[mid] ^= 0xff;
    reseal_crc(&mut bytes);
    bytes
}

/// The consumer decompresses one batch at a time as it returns records, not a whole
/// fetch at once: a batch that cannot be decompressed is reached only after every
/// record before it was returned (decompressing the fetch up front failed the first
/// poll instead, and held every batch decompressed at once).
#[test]
fn the_consumer_decompresses_batch_by_batch() {
    let fs = SimFs::new();
    let sim = || Arc::new(fs.clone()) as Arc<dyn FileSystem>;
    let open = || {
        streamlog::Store::open_with(
            "/store",
            streamlog::StoreConfig::default()
                .file_system(sim())
                .background_maintenance(false),
        )
        .unwrap()
    };
    open()
        .create_topic("t", streamlog::TopicConfig::default())
        .unwrap();
    {
        let log = Log::open_with_fs(sim(), "/store/t-0", LogConfig::default()).unwrap();
        for v in ["r0", "r1"] {
            let mut b = streamlog::BatchBuilder::new().compression(Compression::Gzip);
            b.push(1_700_000_000_000, Some(b"k"), Some(v.as_bytes()), &[])
                .unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
        log.close().unwrap();
    }
    // Appended behind the log's back: `append` refuses a batch no reader can
    // decompress. Recovery accepts it (its CRC is valid) at offset 2.
    let seg = std::path::Path::new("/store/t-0/00000000000000000000.log");
    let mut data = fs.read_file(seg).unwrap();
    let mut bad = undecompressable_batch();
    bad[..8].copy_from_slice(&2i64.to_be_bytes());
    data.extend_from_slice(&bad);
    fs.write_file(seg, data);
    let store = open();
    let mut c = store
        .consumer(
            streamlog::ConsumerConfig::new("g")
                .max_poll_records(1)
                .auto_offset_reset(streamlog::OffsetReset::Earliest),
        )
        .unwrap();
    let tp = streamlog::TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    for expected in ["r0", "r1"] {
        let records = c.poll(std::time::Duration::ZERO).unwrap();
        let got: Vec<Vec<u8>> = records
            .iter()
            .filter_map(|r| r.value().map(<[u8]>::to_vec))
            .collect();
        assert_eq!(got, vec![expected.as_bytes().to_vec()]);
    }
    assert!(
        c.poll(std::time::Duration::ZERO).is_err(),
        "the damaged batch"
    );
    assert_eq!(c.position(&tp).unwrap(), 2, "the position stays at it");
}

/// Opening a cleanly closed log reads no index file whole: of each sealed segment's
/// `.index` and `.timeindex` only the last entry (Kafka's sanity check). The rest of a
/// segment's index is read when a lookup first needs it, and lookups then agree with
/// the log.
#[test]
fn a_clean_open_reads_only_the_last_index_entries() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sim = SimFs::new();
    {
        let log = Log::open_with_fs(
            Arc::new(sim.clone()) as Arc<dyn FileSystem>,
            common::dir(),
            common::small_config(),
        )
        .unwrap();
        many_segments(&log);
        log.close().unwrap();
    }
    let index_bytes = Arc::new(AtomicUsize::new(0));
    let counted = index_bytes.clone();
    let hooks = Hooks {
        before_read: Box::new(move |path, len| {
            let name = path.to_string_lossy();
            if name.ends_with(".index") || name.ends_with(".timeindex") {
                counted.fetch_add(len, Ordering::Relaxed);
            }
        }),
        ..Hooks::default()
    };
    let files = sim.files(&common::dir());
    let fs = Arc::new(InterceptFs::new(sim, hooks)) as Arc<dyn FileSystem>;
    let log = Log::open_with_fs(fs, common::dir(), common::small_config()).unwrap();
    let sealed = log.segments().len() - 1;
    let at_open = index_bytes.load(Ordering::Relaxed);
    assert!(log.recovery_report().clean_shutdown);
    assert!(sealed > 40);
    // The active segment's indexes are read whole (it is appended to).
    let active = format!("{:020}.", log.segments()[sealed].base_offset);
    let index_size = |active_only: bool| -> usize {
        files
            .iter()
            .filter(|(p, _)| {
                let n = p.file_name().unwrap().to_string_lossy();
                (n.ends_with(".index") || n.ends_with(".timeindex"))
                    && (!active_only || n.starts_with(&active))
            })
            .map(|(_, len)| *len)
            .sum()
    };
    assert!(
        at_open <= sealed * (8 + 12) + index_size(true),
        "{at_open} index bytes read at open for {sealed} sealed segments"
    );
    assert!(
        at_open * 2 < index_size(false),
        "most of the index bytes are not read"
    );
    // A lookup in the middle of the log reads that segment's index, and reads agree.
    let middle = log.segments()[sealed / 2].base_offset;
    let before = index_bytes.load(Ordering::Relaxed);
    let records = log.read_records(middle + 1, 1).unwrap();
    assert_eq!(records[0].offset, middle + 1);
    assert!(
        index_bytes.load(Ordering::Relaxed) > before,
        "loaded on first use"
    );
    assert_eq!(read_values(&log).unwrap().len(), 600);
}

/// Index damage a clean open does not look at (entries before the last) is found when
/// the deferred entries are first read, and the index is rebuilt from the segment, in
/// memory and on disk, as recovery would have rebuilt it.
#[test]
fn a_damaged_deferred_index_is_rebuilt_on_first_use() {
    let sim = SimFs::new();
    let open = || {
        Log::open_with_fs(
            Arc::new(sim.clone()) as Arc<dyn FileSystem>,
            common::dir(),
            common::small_config(),
        )
        .unwrap()
    };
    let log = open();
    let expected = many_segments(&log);
    log.close().unwrap();
    // A sealed segment whose index has at least three entries: swap the first two.
    let (path, original) = sim
        .files(&common::dir())
        .into_iter()
        .filter(|(p, len)| p.to_string_lossy().ends_with(".index") && *len >= 24)
        .map(|(p, _)| {
            let bytes = sim.read_file(&p).unwrap();
            (p, bytes)
        })
        .next()
        .expect("a segment with three index entries");
    let mut damaged = original.clone();
    damaged[..16].rotate_left(8);
    sim.write_file(&path, damaged.clone());
    let log = open();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(
        log.recovery_report().indexes_rebuilt,
        0,
        "not looked at by the open"
    );
    assert_eq!(sim.read_file(&path).unwrap(), damaged);
    assert_eq!(read_values(&log).unwrap(), expected);
    assert_eq!(sim.read_file(&path).unwrap(), original, "rebuilt on disk");
}

/// Reads that decode records (`Partition::read`, `ReadOnlyPartition::read`) return
/// records that hold their decompressed batches. `max_bytes` bounds the compressed
/// bytes read, and batches of zeros that inflate a thousand-fold fitted by the hundred:
/// all of them were held decompressed at once. Past the first batch, a read now stops
/// once the decompressed data reaches `max_bytes` too; reading on returns the rest,
/// each record once.
#[test]
fn reads_of_records_bound_the_decompressed_bytes_they_hold() {
    let (dir, store) = common::temp_topic_t(1);
    let part = store.topic("t").unwrap().partition(0).unwrap();
    let zeros = vec![0u8; 256 << 10];
    for _ in 0..20 {
        let r = streamlog::Record::new(1_700_000_000_000, Some(&b"k"[..]), Some(zeros.clone()));
        part.append_with(&[r], Compression::Zstd).unwrap();
    }
    let reader = streamlog::Store::open_read_only(dir.path()).unwrap();
    let ro = reader.partition("t", 0).unwrap();
    let (mut writer_offsets, mut reader_offsets) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < 20 {
        let got = part.read(at, 64 << 10).unwrap();
        assert_eq!(got.len(), 1, "at {at}: one batch's worth");
        writer_offsets.push(got[0].offset);
        at = got[0].offset + 1;
    }
    let mut at = 0;
    while at < 20 {
        let got = ro.read(at, 64 << 10).unwrap();
        assert_eq!(got.len(), 1, "read-only at {at}: one batch's worth");
        reader_offsets.push(got[0].offset);
        at = got[0].offset + 1;
    }
    let all: Vec<i64> = (0..20).collect();
    assert_eq!(writer_offsets, all);
    assert_eq!(reader_offsets, all);
    assert_eq!(
        part.read(0, 64 << 10).unwrap()[0]
            .value
            .as_ref()
            .unwrap()
            .len(),
        256 << 10
    );
}
