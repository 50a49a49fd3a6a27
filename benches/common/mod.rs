//! Shared pieces of the benches: key sets, runtimes, filled states, and the
//! baselines a user would otherwise write.
#![allow(dead_code, unreachable_pub)] // each bench binary uses a subset

pub mod seed_port;

use std::collections::HashMap;
use std::sync::RwLock;

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
