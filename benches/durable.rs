//! Durable writes side by side, in one run, on the same disk:
//!
//! - `durable_64_writers`: 64 writers, each write acknowledged only once it
//!   is synced. The durable state (group commit: one fsync per group)
//!   against SQLite (WAL, `synchronous=FULL`, one transaction per write)
//!   and redb with one transaction per write.
//! - `durable_set`: one awaited durable `set` against one bare redb commit
//!   of the same record, synced.
//! - `recovery`: opening a journal of 1M keys and 100k log entries.
//!
//! Run: `cargo bench --features durable --bench durable`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redb::{Database, TableDefinition};
use thread_safe_state::ThreadSafeState;

const WRITERS: usize = 64;
const WRITES_PER_WRITER: usize = 32;
const TABLE: TableDefinition<&str, u64> = TableDefinition::new("bench");

fn temp(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tss-bench-{name}-{}", std::process::id()));
    remove(&path);
    path
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sixty_four_writers(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_64_writers");
    group.throughput(Throughput::Elements((WRITERS * WRITES_PER_WRITER) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    let rt = runtime();
    let path = temp("state");
    let state = rt.block_on(async {
        ThreadSafeState::<u64>::builder()
            .durable(&path)
            .open()
            .await
            .unwrap()
    });
    group.bench_function(BenchmarkId::new("thread_safe_state", "group commit"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|writer| {
                        let state = state.clone();
                        tokio::spawn(async move {
                            for n in 0..WRITES_PER_WRITER {
                                state.set(format!("w{writer}"), n as u64).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        });
    });
    rt.block_on(state.close()).unwrap();
    remove(&path);

    let path = temp("redb");
    let db = Arc::new(Database::create(&path).unwrap());
    group.bench_function(BenchmarkId::new("redb", "txn per write"), |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for writer in 0..WRITERS {
                    let db = &db;
                    scope.spawn(move || {
                        let key = format!("w{writer}");
                        for n in 0..WRITES_PER_WRITER {
                            let txn = db.begin_write().unwrap();
                            txn.open_table(TABLE)
                                .unwrap()
                                .insert(key.as_str(), n as u64)
                                .unwrap();
                            txn.commit().unwrap();
                        }
                    });
                }
            });
        });
    });
    drop(db);
    remove(&path);

    let path = temp("sqlite");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE kv (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .unwrap();
    let connection = Mutex::new(connection);
    group.bench_function(
        BenchmarkId::new("sqlite", "WAL, synchronous=FULL, txn per write"),
        |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for writer in 0..WRITERS {
                        let connection = &connection;
                        scope.spawn(move || {
                            let key = format!("w{writer}");
                            for n in 0..WRITES_PER_WRITER {
                                let mut connection = connection.lock().unwrap();
                                let txn = connection.transaction().unwrap();
                                txn.execute(
                                    "INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)",
                                    (&key, n as i64),
                                )
                                .unwrap();
                                txn.commit().unwrap();
                            }
                        });
                    }
                });
            });
        },
    );
    drop(connection);
    remove(&path);
    group.finish();
}

fn one_writer(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_set");
    group.sample_size(20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = temp("one");
    let state = rt.block_on(async {
        ThreadSafeState::<u64>::builder()
            .durable(&path)
            .open()
            .await
            .unwrap()
    });
    let mut n = 0;
    group.bench_function("thread_safe_state set", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(state.set("key", n)).unwrap()
        });
    });
    rt.block_on(state.close()).unwrap();
    remove(&path);

    let path = temp("one-redb");
    let db = Database::create(&path).unwrap();
    group.bench_function("redb bare commit", |b| {
        b.iter(|| {
            n += 1;
            let txn = db.begin_write().unwrap();
            txn.open_table(TABLE).unwrap().insert("key", n).unwrap();
            txn.commit().unwrap();
        });
    });
    drop(db);
    remove(&path);
    group.finish();
}

fn recovery(c: &mut Criterion) {
    const KEYS: u64 = 1_000_000;
    const LOG: u64 = 100_000;
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    let rt = runtime();
    let path = temp("recovery");
    let build = || {
        ThreadSafeState::<u64>::builder()
            .max_history(LOG as usize)
            .durable(&path)
            .checkpoint_every(100)
    };
    let started = Instant::now();
    rt.block_on(async {
        let state = build().open().await.unwrap();
        for chunk in 0..KEYS / 10_000 {
            state
                .update((0..10_000).map(|i| (format!("key/{}", chunk * 10_000 + i), i)))
                .await
                .unwrap();
        }
        // 100k single-key commits from 64 writers: the log the window keeps.
        let tasks: Vec<_> = (0..64)
            .map(|writer| {
                let state = state.clone();
                tokio::spawn(async move {
                    for n in 0..LOG / 64 + 1 {
                        state
                            .set(format!("key/{}", writer * 1000 + n), n)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        state.close().await.unwrap();
    });
    eprintln!(
        "recovery fixture: {KEYS} keys, {LOG} log entries, {} MB, built in {:?}",
        std::fs::metadata(&path).unwrap().len() >> 20,
        started.elapsed()
    );
    // Timed: opening until the state is ready. Not timed: closing it and
    // dropping its million entries.
    group.bench_function("open 1M keys + 100k log entries", |b| {
        b.iter_custom(|iterations| {
            let mut opening = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let state = rt.block_on(build().open()).unwrap();
                opening += started.elapsed();
                assert_eq!(state.len() as u64, KEYS);
                rt.block_on(state.close()).unwrap();
            }
            opening
        });
    });
    remove(&path);
    group.finish();
}

criterion_group!(benches, sixty_four_writers, one_writer, recovery);
criterion_main!(benches);
