//! Hand-off latency (issue 15, item 3): one thread writes one record at a time, another
//! waits for it; the time from just before the write to the reader holding the record.
//!
//! - `produce -> consume`: `Producer::send` with `linger_ms(0)` and `Acks::Leader`, read
//!   by a `Consumer` (assigned the partition) blocked in `poll`. Target p99 < 50 us.
//! - `append -> wait_for`: `Partition::append` of one record, seen by a thread blocked
//!   in `Partition::wait_for`. Target p99 < 20 us.
//!
//! The writer waits until the reader has the record before it writes the next one, so
//! each sample is one hand-off, not a queue. `SAMPLES` (default 100000) per path; the
//! percentiles are exact (every sample is kept and sorted).
//!
//! Run with `cargo bench -p streamlog-bench --bench latency`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use streamlog::{
    ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Record, Store, TopicConfig,
    TopicPartition,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(name: &str, mut samples: Vec<Duration>, target_p99: Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let p99 = at(0.99);
    println!(
        "{name:<22} p50 {:>9.1?}  p99 {:>9.1?}  p99.9 {:>9.1?}  max {:>9.1?}  (p99 target < {target_p99:?}: {})",
        at(0.5),
        p99,
        at(0.999),
        samples[samples.len() - 1],
        if p99 < target_p99 { "met" } else { "NOT met" }
    );
}

/// Runs `write(i)` for each sample on this thread and `read(i)` on another; the sample
/// is the time from before `write(i)` until `read(i)` returned.
fn hand_off(
    samples: usize,
    write: impl Fn(usize),
    read: impl Fn(usize) + Send + 'static,
) -> Vec<Duration> {
    let start = Instant::now();
    // The reader publishes, per sample, when it got the record (ns since `start`, +1).
    let got = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let reader = {
        let (got, seen) = (got.clone(), seen.clone());
        std::thread::spawn(move || {
            for i in 0..samples {
                read(i);
                got.store(start.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                seen.store(i as u64 + 1, Ordering::Release);
            }
        })
    };
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let before = start.elapsed().as_nanos() as u64;
        write(i);
        while seen.load(Ordering::Acquire) < i as u64 + 1 {
            std::hint::spin_loop();
        }
        let after = got.load(Ordering::Acquire) - 1;
        out.push(Duration::from_nanos(after.saturating_sub(before)));
    }
    reader.join().expect("reader");
    out
}

fn main() {
    let samples = env_or("SAMPLES", 100_000);
    let d = tempfile::tempdir().expect("tempdir");
    let store = Store::open(d.path()).expect("open");
    for t in ["produce", "append"] {
        store
            .create_topic(t, TopicConfig::default())
            .expect("create");
    }

    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .expect("producer");
    let mut consumer = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .expect("consumer");
    consumer
        .assign(&[TopicPartition::new("produce", 0)])
        .expect("assign");
    let consumer = std::sync::Mutex::new(consumer);
    let pending = std::sync::Mutex::new(0usize);
    let s = hand_off(
        samples,
        |_| {
            drop(
                producer
                    .send(ProducerRecord::new("produce").value("x"))
                    .expect("send"),
            )
        },
        move |_| {
            let mut c = consumer.lock().expect("consumer");
            let mut have = pending.lock().expect("pending");
            while *have == 0 {
                *have += c.poll(Duration::from_secs(10)).expect("poll").len();
            }
            *have -= 1;
        },
    );
    report("produce -> consume", s, Duration::from_micros(50));

    let part = store
        .topic("append")
        .and_then(|t| t.partition(0))
        .expect("partition");
    let reader = part.clone();
    let s = hand_off(
        samples,
        |_| {
            part.append(&[Record::new(0, None::<&[u8]>, Some("x"))])
                .expect("append");
        },
        move |i| {
            assert!(
                reader.wait_for(i as i64, Duration::from_secs(10)),
                "timed out"
            );
        },
    );
    report("append -> wait_for", s, Duration::from_micros(20));
    producer.close().expect("close");
    store.close().expect("close");
}
