//! Kafka's default partitioning: keyed records by murmur2, null keys sticky per batch.

use std::collections::HashMap;
use std::fmt::Debug;

use parking_lot::Mutex;

/// Kafka's `Utils.murmur2`: 32-bit murmur2 with seed `0x9747b28c`, wrapping arithmetic.
///
/// ```
/// assert_eq!(streamlog::producer::murmur2(b"21"), -973932308);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Where Kafka's default partitioner puts a keyed record:
/// `(murmur2(key) & 0x7fffffff) % num_partitions`. `num_partitions` must be positive
/// (0 is treated as 1).
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % num_partitions.max(1)
}

/// Chooses a partition for each record.
pub trait Partitioner: Send + Sync + Debug {
    /// The partition (in `0..num_partitions`) for a record of `topic`. `record_bytes` is
    /// the record's approximate encoded size, for size-based stickiness.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        record_bytes: usize,
        num_partitions: i32,
    ) -> i32;
}

/// Kafka's built-in partitioner (KIP-794 without the adaptive weighting): keyed records by
/// [`partition_for_key`]; records with a null key stick to one partition until about
/// `batch_size` bytes were sent there, then move to another partition chosen at random,
/// so that batches fill up and load spreads evenly.
#[derive(Debug)]
pub struct DefaultPartitioner {
    batch_size: usize,
    state: Mutex<StickyState>,
}

#[derive(Debug)]
struct StickyState {
    rng: u64,
    current: HashMap<String, (i32, usize)>,
}

impl DefaultPartitioner {
    /// A partitioner switching null-key partitions after `batch_size` bytes (Kafka's
    /// `batch.size`, default 16384).
    pub fn new(batch_size: usize) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491, |d| d.as_nanos() as u64)
            | 1;
        Self::with_seed(batch_size, seed)
    }

    /// As [`new`](Self::new) with a fixed random seed (deterministic tests).
    pub fn with_seed(batch_size: usize, seed: u64) -> Self {
        DefaultPartitioner {
            batch_size: batch_size.max(1),
            state: Mutex::new(StickyState {
                rng: seed | 1,
                current: HashMap::new(),
            }),
        }
    }
}

impl Default for DefaultPartitioner {
    fn default() -> Self {
        Self::new(16384)
    }
}

impl StickyState {
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        record_bytes: usize,
        num_partitions: i32,
    ) -> i32 {
        let n = num_partitions.max(1);
        if let Some(key) = key {
            // One partition: nothing to hash for (the same answer, 0).
            return if n == 1 { 0 } else { partition_for_key(key, n) };
        }
        let mut st = self.state.lock();
        let pick = |st: &mut StickyState, avoid: Option<i32>| -> i32 {
            if n == 1 {
                return 0;
            }
            // Uniform among the other partitions, so consecutive batches differ.
            let r = (st.next_random() % (n as u64 - u64::from(avoid.is_some()))) as i32;
            match avoid {
                Some(a) if r >= a => r + 1,
                _ => r,
            }
        };
        let entry = st.current.get(topic).copied();
        let (partition, bytes) = match entry {
            Some((p, bytes)) if p < n && bytes < self.batch_size => (p, bytes),
            Some((p, _)) if p < n => (pick(&mut st, Some(p)), 0),
            _ => (pick(&mut st, None), 0),
        };
        let entry = (partition, bytes.saturating_add(record_bytes));
        // The topic's name is copied once, not at every send.
        match st.current.get_mut(topic) {
            Some(e) => *e = entry,
            None => {
                st.current.insert(topic.to_string(), entry);
            }
        }
        partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java testMurmur2
        let vectors: [(&[u8], i32); 5] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
        ];
        for (key, expected) in vectors {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
        assert_eq!(murmur2(b"abc"), 479_470_107);
        assert_eq!(
            murmur2(b"21") as u32,
            3_321_034_988,
            "kafka-python's unsigned form"
        );
    }

    #[test]
    fn keyed_partitions_match_kafka() {
        assert_eq!(partition_for_key(b"21", 10), 0);
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        assert_eq!(partition_for_key(b"abc", 10), 7);
        let p = DefaultPartitioner::with_seed(100, 7);
        for _ in 0..5 {
            assert_eq!(
                p.partition("t", Some(b"foobar"), 10, 10),
                6,
                "keyed records never move"
            );
        }
    }

    /// Null-key records sent while the topic had one partition count towards its sticky
    /// batch: once the topic grows, they stay on partition 0 until `batch_size` bytes,
    /// then move to another partition.
    #[test]
    fn the_sticky_batch_carries_over_when_partitions_are_added() {
        let p = DefaultPartitioner::with_seed(1000, 42);
        for _ in 0..9 {
            assert_eq!(p.partition("t", None, 100, 1), 0);
        }
        // 900 bytes so far: one more record still fits the batch of partition 0.
        assert_eq!(p.partition("t", None, 100, 4), 0);
        let next = p.partition("t", None, 100, 4);
        assert_ne!(next, 0, "a full sticky batch moves to another partition");
        assert!((1..4).contains(&next));
    }

    #[test]
    fn null_keys_stick_per_batch_and_spread_evenly() {
        let p = DefaultPartitioner::with_seed(1000, 12345);
        let mut counts = [0usize; 4];
        let mut switches = 0;
        let mut last = None;
        for _ in 0..40_000 {
            let part = p.partition("t", None, 100, 4);
            assert!((0..4).contains(&part));
            if last.is_some_and(|l| l != part) {
                switches += 1;
            }
            last = Some(part);
            counts[part as usize] += 1;
        }
        // 100-byte records, 1000-byte batches: a switch every 10 records.
        assert_eq!(
            switches, 3_999,
            "switch exactly once per full batch, to another partition"
        );
        for c in counts {
            assert!((8_000..12_000).contains(&c), "uneven spread: {counts:?}");
        }
        assert_eq!(p.partition("other", None, 1, 1), 0);
    }
}
