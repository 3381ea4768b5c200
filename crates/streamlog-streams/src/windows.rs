//! Time windows: tumbling and hopping windows aligned to the epoch, with a grace
//! period, as Kafka Streams' `TimeWindows`.

use std::time::Duration;

use crate::error::{Result, StreamsError};

/// A time window `[start, end)` in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after it.
    pub end: i64,
}

/// A key and the window it is counted in: the key of a windowed aggregation's table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

/// Fixed-size windows advancing by `advance` (tumbling when advance = size, hopping
/// when smaller). Windows start at multiples of the advance since the epoch; a record at
/// time `t` belongs to every window with `start <= t < start + size` (and `start >= 0`).
/// A window closes once the task's stream time (the largest record timestamp it has
/// seen) reaches `end + grace`; records for closed windows are dropped and counted.
///
/// ```
/// use std::time::Duration;
/// use streamlog_streams::TimeWindows;
/// let w = TimeWindows::of_size_with_no_grace(Duration::from_secs(300));
/// assert_eq!(w.windows_for(301_000)[0].start, 300_000);
/// let hop = TimeWindows::of_size_and_grace(Duration::from_millis(10), Duration::ZERO)
///     .advance_by(Duration::from_millis(5));
/// assert_eq!(hop.windows_for(12).len(), 2); // [5, 15) and [10, 20)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period (Kafka's `ofSizeWithNoGrace`).
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` accepting records up to `grace` after a window ends.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: millis(size),
            advance_ms: millis(size),
            grace_ms: millis(grace),
        }
    }

    /// Hopping windows: a new window every `advance` (at most the size; checked when
    /// the topology is built).
    #[must_use]
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = millis(advance);
        self
    }

    /// The window size in ms.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The advance in ms.
    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.size_ms <= 0 {
            return Err(StreamsError::Topology {
                reason: "a window size must be at least 1 ms".into(),
            });
        }
        if self.advance_ms <= 0 || self.advance_ms > self.size_ms {
            return Err(StreamsError::Topology {
                reason: format!(
                    "a window advance must be 1 ms to the size ({} ms), found {} ms",
                    self.size_ms, self.advance_ms
                ),
            });
        }
        Ok(())
    }

    /// The windows a record at `timestamp` belongs to, oldest first (none for a
    /// negative timestamp).
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        if timestamp < 0 || self.size_ms <= 0 || self.advance_ms <= 0 {
            return Vec::new();
        }
        let last = timestamp - timestamp.rem_euclid(self.advance_ms);
        let mut out = Vec::new();
        let mut start = last;
        while start >= 0 && start > timestamp - self.size_ms {
            out.push(Window {
                start,
                end: start.saturating_add(self.size_ms),
            });
            start -= self.advance_ms;
        }
        out.reverse();
        out
    }

    /// Whether `window` is closed at `stream_time`.
    pub fn is_closed(&self, window: &Window, stream_time: i64) -> bool {
        stream_time >= window.end.saturating_add(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_cover_the_timestamp() {
        let w = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(3));
        for t in 0..40 {
            let ws = w.windows_for(t);
            for x in &ws {
                assert!(x.start <= t && t < x.end && x.start % 3 == 0);
            }
            let expected = (0..=t).filter(|s| s % 3 == 0 && t < s + 10).count();
            assert_eq!(ws.len(), expected, "t={t}");
        }
        assert!(w.windows_for(-1).is_empty());
    }

    #[test]
    fn bad_windows_are_refused() {
        assert!(
            TimeWindows::of_size_with_no_grace(Duration::ZERO)
                .validate()
                .is_err()
        );
        let w = TimeWindows::of_size_with_no_grace(Duration::from_millis(5))
            .advance_by(Duration::from_millis(6));
        assert!(w.validate().is_err());
    }
}
