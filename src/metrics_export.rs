//! Publishing [`Metrics`](crate::Metrics) through the `metrics` crate facade
//! (cargo feature `metrics`), so any exporter the application installs
//! (Prometheus, OpenTelemetry, StatsD, ...) sees them.
//!
//! Handles are registered once, when the state is built, with whatever
//! recorder is installed then: install the recorder first. The writer
//! updates them after each group is published, from the same figures
//! `metrics()` reads; nothing is added to the read path (read counts are
//! summed from their per-thread shards by the writer, after each group).
//! Counters are *incremented* by what changed since the last export, so
//! states that share a name (by default every state is named "") add up
//! in one series instead of overwriting each other; the version gauge of a
//! shared name shows whichever state published last.
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `thread_safe_state_reads_total` | counter | `state`, `kind` = get, snapshot, other |
//! | `thread_safe_state_writes_total` | counter | `state`, `operation` = set, update, ... |
//! | `thread_safe_state_commits_total` | counter | `state` |
//! | `thread_safe_state_failed_commands_total` | counter | `state` |
//! | `thread_safe_state_rollbacks_total` | counter | `state` |
//! | `thread_safe_state_version` | gauge | `state` |
//! | `thread_safe_state_write_latency_seconds` | histogram, one value per write | `state` |
//! | `thread_safe_state_commit_seconds` | histogram, one value per group | `state` |
//! | `thread_safe_state_group_size` | histogram, one value per group | `state` |

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::metrics::{Counters, OperationCounts, ReadKind};
use crate::sync::{StatCounter, StatOrdering};
use crate::Version;

/// A facade counter, and the total this state last exported to it.
struct Exported {
    handle: Counter,
    last: StatCounter,
}

impl Exported {
    fn new(handle: Counter) -> Self {
        Self {
            handle,
            last: StatCounter::new(0),
        }
    }

    /// Add what `total` gained since the last export. Writer only.
    fn export(&self, total: u64) {
        let last = self.last.load(StatOrdering::Relaxed);
        if total > last {
            self.handle.increment(total - last);
            self.last.store(total, StatOrdering::Relaxed);
        }
    }
}

/// The facade handles of one state.
pub(crate) struct Exporter {
    reads: [Exported; 3],
    writes: [Exported; 10],
    commits: Exported,
    failed: Exported,
    rollbacks: Exported,
    version: Gauge,
    write_latency: Histogram,
    commit_time: Histogram,
    group_size: Histogram,
}

impl Exporter {
    /// Register this state's handles, labelled `state = name`.
    pub(crate) fn new(name: &str) -> Self {
        let state = name.to_owned();
        let read = |kind: &'static str| {
            Exported::new(
                counter!("thread_safe_state_reads_total", "state" => state.clone(), "kind" => kind),
            )
        };
        let write = |operation: &'static str| {
            Exported::new(
                counter!("thread_safe_state_writes_total", "state" => state.clone(), "operation" => operation),
            )
        };
        Self {
            reads: [read("get"), read("snapshot"), read("other")],
            writes: [
                write("set"),
                write("update"),
                write("delete"),
                write("clear"),
                write("modify"),
                write("retain"),
                write("rollback"),
                write("set_if"),
                write("delete_if"),
                write("transaction"),
            ],
            commits: Exported::new(
                counter!("thread_safe_state_commits_total", "state" => state.clone()),
            ),
            failed: Exported::new(
                counter!("thread_safe_state_failed_commands_total", "state" => state.clone()),
            ),
            rollbacks: Exported::new(
                counter!("thread_safe_state_rollbacks_total", "state" => state.clone()),
            ),
            version: gauge!("thread_safe_state_version", "state" => state.clone()),
            write_latency: histogram!("thread_safe_state_write_latency_seconds", "state" => state.clone()),
            commit_time: histogram!("thread_safe_state_commit_seconds", "state" => state.clone()),
            group_size: histogram!("thread_safe_state_group_size", "state" => state),
        }
    }

    pub(crate) fn write_latency(&self, latency: Duration) {
        self.write_latency.record(latency.as_secs_f64());
    }

    /// After a group is published and its counts flushed.
    pub(crate) fn group(&self, counters: &Counters, version: Version, size: usize, took: Duration) {
        self.group_size.record(size as f64);
        self.commit_time.record(took.as_secs_f64());
        self.version.set(version.get() as f64);
        for (handle, kind) in
            self.reads
                .iter()
                .zip([ReadKind::Get, ReadKind::Snapshot, ReadKind::Other])
        {
            handle.export(counters.reads.sum(kind));
        }
        let OperationCounts {
            set,
            update,
            delete,
            clear,
            modify,
            retain,
            rollback,
            set_if,
            delete_if,
            transaction,
        } = counters.by_operation();
        let by_operation = [
            set,
            update,
            delete,
            clear,
            modify,
            retain,
            rollback,
            set_if,
            delete_if,
            transaction,
        ];
        for (handle, count) in self.writes.iter().zip(by_operation) {
            handle.export(count);
        }
        self.commits.export(Counters::load(&counters.commits));
        self.failed.export(Counters::load(&counters.failed));
        self.rollbacks.export(Counters::load(&counters.rollbacks));
    }
}
