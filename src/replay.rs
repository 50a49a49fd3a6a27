//! Rebuilding a state and its history from stored commits: what a journal
//! does when it recovers and what an import does.
//!
//! The commits are replayed over a base snapshot through [`Map::write`],
//! the same path the writer takes, so each key's created and modified
//! versions come out as they were, and each history record gets its old
//! value back. The caller hands in the values: a rollback's must be the
//! very `Arc`s it restored (journal and export each record which), because
//! rollback compares values by pointer.

use std::time::SystemTime;

use crate::history::{Change, Changes, Commit, CommitView, Operation};
use crate::map::Map;
use crate::snapshot::Snapshot;
use crate::sync::Arc;
use crate::Version;

/// Replayed commits carry a snapshot this often, so that a history lookup
/// between two of them replays at most this many commits.
const SNAPSHOT_EVERY: usize = 64;

/// Why the stored commits do not fit together.
#[derive(Debug)]
pub(crate) struct Inconsistent(pub(crate) String);

/// One commit to replay.
pub(crate) struct Replayed<'a, V> {
    pub(crate) version: Version,
    pub(crate) timestamp: SystemTime,
    pub(crate) operation: Operation,
    pub(crate) changed_by: Option<&'a str>,
    pub(crate) restored_from: Option<Version>,
    /// Each key and its new value, `None` for a removal.
    pub(crate) changes: Vec<(&'a str, Option<Arc<V>>)>,
}

/// A base snapshot and the commits replayed over it so far.
pub(crate) struct Replay<V> {
    base: Snapshot<V>,
    map: Map<V>,
    commits: Vec<Commit<V>>,
}

impl<V> Replay<V> {
    pub(crate) fn new(base: Snapshot<V>) -> Self {
        Self {
            map: base.map().clone(),
            base,
            commits: Vec::new(),
        }
    }

    /// Apply one commit.
    ///
    /// # Errors
    ///
    /// When its version is not the next one, or it removes a key that does
    /// not exist.
    pub(crate) fn commit(&mut self, commit: Replayed<'_, V>) -> Result<(), Inconsistent> {
        let last = self
            .commits
            .last()
            .map_or(self.base.version(), |commit| commit.view.version);
        if last.get() == u64::MAX {
            return Err(Inconsistent(format!("no version follows {last}")));
        }
        let expected = last.next();
        if commit.version != expected {
            return Err(Inconsistent(format!(
                "version {} follows version {}",
                commit.version,
                expected.prev().unwrap_or(Version::INITIAL)
            )));
        }
        let mut changes = Vec::with_capacity(commit.changes.len());
        for (key, new) in commit.changes {
            let shared = self.map.get_key(key).unwrap_or_else(|| Arc::from(key));
            match new {
                Some(value) => {
                    let old =
                        self.map
                            .write(Arc::clone(&shared), Arc::clone(&value), commit.version);
                    changes.push(Change {
                        key: shared,
                        old,
                        new: Some(value),
                    });
                }
                None => {
                    let Some(old) = self.map.remove(key) else {
                        return Err(Inconsistent(format!(
                            "version {} removes {key:?}, which does not exist",
                            commit.version
                        )));
                    };
                    changes.push(Change {
                        key: shared,
                        old: Some(old),
                        new: None,
                    });
                }
            }
        }
        self.commits.push(Commit {
            view: CommitView {
                version: commit.version,
                timestamp: commit.timestamp,
                operation: commit.operation,
                changed_by: commit.changed_by.map(Arc::from),
                changes: Changes::written(changes),
                restored_from: commit.restored_from,
            },
            snapshot: None,
        });
        if self.commits.len().is_multiple_of(SNAPSHOT_EVERY) {
            let last = self.commits.last_mut().expect("just pushed");
            last.snapshot = Some(Snapshot::new(commit.version, self.map.clone()));
        }
        Ok(())
    }

    /// The base and the replayed commits, the last one with its snapshot.
    pub(crate) fn finish(mut self) -> (Snapshot<V>, Vec<Commit<V>>) {
        if let Some(last) = self.commits.last_mut() {
            if last.snapshot.is_none() {
                last.snapshot = Some(Snapshot::new(last.view.version, self.map));
            }
        }
        (self.base, self.commits)
    }
}
