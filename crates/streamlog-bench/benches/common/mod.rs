//! Shared by the benches: the standard workload, the raw-file baselines, and
//! criterion's results read back for the ratio tables.
#![allow(dead_code, reason = "each bench uses a subset")]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use streamlog::format::Compression;

/// Records of the standard workload: 16-byte keys, values half random and half
/// text.
pub struct Workload {
    pub name: String,
    pub codec: Compression,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// xorshift64: the benches' deterministic randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value of the standard workload: half random bytes, half text.
    pub fn value(&mut self, len: usize) -> Vec<u8> {
        let text = b"the quick brown fox jumps over the lazy dog; streamlog keeps kafka's log in-process. ";
        let mut v: Vec<u8> = (0..len / 2).map(|_| self.next() as u8).collect();
        while v.len() < len {
            v.push(text[v.len() % text.len()]);
        }
        v
    }
}

impl Workload {
    pub fn new(count: usize, value_len: usize, codec: Compression) -> Self {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let records = (0..count)
            .map(|i| {
                let key = format!("user-{:011}", i % 10_000).into_bytes();
                (key, rng.value(value_len))
            })
            .collect();
        let name = format!("{}x{}B_{}", count, value_len, codec);
        Workload {
            name,
            codec,
            records,
        }
    }

    /// Key and value bytes of all records.
    pub fn payload_bytes(&self) -> u64 {
        self.records
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
}

/// One record of the raw format: key length, value length, CRC-32C of key and value
/// (little-endian u32s), key, value.
pub fn raw_record(k: &[u8], v: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(k), v);
    let mut out = Vec::with_capacity(12 + k.len() + v.len());
    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(v);
    out
}

/// The append baseline: a buffered file append of every record with its CRC.
pub fn raw_append(path: &Path, w: &Workload) -> BufWriter<File> {
    let mut out = BufWriter::with_capacity(64 * 1024, File::create(path).expect("create"));
    for (k, v) in &w.records {
        let crc = crc32c::crc32c_append(crc32c::crc32c(k), v);
        out.write_all(&(k.len() as u32).to_le_bytes())
            .expect("write");
        out.write_all(&(v.len() as u32).to_le_bytes())
            .expect("write");
        out.write_all(&crc.to_le_bytes()).expect("write");
        out.write_all(k).expect("write");
        out.write_all(v).expect("write");
    }
    out.flush().expect("flush");
    out
}

/// The read baseline: reads a [`raw_append`] file and checks every record's CRC.
/// Returns the key and value bytes seen.
pub fn raw_read(path: &Path) -> u64 {
    let mut data = Vec::new();
    File::open(path)
        .expect("open")
        .read_to_end(&mut data)
        .expect("read");
    let (mut pos, mut total) = (0usize, 0u64);
    while pos + 12 <= data.len() {
        let kl = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let vl = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap());
        let body = &data[pos + 12..pos + 12 + kl + vl];
        assert_eq!(crc32c::crc32c(body), crc, "raw CRC");
        total += body.len() as u64;
        pos += 12 + kl + vl;
    }
    total
}

/// The benches' criterion: 10 samples after 1 s of warm-up, measured for `measurement`,
/// then the command line's options.
pub fn bench_criterion(measurement: Duration) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement)
        .configure_from_args()
}

/// A group sampled flat (each sample the same iteration count: the iterations are long)
/// with `throughput` per iteration.
pub fn flat_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    throughput: Throughput,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(throughput);
    g
}

/// `name` in `g`: [`raw_append`] of `w` into a fresh temp dir per iteration (the dir is
/// made outside the timed part and removed after it).
pub fn bench_raw_append(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, w: &Workload) {
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                let d = tmp();
                let p = d.path().join("raw.bin");
                (d, p)
            },
            |(d, p)| (raw_append(&p, w), d),
            BatchSize::PerIteration,
        )
    });
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("streamlog-bench")
        .tempdir()
        .expect("tempdir")
}

/// Criterion's mean time per iteration (ns) for `group/function`, from its output files
/// (under `$CARGO_TARGET_DIR`, else the workspace's `target/`, as criterion writes them).
pub fn mean_ns(group: &str, function: &str) -> Option<f64> {
    let root = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let path = root
        .join("criterion")
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let mean = &text[text.find("\"mean\"")?..];
    let pe = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = pe.find([',', '}'])?;
    pe[..end].trim().parse().ok()
}
