//! Reads, snapshots and writes of `ThreadSafeState` against the lock a user
//! would otherwise reach for, `std::sync::RwLock<HashMap<String, u64>>`, in
//! the same run so the ratios hold on a noisy machine.
//!
//! Run: `cargo bench --bench state`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use thread_safe_state::ThreadSafeState;

const SIZES: [usize; 2] = [1_000, 100_000];

fn key(i: usize) -> String {
    format!("key-{i}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn filled_state(rt: &tokio::runtime::Runtime, n: usize) -> ThreadSafeState<u64> {
    let _guard = rt.enter();
    ThreadSafeState::builder()
        .initial_state((0..n).map(|i| (key(i), i as u64)))
        .build()
}

fn filled_rwlock(n: usize) -> RwLock<HashMap<String, u64>> {
    RwLock::new((0..n).map(|i| (key(i), i as u64)).collect())
}

/// Keys to look up, spread over the whole map, precomputed so the loop
/// measures the lookup, not the formatting.
fn probe_keys(n: usize) -> Vec<String> {
    (0..1024).map(|i| key((i * 7919) % n)).collect()
}

fn get(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("get");
    for n in SIZES {
        let probes = probe_keys(n);
        let state = filled_state(&rt, n);
        let lock = filled_rwlock(n);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("thread_safe_state", n), |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                black_box(state.get(&probes[i]))
            })
        });
        group.bench_function(BenchmarkId::new("std_rwlock_hashmap", n), |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                black_box(lock.read().unwrap().get(&probes[i]).copied())
            })
        });
    }
    group.finish();
}

fn snapshot(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("snapshot");
    for n in SIZES {
        let state = filled_state(&rt, n);
        let lock = filled_rwlock(n);
        group.bench_function(BenchmarkId::new("thread_safe_state", n), |b| {
            b.iter(|| black_box(state.snapshot()))
        });
        // A consistent snapshot under a lock is a clone of the map.
        group.bench_function(BenchmarkId::new("std_rwlock_hashmap_clone", n), |b| {
            b.iter(|| black_box(lock.read().unwrap().clone()))
        });
    }
    group.finish();
}

fn set(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("set");
    for n in SIZES {
        let probes = probe_keys(n);
        let state = filled_state(&rt, n);
        let lock = filled_rwlock(n);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("thread_safe_state_awaited", n), |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                rt.block_on(state.set(probes[i].as_str(), i as u64))
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("std_rwlock_hashmap", n), |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                lock.write().unwrap().insert(probes[i].clone(), i as u64)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = get, snapshot, set
}
criterion_main!(benches);
