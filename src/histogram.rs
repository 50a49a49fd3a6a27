//! [`Distribution`] and the fixed-size histogram behind it.
//!
//! The writer records write latencies, commit times and group sizes into
//! log-linear buckets: exact below 16, then 8 buckets per power of two, so
//! a percentile is within 12.5% of the true value. Only the writer task
//! records (plain loads and stores on atomics, no locked instruction);
//! any thread reads a summary. Nothing here allocates after construction,
//! and nothing is on the read path.

use serde::Serialize;

use crate::sync::{StatCounter, StatOrdering};

/// Values below this are counted exactly.
const EXACT: u64 = 16;
/// Sub-buckets per power of two above `EXACT`, as a shift.
const SUB_BITS: u32 = 3;
const BUCKETS: usize = EXACT as usize + (64 - 4) * (1 << SUB_BITS);

/// A summary of recorded values: count, mean, median, 99th percentile and
/// maximum. Percentiles are bucket upper bounds, within 12.5% of the true
/// value (exact below 16).
///
/// # Examples
///
/// ```
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// for i in 0..10 {
///     state.set("k", i).await?;
/// }
/// let groups = state.metrics().group_size;
/// assert_eq!(groups.count, 10); // one awaited set at a time: one per group
/// assert_eq!((groups.p50, groups.max), (1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Distribution {
    /// Values recorded.
    pub count: u64,
    /// Their mean (0 when none).
    pub mean: f64,
    /// The median.
    pub p50: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The largest value.
    pub max: u64,
}

/// Log-linear buckets written by one thread, read by any.
pub(crate) struct Histogram {
    buckets: Box<[StatCounter]>,
    count: StatCounter,
    sum: StatCounter,
    max: StatCounter,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| StatCounter::new(0)).collect(),
            count: StatCounter::new(0),
            sum: StatCounter::new(0),
            max: StatCounter::new(0),
        }
    }
}

fn bucket(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= 4
    let sub = (value >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    EXACT as usize + ((exponent - 4) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The largest value that lands in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < EXACT as usize {
        return index as u64;
    }
    let offset = index - EXACT as usize;
    let exponent = (offset >> SUB_BITS) as u32 + 4;
    let sub = (offset & ((1 << SUB_BITS) - 1)) as u64;
    let low = ((1 << SUB_BITS) + sub) << (exponent - SUB_BITS);
    low.saturating_add((1 << (exponent - SUB_BITS)) - 1)
}

/// Add to a counter that only the writer writes: a load and a store, no
/// locked instruction.
fn bump(counter: &StatCounter, by: u64) {
    counter.store(
        counter.load(StatOrdering::Relaxed).wrapping_add(by),
        StatOrdering::Relaxed,
    );
}

impl Histogram {
    /// Record one value. Call from the writer task only.
    pub(crate) fn record(&self, value: u64) {
        bump(&self.buckets[bucket(value)], 1);
        bump(&self.count, 1);
        bump(&self.sum, value);
        if value > self.max.load(StatOrdering::Relaxed) {
            self.max.store(value, StatOrdering::Relaxed);
        }
    }

    /// A summary of everything recorded so far. The fields are read one
    /// by one, so under concurrent recording they may be a few values apart.
    pub(crate) fn summary(&self) -> Distribution {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(StatOrdering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return Distribution::default();
        }
        let max = self.max.load(StatOrdering::Relaxed);
        let percentile = |fraction: f64| {
            let rank = ((count as f64 * fraction).ceil() as u64).max(1);
            let mut seen = 0;
            for (index, &n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return upper_bound(index).min(max);
                }
            }
            max
        };
        Distribution {
            count,
            mean: self.sum.load(StatOrdering::Relaxed) as f64
                / self.count.load(StatOrdering::Relaxed).max(1) as f64,
            p50: percentile(0.50),
            p99: percentile(0.99),
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bounds_contain_their_values() {
        let mut previous = 0;
        for value in (0..5_000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let index = bucket(value);
            assert!(index >= previous, "{value}");
            assert!(index < BUCKETS);
            assert!(upper_bound(index) >= value, "{value}");
            if value >= EXACT {
                // Within 12.5% of the value.
                assert!(upper_bound(index) - value <= value / 8, "{value}");
            } else {
                assert_eq!(upper_bound(index), value);
            }
            previous = index;
        }
    }

    #[test]
    fn summary_reports_mean_percentiles_and_max() {
        let histogram = Histogram::default();
        assert_eq!(histogram.summary(), Distribution::default());
        for value in 1..=100 {
            histogram.record(value);
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.mean - 50.5).abs() < 1e-9);
        assert!((50..=56).contains(&summary.p50), "{summary:?}");
        assert!((99..=100).contains(&summary.p99), "{summary:?}");
        assert_eq!(summary.max, 100);
    }
}
