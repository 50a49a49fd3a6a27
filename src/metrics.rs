//! [`Metrics`] and the counters behind them.
//!
//! Reads are counted on the read path, so their counter must not become the
//! contended cache line that a lock-free read was meant to avoid: each thread
//! adds to its own cache-padded shard and [`Metrics`] sums the shards. Writer
//! counters are written by the writer task alone.

use serde::Serialize;

use crate::histogram::{Distribution, Histogram};
use crate::sync::{StatCounter, StatMutex, StatOrdering};
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// The current version.
    pub version: Version,
    /// Read calls of every kind (`get`, `snapshot`, `contains_key`, ...).
    pub reads: u64,
    /// Of `reads`: `get`, `get_required`, `get_with_fallback` and `get_as`.
    pub gets: u64,
    /// Of `reads`: `snapshot`.
    pub snapshots: u64,
    /// Write commands the writer processed, whatever their outcome.
    pub writes: u64,
    /// Versions committed: by write commands (rollbacks included) and by
    /// TTL expiry, which commits without a command, so `commits` can
    /// exceed `writes`.
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
    /// `writes` by operation.
    pub writes_by_operation: OperationCounts,
    /// Nanoseconds from a write's submission (the caller handing it to the
    /// mailbox) to its reply, one value per write command.
    pub write_latency_ns: Distribution,
    /// Nanoseconds the writer spends on one group commit, from taking the
    /// group to having published it, one value per group.
    pub commit_time_ns: Distribution,
    /// Commands per group commit: above 1 means group commit is sharing one
    /// publish among several writes. A group that only expired TTL keys
    /// records 0.
    pub group_size: Distribution,
}

/// Write commands processed, by operation.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = thread_safe_state::ThreadSafeState::new();
/// state.set("a", 1).await?;
/// state.set("b", 2).await?;
/// state.delete("a").await?;
/// let writes = state.metrics().writes_by_operation;
/// assert_eq!((writes.set, writes.delete, writes.update), (2, 1, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[allow(missing_docs)] // each field is the write method of the same name
pub struct OperationCounts {
    pub set: u64,
    pub update: u64,
    pub delete: u64,
    pub clear: u64,
    pub modify: u64,
    pub retain: u64,
    pub rollback: u64,
    pub set_if: u64,
    pub delete_if: u64,
    pub transaction: u64,
}

/// The operation of a write command, to count it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpKind {
    Set,
    Update,
    Delete,
    Clear,
    Modify,
    Retain,
    Rollback,
    SetIf,
    DeleteIf,
    Transaction,
}

const OP_KINDS: usize = 10;

impl OperationCounts {
    fn from_counters(counters: &[StatCounter; OP_KINDS]) -> Self {
        let n = |kind: OpKind| Counters::load(&counters[kind as usize]);
        Self {
            set: n(OpKind::Set),
            update: n(OpKind::Update),
            delete: n(OpKind::Delete),
            clear: n(OpKind::Clear),
            modify: n(OpKind::Modify),
            retain: n(OpKind::Retain),
            rollback: n(OpKind::Rollback),
            set_if: n(OpKind::SetIf),
            delete_if: n(OpKind::DeleteIf),
            transaction: n(OpKind::Transaction),
        }
    }
}

/// What one group commit did, kept by the writer and added to the shared
/// [`Counters`] once the group is published, so that `metrics()` never
/// counts what `version()` does not show.
#[derive(Default)]
pub(crate) struct GroupCounts {
    pub(crate) commits: u64,
    pub(crate) failed: u64,
    pub(crate) rollbacks: u64,
    pub(crate) by_operation: [u64; OP_KINDS],
}

impl GroupCounts {
    pub(crate) fn wrote(&mut self, kind: OpKind) {
        self.by_operation[kind as usize] += 1;
    }

    /// Add the group's counts to `counters` and start afresh. Call after
    /// the group is published.
    pub(crate) fn flush(&mut self, counters: &Counters) {
        let counts = std::mem::take(self);
        let writes: u64 = counts.by_operation.iter().sum();
        Counters::add(&counters.writes, writes);
        Counters::add(&counters.commits, counts.commits);
        Counters::add(&counters.failed, counts.failed);
        Counters::add(&counters.rollbacks, counts.rollbacks);
        for (counter, count) in counters.by_operation.iter().zip(counts.by_operation) {
            Counters::add(counter, count);
        }
    }
}

/// Writer-side counters and histograms, plus the sharded read counter.
pub(crate) struct Counters {
    pub(crate) reads: ShardedCounter,
    pub(crate) writes: StatCounter,
    pub(crate) commits: StatCounter,
    pub(crate) rollbacks: StatCounter,
    pub(crate) failed: StatCounter,
    pub(crate) by_operation: [StatCounter; OP_KINDS],
    pub(crate) write_latency_ns: Histogram,
    pub(crate) commit_time_ns: Histogram,
    pub(crate) group_size: Histogram,
    /// The same figures through the `metrics` facade.
    #[cfg(feature = "metrics")]
    export: crate::metrics_export::Exporter,
}

impl Counters {
    /// Counters for a state named `name` (its exported metrics' label).
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = name;
        Self {
            reads: ShardedCounter::default(),
            writes: StatCounter::new(0),
            commits: StatCounter::new(0),
            rollbacks: StatCounter::new(0),
            failed: StatCounter::new(0),
            by_operation: Default::default(),
            write_latency_ns: Histogram::default(),
            commit_time_ns: Histogram::default(),
            group_size: Histogram::default(),
            #[cfg(feature = "metrics")]
            export: crate::metrics_export::Exporter::new(name),
        }
    }

    /// One write's latency, submission to reply. Writer only.
    pub(crate) fn record_write(&self, latency: std::time::Duration) {
        self.write_latency_ns.record(nanos(latency));
        #[cfg(feature = "metrics")]
        self.export.write_latency(latency);
    }

    /// One group: its size and how long it took to publish, and the
    /// version now published. Writer only, after the group's counts are
    /// flushed.
    pub(crate) fn record_group(&self, size: usize, took: std::time::Duration, version: Version) {
        self.group_size.record(size as u64);
        self.commit_time_ns.record(nanos(took));
        #[cfg(feature = "metrics")]
        self.export.group(self, version, size, took);
        #[cfg(not(feature = "metrics"))]
        let _ = version;
    }

    /// Add a group's count of write-side events. Only the writer task
    /// writes these counters, so a load and a store lose nothing and need
    /// no locked instruction. The store is `Release`, paired with `Acquire` in [`Self::load`]: counts are added
    /// after their group is published, so a reader that sees them also
    /// sees that publish.
    pub(crate) fn add(counter: &StatCounter, count: u64) {
        if count > 0 {
            counter.store(
                counter.load(StatOrdering::Relaxed) + count,
                StatOrdering::Release,
            );
        }
    }

    pub(crate) fn load(counter: &StatCounter) -> u64 {
        counter.load(StatOrdering::Acquire)
    }

    pub(crate) fn by_operation(&self) -> OperationCounts {
        OperationCounts::from_counters(&self.by_operation)
    }
}

/// A duration in whole nanoseconds, saturating.
fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Threads that get a shard of their own.
const SHARDS: usize = 64;
/// Shards that threads beyond the first [`SHARDS`] share, with atomic adds.
const SHARED_SHARDS: usize = 8;

/// The kinds of read counted apart.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadKind {
    /// `get`, `get_required`, `get_with_fallback`, `get_as`.
    Get = 0,
    /// `snapshot`.
    Snapshot = 1,
    /// Every other read (`contains_key`, `len`, `keys`, `version`, ...).
    Other = 2,
}

/// One thread's read counts, one per kind, on a cache line of their own,
/// so two threads' increments never contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter([StatCounter; 3]);

/// A counter whose increments from different threads land on different
/// cache lines.
///
/// Each of the first [`SHARDS`] live threads owns one shard (the same index
/// in every counter) and increments it with a plain load and store: no
/// locked instruction, nothing shared. Further threads spread over
/// [`SHARED_SHARDS`] separate shards with atomic adds. A thread's index is
/// recycled when it exits.
#[derive(Debug)]
pub(crate) struct ShardedCounter {
    shards: [PaddedCounter; SHARDS + SHARED_SHARDS],
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| PaddedCounter::default()),
        }
    }
}

impl ShardedCounter {
    pub(crate) fn increment(&self, kind: ReadKind) {
        let (index, exclusive) = thread_shard();
        let shard = &self.shards[index].0[kind as usize];
        if exclusive {
            // Only this thread writes this shard, and the recycling handoff
            // goes through a mutex, so load-then-store loses nothing.
            shard.store(shard.load(StatOrdering::Relaxed) + 1, StatOrdering::Relaxed);
        } else {
            shard.fetch_add(1, StatOrdering::Relaxed);
        }
    }

    /// The reads of one kind, summed over the shards.
    pub(crate) fn sum(&self, kind: ReadKind) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.0[kind as usize].load(StatOrdering::Relaxed))
            .sum()
    }

    /// Every read, of any kind.
    pub(crate) fn total(&self) -> u64 {
        [ReadKind::Get, ReadKind::Snapshot, ReadKind::Other]
            .into_iter()
            .map(|kind| self.sum(kind))
            .sum()
    }
}

/// Shard indices released by exited threads.
static FREE_SHARDS: StatMutex<Vec<usize>> = StatMutex::new(Vec::new());
/// The next never-used shard index.
static NEXT_SHARD: StatCounter = StatCounter::new(0);

/// A thread's claim on an exclusive shard, released when the thread exits.
struct ShardClaim(usize);

impl Drop for ShardClaim {
    fn drop(&mut self) {
        // Reads later in this thread's teardown must not use the index
        // another thread may get next.
        let _ = SHARD.try_with(|shard| shard.set(SHARDS));
        FREE_SHARDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.0);
    }
}

/// Marks a thread that has no shard yet.
const UNASSIGNED: usize = usize::MAX;

thread_local! {
    /// This thread's shard. Const-initialized with no destructor, so the
    /// read path pays a plain thread-local load.
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(UNASSIGNED) };
    /// Returns an exclusive shard to the free list when the thread exits.
    static CLAIM: std::cell::RefCell<Option<ShardClaim>> = const { std::cell::RefCell::new(None) };
}

/// This thread's shard and whether it owns it alone.
fn thread_shard() -> (usize, bool) {
    let shard = SHARD.get();
    if shard != UNASSIGNED {
        return (shard, shard < SHARDS);
    }
    let shard = assign_shard();
    SHARD.set(shard);
    (shard, shard < SHARDS)
}

#[cold]
fn assign_shard() -> usize {
    let recycled = FREE_SHARDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let index = recycled.unwrap_or_else(|| NEXT_SHARD.fetch_add(1, StatOrdering::Relaxed) as usize);
    if index >= SHARDS {
        return SHARDS + index % SHARED_SHARDS;
    }
    // If the thread is already tearing down its thread-locals, the claim
    // cannot be registered: give the index back and share instead.
    let registered = CLAIM
        .try_with(|claim| *claim.borrow_mut() = Some(ShardClaim(index)))
        .is_ok();
    if registered {
        index
    } else {
        drop(ShardClaim(index));
        SHARDS
    }
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
                std::thread::spawn(move || {
                    (0..1000).for_each(|_| counter.increment(ReadKind::Get));
                    (0..10).for_each(|_| counter.increment(ReadKind::Snapshot));
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.sum(ReadKind::Get), 8000);
        assert_eq!(counter.sum(ReadKind::Snapshot), 80);
        assert_eq!(counter.sum(ReadKind::Other), 0);
        assert_eq!(counter.total(), 8080);
    }

    /// Serializes the tests that depend on how many shards are taken.
    static SHARD_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn an_exited_threads_shard_is_reused_by_the_next_thread() {
        let _one_at_a_time = SHARD_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // Far more threads over time than there are shards, never many at
        // once: without recycling, the later ones would all share.
        for _ in 0..SHARDS * 3 {
            let (_, exclusive) = std::thread::spawn(thread_shard).join().unwrap();
            assert!(exclusive, "an exited thread's shard was not recycled");
        }
    }

    #[test]
    fn more_threads_than_shards_still_count_exactly() {
        let _one_at_a_time = SHARD_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let counter = std::sync::Arc::new(ShardedCounter::default());
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(SHARDS + 8));
        let threads: Vec<_> = (0..SHARDS + 8)
            .map(|_| {
                let (counter, barrier) = (counter.clone(), barrier.clone());
                // All alive at once, so some must share a shard.
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..100).for_each(|_| counter.increment(ReadKind::Other));
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.total(), (SHARDS as u64 + 8) * 100);
    }
}
