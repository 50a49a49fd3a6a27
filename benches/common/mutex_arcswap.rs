//! The design a reviewer proposes instead of an actor: synchronous writes
//! under a writer `Mutex` that publish a persistent map through `ArcSwap`
//! before unlocking; readers load the published map without locking.
//!
//! The writer mutates its own `imbl` map in place (copying only the path to
//! the key that readers still share), then stores an O(1) clone of it.
//! Same map and hasher as this crate, so the comparison is of the designs,
//! not of the data structures.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

type Map = imbl::GenericHashMap<
    String,
    u64,
    foldhash::fast::RandomState,
    imbl::shared_ptr::DefaultSharedPtr,
>;

pub struct MutexArcSwap {
    writer: Mutex<Map>,
    published: ArcSwap<Map>,
}

impl MutexArcSwap {
    pub fn new(initial: impl IntoIterator<Item = (String, u64)>) -> Self {
        let mut map = Map::with_hasher(foldhash::fast::RandomState::default());
        map.extend(initial);
        Self {
            published: ArcSwap::from_pointee(map.clone()),
            writer: Mutex::new(map),
        }
    }

    /// Inserts and publishes before unlocking, so a write is visible to
    /// every reader once `set` returns.
    pub fn set(&self, key: &str, value: u64) {
        let mut map = self.writer.lock().unwrap();
        map.insert(key.to_owned(), value);
        self.published.store(Arc::new(map.clone()));
    }

    pub fn get(&self, key: &str) -> Option<u64> {
        self.published.load().get(key).copied()
    }

    /// A consistent snapshot of every key: one `Arc` load.
    pub fn snapshot(&self) -> Arc<Map> {
        self.published.load_full()
    }
}
