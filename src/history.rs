//! [`ChangeRecord`], [`Operation`] and the bounded history the writer keeps.
//!
//! The history retains the last `max_history` commits with their change
//! records, so the versions a rollback can reach are the current one and the
//! `max_history` before it. It stores a full snapshot only for published
//! versions (the last commit of each group commit) and for rollbacks; the
//! versions in between are rebuilt by replaying at most one group's changes.
//! That is what lets the writer mutate its map in place within a group.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::StateError;
use crate::map::Map;
use crate::snapshot::{Entry, Snapshot};
use crate::sync::{Arc, OnceLock};
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
    /// [`set_if`](crate::ThreadSafeState::set_if) or
    /// [`delete_if`](crate::ThreadSafeState::delete_if).
    Conditional,
    /// [`transaction`](crate::ThreadSafeState::transaction): one record per write.
    Transaction,
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

impl<V> Clone for Change<V> {
    fn clone(&self) -> Self {
        Change {
            key: Arc::clone(&self.key),
            old: self.old.clone(),
            new: self.new.clone(),
        }
    }
}

/// What one commit changed.
pub(crate) enum Changes<V> {
    /// Nothing: the command committed no version.
    None,
    /// The one key a write command wrote or removed, inline: most commands
    /// touch one key, and this spares them an allocation.
    One(Change<V>),
    /// The keys a write command wrote or removed, in order.
    Many(Arc<[Change<V>]>),
    /// A rollback: the difference between the two maps, worked out on first
    /// read so that the rollback itself stays O(1).
    Rollback(Arc<RollbackDiff<V>>),
}

impl<V> Changes<V> {
    /// The records of a write command, in order, in the cheapest form.
    pub(crate) fn written(mut changes: Vec<Change<V>>) -> Self {
        match changes.len() {
            0 => Changes::None,
            1 => Changes::One(changes.pop().expect("one")),
            _ => Changes::Many(changes.into()),
        }
    }

    /// A write command's records; `None` for a rollback, whose records are
    /// not known until computed.
    pub(crate) fn as_written(&self) -> Option<&[Change<V>]> {
        match self {
            Changes::None => Some(&[]),
            Changes::One(change) => Some(std::slice::from_ref(change)),
            Changes::Many(changes) => Some(changes),
            Changes::Rollback(_) => None,
        }
    }
}

impl<V> Clone for Changes<V> {
    fn clone(&self) -> Self {
        match self {
            Changes::None => Changes::None,
            Changes::One(change) => Changes::One(change.clone()),
            Changes::Many(changes) => Changes::Many(Arc::clone(changes)),
            Changes::Rollback(diff) => Changes::Rollback(Arc::clone(diff)),
        }
    }
}

/// The maps before and after a rollback, and their difference once computed.
pub(crate) struct RollbackDiff<V> {
    before: Map<V>,
    after: Map<V>,
    changes: OnceLock<Vec<Change<V>>>,
}

impl<V> RollbackDiff<V> {
    pub(crate) fn new(before: Map<V>, after: Map<V>) -> Self {
        Self {
            before,
            after,
            changes: OnceLock::new(),
        }
    }

    /// The keys whose values differ, sorted by key. O(n) the first time.
    fn changes(&self) -> &[Change<V>] {
        self.changes.get_or_init(|| {
            let before_keys = self.before.keys();
            let after_only = self
                .after
                .keys()
                .filter(|key| !self.before.contains_key(key));
            let mut changes: Vec<Change<V>> = before_keys
                .chain(after_only)
                .filter_map(|key| {
                    let old = self.before.get(key).map(Entry::value);
                    let new = self.after.get(key).map(Entry::value);
                    let same = match (old, new) {
                        (Some(old), Some(new)) => Arc::ptr_eq(old, new),
                        (old, new) => old.is_none() && new.is_none(),
                    };
                    (!same).then(|| Change {
                        key: Arc::clone(key),
                        old: old.cloned(),
                        new: new.cloned(),
                    })
                })
                .collect();
            changes.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            changes
        })
    }
}

/// One retained commit.
pub(crate) struct Commit<V> {
    /// What it was and what it changed.
    pub(crate) view: CommitView<V>,
    /// The state this commit produced. Kept for the last commit of each
    /// group commit (the published one) and for rollbacks; the versions in
    /// between are rebuilt on demand by replaying changes.
    pub(crate) snapshot: Option<Snapshot<V>>,
}

impl<V> Commit<V> {
    #[cfg(test)]
    fn record_count(&self) -> Option<usize> {
        self.view.changes.as_written().map(<[_]>::len)
    }
}

/// Why a version cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Newer than the current version.
    Future,
    /// Older than the oldest retained version.
    Compacted { oldest_retained: Version },
}

impl Unreachable {
    /// The error a caller sees for asking about `target`.
    pub(crate) fn into_error(self, target: Version, current: Version) -> StateError {
        match self {
            Unreachable::Compacted { oldest_retained } => StateError::VersionCompacted {
                target,
                oldest_retained,
            },
            Unreachable::Future => StateError::FutureVersion { target, current },
        }
    }
}

/// The bounded history.
///
/// Logically it keeps the last `max_history` commits. Physically it keeps a
/// *base* snapshot and every commit after it; the base moves forward only to
/// a commit that holds a snapshot, so up to one group commit's worth of
/// extra commits can linger past the logical window. They are never
/// reachable: lookups and records honour the logical window exactly.
pub(crate) struct History<V> {
    max_history: usize,
    base: Snapshot<V>,
    /// The commits after `base`, versions `base + 1 ..= current`.
    commits: VecDeque<Commit<V>>,
}

impl<V> History<V> {
    pub(crate) fn new(max_history: usize, initial: Snapshot<V>) -> Self {
        Self {
            max_history,
            base: initial,
            // Cap the up-front allocation: a huge max_history is a bound, not a size.
            commits: VecDeque::with_capacity(max_history.min(1024)),
        }
    }

    /// The latest committed version.
    pub(crate) fn current_version(&self) -> Version {
        Version::new(self.base.version().get() + self.commits.len() as u64)
    }

    /// The oldest version a rollback can reach.
    pub(crate) fn oldest_retained(&self) -> Version {
        let window_start = self
            .current_version()
            .get()
            .saturating_sub(self.max_history as u64);
        self.base.version().max(Version::new(window_start))
    }

    /// Commits in the logical window.
    pub(crate) fn retained_commits(&self) -> usize {
        (self.current_version().get() - self.oldest_retained().get()) as usize
    }

    /// Record a group of commits, the last of which holds its snapshot, and
    /// drop what falls out of the window.
    pub(crate) fn push(&mut self, commits: impl IntoIterator<Item = Commit<V>>) {
        for commit in commits {
            debug_assert_eq!(commit.view.version, self.current_version().next());
            self.commits.push_back(commit);
        }
        debug_assert!(self.commits.back().is_none_or(|c| c.snapshot.is_some()));
        self.evict();
    }

    /// Move the base forward to the newest commit with a snapshot that keeps
    /// at least `max_history` commits after it.
    fn evict(&mut self) {
        let excess = self.commits.len().saturating_sub(self.max_history);
        let new_base = self
            .commits
            .iter()
            .take(excess)
            .rposition(|commit| commit.snapshot.is_some());
        if let Some(index) = new_base {
            let evicted = self.commits.drain(..=index).next_back();
            self.base = evicted
                .and_then(|commit| commit.snapshot)
                .expect("rposition found a snapshot");
        }
    }

    /// The state at a retained version: O(1) for a published version or a
    /// rollback, otherwise a replay of at most one group commit's changes.
    pub(crate) fn snapshot_at(&self, version: Version) -> Result<Snapshot<V>, Unreachable> {
        let oldest_retained = self.oldest_retained();
        if version < oldest_retained {
            return Err(Unreachable::Compacted { oldest_retained });
        }
        if version > self.current_version() {
            return Err(Unreachable::Future);
        }
        let Some(index) = (version.get() - self.base.version().get()).checked_sub(1) else {
            return Ok(self.base.clone());
        };
        let index = index as usize;
        let start = self
            .commits
            .range(..=index)
            .rposition(|c| c.snapshot.is_some());
        let (mut map, replay) = match start {
            Some(start) if start == index => {
                return Ok(self.commits[index]
                    .snapshot
                    .clone()
                    .expect("position has one"))
            }
            Some(start) => {
                let snapshot = self.commits[start].snapshot.as_ref().expect("has one");
                (snapshot.map().clone(), start + 1..=index)
            }
            None => (self.base.map().clone(), 0..=index),
        };
        for commit in self.commits.range(replay) {
            let Some(changes) = commit.view.changes.as_written() else {
                unreachable!("rollback commits keep their snapshot");
            };
            for change in changes.iter() {
                match &change.new {
                    Some(value) => {
                        let version = commit.view.version;
                        map.write(Arc::clone(&change.key), Arc::clone(value), version);
                    }
                    None => {
                        map.remove(&change.key);
                    }
                }
            }
        }
        Ok(Snapshot::new(version, map))
    }

    /// What [`Window::records`] needs from the retained commits, newest
    /// first, taken under the lock so that building the records happens
    /// outside it. Without a key filter it stops once the commits hold
    /// `limit` records, so `history(None, Some(10))` copies a few commits,
    /// not the whole window.
    pub(crate) fn window(&self, key: Option<&str>, limit: Option<usize>) -> Window<V> {
        let skip = self.commits.len() - self.retained_commits();
        let wanted = if key.is_none() { limit } else { None };
        let mut records = 0;
        let commits = self
            .commits
            .iter()
            .skip(skip)
            .rev()
            .take_while(|commit| {
                let more = wanted.is_none_or(|wanted| records < wanted);
                // A rollback's record count is unknown until computed, so
                // it never ends the window early.
                if let Some(changes) = commit.view.changes.as_written() {
                    records += changes.len();
                }
                more
            })
            .map(|commit| commit.view.clone())
            .collect();
        Window { commits }
    }

    /// The commits after `version`, oldest first. `version` must be retained.
    pub(crate) fn views_after(&self, version: Version) -> VecDeque<CommitView<V>> {
        debug_assert!(version >= self.oldest_retained());
        let skip = (version.get() - self.base.version().get()) as usize;
        self.commits
            .iter()
            .skip(skip)
            .map(|c| c.view.clone())
            .collect()
    }

    /// Change records retained, if known without computing rollback diffs.
    #[cfg(test)]
    fn record_count(&self) -> Option<usize> {
        let skip = self.commits.len() - self.retained_commits();
        self.commits
            .iter()
            .skip(skip)
            .map(Commit::record_count)
            .sum()
    }
}

/// A commit's metadata and changes, cheap to clone out of the history.
pub(crate) struct CommitView<V> {
    pub(crate) version: Version,
    /// When the writer committed it. Kept as a `SystemTime`, which costs
    /// the writer one clock read; the calendar conversion happens when a
    /// record is read.
    pub(crate) timestamp: SystemTime,
    pub(crate) operation: Operation,
    pub(crate) changed_by: Option<Arc<str>>,
    pub(crate) changes: Changes<V>,
}

impl<V> Clone for CommitView<V> {
    fn clone(&self) -> Self {
        CommitView {
            version: self.version,
            timestamp: self.timestamp,
            operation: self.operation,
            changed_by: self.changed_by.clone(),
            changes: self.changes.clone(),
        }
    }
}

impl<V> CommitView<V> {
    /// The commit's changes in the order they were made (a rollback's
    /// computed on first read).
    fn changes(&self) -> &[Change<V>] {
        match &self.changes {
            Changes::Rollback(diff) => diff.changes(),
            written => written.as_written().expect("not a rollback"),
        }
    }

    fn record(&self, change: &Change<V>) -> ChangeRecord<V> {
        ChangeRecord {
            version: self.version,
            timestamp: OffsetDateTime::from(self.timestamp),
            key: change.key.to_string(),
            operation: self.operation,
            old_value: change.old.clone(),
            new_value: change.new.clone(),
            changed_by: self.changed_by.as_deref().map(str::to_owned),
        }
    }

    /// The whole commit as a [`ChangeSet`].
    pub(crate) fn change_set(&self) -> ChangeSet<V> {
        ChangeSet {
            version: self.version,
            timestamp: OffsetDateTime::from(self.timestamp),
            operation: self.operation,
            changed_by: self.changed_by.as_deref().map(str::to_owned),
            records: self.changes().iter().map(|c| self.record(c)).collect(),
        }
    }
}

/// Every record of one commit, as a change stream delivers it: one
/// version, never split.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Operation, ThreadSafeState, Version};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let mut changes = state.changes_since(Version::INITIAL)?;
/// state.update([("a", 1), ("b", 2)]).await?;
/// let set = changes.next().await.unwrap()?;
/// assert_eq!(set.version, Version::new(1));
/// assert_eq!(set.operation, Operation::Update);
/// assert_eq!(set.records.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ChangeSet<V> {
    /// The version the commit created.
    pub version: Version,
    /// When the writer committed it (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The kind of write.
    pub operation: Operation,
    /// The agent id of the handle that wrote it.
    pub changed_by: Option<String>,
    /// Its records, in the order the keys were written (sorted by key for
    /// clear, retain and rollback). A rollback to identical contents has none.
    pub records: Vec<ChangeRecord<V>>,
}

/// The retained commits, newest first, detached from the history lock.
pub(crate) struct Window<V> {
    commits: Vec<CommitView<V>>,
}

impl<V> Window<V> {
    /// Change records, most recent first, optionally for one key and at most `limit`.
    pub(crate) fn records(&self, key: Option<&str>, limit: Option<usize>) -> Vec<ChangeRecord<V>> {
        self.commits
            .iter()
            .flat_map(|commit| {
                commit
                    .changes()
                    .iter()
                    .rev()
                    .map(move |change| (commit, change))
            })
            .filter(|(_, change)| key.is_none_or(|k| *change.key == *k))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(commit, change)| commit.record(change))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history fed one single-command group per version, each setting
    /// "k" to the version number, like a writer with no concurrency.
    fn history_with(max_history: usize, versions: u64, group: u64) -> History<u64> {
        let mut history = History::new(max_history, Snapshot::new(Version::INITIAL, Map::new()));
        let mut map = Map::new();
        let mut pending = Vec::new();
        for v in 1..=versions {
            let version = Version::new(v);
            let old = map.write(Arc::from("k"), Arc::new(v), version);
            let last_of_group = v % group == 0 || v == versions;
            pending.push(Commit {
                view: CommitView {
                    version,
                    timestamp: SystemTime::UNIX_EPOCH,
                    operation: Operation::Set,
                    changed_by: None,
                    changes: Changes::One(Change {
                        key: Arc::from("k"),
                        old,
                        new: Some(Arc::new(v)),
                    }),
                },
                snapshot: last_of_group.then(|| Snapshot::new(version, map.clone())),
            });
            if last_of_group {
                history.push(pending.drain(..));
            }
        }
        history
    }

    #[test]
    fn keeps_exactly_max_history_commits_reachable() {
        for group in [1, 3, 8] {
            let history = history_with(2, 10, group);
            assert_eq!(history.oldest_retained(), Version::new(8), "group {group}");
            assert_eq!(history.retained_commits(), 2);
            assert_eq!(history.record_count(), Some(2));
            assert_eq!(
                history.snapshot_at(Version::new(7)).unwrap_err(),
                Unreachable::Compacted {
                    oldest_retained: Version::new(8)
                }
            );
            for v in 8..=10 {
                let snapshot = history.snapshot_at(Version::new(v)).unwrap();
                assert_eq!(snapshot.version(), Version::new(v));
                assert_eq!(snapshot.get("k").as_deref(), Some(&v), "group {group}");
                assert_eq!(snapshot.modified_version("k"), Some(Version::new(v)));
                assert_eq!(snapshot.created_version("k"), Some(Version::new(1)));
            }
            assert_eq!(
                history.snapshot_at(Version::new(11)).unwrap_err(),
                Unreachable::Future
            );
        }
    }

    #[test]
    fn physical_retention_is_bounded_by_one_group() {
        let history = history_with(5, 1000, 7);
        assert!(history.commits.len() <= 5 + 7, "{}", history.commits.len());
        let records = history.window(None, None).records(None, None);
        let versions: Vec<u64> = records.iter().map(|r| r.version.get()).collect();
        assert_eq!(versions, [1000, 999, 998, 997, 996]);
    }

    #[test]
    fn an_unfiltered_limited_window_copies_only_the_commits_it_needs() {
        let history = history_with(1000, 100, 1);
        assert_eq!(history.window(None, Some(3)).commits.len(), 3);
        assert_eq!(history.window(Some("k"), Some(3)).commits.len(), 100);
        assert_eq!(history.window(None, None).commits.len(), 100);
    }

    #[test]
    fn zero_max_history_retains_only_the_current_version() {
        let history = history_with(0, 3, 1);
        assert_eq!(history.oldest_retained(), Version::new(3));
        assert_eq!(
            history.snapshot_at(Version::new(3)).unwrap().version(),
            Version::new(3)
        );
        assert!(history.window(None, None).records(None, None).is_empty());
    }
}
