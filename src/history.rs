//! [`ChangeRecord`], [`Operation`] and the bounded history the writer keeps.
//!
//! The history retains the last `max_history` commits: each commit's change
//! records and the snapshot it produced, plus the snapshot just before the
//! oldest retained commit (the *base*). So the versions a rollback can reach
//! are `base ..= current`, at most `max_history + 1` of them, and every
//! lookup by version is an index computation, O(1).

use std::collections::{HashSet, VecDeque};

use serde::Serialize;
use time::OffsetDateTime;

use crate::snapshot::Snapshot;
use crate::sync::Arc;
use crate::Version;

/// The kind of write that produced a [`ChangeRecord`].
///
/// # Examples
///
/// ```
/// use thread_safe_state::Operation;
/// assert_eq!(serde_json::to_string(&Operation::Rollback).unwrap(), r#""rollback""#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// [`set`](crate::ThreadSafeState::set).
    Set,
    /// [`update`](crate::ThreadSafeState::update): one record per key of the batch.
    Update,
    /// [`delete`](crate::ThreadSafeState::delete).
    Delete,
    /// [`clear`](crate::ThreadSafeState::clear): one record per removed key.
    Clear,
    /// [`modify`](crate::ThreadSafeState::modify).
    Modify,
    /// [`retain`](crate::ThreadSafeState::retain): one record per removed key.
    Retain,
    /// [`rollback`](crate::ThreadSafeState::rollback): one record per key whose
    /// value the rollback changed.
    Rollback,
}

/// One key's change in one commit: who changed what, from what, to what, when.
///
/// `old_value` is `None` when the key was created, `new_value` is `None` when
/// it was removed. A batch commits several records with the same version.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Operation, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let parser = state.for_agent("parser");
/// parser.set("contracts", 3).await?;
///
/// let record = &state.history(None, None)[0];
/// assert_eq!(record.key, "contracts");
/// assert_eq!(record.operation, Operation::Set);
/// assert_eq!(record.old_value, None);
/// assert_eq!(record.new_value.as_deref(), Some(&3));
/// assert_eq!(record.changed_by.as_deref(), Some("parser"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ChangeRecord<V> {
    /// The version this change committed in.
    pub version: Version,
    /// When the writer committed it (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The key that changed.
    pub key: String,
    /// The kind of write.
    pub operation: Operation,
    /// The value before, `None` if the key was absent.
    pub old_value: Option<Arc<V>>,
    /// The value after, `None` if the key was removed.
    pub new_value: Option<Arc<V>>,
    /// The agent id of the handle that wrote it (see
    /// [`for_agent`](crate::ThreadSafeState::for_agent)).
    pub changed_by: Option<String>,
}

/// One key's change, as the writer stores it (no per-record allocations).
pub(crate) struct Change<V> {
    pub(crate) key: Arc<str>,
    pub(crate) old: Option<Arc<V>>,
    pub(crate) new: Option<Arc<V>>,
}

/// One retained commit.
pub(crate) struct Commit<V> {
    pub(crate) timestamp: OffsetDateTime,
    pub(crate) operation: Operation,
    pub(crate) changed_by: Option<Arc<str>>,
    pub(crate) changes: Vec<Change<V>>,
    /// The state this commit produced; its version is the commit's version.
    pub(crate) snapshot: Snapshot<V>,
}

/// Why a version cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Newer than the current version.
    Future,
    /// Older than the oldest retained version.
    Compacted { oldest_retained: Version },
}

/// The bounded history: the last `max_history` commits and the base snapshot.
pub(crate) struct History<V> {
    max_history: usize,
    base: Snapshot<V>,
    commits: VecDeque<Commit<V>>,
    /// Change records across `commits`, kept for [`Metrics`](crate::Metrics).
    records: usize,
}

impl<V> History<V> {
    pub(crate) fn new(max_history: usize, initial: Snapshot<V>) -> Self {
        Self {
            max_history,
            base: initial,
            // Cap the up-front allocation: a huge max_history is a bound, not a size.
            commits: VecDeque::with_capacity(max_history.min(1024)),
            records: 0,
        }
    }

    /// Record a commit, evicting the oldest one beyond `max_history`.
    pub(crate) fn push(&mut self, commit: Commit<V>) {
        debug_assert_eq!(commit.snapshot.version(), self.current().version().next());
        self.records += commit.changes.len();
        self.commits.push_back(commit);
        while self.commits.len() > self.max_history {
            let evicted = self
                .commits
                .pop_front()
                .expect("len > max_history >= 0, so not empty");
            self.records -= evicted.changes.len();
            self.base = evicted.snapshot;
        }
    }

    /// The snapshot of the latest commit (or the base when none is retained).
    pub(crate) fn current(&self) -> &Snapshot<V> {
        self.commits.back().map_or(&self.base, |c| &c.snapshot)
    }

    /// The oldest version a rollback can reach.
    pub(crate) fn oldest_retained(&self) -> Version {
        self.base.version()
    }

    /// How many versions a rollback can reach, the current one included.
    pub(crate) fn retained_versions(&self) -> usize {
        self.commits.len() + 1
    }

    /// How many change records are retained.
    pub(crate) fn record_count(&self) -> usize {
        self.records
    }

    /// The snapshot of a retained version, in O(1).
    pub(crate) fn snapshot_at(&self, version: Version) -> Result<&Snapshot<V>, Unreachable> {
        let oldest = self.oldest_retained();
        if version < oldest {
            return Err(Unreachable::Compacted {
                oldest_retained: oldest,
            });
        }
        let offset = version.get() - oldest.get();
        if offset == 0 {
            return Ok(&self.base);
        }
        usize::try_from(offset - 1)
            .ok()
            .and_then(|index| self.commits.get(index))
            .map(|commit| &commit.snapshot)
            .ok_or(Unreachable::Future)
    }

    /// The keys written by the commits after `version` (which must be retained).
    ///
    /// These are the only keys whose values can differ between `version` and
    /// now, which makes a rollback cost O(keys changed), not O(state size).
    pub(crate) fn keys_changed_after(&self, version: Version) -> HashSet<Arc<str>> {
        let skip = (version.get() - self.oldest_retained().get()) as usize;
        self.commits
            .iter()
            .skip(skip)
            .flat_map(|commit| commit.changes.iter().map(|c| Arc::clone(&c.key)))
            .collect()
    }

    /// Change records, most recent first, optionally for one key and at most `limit`.
    pub(crate) fn records(&self, key: Option<&str>, limit: Option<usize>) -> Vec<ChangeRecord<V>> {
        let limit = limit.unwrap_or(usize::MAX);
        self.commits
            .iter()
            .rev()
            .flat_map(|commit| {
                commit
                    .changes
                    .iter()
                    .rev()
                    .map(move |change| (commit, change))
            })
            .filter(|(_, change)| key.is_none_or(|k| *change.key == *k))
            .take(limit)
            .map(|(commit, change)| ChangeRecord {
                version: commit.snapshot.version(),
                timestamp: commit.timestamp,
                key: change.key.to_string(),
                operation: commit.operation,
                old_value: change.old.clone(),
                new_value: change.new.clone(),
                changed_by: commit.changed_by.as_deref().map(str::to_owned),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Entry, Map};

    fn snapshot_with(version: u64, value: u32) -> Snapshot<u32> {
        let mut map = Map::new_sync();
        let v = Version::new(version);
        map.insert_mut(Arc::from("k"), Entry::new(Arc::new(value), v, v));
        Snapshot::new(v, map)
    }

    fn commit(version: u64) -> Commit<u32> {
        Commit {
            timestamp: OffsetDateTime::UNIX_EPOCH,
            operation: Operation::Set,
            changed_by: None,
            changes: vec![Change {
                key: Arc::from("k"),
                old: None,
                new: Some(Arc::new(version as u32)),
            }],
            snapshot: snapshot_with(version, version as u32),
        }
    }

    #[test]
    fn keeps_at_most_max_history_commits_and_the_base() {
        let mut history = History::new(2, snapshot_with(0, 0));
        for v in 1..=5 {
            history.push(commit(v));
        }
        assert_eq!(history.oldest_retained(), Version::new(3));
        assert_eq!(history.retained_versions(), 3);
        assert_eq!(history.record_count(), 2);
        assert_eq!(
            history.snapshot_at(Version::new(2)).unwrap_err(),
            Unreachable::Compacted {
                oldest_retained: Version::new(3)
            }
        );
        for v in 3..=5 {
            let snapshot = history.snapshot_at(Version::new(v)).unwrap();
            assert_eq!(snapshot.version(), Version::new(v));
        }
        assert_eq!(
            history.snapshot_at(Version::new(6)).unwrap_err(),
            Unreachable::Future
        );
    }

    #[test]
    fn zero_max_history_retains_only_the_current_version() {
        let mut history = History::new(0, snapshot_with(0, 0));
        history.push(commit(1));
        assert_eq!(history.oldest_retained(), Version::new(1));
        assert_eq!(history.current().version(), Version::new(1));
        assert!(history.records(None, None).is_empty());
    }
}
