//! [`Export`]: a state with its versions and history window, as data.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::BuildError;
use crate::history::Operation;
use crate::map::Map;
use crate::replay::{Replay, Replayed};
use crate::snapshot::{Entry, Snapshot};
use crate::state::ThreadSafeState;
use crate::sync::Arc;
use crate::Version;

/// The format [`ThreadSafeState::export`] writes and [`Builder::import`]
/// reads.
///
/// [`Builder::import`]: crate::Builder::import
const FORMAT: u32 = 1;

/// A state exported with [`ThreadSafeState::export`]: its keys with their
/// created and modified versions, its version, and its retained history
/// window, as plain data that any serde format can write. Loaded with
/// [`Builder::import`](crate::Builder::import) into a new state, in this
/// process or another, it gives back the same `get`, `version`,
/// per-key versions, `history`, `snapshot_at` and `rollback` targets.
///
/// It holds the state as of the window's oldest version and every commit
/// since, so its size is the live data plus the window's changes.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Export, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let state = ThreadSafeState::new();
/// state.set("plan", "draft".to_string()).await?;
/// state.for_agent("editor").set("plan", "final".to_string()).await?;
///
/// let json = serde_json::to_string(&state.export())?;
/// let export: Export<String> = serde_json::from_str(&json)?;
/// let copy = ThreadSafeState::builder().import(export).try_build()?;
///
/// assert_eq!(copy.version(), state.version());
/// assert_eq!(copy.get("plan").as_deref().map(String::as_str), Some("final"));
/// assert_eq!(copy.history(None, None), state.history(None, None));
/// # Ok(())
/// # }
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
pub struct Export<V> {
    format: u32,
    /// The version the state had.
    version: Version,
    /// The state at the oldest retained version.
    base: Base<V>,
    /// Every commit after the base, oldest first.
    commits: Vec<ExportedCommit<V>>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
struct Base<V> {
    version: Version,
    entries: Vec<ExportedEntry<V>>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
struct ExportedEntry<V> {
    key: String,
    value: Arc<V>,
    created: Version,
    modified: Version,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
struct ExportedCommit<V> {
    version: Version,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    operation: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed_by: Option<String>,
    /// A rollback's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restored_from: Option<Version>,
    changes: Vec<ExportedChange<V>>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
struct ExportedChange<V> {
    key: String,
    /// The new value; absent for a removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Arc<V>>,
}

impl<V> Export<V> {
    /// The version of the exported state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let v = state.set("k", 1).await?;
    /// assert_eq!(state.export().version(), v);
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(&self) -> Version {
        self.version
    }

    /// Rebuild the base snapshot and the commits after it.
    pub(crate) fn replay(
        self,
    ) -> Result<(Snapshot<V>, Vec<crate::history::Commit<V>>), BuildError> {
        let invalid = |detail: String| BuildError::InvalidImport { detail };
        if self.format > FORMAT {
            return Err(invalid(format!(
                "export format {} is newer than this version reads ({FORMAT})",
                self.format
            )));
        }
        let mut map = Map::new();
        for entry in self.base.entries {
            if entry.key.is_empty() {
                return Err(BuildError::EmptyKey);
            }
            if entry.created > entry.modified || entry.modified > self.base.version {
                return Err(invalid(format!(
                    "key {:?}: created {} and modified {} do not fit the base version {}",
                    entry.key, entry.created, entry.modified, self.base.version
                )));
            }
            if map.contains_key(&entry.key) {
                return Err(invalid(format!("key {:?} appears twice", entry.key)));
            }
            map.insert(
                Arc::from(entry.key.as_str()),
                Entry::new(entry.value, entry.modified, entry.created),
            );
        }
        let mut replay = Replay::new(Snapshot::new(self.base.version, map));
        for commit in self.commits {
            if commit.changes.iter().any(|change| change.key.is_empty()) {
                return Err(BuildError::EmptyKey);
            }
            let restored_from = commit.restored_from;
            let changes = commit
                .changes
                .iter()
                .map(|change| {
                    let value = change.value.as_ref().map(|value| {
                        restored_from
                            .and_then(|target| replay.value_at(target, &change.key))
                            .unwrap_or_else(|| Arc::clone(value))
                    });
                    (change.key.as_str(), value)
                })
                .collect();
            replay
                .commit(Replayed {
                    version: commit.version,
                    timestamp: commit.timestamp.into(),
                    operation: commit.operation,
                    changed_by: commit.changed_by.as_deref(),
                    restored_from,
                    changes,
                })
                .map_err(|inconsistent| invalid(inconsistent.0))?;
        }
        let (base, commits) = replay.finish();
        let newest = commits.last().map_or(base.version(), |c| c.view.version);
        if newest != self.version {
            return Err(invalid(format!(
                "the commits end at version {newest}, not at the exported version {}",
                self.version
            )));
        }
        Ok((base, commits))
    }
}

impl<V> fmt::Debug for Export<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("version", &self.version)
            .field("base_version", &self.base.version)
            .field("keys", &self.base.entries.len())
            .field("commits", &self.commits.len())
            .finish_non_exhaustive()
    }
}

impl<V> ThreadSafeState<V> {
    /// The published state with its versions and retained history window,
    /// as an [`Export`] to serialize and load elsewhere with
    /// [`Builder::import`](crate::Builder::import). Values are shared, not
    /// copied; the cost is one pass over the keys and the window.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let state = ThreadSafeState::builder().max_history(10).build();
    /// let first = state.set("step", 1).await?;
    /// state.set("step", 2).await?;
    ///
    /// let copy = ThreadSafeState::builder().max_history(10).import(state.export()).try_build()?;
    /// assert_eq!(copy.snapshot_at(first)?.get("step").as_deref(), Some(&1));
    /// copy.rollback(first).await?;
    /// assert_eq!(copy.get("step").as_deref(), Some(&1));
    /// assert_eq!(state.get("step").as_deref(), Some(&2)); // the original is untouched
    /// # Ok(())
    /// # }
    /// ```
    pub fn export(&self) -> Export<V> {
        let (history, horizon) = self.shared().history();
        let oldest = history.oldest_retained(horizon);
        let base = history
            .snapshot_at(oldest, horizon)
            .expect("the oldest retained version is reachable");
        let mut entries: Vec<ExportedEntry<V>> = base
            .map()
            .iter()
            .map(|(key, entry)| ExportedEntry {
                key: key.to_string(),
                value: Arc::clone(entry.value()),
                created: entry.created(),
                modified: entry.modified(),
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let commits = history
            .views_between(oldest, horizon)
            .into_iter()
            .map(|view| ExportedCommit {
                version: view.version,
                timestamp: view.timestamp.into(),
                operation: view.operation,
                changed_by: view.changed_by.as_deref().map(str::to_owned),
                restored_from: view.restored_from,
                changes: view
                    .changes
                    .as_slice()
                    .iter()
                    .map(|change| ExportedChange {
                        key: change.key.to_string(),
                        value: change.new.clone(),
                    })
                    .collect(),
            })
            .collect();
        Export {
            format: FORMAT,
            version: horizon,
            base: Base {
                version: oldest,
                entries,
            },
            commits,
        }
    }
}
