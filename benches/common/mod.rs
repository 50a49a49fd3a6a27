//! Shared pieces of the benches: key sets, runtimes, filled states, and the
//! baselines a user would otherwise write.
#![allow(dead_code, unreachable_pub)] // each bench binary uses a subset

pub mod mutex_arcswap;
pub mod naive_actor;
pub mod seed_port;
pub mod versioned_map;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use thread_safe_state::ThreadSafeState;

pub fn key(i: usize) -> String {
    format!("key-{i}")
}

/// Keys to look up or write, spread over the whole key space, precomputed
/// so that loops measure the operation, not the formatting.
pub fn probe_keys(n: usize) -> Vec<String> {
    (0..1024).map(|i| key((i * 7919) % n)).collect()
}

pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

pub fn filled_state(rt: &tokio::runtime::Runtime, n: usize) -> ThreadSafeState<u64> {
    let _guard = rt.enter();
    ThreadSafeState::builder()
        .initial_state((0..n).map(|i| (key(i), i as u64)))
        .build()
}

pub fn filled_rwlock(n: usize) -> RwLock<HashMap<String, u64>> {
    RwLock::new((0..n).map(|i| (key(i), i as u64)).collect())
}

pub fn filled_dashmap(n: usize) -> dashmap::DashMap<String, u64> {
    (0..n).map(|i| (key(i), i as u64)).collect()
}

pub fn filled_seed_port(n: usize) -> seed_port::SeedPort<u64> {
    seed_port::SeedPort::new((0..n).map(|i| (key(i), i as u64)), 1000)
}

pub fn filled_papaya(n: usize) -> papaya::HashMap<String, u64> {
    (0..n).map(|i| (key(i), i as u64)).collect()
}

pub fn filled_scc(n: usize) -> scc::HashMap<String, u64> {
    (0..n).map(|i| (key(i), i as u64)).collect()
}

pub fn filled_mutex_arcswap(n: usize) -> mutex_arcswap::MutexArcSwap {
    mutex_arcswap::MutexArcSwap::new((0..n).map(|i| (key(i), i as u64)))
}

/// Spawns the naive actor on `rt`, filled with `n` keys.
pub fn filled_naive_actor(rt: &tokio::runtime::Runtime, n: usize) -> naive_actor::NaiveActor {
    let _guard = rt.enter();
    naive_actor::NaiveActor::spawn((0..n).map(|i| (key(i), i as u64)))
}

/// evmap (left-right): one writer, readers each with their own handle.
///
/// The write handle sits behind a `Mutex` so that many tasks can write;
/// every write publishes, as an awaited `set` is visible once it returns.
/// A `ReadHandle` is `Send` but not `Sync`: each reader thread clones its
/// own from `reader()` before it starts reading.
pub struct Evmap {
    writer: Mutex<evmap::handles::WriteHandle<String, u64>>,
    template: Mutex<evmap::handles::ReadHandle<String, u64>>,
}

impl Evmap {
    pub fn set(&self, key: &str, value: u64) {
        let mut writer = self.writer.lock().unwrap();
        writer.update(key.to_owned(), value);
        writer.publish();
    }

    pub fn reader(&self) -> evmap::handles::ReadHandle<String, u64> {
        self.template.lock().unwrap().clone()
    }
}

pub fn evmap_get(reader: &evmap::handles::ReadHandle<String, u64>, key: &str) -> Option<u64> {
    reader.get_one(key).map(|v| *v)
}

pub fn filled_evmap(n: usize) -> Evmap {
    let (mut writer, reader) = evmap::new();
    writer.extend((0..n).map(|i| (key(i), i as u64)));
    writer.publish();
    Evmap {
        writer: Mutex::new(writer),
        template: Mutex::new(reader),
    }
}
