//! The system clock read at most once a millisecond per thread, for record timestamps.
//!
//! Reading the wall clock costs about 35 ns here (a virtual machine's clock source),
//! a fifth of what a `send` costs. Kafka timestamps are milliseconds, so each thread
//! keeps the last reading and reuses it while less than a millisecond has passed, which
//! it tells from the CPU's time-stamp counter (`quanta`, about 10 ns). A timestamp is
//! then at most 1 behind the wall clock's millisecond at the send (in real time, the
//! reading rounded down and reused for under 1 ms: up to just under 2 ms old). That
//! bound relies on the cores' counters being in step, as the kernel requires to use
//! them as its own clock source; a counter seen going back is not trusted. Where the
//! counter is not usable, `quanta` reads the monotonic clock instead, and a send reads
//! two clocks where it read one.
//!
//! `quanta` calibrates the counter at the first reading in the process, spinning for at
//! least half a millisecond: creating a producer takes that reading, not a send.

use std::cell::Cell;
use std::sync::OnceLock;

/// How long a reading is reused (see the module's note on what that bounds): under a
/// millisecond by a margin for an error in the counter's calibration.
const FRESH_NS: u64 = 900_000;

static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();

thread_local! {
    /// The counter at the last reading, and the reading (0, 0: none yet).
    static LAST: Cell<(u64, i64)> = const { Cell::new((0, 0)) };
}

/// `read()` (the wall clock, in milliseconds) as read on this thread less than
/// [`FRESH_NS`] ago, or read now.
pub(crate) fn recent_ms(read: impl FnOnce() -> i64) -> i64 {
    let counter = COUNTER.get_or_init(quanta::Clock::new);
    let now = counter.raw();
    LAST.with(|last| {
        let (at, ms) = last.get();
        // A counter that went back (another core's) is not trusted to tell the time.
        if at != 0 && now >= at && counter.delta_as_nanos(at, now) < FRESH_NS {
            return ms;
        }
        let ms = read();
        last.set((now.max(1), ms));
        ms
    })
}
