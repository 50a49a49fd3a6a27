//! The persistent map behind every snapshot.
//!
//! A hash array mapped trie (`imbl::HashMap`) with structural sharing:
//! cloning it is one reference-count increment, and an insert copies only
//! the O(log n) nodes on the path to the key. Each key and its entry live
//! behind one `Arc` (a [`Slot`]) stored as the map's key with a `()` value,
//! so copying a node costs one reference-count increment per key rather
//! than two, and a node slot is one pointer wide. That copy is the dominant
//! cost of a write and of every retained version's memory.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use crate::snapshot::Entry;
use crate::sync::Arc;
use crate::Version;

/// A key and its entry, shared between every version that holds them.
struct Slot<V>(Arc<(Arc<str>, Entry<V>)>);

impl<V> Slot<V> {
    fn key(&self) -> &Arc<str> {
        &self.0 .0
    }

    fn entry(&self) -> &Entry<V> {
        &self.0 .1
    }
}

impl<V> Clone for Slot<V> {
    fn clone(&self) -> Self {
        Slot(Arc::clone(&self.0))
    }
}

// Hash and equality are the key's, so lookups by `&str` find the slot.
impl<V> Hash for Slot<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self.key()).hash(state);
    }
}

impl<V> PartialEq for Slot<V> {
    fn eq(&self, other: &Self) -> bool {
        **self.key() == **other.key()
    }
}

impl<V> Eq for Slot<V> {}

impl<V> Borrow<str> for Slot<V> {
    fn borrow(&self) -> &str {
        self.key()
    }
}

/// The hasher: foldhash, seeded at random per process. It hashes a short
/// key several times faster than std's SipHash, which is a large share of
/// a lookup. Keys come from the application's agents, not an adversary,
/// and the random seed still defeats precomputed collisions.
type KeyHasher = foldhash::fast::RandomState;

/// A persistent map from keys to [`Entry`]s, with its keys also in order.
///
/// The ordered set (a persistent B-tree) answers prefix queries in
/// O(log n + matches) and lists keys sorted without sorting. It changes
/// only when a key is created or removed, never on an overwrite, so the
/// common write (an existing key) pays nothing for it.
pub(crate) struct Map<V> {
    slots: imbl::GenericHashMap<Slot<V>, (), KeyHasher, imbl::shared_ptr::DefaultSharedPtr>,
    order: imbl::OrdSet<Arc<str>>,
}

impl<V> Map<V> {
    pub(crate) fn new() -> Self {
        Self {
            slots: imbl::GenericHashMap::with_hasher(KeyHasher::default()),
            order: imbl::OrdSet::new(),
        }
    }

    /// The keys that start with `prefix`, in order: O(log n + matches).
    pub(crate) fn keys_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        use std::ops::Bound;
        self.order
            .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |key| key.starts_with(prefix))
    }

    /// Every key, in order.
    pub(crate) fn sorted_keys(&self) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.order.iter()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry<V>> {
        self.slots.get_key_value(key).map(|(slot, ())| slot.entry())
    }

    /// The map's own `Arc<str>` for `key`, to share rather than copy it.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn get_key(&self, key: &str) -> Option<Arc<str>> {
        self.slots
            .get_key_value(key)
            .map(|(slot, ())| Arc::clone(slot.key()))
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Insert or replace `key`'s entry, copying only the nodes that other
    /// versions still share.
    pub(crate) fn insert(&mut self, key: Arc<str>, entry: Entry<V>) {
        let ordered = Arc::clone(&key);
        if self
            .slots
            .insert(Slot(Arc::new((key, entry))), ())
            .is_none()
        {
            self.order.insert(ordered);
        }
    }

    /// Write `value` to `key` as of `version`: the key's modified version
    /// becomes `version`, and so does its created version if it was absent.
    /// Returns the previous value.
    ///
    /// Every write to a map goes through here, including history replay, so
    /// a replayed version has exactly the entries the original had.
    pub(crate) fn write(
        &mut self,
        key: Arc<str>,
        value: Arc<V>,
        version: Version,
    ) -> Option<Arc<V>> {
        let previous = self.get(&key);
        let created = previous.map_or(version, Entry::created);
        let previous = previous.map(|entry| Arc::clone(entry.value()));
        self.insert(key, Entry::new(value, version, created));
        previous
    }

    /// [`Self::write`] for a key given as `&str`: the map's own `Arc<str>`
    /// is reused when the key exists, `new_key` makes one when it does not.
    /// Returns the key as stored, and the previous value.
    pub(crate) fn write_str(
        &mut self,
        key: &str,
        new_key: impl FnOnce() -> Arc<str>,
        value: Arc<V>,
        version: Version,
    ) -> (Arc<str>, Option<Arc<V>>) {
        let (key, created, previous) = match self.slots.get_key_value(key) {
            Some((slot, ())) => (
                Arc::clone(slot.key()),
                slot.entry().created(),
                Some(Arc::clone(slot.entry().value())),
            ),
            None => (new_key(), version, None),
        };
        self.insert(Arc::clone(&key), Entry::new(value, version, created));
        (key, previous)
    }

    /// Remove `key`, returning its value if it was present.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Arc<V>> {
        self.remove_entry(key).map(|(_, value)| value)
    }

    /// Remove `key`, returning the map's own `Arc<str>` for it and its
    /// value, if it was present.
    pub(crate) fn remove_entry(&mut self, key: &str) -> Option<(Arc<str>, Arc<V>)> {
        let (slot, ()) = self.slots.remove_with_key(key)?;
        self.order.remove(key);
        Some((Arc::clone(slot.key()), Arc::clone(slot.entry().value())))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Entry<V>)> + '_ {
        self.slots.keys().map(|slot| (slot.key(), slot.entry()))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.slots.keys().map(Slot::key)
    }
}

impl<V> Clone for Map<V> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            order: self.order.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: u32, version: u64) -> Entry<u32> {
        let version = Version::new(version);
        Entry::new(Arc::new(value), version, version)
    }

    #[test]
    fn insert_replaces_the_whole_entry_and_versions_are_independent() {
        let mut map = Map::new();
        map.insert(Arc::from("k"), entry(1, 1));
        let before = map.clone();
        map.insert(Arc::from("k"), entry(2, 2));
        assert_eq!(**map.get("k").unwrap().value(), 2);
        assert_eq!(map.get("k").unwrap().modified(), Version::new(2));
        assert_eq!(**before.get("k").unwrap().value(), 1);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn write_tracks_created_and_modified_versions() {
        let mut map = Map::new();
        assert_eq!(
            map.write(Arc::from("k"), Arc::new(1), Version::new(3)),
            None
        );
        assert_eq!(
            map.write(Arc::from("k"), Arc::new(2), Version::new(5))
                .as_deref(),
            Some(&1)
        );
        let entry = map.get("k").unwrap();
        assert_eq!(
            (entry.created(), entry.modified()),
            (Version::new(3), Version::new(5))
        );
    }

    #[test]
    fn remove_returns_the_old_value() {
        let mut map = Map::new();
        map.insert(Arc::from("k"), entry(1, 1));
        assert_eq!(map.remove("k").as_deref(), Some(&1));
        assert_eq!(map.remove("k"), None);
        assert!(map.is_empty());
        assert!(!map.contains_key("k"));
    }
}
