//! The Python seed design ported straight to Rust: what a user would write
//! instead of depending on this crate.
//!
//! A `RwLock` around a `HashMap`, a version counter, a bounded `VecDeque`
//! of change records, rollback by undoing records newest first, and a
//! snapshot that clones the map under the lock, cached per version.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

pub struct Record<V> {
    pub version: u64,
    pub key: String,
    pub old: Option<V>,
    pub new: Option<V>,
    pub at: SystemTime,
}

/// A snapshot and the version it was taken at.
type Cached<V> = (u64, Arc<HashMap<String, V>>);

struct Inner<V> {
    map: HashMap<String, V>,
    version: u64,
    history: VecDeque<Record<V>>,
}

pub struct SeedPort<V> {
    inner: RwLock<Inner<V>>,
    max_history: usize,
    snapshot_cache: Mutex<Option<Cached<V>>>,
}

impl<V: Clone> SeedPort<V> {
    pub fn new(initial: impl IntoIterator<Item = (String, V)>, max_history: usize) -> Self {
        Self {
            inner: RwLock::new(Inner {
                map: initial.into_iter().collect(),
                version: 0,
                history: VecDeque::new(),
            }),
            max_history,
            snapshot_cache: Mutex::new(None),
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.inner.read().unwrap().map.get(key).cloned()
    }

    pub fn version(&self) -> u64 {
        self.inner.read().unwrap().version
    }

    pub fn set(&self, key: &str, value: V) -> u64 {
        self.update([(key, value)])
    }

    pub fn update<'a>(&self, items: impl IntoIterator<Item = (&'a str, V)>) -> u64 {
        let mut inner = self.inner.write().unwrap();
        inner.version += 1;
        let version = inner.version;
        for (key, value) in items {
            let old = inner.map.insert(key.to_owned(), value.clone());
            inner.history.push_back(Record {
                version,
                key: key.to_owned(),
                old,
                new: Some(value),
                at: SystemTime::now(),
            });
        }
        while inner.history.len() > self.max_history {
            inner.history.pop_front();
        }
        version
    }

    /// The seed's rollback: undo records newest first back to `target`.
    pub fn rollback(&self, target: u64) -> Result<u64, String> {
        let mut inner = self.inner.write().unwrap();
        let oldest = inner
            .history
            .front()
            .map_or(inner.version, |r| r.version - 1);
        if target >= inner.version || target < oldest {
            return Err(format!("cannot roll back to {target}"));
        }
        while inner.history.back().is_some_and(|r| r.version > target) {
            let record = inner.history.pop_back().expect("checked");
            match record.old {
                Some(old) => inner.map.insert(record.key, old),
                None => inner.map.remove(&record.key),
            };
        }
        inner.version = target;
        Ok(target)
    }

    /// A consistent snapshot: the cached one if no write happened since,
    /// else a clone of the map under the lock.
    pub fn snapshot(&self) -> Arc<HashMap<String, V>> {
        let inner = self.inner.read().unwrap();
        let mut cache = self.snapshot_cache.lock().unwrap();
        match &*cache {
            Some((version, snapshot)) if *version == inner.version => Arc::clone(snapshot),
            _ => {
                let snapshot = Arc::new(inner.map.clone());
                *cache = Some((inner.version, Arc::clone(&snapshot)));
                snapshot
            }
        }
    }

    /// What a snapshot costs whenever a write happened since the last one.
    pub fn snapshot_uncached(&self) -> Arc<HashMap<String, V>> {
        Arc::new(self.inner.read().unwrap().map.clone())
    }
}
