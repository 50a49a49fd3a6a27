//! [`Export`]: a state with its versions and history window, as data.

use std::collections::HashMap;
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
/// since, so its size is the live data plus the window's changes. A value
/// that a rollback restored is written once and referred to after that,
/// so the import shares it as the original did.
///
/// TTLs are not part of an export: a key set with
/// [`set_with_ttl`](ThreadSafeState::set_with_ttl) is imported as a plain
/// key that does not expire (set the TTL again after importing if it must).
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
    /// The new value; absent for a removal, and when `same_as` names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Arc<V>>,
    /// The new value is the very value (the same `Arc`, as a rollback
    /// restores it) that this key got at that earlier version, or had in
    /// the base when it is the base's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    same_as: Option<Version>,
}

/// The newest version an import accepts: room for 2^63 more writes, so
/// the writer's version counter cannot overflow.
const MAX_IMPORTED_VERSION: u64 = u64::MAX >> 1;

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
        if self.version.get() > MAX_IMPORTED_VERSION || self.base.version > self.version {
            return Err(invalid(format!(
                "version {} (base {}) is out of range: at most {MAX_IMPORTED_VERSION}, base first",
                self.version, self.base.version
            )));
        }
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
        // Every value by its key and the version it first appeared at, so
        // that a `same_as` gets the very same `Arc`.
        let mut values: HashMap<(String, Version), Arc<V>> = map
            .iter()
            .map(|(key, entry)| {
                (
                    (key.to_string(), self.base.version),
                    Arc::clone(entry.value()),
                )
            })
            .collect();
        let mut replay = Replay::new(Snapshot::new(self.base.version, map));
        for commit in self.commits {
            if commit
                .restored_from
                .is_some_and(|target| target >= commit.version)
            {
                return Err(invalid(format!(
                    "the rollback at version {} restores version {}, which is not before it",
                    commit.version,
                    commit.restored_from.unwrap_or_default()
                )));
            }
            let mut changes = Vec::with_capacity(commit.changes.len());
            for change in &commit.changes {
                if change.key.is_empty() {
                    return Err(BuildError::EmptyKey);
                }
                let value = match (&change.value, change.same_as) {
                    (_, Some(origin)) => {
                        let key = (change.key.clone(), origin);
                        match values.get(&key) {
                            Some(value) if origin < commit.version => Some(Arc::clone(value)),
                            _ => {
                                return Err(invalid(format!(
                                    "version {} refers to a value of {:?} at version {origin} that the export does not hold",
                                    commit.version, change.key
                                )))
                            }
                        }
                    }
                    (Some(value), None) => {
                        values.insert((change.key.clone(), commit.version), Arc::clone(value));
                        Some(Arc::clone(value))
                    }
                    (None, None) => None,
                };
                changes.push((change.key.as_str(), value));
            }
            replay
                .commit(Replayed {
                    version: commit.version,
                    timestamp: commit.timestamp.into(),
                    operation: commit.operation,
                    changed_by: commit.changed_by.as_deref(),
                    restored_from: commit.restored_from,
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
        // Where each value first appears, by identity: a rollback restores
        // the very values of its target, and an import must share them as
        // this state does (rollback compares values by pointer). Every
        // value here is alive in `base` or `views`, so addresses are unique.
        let mut seen: HashMap<(*const V, Arc<str>), Version> = base
            .map()
            .iter()
            .map(|(key, entry)| ((Arc::as_ptr(entry.value()), Arc::clone(key)), oldest))
            .collect();
        let views = history.views_between(oldest, horizon);
        let commits = views
            .iter()
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
                    .map(|change| {
                        let Some(value) = &change.new else {
                            return ExportedChange {
                                key: change.key.to_string(),
                                value: None,
                                same_as: None,
                            };
                        };
                        let identity = (Arc::as_ptr(value), Arc::clone(&change.key));
                        match seen.get(&identity) {
                            Some(&origin) => ExportedChange {
                                key: change.key.to_string(),
                                value: None,
                                same_as: Some(origin),
                            },
                            None => {
                                seen.insert(identity, view.version);
                                ExportedChange {
                                    key: change.key.to_string(),
                                    value: Some(Arc::clone(value)),
                                    same_as: None,
                                }
                            }
                        }
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
