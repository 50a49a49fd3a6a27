//! Reads: `get`, `snapshot`, and aggregate read throughput with two reader
//! threads, idle and with a busy writer, against `RwLock<HashMap>`,
//! `DashMap`, the seed design ported straight to Rust, papaya, scc, evmap
//! and a writer `Mutex` publishing an `imbl` map through `ArcSwap`, in one
//! run.
//!
//! Run: `cargo bench --bench reads`

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use common::*;

fn get(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("get");
    for n in [1_000, 100_000] {
        let probes = probe_keys(n);
        let state = filled_state(&rt, n);
        let lock = filled_rwlock(n);
        let dash = filled_dashmap(n);
        let seed = filled_seed_port(n);
        let papaya = filled_papaya(n);
        let scc = filled_scc(n);
        let evmap = filled_evmap(n);
        let evmap_reader = evmap.reader();
        let swap = filled_mutex_arcswap(n);
        let mut i = 0;
        let mut next = || {
            i = (i + 1) % probes.len();
            probes[i].as_str()
        };
        group.bench_function(BenchmarkId::new("thread_safe_state", n), |b| {
            b.iter(|| black_box(state.get(next())))
        });
        group.bench_function(BenchmarkId::new("std_rwlock_hashmap", n), |b| {
            b.iter(|| black_box(lock.read().unwrap().get(next()).copied()))
        });
        group.bench_function(BenchmarkId::new("dashmap", n), |b| {
            b.iter(|| black_box(dash.get(next()).map(|v| *v)))
        });
        group.bench_function(BenchmarkId::new("seed_port", n), |b| {
            b.iter(|| black_box(seed.get(next())))
        });
        group.bench_function(BenchmarkId::new("papaya", n), |b| {
            b.iter(|| black_box(papaya.pin().get(next()).copied()))
        });
        group.bench_function(BenchmarkId::new("scc", n), |b| {
            b.iter(|| black_box(scc.read_sync(next(), |_, v| *v)))
        });
        group.bench_function(BenchmarkId::new("evmap", n), |b| {
            b.iter(|| black_box(evmap_get(&evmap_reader, next())))
        });
        group.bench_function(BenchmarkId::new("mutex_arcswap_imbl", n), |b| {
            b.iter(|| black_box(swap.get(next())))
        });
    }
    group.finish();
}

fn snapshot(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("snapshot");
    for n in [1_000, 100_000, 1_000_000] {
        let state = filled_state(&rt, n);
        group.bench_function(BenchmarkId::new("thread_safe_state", n), |b| {
            b.iter(|| black_box(state.snapshot()))
        });
        // The floor: arc-swap's own owned load of an Arc, plus its drop.
        let cell = arc_swap::ArcSwap::from_pointee(n);
        group.bench_function(BenchmarkId::new("arc_swap_load_full_floor", n), |b| {
            b.iter(|| black_box(cell.load_full()))
        });
        let seed = filled_seed_port(n);
        group.bench_function(BenchmarkId::new("seed_port_cached", n), |b| {
            b.iter(|| black_box(seed.snapshot()))
        });
        // After any write the seed's cache is stale: a snapshot is a clone.
        if n >= 100_000 {
            group.sample_size(10);
        }
        group.bench_function(BenchmarkId::new("seed_port_after_a_write", n), |b| {
            b.iter(|| black_box(seed.snapshot_uncached()))
        });
        group.sample_size(100);
    }
    group.finish();
}

/// Two reader threads doing `iters` reads each; returns the wall time.
/// A busy writer, if asked, writes in a loop for the whole measurement.
fn two_readers(
    iters: u64,
    read: impl Fn(usize) + Sync,
    write: Option<&(dyn Fn(usize) + Sync)>,
) -> Duration {
    two_readers_with(iters, || &read, write)
}

/// [`two_readers`] for maps whose readers need a handle of their own per
/// thread (evmap): each reader thread calls `reader` once, before the
/// start, and reads through what it returns.
fn two_readers_with<R: FnMut(usize)>(
    iters: u64,
    reader: impl Fn() -> R + Sync,
    write: Option<&(dyn Fn(usize) + Sync)>,
) -> Duration {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(3);
    std::thread::scope(|scope| {
        let writer = write.map(|write| {
            let stop = &stop;
            scope.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    write(i);
                    i += 1;
                }
            })
        });
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let (reader, start) = (&reader, &start);
                scope.spawn(move || {
                    let mut read = reader();
                    start.wait();
                    for i in 0..iters as usize {
                        read(i * 2 + t);
                    }
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        readers.into_iter().for_each(|r| r.join().unwrap());
        let elapsed = began.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(writer) = writer {
            writer.join().unwrap();
        }
        elapsed
    })
}

fn read_throughput(c: &mut Criterion) {
    const N: usize = 1_000;
    let rt = Arc::new(multi_thread());
    let probes = probe_keys(N);
    let state = filled_state(&rt, N);
    let lock = filled_rwlock(N);
    let dash = filled_dashmap(N);
    let papaya = filled_papaya(N);
    let scc = filled_scc(N);
    let evmap = filled_evmap(N);
    let swap = filled_mutex_arcswap(N);
    let mut group = c.benchmark_group("reads_2_threads");
    group.throughput(Throughput::Elements(2));
    for busy in [false, true] {
        let load = if busy { "busy_writer" } else { "idle" };
        let probe = |i: usize| probes[i % probes.len()].as_str();

        let ours_write = |i: usize| {
            state.blocking().set(probe(i), i as u64).unwrap();
        };
        group.bench_function(BenchmarkId::new("thread_safe_state", load), |b| {
            b.iter_custom(|iters| {
                let read = |i| {
                    black_box(state.get(probe(i)));
                };
                two_readers(iters, read, busy.then_some(&ours_write as _))
            })
        });

        let lock_write = |i: usize| {
            lock.write().unwrap().insert(probe(i).to_owned(), i as u64);
        };
        group.bench_function(BenchmarkId::new("std_rwlock_hashmap", load), |b| {
            b.iter_custom(|iters| {
                let read = |i| {
                    black_box(lock.read().unwrap().get(probe(i)).copied());
                };
                two_readers(iters, read, busy.then_some(&lock_write as _))
            })
        });

        let dash_write = |i: usize| {
            dash.insert(probe(i).to_owned(), i as u64);
        };
        group.bench_function(BenchmarkId::new("dashmap", load), |b| {
            b.iter_custom(|iters| {
                let read = |i| {
                    black_box(dash.get(probe(i)).map(|v| *v));
                };
                two_readers(iters, read, busy.then_some(&dash_write as _))
            })
        });

        let papaya_write = |i: usize| {
            papaya.pin().insert(probe(i).to_owned(), i as u64);
        };
        group.bench_function(BenchmarkId::new("papaya", load), |b| {
            b.iter_custom(|iters| {
                let read = |i| {
                    black_box(papaya.pin().get(probe(i)).copied());
                };
                two_readers(iters, read, busy.then_some(&papaya_write as _))
            })
        });

        let scc_write = |i: usize| {
            scc.upsert_sync(probe(i).to_owned(), i as u64);
        };
        group.bench_function(BenchmarkId::new("scc", load), |b| {
            b.iter_custom(|iters| {
                let read = |i| {
                    black_box(scc.read_sync(probe(i), |_, v| *v));
                };
                two_readers(iters, read, busy.then_some(&scc_write as _))
            })
        });

        // Each write publishes, waiting for readers to leave the old copy.
        let evmap_write = |i: usize| evmap.set(probe(i), i as u64);
        group.bench_function(BenchmarkId::new("evmap", load), |b| {
            b.iter_custom(|iters| {
                let reader = || {
                    let handle = evmap.reader();
                    move |i| {
                        black_box(evmap_get(&handle, probe(i)));
                    }
                };
                two_readers_with(iters, reader, busy.then_some(&evmap_write as _))
            })
        });

        let swap_write = |i: usize| swap.set(probe(i), i as u64);
        group.bench_function(BenchmarkId::new("mutex_arcswap_imbl", load), |b| {
            b.iter_custom(|iters| {
                let read = |i| {
                    black_box(swap.get(probe(i)));
                };
                two_readers(iters, read, busy.then_some(&swap_write as _))
            })
        });
    }
    group.finish();
}

/// A prefix query (10 matching keys) against a scan of every key, in one
/// snapshot.
fn prefix(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("keys_with_prefix");
    for n in [1_000, 100_000] {
        let state = filled_state(&rt, n);
        // key-100..key-109 and key-10: 11 matches at any n >= 110.
        group.bench_function(BenchmarkId::new("ordered_index", n), |b| {
            b.iter(|| black_box(state.keys_with_prefix("key-10")).len())
        });
        group.bench_function(BenchmarkId::new("scan_all_keys", n), |b| {
            b.iter(|| {
                let snapshot = state.snapshot();
                snapshot
                    .keys()
                    .filter(|key| key.starts_with("key-10"))
                    .count()
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
    targets = get, snapshot, read_throughput, prefix
}
criterion_main!(benches);
