//! Writes: awaited `set` round trips, throughput under many writer tasks,
//! batch `update`, how `set` scales with the state's size, and rollback
//! distance, against `RwLock<HashMap>`, the seed design ported straight to
//! Rust, a hand-written naive actor, a writer `Mutex` publishing an `imbl`
//! map through `ArcSwap`, papaya, scc and evmap, in one run.
//!
//! Run: `cargo bench --bench writes`

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use thread_safe_state::{ThreadSafeState, Version};

use common::naive_actor::NaiveActor;
use common::*;

/// Where an awaiting loop runs.
#[derive(Clone, Copy)]
enum Caller {
    /// In a spawned task, as an agent task does.
    Task,
    /// Directly in `block_on`, as a `#[tokio::main]` body does: on a
    /// multi-thread runtime this thread is not a worker, so every reply
    /// crosses threads and wakes it.
    BlockOn,
}

/// Runs the timed loop `timed` on `rt` where `caller` says.
fn drive(
    rt: &tokio::runtime::Runtime,
    caller: Caller,
    timed: impl Future<Output = Duration> + Send + 'static,
) -> Duration {
    match caller {
        Caller::Task => rt.block_on(async move { tokio::spawn(timed).await.unwrap() }),
        Caller::BlockOn => rt.block_on(timed),
    }
}

/// `iters` awaited `set`s from one caller on `rt`.
fn awaited_sets(
    rt: &tokio::runtime::Runtime,
    caller: Caller,
    state: &ThreadSafeState<u64>,
    keys: &Arc<Vec<String>>,
    iters: u64,
) -> Duration {
    let (state, keys) = (state.clone(), Arc::clone(keys));
    drive(rt, caller, async move {
        let began = Instant::now();
        for i in 0..iters as usize {
            let key = keys[i % keys.len()].as_str();
            black_box(state.set(key, i as u64).await.unwrap());
        }
        began.elapsed()
    })
}

/// `iters` awaited writes to the naive actor from one caller on `rt`.
fn awaited_naive_sets(
    rt: &tokio::runtime::Runtime,
    caller: Caller,
    actor: &NaiveActor,
    keys: &Arc<Vec<String>>,
    iters: u64,
) -> Duration {
    let (actor, keys) = (actor.clone(), Arc::clone(keys));
    drive(rt, caller, async move {
        let began = Instant::now();
        for i in 0..iters as usize {
            black_box(actor.set(&keys[i % keys.len()], i as u64).await);
        }
        began.elapsed()
    })
}

/// The floor under any awaited write: a bounded mpsc send to a task that
/// answers on a oneshot, with nothing done in between.
fn channel_round_trips(rt: &tokio::runtime::Runtime, caller: Caller, iters: u64) -> Duration {
    type Request = (u64, tokio::sync::oneshot::Sender<u64>);
    let (mailbox, mut inbox) = tokio::sync::mpsc::channel::<Request>(1024);
    rt.spawn(async move {
        while let Some((n, reply)) = inbox.recv().await {
            let _ = reply.send(n);
        }
    });
    drive(rt, caller, async move {
        let began = Instant::now();
        for i in 0..iters {
            let (reply, answer) = tokio::sync::oneshot::channel();
            mailbox.send((i, reply)).await.unwrap();
            black_box(answer.await.unwrap());
        }
        began.elapsed()
    })
}

fn set_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("set_rtt");
    for (flavor, rt, caller) in [
        ("current_thread", current_thread(), Caller::Task),
        ("multi_thread", multi_thread(), Caller::Task),
        ("block_on", multi_thread(), Caller::BlockOn),
    ] {
        group.bench_function(format!("channel_floor/{flavor}"), |b| {
            b.iter_custom(|iters| channel_round_trips(&rt, caller, iters))
        });
        for n in [1_000, 100_000] {
            let probes = Arc::new(probe_keys(n));
            let state = filled_state(&rt, n);
            group.bench_function(
                BenchmarkId::new(format!("thread_safe_state/{flavor}"), n),
                |b| b.iter_custom(|iters| awaited_sets(&rt, caller, &state, &probes, iters)),
            );
            let actor = filled_naive_actor(&rt, n);
            group.bench_function(BenchmarkId::new(format!("naive_actor/{flavor}"), n), |b| {
                b.iter_custom(|iters| awaited_naive_sets(&rt, caller, &actor, &probes, iters))
            });
            if flavor == "current_thread" {
                let mut i = 0;
                let seed = filled_seed_port(n);
                group.bench_function(BenchmarkId::new("seed_port", n), |b| {
                    b.iter(|| {
                        i = (i + 1) % probes.len();
                        seed.set(&probes[i], i as u64)
                    })
                });
                let lock = filled_rwlock(n);
                group.bench_function(BenchmarkId::new("std_rwlock_hashmap", n), |b| {
                    b.iter(|| {
                        i = (i + 1) % probes.len();
                        lock.write().unwrap().insert(probes[i].clone(), i as u64)
                    })
                });
            }
        }
    }
    group.finish();
}

/// One write of a writer task, boxed so every contender runs the same loop.
type BoxedWrite = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Writes per measured round: enough for every writer count to divide.
const ROUND: usize = 6_400;

/// `writers` tasks on a 2-worker runtime share `ROUND` writes, each task
/// awaiting (or, for the locks, performing) its writes one after another.
fn write_round<W>(rt: &tokio::runtime::Runtime, writers: usize, write: Arc<W>) -> Duration
where
    W: Fn(usize) -> BoxedWrite + Send + Sync + 'static,
{
    rt.block_on(async move {
        let began = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let write = Arc::clone(&write);
                tokio::spawn(async move {
                    for i in 0..ROUND / writers {
                        write(w * ROUND + i).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        began.elapsed()
    })
}

/// Benches one contender of `write_throughput`: whole rounds of `writers`
/// tasks calling `write`.
fn bench_rounds<W>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    rt: &tokio::runtime::Runtime,
    writers: usize,
    write: Arc<W>,
) where
    W: Fn(usize) -> BoxedWrite + Send + Sync + 'static,
{
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| write_round(rt, writers, Arc::clone(&write)))
                .sum()
        })
    });
}

fn write_throughput(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("write_throughput");
    group.throughput(Throughput::Elements(ROUND as u64));
    group.sample_size(20);
    for n in [1_000, 100_000] {
        let probes = Arc::new(probe_keys(n));
        for writers in [1, 8, 64] {
            let id = |name: &str| BenchmarkId::new(format!("{name}/{writers}_writers"), n);

            let state = filled_state(&rt, n);
            let keys = Arc::clone(&probes);
            let ours = Arc::new(move |i: usize| -> BoxedWrite {
                let (state, keys) = (state.clone(), Arc::clone(&keys));
                Box::pin(async move {
                    state
                        .set(keys[i % keys.len()].as_str(), i as u64)
                        .await
                        .unwrap();
                })
            });
            bench_rounds(&mut group, id("thread_safe_state"), &rt, writers, ours);

            let seed = Arc::new(filled_seed_port(n));
            let keys = Arc::clone(&probes);
            let theirs = Arc::new(move |i: usize| -> BoxedWrite {
                seed.set(&keys[i % keys.len()], i as u64);
                Box::pin(async {})
            });
            bench_rounds(&mut group, id("seed_port"), &rt, writers, theirs);

            let lock = Arc::new(filled_rwlock(n));
            let keys = Arc::clone(&probes);
            let locked = Arc::new(move |i: usize| -> BoxedWrite {
                lock.write()
                    .unwrap()
                    .insert(keys[i % keys.len()].clone(), i as u64);
                Box::pin(async {})
            });
            bench_rounds(&mut group, id("std_rwlock_hashmap"), &rt, writers, locked);

            // The hand-written actor: one message, one insert, one reply.
            let actor = filled_naive_actor(&rt, n);
            let keys = Arc::clone(&probes);
            let naive = Arc::new(move |i: usize| -> BoxedWrite {
                let (actor, keys) = (actor.clone(), Arc::clone(&keys));
                Box::pin(async move {
                    actor.set(&keys[i % keys.len()], i as u64).await;
                })
            });
            bench_rounds(&mut group, id("naive_actor"), &rt, writers, naive);

            // Synchronous writes that publish a persistent map before unlocking.
            let swap = Arc::new(filled_mutex_arcswap(n));
            let keys = Arc::clone(&probes);
            let swapped = Arc::new(move |i: usize| -> BoxedWrite {
                swap.set(&keys[i % keys.len()], i as u64);
                Box::pin(async {})
            });
            bench_rounds(&mut group, id("mutex_arcswap_imbl"), &rt, writers, swapped);

            let papaya = Arc::new(filled_papaya(n));
            let keys = Arc::clone(&probes);
            let pinned = Arc::new(move |i: usize| -> BoxedWrite {
                papaya.pin().insert(keys[i % keys.len()].clone(), i as u64);
                Box::pin(async {})
            });
            bench_rounds(&mut group, id("papaya"), &rt, writers, pinned);

            // scc's async upsert: it yields instead of blocking the worker
            // on a contended bucket, as scc advises inside tokio.
            let scc = Arc::new(filled_scc(n));
            let keys = Arc::clone(&probes);
            let upserted = Arc::new(move |i: usize| -> BoxedWrite {
                let (scc, keys) = (Arc::clone(&scc), Arc::clone(&keys));
                Box::pin(async move {
                    scc.upsert_async(keys[i % keys.len()].clone(), i as u64)
                        .await;
                })
            });
            bench_rounds(&mut group, id("scc"), &rt, writers, upserted);

            // Every write publishes, so it is visible once the call returns;
            // a publish waits for readers still on the old copy.
            let evmap = Arc::new(filled_evmap(n));
            let keys = Arc::clone(&probes);
            let published = Arc::new(move |i: usize| -> BoxedWrite {
                evmap.set(&keys[i % keys.len()], i as u64);
                Box::pin(async {})
            });
            bench_rounds(&mut group, id("evmap"), &rt, writers, published);
        }
    }
    group.finish();
}

fn update_100(c: &mut Criterion) {
    let rt = current_thread();
    let n = 1_000;
    let probes = probe_keys(n);
    let mut group = c.benchmark_group("update_100_keys");
    let state = filled_state(&rt, n);
    let mut round = 0u64;
    group.bench_function(BenchmarkId::new("thread_safe_state", n), |b| {
        b.iter(|| {
            round += 1;
            let batch = probes[..100].iter().map(|k| (k.as_str(), round));
            rt.block_on(state.update(batch)).unwrap()
        })
    });
    let seed = filled_seed_port(n);
    group.bench_function(BenchmarkId::new("seed_port", n), |b| {
        b.iter(|| {
            round += 1;
            seed.update(probes[..100].iter().map(|k| (k.as_str(), round)))
        })
    });
    group.finish();
}

fn set_scaling(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("set_by_state_size");
    for n in [1_000, 1_000_000] {
        let probes = probe_keys(n);
        let state = filled_state(&rt, n);
        let lock = filled_rwlock(n);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("thread_safe_state", n), |b| {
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

fn rollback(c: &mut Criterion) {
    let rt = current_thread();
    let n = 1_000;
    let probes = probe_keys(n);
    let mut group = c.benchmark_group("rollback");
    // 1000 retained versions, each writing one key.
    let state: ThreadSafeState<u64> = filled_state(&rt, n);
    rt.block_on(async {
        for i in 0..1000 {
            state
                .set(probes[i % probes.len()].as_str(), i as u64)
                .await
                .unwrap();
        }
    });
    for back in [1u64, 999] {
        group.bench_function(
            BenchmarkId::new("thread_safe_state", format!("{back}_back")),
            |b| {
                b.iter(|| {
                    let target = Version::new(state.version().get() - back);
                    black_box(rt.block_on(state.rollback(target)).unwrap())
                })
            },
        );
        group.bench_function(BenchmarkId::new("seed_port", format!("{back}_back")), |b| {
            b.iter_batched(
                || {
                    let seed = filled_seed_port(n);
                    for i in 0..1000 {
                        seed.set(&probes[i % probes.len()], i as u64);
                    }
                    seed
                },
                |seed| {
                    let target = seed.version() - back;
                    black_box(seed.rollback(target).unwrap());
                    seed // dropped outside the timing
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// The floor under every write of a versioned state: publishing a version
/// of the persistent map (path copy now, release when the version leaves
/// the window), beside the in-place insert a mutable map does instead.
fn publish_floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_floor");
    for n in [1_000, 100_000, 1_000_000] {
        let probes = probe_keys(n);
        let mut versioned = common::versioned_map::VersionedMap::new((0..n).map(key), 1000);
        for (i, probe) in probes.iter().cycle().take(2000).enumerate() {
            versioned.write_and_publish(probe, i as u64);
        }
        let mut i = 0;
        group.bench_function(BenchmarkId::new("persistent_map_version", n), |b| {
            b.iter(|| {
                i += 1;
                versioned.write_and_publish(&probes[i % probes.len()], i as u64)
            })
        });
        // 64 writes to spread keys, one publish: the per-write cost under a
        // group of 64, as with 64 writer tasks (the time shown is per group).
        // The default window is 1000 commits: 1000 / 64 groups retained.
        let mut grouped = common::versioned_map::VersionedMap::new((0..n).map(key), 1000 / 64);
        group.bench_function(BenchmarkId::new("persistent_map_group_of_64", n), |b| {
            b.iter(|| {
                i += 1;
                let at = (i * 64) % probes.len();
                let keys = probes[at..].iter().chain(&probes[..at]).take(64);
                grouped.write_group_and_publish(keys.map(String::as_str), i as u64)
            })
        });
        let mut plain: std::collections::HashMap<String, u64> =
            (0..n).map(|i| (key(i), 0)).collect();
        group.bench_function(BenchmarkId::new("hashmap_insert_in_place", n), |b| {
            b.iter(|| {
                i += 1;
                if let Some(slot) = plain.get_mut(probes[i % probes.len()].as_str()) {
                    *slot = i as u64;
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    // The allocation-heavy groups first: later groups build and drop
    // 100k- and 1M-key states, whose freed memory fragments the heap.
    targets = write_throughput, update_100, set_round_trip, set_scaling, rollback, publish_floor
}
criterion_main!(benches);
