//! [`Snapshot`] and [`Entry`]: immutable views of the state at one version.

use std::collections::BinaryHeap;
use std::fmt;

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

use crate::error::{StateError, LISTED_KEYS};
use crate::map::Map;
use crate::sync::Arc;
use crate::Version;

/// One key's value, with the versions that created and last modified it.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{ThreadSafeState, Version};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let created = state.set("phase", "parse").await?;
/// let modified = state.set("phase", "generate").await?;
///
/// let snapshot = state.snapshot();
/// let entry = snapshot.entry("phase").unwrap();
/// assert_eq!(**entry.value(), "generate");
/// assert_eq!(entry.created(), created);
/// assert_eq!(entry.modified(), modified);
/// # Ok(())
/// # }
/// ```
pub struct Entry<V> {
    value: Arc<V>,
    modified: Version,
    created: Version,
}

impl<V> Entry<V> {
    pub(crate) fn new(value: Arc<V>, modified: Version, created: Version) -> Self {
        Self {
            value,
            modified,
            created,
        }
    }

    /// The value.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let v1 = state.set("k", 1).await?;
    /// let v2 = state.set("k", 2).await?;
    /// let snapshot = state.snapshot();
    /// let entry = snapshot.entry("k").unwrap();
    /// assert_eq!((**entry.value(), entry.created(), entry.modified()), (2, v1, v2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> &Arc<V> {
        &self.value
    }

    /// The version that last wrote this key.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let v1 = state.set("k", 1).await?;
    /// let v2 = state.set("k", 2).await?;
    /// let snapshot = state.snapshot();
    /// let entry = snapshot.entry("k").unwrap();
    /// assert_eq!((**entry.value(), entry.created(), entry.modified()), (2, v1, v2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn modified(&self) -> Version {
        self.modified
    }

    /// The version that created this key (the first write after it was absent).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let v1 = state.set("k", 1).await?;
    /// let v2 = state.set("k", 2).await?;
    /// let snapshot = state.snapshot();
    /// let entry = snapshot.entry("k").unwrap();
    /// assert_eq!((**entry.value(), entry.created(), entry.modified()), (2, v1, v2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn created(&self) -> Version {
        self.created
    }
}

impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            modified: self.modified,
            created: self.created,
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for Entry<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value", &self.value)
            .field("modified", &self.modified)
            .field("created", &self.created)
            .finish()
    }
}

/// What the writer publishes: a version and the map at that version.
pub(crate) struct SnapshotInner<V> {
    pub(crate) version: Version,
    pub(crate) map: Map<V>,
}

/// An immutable view of the whole state at one version.
///
/// Taking one is O(1) at any size (a reference-count increment), and it is
/// owned and `'static`: hold it across `.await`s, send it to another thread,
/// and it never changes while the state moves on. Its contents always match
/// its [`version`](Snapshot::version): a batch [`update`] is either wholly in
/// a snapshot or not at all.
///
/// With `V: Serialize` it serializes as `{"version": N, "data": {key: value}}`
/// with keys in sorted order.
///
/// [`update`]: crate::ThreadSafeState::update
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
/// let before = state.snapshot();
/// state.set("a", 2).await?;
///
/// assert_eq!(before.get("a").as_deref(), Some(&1)); // unchanged
/// assert_eq!(state.snapshot().get("a").as_deref(), Some(&2));
/// assert_eq!(
///     serde_json::to_string(&before).unwrap(),
///     r#"{"version":1,"data":{"a":1}}"#
/// );
/// # Ok(())
/// # }
/// ```
pub struct Snapshot<V> {
    inner: Arc<SnapshotInner<V>>,
}

impl<V> Snapshot<V> {
    pub(crate) fn new(version: Version, map: Map<V>) -> Self {
        Self {
            inner: Arc::new(SnapshotInner { version, map }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<SnapshotInner<V>>) -> Self {
        Self { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<SnapshotInner<V>> {
        &self.inner
    }

    pub(crate) fn map(&self) -> &Map<V> {
        &self.inner.map
    }

    /// The version these contents belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// assert_eq!(state.snapshot().version(), Version::INITIAL);
    /// let v = state.set("k", 1).await?;
    /// assert_eq!(state.snapshot().version(), v);
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(&self) -> Version {
        self.inner.version
    }

    /// The value of `key`, if present.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("k", 1).await?;
    /// let snapshot = state.snapshot();
    /// assert_eq!(snapshot.get("k").as_deref(), Some(&1));
    /// assert_eq!(snapshot.get("missing"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.inner
            .map
            .get(key)
            .map(|entry| Arc::clone(&entry.value))
    }

    /// The value of `key` with its per-key versions, if present.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let v = state.set("k", 1).await?;
    /// assert_eq!(state.snapshot().entry("k").map(|e| e.modified()), Some(v));
    /// # Ok(())
    /// # }
    /// ```
    pub fn entry(&self, key: &str) -> Option<&Entry<V>> {
        self.inner.map.get(key)
    }

    /// The version that last wrote `key`, if present.
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
    /// let v2 = state.set("a", 2).await?;
    /// assert_eq!(state.snapshot().modified_version("a"), Some(v2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn modified_version(&self, key: &str) -> Option<Version> {
        self.entry(key).map(Entry::modified)
    }

    /// The version that created `key`, if present.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let v1 = state.set("a", 1).await?;
    /// state.set("a", 2).await?;
    /// assert_eq!(state.snapshot().created_version("a"), Some(v1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn created_version(&self, key: &str) -> Option<Version> {
        self.entry(key).map(Entry::created)
    }

    /// Whether `key` is present.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("k", ()).await?;
    /// assert!(state.snapshot().contains_key("k"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains_key(&self, key: &str) -> bool {
        self.inner.map.contains_key(key)
    }

    /// The number of keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("a", 1), ("b", 2)]).await?;
    /// assert_eq!(state.snapshot().len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether there are no keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u8>::new();
    /// assert!(state.snapshot().is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// The keys, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("a", 1), ("b", 2)]).await?;
    /// let snapshot = state.snapshot();
    /// let mut keys: Vec<&str> = snapshot.keys().collect();
    /// keys.sort_unstable();
    /// assert_eq!(keys, ["a", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.map.keys().map(|key| &**key)
    }

    /// The keys that start with `prefix`, in order: O(log n + matches).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// state.update([("task/b", 2), ("task/a", 1), ("agent/x", 0)]).await?;
    /// let snapshot = state.snapshot();
    /// let pending: Vec<(&str, u32)> = snapshot
    ///     .keys_with_prefix("task/")
    ///     .map(|key| (key, *snapshot.get(key).unwrap()))
    ///     .collect();
    /// assert_eq!(pending, [("task/a", 1), ("task/b", 2)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.inner.map.keys_with_prefix(prefix).map(|key| &**key)
    }

    /// The keys and values, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("a", 1), ("b", 2)]).await?;
    /// let total: i32 = state.snapshot().iter().map(|(_, v)| **v).sum();
    /// assert_eq!(total, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<V>)> + '_ {
        self.inner
            .map
            .iter()
            .map(|(key, entry)| (&**key, &entry.value))
    }

    /// Whether two snapshots are the same published object, which is true
    /// exactly when no commit happened between taking them.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{Snapshot, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let a = state.snapshot();
    /// let b = state.snapshot();
    /// assert!(Snapshot::ptr_eq(&a, &b));
    /// state.set("k", 1).await?;
    /// assert!(!Snapshot::ptr_eq(&a, &state.snapshot()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// The entries sorted by key, for stable output.
    fn sorted_entries(&self) -> Vec<(&str, &Arc<V>)> {
        let mut entries: Vec<_> = self.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }
}

/// The error for a required `key` that `map` lacks, listing the
/// [`LISTED_KEYS`] smallest keys it has and counting all of them.
///
/// The map is hashed, so finding the smallest keys takes one pass over all
/// of them; a max-heap of the [`LISTED_KEYS`] smallest seen so far makes that
/// O(n log 10) comparisons, with no copy or sort of the other keys.
pub(crate) fn missing_key<V>(map: &Map<V>, key: &str) -> StateError {
    let mut smallest: BinaryHeap<&str> = BinaryHeap::with_capacity(LISTED_KEYS + 1);
    for candidate in map.keys() {
        let candidate: &str = candidate;
        if smallest.len() < LISTED_KEYS {
            smallest.push(candidate);
        } else if let Some(mut largest) = smallest.peek_mut() {
            if candidate < *largest {
                *largest = candidate;
            }
        }
    }
    StateError::KeyNotFound {
        key: key.to_owned(),
        available: smallest
            .into_sorted_vec()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        total_keys: map.len(),
    }
}

impl<V> Clone for Snapshot<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> fmt::Debug for Snapshot<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<V: Serialize> Serialize for Snapshot<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut snapshot = serializer.serialize_struct("Snapshot", 2)?;
        snapshot.serialize_field("version", &self.version())?;
        snapshot.serialize_field("data", &SortedData(self))?;
        snapshot.end()
    }
}

/// Serializes a snapshot's contents as a map with sorted keys.
struct SortedData<'a, V>(&'a Snapshot<V>);

impl<V: Serialize> Serialize for SortedData<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.0.sorted_entries();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            map.serialize_entry(key, &**value)?;
        }
        map.end()
    }
}
