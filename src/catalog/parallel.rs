//! Work on many partitions at once: opening, creating and closing partitions is bound
//! by file-system latency (fsyncs, directory lookups), not by the CPU, so a store with
//! thousands of partitions does it on many threads (up to [`MAX_THREADS`]), whose fsyncs
//! the device serves together.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many items the work stays on the calling thread (and in order: tests that
/// crash a small store after every file operation see the same sequence every run).
const MIN_ITEMS: usize = 64;
/// Threads at most: enough to keep a device's queue busy with fsyncs. A device takes
/// concurrent flushes together: on the development machine's virtual disk, fdatasyncs
/// of separate files ran at about 7,000/s from one thread, 22,000-26,000/s from 8 and
/// 31,000-42,000/s from 32, and closing 10,000 partitions took 2.5-2.7 s on 32 threads
/// against 5.9-6.8 s on 8 (`partitions` bench).
const MAX_THREADS: usize = 32;

/// `f` applied to each of `items`, on up to [`MAX_THREADS`] scoped threads for many
/// items; results in the order of `items`.
pub(super) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < MIN_ITEMS {
        return items.iter().map(f).collect();
    }
    let threads = items.len().div_ceil(MIN_ITEMS).min(MAX_THREADS);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        // A thread that cannot be created (a process limit) is no error: the threads
        // already running, and the calling thread, share the items between them.
        let workers: Vec<_> = (1..threads)
            .map_while(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mine = work();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(done) => done,
                // A panic in `f` is a bug; pass it on as the sequential code would.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .chain(mine)
            .collect()
    });
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// As [`map`] for work that can fail: stops taking new items at the first error
/// (sequentially: nothing after it is touched, as a `?` loop) and returns the results
/// of the items done, or the first error in item order.
pub(super) fn try_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    if items.len() < MIN_ITEMS {
        return items.iter().map(f).collect();
    }
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = map(items, |item| {
        if failed.load(Ordering::SeqCst) {
            return None;
        }
        let r = f(item);
        if r.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        Some(r)
    });
    // Done items are returned (and dropped by the caller) only if all succeeded.
    let mut out = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(v) => out.push(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        for n in [0, 1, 63, 64, 1000] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                super::map(&items, |i| i * 2),
                items.iter().map(|i| i * 2).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn try_map_stops_at_an_error() {
        for n in [10, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let touched = std::sync::atomic::AtomicUsize::new(0);
            let r = super::try_map(&items, |&i| {
                touched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i == 5 { Err(i) } else { Ok(i) }
            });
            assert_eq!(r, Err(5));
            let touched = touched.into_inner();
            if n < super::MIN_ITEMS {
                assert_eq!(touched, 6, "nothing after the error");
            } else {
                assert!(touched < n, "{touched} of {n}");
            }
            assert_eq!(
                super::try_map(&items, |&i| Ok::<_, ()>(i)),
                Ok(items.clone())
            );
        }
    }
}
