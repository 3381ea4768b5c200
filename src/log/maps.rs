//! A process-wide bound on memory-mapped segments.
//!
//! The operating system limits the mappings of a process (Linux: `vm.max_map_count`,
//! 65,530 by default), and a reader of every segment of a large store would otherwise
//! keep one mapping per segment forever. Segments register their mapping here; past
//! [`max_mapped_segments`] the least recently read (a clock sweep: a segment read since
//! the hand last passed it gets a second chance) drops its mapping, which the system
//! unmaps once the last slice a reader holds is gone. A segment without a mapping reads
//! with `pread`, as it does when the system refuses a mapping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

/// The default bound: a sixteenth of Linux's default `vm.max_map_count`.
pub const DEFAULT_MAX_MAPPED_SEGMENTS: usize = 4096;

static MAX: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_MAPPED_SEGMENTS);
static SLOTS: Mutex<Clock> = Mutex::new(Clock {
    slots: Vec::new(),
    hand: 0,
    swept: 0,
});

/// Below this many registered slots, gone ones are not swept out.
const MIN_SWEEP: usize = 64;

/// Sets how many segments this process keeps memory-mapped at most (all stores and
/// logs together, since the operating system's limit is per process). Default =
/// [`DEFAULT_MAX_MAPPED_SEGMENTS`]; 0 maps nothing (every read uses `pread`). Lowering
/// it drops the least recently read mappings past the new bound at once (a mapping a
/// read is using right then stays until a later mapping, or a later call of this); the
/// system unmaps each once the last slice a reader holds of it is gone.
pub fn set_max_mapped_segments(max: usize) {
    let mut clock = SLOTS.lock();
    MAX.store(max, Ordering::Release);
    clock.shrink_to(max);
}

/// The current bound (see [`set_max_mapped_segments`]).
pub fn max_mapped_segments() -> usize {
    MAX.load(Ordering::Acquire)
}

struct Clock {
    slots: Vec<Weak<MapSlot>>,
    hand: usize,
    /// Slots left after the last sweep of gone ones.
    swept: usize,
}

/// One segment's mapping, if it has one.
#[derive(Debug, Default)]
pub(crate) struct MapSlot {
    pub(crate) view: Mutex<Option<Bytes>>,
    /// Read since the clock hand last passed.
    referenced: AtomicBool,
}

impl MapSlot {
    /// Marks the mapping as just used.
    pub(crate) fn touch(&self) {
        self.referenced.store(true, Ordering::Relaxed);
    }

    /// Whether another mapping may be made now (false when the bound is 0).
    pub(crate) fn may_map() -> bool {
        max_mapped_segments() > 0
    }

    /// Registers a mapping the slot just got (the caller has released `view`), and
    /// drops the least recently used mappings past the bound.
    pub(crate) fn admit(self: &Arc<Self>) {
        self.touch();
        let mut clock = SLOTS.lock();
        // Read under the lock: a bound lowered meanwhile (its own pass done before this
        // slot was listed) holds for this slot too.
        let max = max_mapped_segments();
        // Forget segments that are gone or lost their mapping, once the list has doubled
        // since the last sweep: each admit costs O(1) amortized, not a pass over every
        // mapped segment (opening thousands of partitions would be quadratic).
        if clock.slots.len() >= (2 * clock.swept).max(MIN_SWEEP) {
            clock.slots.retain(|w| {
                w.upgrade()
                    .is_some_and(|s| s.view.try_lock().is_none_or(|v| v.is_some()))
            });
            clock.swept = clock.slots.len();
        }
        clock.slots.push(Arc::downgrade(self));
        clock.shrink_to(max);
    }
}

impl Clock {
    /// Drops the least recently read mappings until at most `max` are left (or every
    /// slot was passed twice: a slot being read keeps its mapping this round).
    fn shrink_to(&mut self, max: usize) {
        // Each slot is passed at most twice (once to clear its flag): bounded.
        let mut budget = 2 * self.slots.len();
        while self.slots.len() > max && budget > 0 {
            budget -= 1;
            let i = self.hand % self.slots.len();
            let Some(slot) = self.slots[i].upgrade() else {
                self.slots.swap_remove(i);
                continue;
            };
            // A mapping already let go of (its log closed) is not counted against the
            // bound: forgotten here, no live mapping goes in its place.
            if slot.view.try_lock().is_some_and(|v| v.is_none()) {
                self.slots.swap_remove(i);
                continue;
            }
            if slot.referenced.swap(false, Ordering::Relaxed) {
                self.hand = i + 1;
                continue;
            }
            // A slot being read right now keeps its mapping this round.
            if let Some(mut view) = slot.view.try_lock() {
                *view = None;
                self.slots.swap_remove(i);
            } else {
                self.hand = i + 1;
            }
        }
    }
}
