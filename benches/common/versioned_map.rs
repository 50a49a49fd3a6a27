//! The one cost a versioned state cannot avoid and a mutable map never pays,
//! measured on its own: publishing a new version of a persistent map.
//!
//! The same layout as the crate's map (`src/map.rs`): an `imbl` HAMT keyed
//! by a shared `Arc` holding key, versions and value, hashed with foldhash.
//! Publishing a version shares the map, so the next write copies the path
//! from the root to its key (each copied node bumps one reference count
//! per entry); when the version later leaves the retained window, the
//! nodes only it held are released (one decrement per entry, and a free).

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

struct Slot(Arc<(Arc<str>, Arc<u64>, u64, u64)>);

impl Clone for Slot {
    fn clone(&self) -> Self {
        Slot(Arc::clone(&self.0))
    }
}

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0 .0).hash(state);
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        *self.0 .0 == *other.0 .0
    }
}

impl Eq for Slot {}

impl Borrow<str> for Slot {
    fn borrow(&self) -> &str {
        &self.0 .0
    }
}

type Hamt =
    imbl::GenericHashMap<Slot, (), foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// A map whose every write is published as a version, with the last
/// `retained` versions kept, as the writer does for one-write groups.
pub struct VersionedMap {
    map: Hamt,
    retained: VecDeque<Hamt>,
    keep: usize,
    version: u64,
}

impl VersionedMap {
    pub fn new(keys: impl IntoIterator<Item = String>, keep: usize) -> Self {
        let mut map = Hamt::with_hasher(Default::default());
        for key in keys {
            let key: Arc<str> = Arc::from(key);
            map.insert(Slot(Arc::new((key, Arc::new(0), 0, 0))), ());
        }
        Self {
            map,
            retained: VecDeque::with_capacity(keep + 1),
            keep,
            version: 0,
        }
    }

    /// Overwrite `key` and publish the result as a new retained version.
    pub fn write_and_publish(&mut self, key: &str, value: u64) {
        self.write(key, value);
        self.publish();
    }

    /// Overwrite every key of `keys`, then publish once: a group commit.
    pub fn write_group_and_publish<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a str>,
        value: u64,
    ) {
        for key in keys {
            self.write(key, value);
        }
        self.publish();
    }

    fn write(&mut self, key: &str, value: u64) {
        self.version += 1;
        let (shared_key, created) = match self.map.get_key_value(key) {
            Some((slot, ())) => (Arc::clone(&slot.0 .0), slot.0 .3),
            None => (Arc::from(key), self.version),
        };
        let slot = Slot(Arc::new((
            shared_key,
            Arc::new(value),
            self.version,
            created,
        )));
        self.map.insert(slot, ());
    }

    fn publish(&mut self) {
        self.retained.push_back(self.map.clone());
        if self.retained.len() > self.keep {
            self.retained.pop_front();
        }
    }
}
