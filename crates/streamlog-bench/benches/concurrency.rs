//! Producer concurrency (issue 15, item 2): `Producer::send` from 1, 2 and 4 threads
//! sharing one producer, each thread sending to its own partition (explicit
//! partition), `Acks::Leader`, default batching; the same total of records each time.
//! Target: 2 threads >= 1.7x one thread on a 2-core machine.
//!
//! Each row also gives the CPU the sends kept busy (process CPU time over wall time,
//! Linux): a row near 2 cores is bound by this 2-core machine, not by a lock.
//!
//! Interleaved rounds (`ROUNDS`, default 5), medians. Run with
//! `cargo bench -p streamlog-bench --bench concurrency`.

use std::time::{Duration, Instant};

use streamlog::{ProducerConfig, ProducerRecord, Store, TopicConfig};

const RECORDS: usize = 1_000_000;
const THREADS: [usize; 3] = [1, 2, 4];
/// `ONLY=n` runs only the rows with `n` threads (to profile one of them).
fn selected(threads: usize) -> bool {
    std::env::var("ONLY").map_or(true, |v| v == threads.to_string())
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time this process used so far (user + system, all threads; Linux only): the
/// timed sends' CPU over their wall time is how many cores they kept busy, which says
/// whether a row is bound by the machine's two cores or by waiting.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (in parentheses): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Sends `RECORDS` records from `threads` threads, thread `t` to partition `t`; returns
/// the wall time and the CPU time of the sends and the final flush.
fn run(threads: usize, key: &[u8], value: &[u8]) -> (Duration, Option<Duration>) {
    let d = tempfile::tempdir().expect("tempdir");
    let store = Store::open(d.path()).expect("open");
    store
        .create_topic("t", TopicConfig::default().partitions(threads as i32))
        .expect("create");
    let producer = store.producer(ProducerConfig::default()).expect("producer");
    let per_thread = RECORDS / threads;
    let cpu_before = process_cpu();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let producer = producer.clone();
            s.spawn(move || {
                for _ in 0..per_thread {
                    let r = ProducerRecord::new("t")
                        .partition(t as i32)
                        .key(key)
                        .value(value);
                    drop(producer.send(r).expect("send"));
                }
            });
        }
    });
    producer.flush().expect("flush");
    let took = start.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    producer.close().expect("close");
    store.close().expect("close");
    (took, cpu)
}

fn main() {
    let rounds = env_or("ROUNDS", 5).max(1);
    let key = b"user-0000012345";
    let value = [b'x'; 100];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); THREADS.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); THREADS.len()];
    for round in 0..rounds {
        for i in 0..THREADS.len() {
            let at = (i + round) % THREADS.len();
            if selected(THREADS[at]) {
                let (took, cpu) = run(THREADS[at], key, &value);
                times[at].push(took);
                if let Some(cpu) = cpu {
                    cpus[at].push(cpu.as_secs_f64() / took.as_secs_f64());
                }
            }
        }
    }
    let median = |i: usize| {
        let mut t = times[i].clone();
        t.sort();
        t.get(t.len() / 2).copied()
    };
    println!("{RECORDS} records, {rounds} interleaved rounds, medians");
    for (i, threads) in THREADS.iter().enumerate() {
        let Some(took) = median(i) else { continue };
        let rate = RECORDS as f64 / took.as_secs_f64();
        let Some(one) = median(0) else {
            println!("{threads} thread(s), own partitions: {rate:>12.0} records/s");
            continue;
        };
        let scale = one.as_secs_f64() / took.as_secs_f64();
        let target = if *threads == 2 {
            format!(
                " (target >= 1.7x: {})",
                if scale >= 1.7 { "met" } else { "NOT met" }
            )
        } else {
            String::new()
        };
        let mut used = cpus[i].clone();
        used.sort_by(f64::total_cmp);
        let cores = used
            .get(used.len() / 2)
            .map_or(String::new(), |c| format!("  (CPU: {c:.2} cores busy)"));
        println!(
            "{threads} thread(s), own partitions: {rate:>12.0} records/s  {scale:.2}x{target}{cores}"
        );
    }
}
