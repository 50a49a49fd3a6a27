//! [`Metrics`] and the counters behind them.
//!
//! Reads are counted on the read path, so their counter must not become the
//! contended cache line that a lock-free read was meant to avoid: each thread
//! adds to its own cache-padded shard and [`Metrics`] sums the shards. Writer
//! counters are written by the writer task alone.

use std::cell::Cell;

use serde::Serialize;

use crate::sync::{StatCounter, StatOrdering};
use crate::Version;

/// A point-in-time reading of a state's counters and gauges.
///
/// Counters cover every handle of the state (clones and
/// [`for_agent`](crate::ThreadSafeState::for_agent) views included) since it
/// was built. Each field is read separately, so under concurrent writes the
/// fields can be a few operations apart from one another.
///
/// # Examples
///
/// ```
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// state.set("a", 1).await?;
/// state.delete("missing").await?; // a no-op: no commit
/// let _ = state.get("a");
///
/// let metrics = state.metrics();
/// assert_eq!(metrics.writes, 2);
/// assert_eq!(metrics.commits, 1);
/// assert_eq!(metrics.reads, 1);
/// assert_eq!(metrics.history_len, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// The current version.
    pub version: Version,
    /// Read calls (`get`, `snapshot`, `contains_key`, ...).
    pub reads: u64,
    /// Write commands the writer processed, whatever their outcome.
    pub writes: u64,
    /// Write commands that committed a new version (rollbacks included).
    pub commits: u64,
    /// Rollbacks that committed.
    pub rollbacks: u64,
    /// Write commands that failed with an error.
    pub failed_commands: u64,
    /// Commits the history retains (each with its change records), at most
    /// `max_history`.
    pub history_len: usize,
    /// Versions a rollback can reach, the current one included.
    pub retained_versions: usize,
    /// Commands waiting in the writer's mailbox.
    pub mailbox_depth: usize,
}

/// Writer-side counters plus the sharded read counter.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) reads: ShardedCounter,
    pub(crate) writes: StatCounter,
    pub(crate) commits: StatCounter,
    pub(crate) rollbacks: StatCounter,
    pub(crate) failed: StatCounter,
}

impl Counters {
    /// Count one write-side event. Only the writer task calls this, so the
    /// line is never contended; `Relaxed` suffices for a statistic.
    pub(crate) fn bump(counter: &StatCounter) {
        counter.fetch_add(1, StatOrdering::Relaxed);
    }

    pub(crate) fn load(counter: &StatCounter) -> u64 {
        counter.load(StatOrdering::Relaxed)
    }
}

/// Shards: enough that two busy threads rarely share one.
const SHARDS: usize = 16;

/// One counter per cache line, so two threads' increments never contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter(StatCounter);

/// A counter whose increments from different threads land on different
/// cache lines.
#[derive(Debug, Default)]
pub(crate) struct ShardedCounter {
    shards: [PaddedCounter; SHARDS],
}

impl ShardedCounter {
    pub(crate) fn increment(&self) {
        self.shards[thread_shard()]
            .0
            .fetch_add(1, StatOrdering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.0.load(StatOrdering::Relaxed))
            .sum()
    }
}

/// This thread's shard: threads take shards round-robin on first use.
fn thread_shard() -> usize {
    // Only a thread's first read touches this shared counter.
    static NEXT_SHARD: StatCounter = StatCounter::new(0);
    thread_local! {
        static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SHARD.with(|shard| {
        shard.get().unwrap_or_else(|| {
            let assigned = NEXT_SHARD.fetch_add(1, StatOrdering::Relaxed) as usize % SHARDS;
            shard.set(Some(assigned));
            assigned
        })
    })
}

#[cfg(all(test, not(thread_safe_state_loom)))]
mod tests {
    use super::*;

    #[test]
    fn sharded_counter_sums_increments_from_many_threads() {
        let counter = std::sync::Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counter = std::sync::Arc::clone(&counter);
                std::thread::spawn(move || (0..1000).for_each(|_| counter.increment()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.sum(), 8000);
    }
}
