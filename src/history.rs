//! [`ChangeRecord`], [`Operation`] and the bounded history the writer keeps.
//!
//! The history retains the last `max_history` commits with their change
//! records, so the versions a rollback can reach are the current one and the
//! `max_history` before it. It stores a full snapshot only for published
//! versions (the last commit of each group commit); the versions in between
//! are rebuilt by replaying at most one group's changes. That is what lets
//! the writer mutate its map in place within a group.
//!
//! The commits live in a persistent vector (`imbl::Vector`), so a reader
//! copies the whole history out from under its lock in O(1) and does every
//! search, filter and replay outside it: the writer, which takes the same
//! lock once per group, never waits behind work proportional to the window.
//! The vector's chunks are shared until the writer next pushes, which then
//! copies the one chunk it appends to (and only if a reader copy is alive).
//!
//! Commits of a group are pushed *before* the group is published, so a
//! reader must not show versions past what `version()` shows: every query
//! takes a *horizon*, the newest version the caller may see (see
//! [`History::horizon`]), and ignores anything newer.
//!
//! Versions increase but need not be dense: in memory and in a journal
//! every commit is the previous version plus one, on etcd a commit's
//! version is its etcd revision, and other writers (and other prefixes)
//! take the revisions in between. A lookup first tries the dense position
//! (`version - base - 1`) and checks the commit found there, so the
//! in-memory case stays an O(log n) index into the vector; only when that
//! check fails does it binary-search the versions. The window is the last
//! `max_history` *commits* before a horizon, whatever their numbers, and
//! the state at a version between two commits is the state at the newer
//! commit at or before it.

use std::collections::HashSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::StateError;
use crate::snapshot::Snapshot;
use crate::sync::Arc;
use crate::writer::retired::{Item, Retired};
use crate::Version;

/// The kind of write that produced a [`ChangeRecord`].
///
/// # Examples
///
/// ```
/// use thread_safe_state::Operation;
/// assert_eq!(serde_json::to_string(&Operation::Rollback).unwrap(), r#""rollback""#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// value the rollback changed, sorted by key.
    Rollback,
    /// [`set_if`](crate::ThreadSafeState::set_if) or
    /// [`delete_if`](crate::ThreadSafeState::delete_if).
    Conditional,
    /// [`transaction`](crate::ThreadSafeState::transaction): one record per write.
    Transaction,
    /// The writer removed keys whose TTL
    /// ([`set_with_ttl`](crate::ThreadSafeState::set_with_ttl)) ran out: one
    /// record per key, sorted by key, with no `changed_by`. Keys whose
    /// deadlines pass together expire in one commit.
    Expire,
    /// A commit an etcd state mirrored without knowing the command behind
    /// it: another process's write, or a relist's differences after a
    /// compaction (feature `etcd`). etcd stores values, not operations.
    External,
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
    /// Nothing: the command committed no version (or a rollback to
    /// identical contents, which commits a version with no records).
    None,
    /// The one key a write command wrote or removed, inline: most commands
    /// touch one key, and this spares them an allocation.
    One(Change<V>),
    /// The keys a write command wrote or removed, in order.
    Many(Arc<[Change<V>]>),
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

    /// The records, in the order they were made.
    pub(crate) fn as_slice(&self) -> &[Change<V>] {
        match self {
            Changes::None => &[],
            Changes::One(change) => std::slice::from_ref(change),
            Changes::Many(changes) => changes,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Changes::None)
    }
}

impl<V> Clone for Changes<V> {
    fn clone(&self) -> Self {
        match self {
            Changes::None => Changes::None,
            Changes::One(change) => Changes::One(change.clone()),
            Changes::Many(changes) => Changes::Many(Arc::clone(changes)),
        }
    }
}

/// One retained commit.
pub(crate) struct Commit<V> {
    /// What it was and what it changed.
    pub(crate) view: CommitView<V>,
    /// The state this commit produced. Kept for the last commit of each
    /// group commit (the published one); the versions in between are
    /// rebuilt on demand by replaying changes.
    pub(crate) snapshot: Option<Snapshot<V>>,
}

impl<V> Clone for Commit<V> {
    fn clone(&self) -> Self {
        Commit {
            view: self.view.clone(),
            snapshot: self.snapshot.clone(),
        }
    }
}

/// Why a version cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Newer than the horizon.
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
/// Logically it keeps the last `max_history` commits before a horizon.
/// Physically it keeps a *base* snapshot and every commit after it; the
/// base moves forward only to a commit that holds a snapshot, and only as
/// far as the last *published* version allows (a reader may still ask with
/// that horizon), so up to two groups' worth of extra commits can linger
/// past the logical window. They are never reachable: lookups and records
/// honour the logical window exactly.
pub(crate) struct History<V> {
    max_history: usize,
    base: Snapshot<V>,
    /// The commits after `base`, their versions increasing (dense in
    /// memory: `base + 1 ..= newest`).
    commits: imbl::Vector<Commit<V>>,
    /// The newest version known to be published when the writer last
    /// pushed; a lower bound for every reader's horizon.
    published: Version,
    /// Versions this history never saw, as `(after, upto)`: every version
    /// strictly between the two is unknown. An etcd relist commits the
    /// differences of the revisions it missed as one version `upto`; the
    /// state at a revision in between is not the commit before it.
    gaps: imbl::Vector<(Version, Version)>,
}

impl<V> Clone for History<V> {
    /// O(1): the vectors' chunks are shared.
    fn clone(&self) -> Self {
        Self {
            max_history: self.max_history,
            base: self.base.clone(),
            commits: self.commits.clone(),
            published: self.published,
            gaps: self.gaps.clone(),
        }
    }
}

impl<V> History<V> {
    pub(crate) fn new(max_history: usize, initial: Snapshot<V>) -> Self {
        let published = initial.version();
        Self {
            max_history,
            base: initial,
            commits: imbl::Vector::new(),
            published,
            gaps: imbl::Vector::new(),
        }
    }

    /// Every version strictly between `after` and `upto` is unknown (an
    /// etcd relist at `upto`).
    #[cfg(feature = "etcd")]
    pub(crate) fn mark_gap(&mut self, after: Version, upto: Version) {
        let oldest = self.base.version();
        self.gaps.retain(|&(_, gap_upto)| gap_upto > oldest);
        self.gaps.push_back((after, upto));
    }

    /// The end of the gap `version` falls in, if it does: the first
    /// version known after it.
    pub(crate) fn gap_containing(&self, version: Version) -> Option<Version> {
        self.gaps
            .iter()
            .find(|&&(after, upto)| after < version && version < upto)
            .map(|&(_, upto)| upto)
    }

    /// The newest version recorded, published or not. Only the writer may
    /// look this far.
    pub(crate) fn newest(&self) -> Version {
        self.commits
            .back()
            .map_or(self.base.version(), |commit| commit.view.version)
    }

    /// How many commits have a version at or before `version`: the index
    /// in `commits` just past the newest such commit.
    ///
    /// Dense versions (memory, journal) are found by arithmetic and one
    /// check of the commit there; sparse ones (etcd revisions) by binary
    /// search.
    fn count_upto(&self, version: Version) -> usize {
        let base = self.base.version().get();
        if version.get() <= base {
            return 0;
        }
        let len = self.commits.len();
        let dense = version.get() - base;
        if let Ok(dense) = usize::try_from(dense) {
            if dense <= len && self.commits[dense - 1].view.version == version {
                return dense;
            }
        }
        if self.newest() <= version {
            return len;
        }
        match self
            .commits
            .binary_search_by(|commit| commit.view.version.cmp(&version))
        {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }

    /// The version of the commit before the one at `version` (the base's
    /// version if there is none): `version - 1` when versions are dense.
    /// `version` must be a retained commit's version.
    pub(crate) fn version_before(&self, version: Version) -> Version {
        match self.count_upto(version) {
            0 | 1 => self.base.version(),
            count => self.commits[count - 2].view.version,
        }
    }

    /// The horizon of a reader that loaded `published` from the snapshot
    /// cell *before* it copied this history: every version up to the
    /// horizon is published, and every published version up to it is
    /// recorded here (commits are pushed before they are published).
    pub(crate) fn horizon(&self, published: Version) -> Version {
        published.max(self.published).min(self.newest())
    }

    /// The oldest version reachable from `horizon`: the state before the
    /// oldest of the last `max_history` commits up to `horizon`
    /// (`horizon - max_history` when versions are dense).
    pub(crate) fn oldest_retained(&self, horizon: Version) -> Version {
        let count = self.count_upto(horizon);
        if count > self.max_history {
            self.commits[count - self.max_history - 1].view.version
        } else {
            self.base.version()
        }
    }

    /// Commits in the logical window before `horizon`.
    pub(crate) fn retained_commits(&self, horizon: Version) -> usize {
        self.count_upto(horizon).min(self.max_history)
    }

    /// Record a group of commits, the last of which holds its snapshot, and
    /// retire what no reader can reach any more. `published` is the newest
    /// version published before this group.
    pub(crate) fn push(
        &mut self,
        commits: impl IntoIterator<Item = Commit<V>>,
        published: Version,
        retired: &mut Retired<V>,
    ) {
        for commit in commits {
            debug_assert!(commit.view.version > self.newest());
            self.commits.push_back(commit);
        }
        debug_assert!(self.commits.back().is_none_or(|c| c.snapshot.is_some()));
        self.published = self.published.max(published);
        self.evict(retired);
    }

    /// Forget every commit after `version`, which must be at or after the
    /// base: a group its commit target could not make final. Readers never
    /// saw them (they were not published).
    pub(crate) fn truncate_after(&mut self, version: Version, retired: &mut Retired<V>) {
        debug_assert!(version >= self.base.version());
        while self.newest() > version {
            let commit = self.commits.pop_back().expect("newer than the base");
            retired.push(Item::Commit(commit));
        }
    }

    /// Move the base forward to the newest commit with a snapshot at or
    /// before the oldest version a reader with the published horizon can
    /// still reach.
    fn evict(&mut self, retired: &mut Retired<V>) {
        let keep_from = self.oldest_retained(self.published);
        let evictable = self.count_upto(keep_from);
        let mut new_base = None;
        for index in (0..evictable.min(self.commits.len())).rev() {
            if self.commits[index].snapshot.is_some() {
                new_base = Some(index);
                break;
            }
        }
        let Some(index) = new_base else {
            return;
        };
        for _ in 0..index {
            let commit = self.commits.pop_front().expect("within length");
            retired.push(Item::Commit(commit));
        }
        let commit = self.commits.pop_front().expect("within length");
        let snapshot = commit.snapshot.clone().expect("found with a snapshot");
        retired.push(Item::Commit(commit));
        let old_base = std::mem::replace(&mut self.base, snapshot);
        retired.push(Item::Snapshot(old_base));
    }

    /// The state at `version`, seen from `horizon`: O(1) for a published
    /// version, otherwise a replay of at most one group commit's changes.
    /// Between two commits (sparse versions), the state at the newer
    /// commit at or before `version`, whose version the snapshot carries.
    pub(crate) fn snapshot_at(
        &self,
        version: Version,
        horizon: Version,
    ) -> Result<Snapshot<V>, Unreachable> {
        let oldest_retained = self.oldest_retained(horizon);
        if version < oldest_retained {
            return Err(Unreachable::Compacted { oldest_retained });
        }
        if version > horizon {
            return Err(Unreachable::Future);
        }
        if let Some(upto) = self.gap_containing(version) {
            return Err(Unreachable::Compacted {
                oldest_retained: upto,
            });
        }
        let count = self.count_upto(version);
        if count == 0 {
            return Ok(self.base.clone());
        }
        let index = count - 1;
        let version = self.commits[index].view.version;
        let mut start = None;
        for at in (0..=index).rev() {
            if let Some(snapshot) = &self.commits[at].snapshot {
                if at == index {
                    return Ok(snapshot.clone());
                }
                start = Some((at + 1, snapshot.map().clone()));
                break;
            }
        }
        let (from, mut map) = start.unwrap_or_else(|| (0, self.base.map().clone()));
        for at in from..=index {
            let commit = &self.commits[at];
            for change in commit.view.changes.as_slice() {
                match &change.new {
                    Some(value) => {
                        map.write(
                            Arc::clone(&change.key),
                            Arc::clone(value),
                            commit.view.version,
                        );
                    }
                    None => {
                        map.remove(&change.key);
                    }
                }
            }
        }
        Ok(Snapshot::new(version, map))
    }

    /// The commits after `after` up to and including `upto`, oldest first;
    /// finding the start is O(log n), not a walk from the front.
    fn between(
        &self,
        after: Version,
        upto: Version,
    ) -> impl DoubleEndedIterator<Item = &Commit<V>> {
        let from = self.count_upto(after);
        let to = self.count_upto(upto).max(from);
        self.commits.focus().narrow(from..to).into_iter()
    }

    /// The commits in the window before `horizon`, newest first.
    fn newest_first(&self, horizon: Version) -> impl Iterator<Item = &Commit<V>> {
        self.between(self.oldest_retained(horizon), horizon).rev()
    }

    /// Change records before `horizon`, most recent first, optionally for
    /// one key and at most `limit`.
    pub(crate) fn records(
        &self,
        key: Option<&str>,
        limit: Option<usize>,
        horizon: Version,
    ) -> Vec<ChangeRecord<V>> {
        self.newest_first(horizon)
            .flat_map(|commit| {
                let view = &commit.view;
                view.changes
                    .as_slice()
                    .iter()
                    .rev()
                    .map(move |change| (view, change))
            })
            .filter(|(_, change)| key.is_none_or(|k| *change.key == *k))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(view, change)| view.record(change))
            .collect()
    }

    /// The commits after `after`, up to and including `upto`, oldest first.
    /// `after` must be retained.
    pub(crate) fn views_between(&self, after: Version, upto: Version) -> Vec<CommitView<V>> {
        debug_assert!(after >= self.base.version());
        self.between(after, upto)
            .map(|commit| commit.view.clone())
            .collect()
    }

    /// Every key written or removed after `after`, up to `upto`.
    pub(crate) fn keys_changed_between(&self, after: Version, upto: Version) -> HashSet<Arc<str>> {
        self.between(after, upto)
            .flat_map(|commit| commit.view.changes.as_slice())
            .map(|change| Arc::clone(&change.key))
            .collect()
    }

    #[cfg(test)]
    fn physical_len_bounded(&self, bound: usize) -> bool {
        self.commits.len() <= bound
    }

    /// Change records retained before `horizon`.
    #[cfg(test)]
    fn record_count(&self, horizon: Version) -> usize {
        self.newest_first(horizon)
            .map(|commit| commit.view.changes.as_slice().len())
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
    /// A rollback's target: the values it wrote are that version's very
    /// values (the same `Arc`s), which a journal must restore as such.
    pub(crate) restored_from: Option<Version>,
}

impl<V> Clone for CommitView<V> {
    fn clone(&self) -> Self {
        CommitView {
            version: self.version,
            timestamp: self.timestamp,
            operation: self.operation,
            changed_by: self.changed_by.clone(),
            changes: self.changes.clone(),
            restored_from: self.restored_from,
        }
    }
}

impl<V> CommitView<V> {
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
            records: self
                .changes
                .as_slice()
                .iter()
                .map(|c| self.record(c))
                .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Map;

    /// A history fed groups of `group` single-key commits, each setting
    /// "k" to the version number, published as soon as pushed.
    fn history_with(max_history: usize, versions: u64, group: u64) -> History<u64> {
        history_from(
            max_history,
            group,
            Version::INITIAL,
            (1..=versions).map(Version::new).collect(),
        )
    }

    /// A history from a base at `base` with one single-key commit at each
    /// of `versions`, the n-th setting "k" to n, pushed in groups of
    /// `group` and published as soon as pushed.
    fn history_from(
        max_history: usize,
        group: u64,
        base: Version,
        versions: Vec<Version>,
    ) -> History<u64> {
        let mut history = History::new(max_history, Snapshot::new(base, Map::new()));
        let mut retired = Retired::new();
        let mut map = Map::new();
        let mut pending = Vec::new();
        let mut published = base;
        let count = versions.len() as u64;
        for (v, version) in (1..).zip(versions) {
            let old = map.write(Arc::from("k"), Arc::new(v), version);
            let last_of_group = v % group == 0 || v == count;
            pending.push(Commit {
                view: CommitView {
                    version,
                    timestamp: SystemTime::UNIX_EPOCH,
                    operation: Operation::Set,
                    changed_by: None,
                    restored_from: None,
                    changes: Changes::One(Change {
                        key: Arc::from("k"),
                        old,
                        new: Some(Arc::new(v)),
                    }),
                },
                snapshot: last_of_group.then(|| Snapshot::new(version, map.clone())),
            });
            if last_of_group {
                history.push(pending.drain(..), published, &mut retired);
                published = version;
            }
        }
        history.published = published;
        retired.drop_all();
        history
    }

    #[test]
    fn keeps_exactly_max_history_commits_reachable() {
        for group in [1, 3, 8] {
            let history = history_with(2, 10, group);
            let horizon = history.newest();
            assert_eq!(
                history.oldest_retained(horizon),
                Version::new(8),
                "group {group}"
            );
            assert_eq!(history.retained_commits(horizon), 2);
            assert_eq!(history.record_count(horizon), 2);
            assert_eq!(
                history.snapshot_at(Version::new(7), horizon).unwrap_err(),
                Unreachable::Compacted {
                    oldest_retained: Version::new(8)
                }
            );
            for v in 8..=10 {
                let snapshot = history.snapshot_at(Version::new(v), horizon).unwrap();
                assert_eq!(snapshot.version(), Version::new(v));
                assert_eq!(snapshot.get("k").as_deref(), Some(&v), "group {group}");
                assert_eq!(snapshot.modified_version("k"), Some(Version::new(v)));
                assert_eq!(snapshot.created_version("k"), Some(Version::new(1)));
            }
            assert_eq!(
                history.snapshot_at(Version::new(11), horizon).unwrap_err(),
                Unreachable::Future
            );
        }
    }

    #[test]
    fn nothing_past_the_horizon_is_visible() {
        let history = history_with(100, 10, 1);
        let horizon = Version::new(6);
        let versions: Vec<u64> = history
            .records(None, None, horizon)
            .iter()
            .map(|r| r.version.get())
            .collect();
        assert_eq!(versions, [6, 5, 4, 3, 2, 1]);
        assert_eq!(
            history.snapshot_at(Version::new(7), horizon).unwrap_err(),
            Unreachable::Future
        );
        assert_eq!(history.views_between(Version::new(4), horizon).len(), 2);
    }

    #[test]
    fn physical_retention_is_bounded_by_two_groups() {
        let history = history_with(5, 1000, 7);
        assert!(
            history.commits.len() <= 5 + 2 * 7,
            "{}",
            history.commits.len()
        );
        let records = history.records(None, None, history.newest());
        let versions: Vec<u64> = records.iter().map(|r| r.version.get()).collect();
        assert_eq!(versions, [1000, 999, 998, 997, 996]);
    }

    /// The same history with every version multiplied by `step`
    /// (and starting from a base at `step`): sparse versions, as etcd's.
    fn sparse_history_with(
        max_history: usize,
        versions: u64,
        group: u64,
        step: u64,
    ) -> History<u64> {
        history_from(
            max_history,
            group,
            Version::new(step),
            (1..=versions)
                .map(|v| Version::new((v + 1) * step))
                .collect(),
        )
    }

    #[test]
    fn sparse_versions_keep_the_last_max_history_commits() {
        for group in [1, 3, 8] {
            // Commits at 20, 30, ..., 110 (values 1..=10), base at 10.
            let history = sparse_history_with(2, 10, group, 10);
            let horizon = history.newest();
            assert_eq!(horizon, Version::new(110));
            assert_eq!(
                history.oldest_retained(horizon),
                Version::new(90),
                "group {group}"
            );
            assert_eq!(history.retained_commits(horizon), 2);
            assert_eq!(history.record_count(horizon), 2);
            assert_eq!(
                history.snapshot_at(Version::new(89), horizon).unwrap_err(),
                Unreachable::Compacted {
                    oldest_retained: Version::new(90)
                }
            );
            // A revision between two commits is the state at the older one.
            for (asked, found, value) in [
                (90, 90, 8),
                (95, 90, 8),
                (100, 100, 9),
                (109, 100, 9),
                (110, 110, 10),
            ] {
                let snapshot = history.snapshot_at(Version::new(asked), horizon).unwrap();
                assert_eq!(
                    snapshot.version(),
                    Version::new(found),
                    "group {group} at {asked}"
                );
                assert_eq!(
                    snapshot.get("k").as_deref(),
                    Some(&value),
                    "group {group} at {asked}"
                );
                assert_eq!(snapshot.modified_version("k"), Some(Version::new(found)));
                assert_eq!(snapshot.created_version("k"), Some(Version::new(20)));
            }
            assert_eq!(
                history.snapshot_at(Version::new(111), horizon).unwrap_err(),
                Unreachable::Future
            );
            assert_eq!(history.version_before(Version::new(110)), Version::new(100));
            let versions: Vec<u64> = history
                .records(None, None, horizon)
                .iter()
                .map(|r| r.version.get())
                .collect();
            assert_eq!(versions, [110, 100]);
            // `between` bounds fall between commits too.
            assert_eq!(
                history
                    .views_between(Version::new(95), Version::new(105))
                    .len(),
                1
            );
        }
    }

    #[test]
    fn sparse_horizon_hides_newer_commits() {
        let history = sparse_history_with(100, 10, 1, 7);
        let horizon = Version::new(7 * 6);
        let versions: Vec<u64> = history
            .records(None, None, horizon)
            .iter()
            .map(|r| r.version.get())
            .collect();
        assert_eq!(versions, [42, 35, 28, 21, 14]);
        assert_eq!(history.oldest_retained(horizon), Version::new(7));
        assert_eq!(history.version_before(Version::new(14)), Version::new(7));
        assert!(history.physical_len_bounded(100 + 2));
    }

    #[test]
    fn zero_max_history_retains_only_the_current_version() {
        let history = history_with(0, 3, 1);
        let horizon = history.newest();
        assert_eq!(history.oldest_retained(horizon), Version::new(3));
        assert_eq!(
            history
                .snapshot_at(Version::new(3), horizon)
                .unwrap()
                .version(),
            Version::new(3)
        );
        assert!(history.records(None, None, horizon).is_empty());
    }
}
