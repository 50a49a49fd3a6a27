//! Concurrency: no lost updates with modify from threads and tasks, and
//! read-your-writes across threads.

use std::sync::Arc;

use thread_safe_state::{Modification, ThreadSafeState, Version};
use tokio::sync::Barrier;

fn increment(n: Option<&u64>) -> Modification<u64> {
    Modification::Set(n.copied().unwrap_or(0) + 1)
}

/// `threads` std threads, each doing `increments` blocking `modify`s.
fn blocking_incrementers(
    state: &ThreadSafeState<u64>,
    threads: usize,
    increments: usize,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|_| {
            let state = state.clone();
            std::thread::spawn(move || {
                for _ in 0..increments {
                    state.blocking().modify("counter", increment).unwrap();
                }
            })
        })
        .collect()
}

/// `tasks` tokio tasks, each doing `increments` awaited `modify`s; returns
/// when all are done.
async fn async_incrementers(state: &ThreadSafeState<u64>, tasks: usize, increments: usize) {
    let tasks: Vec<_> = (0..tasks)
        .map(|i| {
            let state = state.for_agent(format!("task-{i}"));
            tokio::spawn(async move {
                for _ in 0..increments {
                    state.modify("counter", increment).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[test]
fn ten_std_threads_doing_100_modify_increments_end_at_1000() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async { ThreadSafeState::<u64>::new() });
    let threads = blocking_incrementers(&state, 10, 100);
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(state.get("counter").as_deref(), Some(&1000));
    assert_eq!(state.version(), Version::new(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_tokio_tasks_doing_100_modify_increments_end_at_1000() {
    let state = ThreadSafeState::<u64>::new();
    async_incrementers(&state, 10, 100).await;
    assert_eq!(state.get("counter").as_deref(), Some(&1000));
    assert_eq!(state.version(), Version::new(1000));
}

#[test]
fn threads_and_tasks_together_lose_no_increment() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async { ThreadSafeState::<u64>::new() });
    let threads = blocking_incrementers(&state, 10, 100);
    runtime.block_on(async_incrementers(&state, 10, 100));
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(state.get("counter").as_deref(), Some(&2000));
}

/// The lost update that `modify` exists to prevent: get-then-set from
/// concurrent tasks that all read before any writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_then_set_loses_updates_which_modify_does_not() {
    const TASKS: usize = 8;
    let state = ThreadSafeState::<u64>::new();
    state.set("n", 0).await.unwrap();
    let barrier = Arc::new(Barrier::new(TASKS));
    let racy: Vec<_> = (0..TASKS)
        .map(|_| {
            let (state, barrier) = (state.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                let n = *state.get("n").unwrap();
                barrier.wait().await; // everyone has read before anyone writes
                state.set("n", n + 1).await.unwrap();
            })
        })
        .collect();
    for task in racy {
        task.await.unwrap();
    }
    assert_eq!(
        state.get("n").as_deref(),
        Some(&1),
        "all but one update lost"
    );

    let atomic: Vec<_> = (0..TASKS)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { state.modify("n", increment).await.unwrap() })
        })
        .collect();
    for task in atomic {
        task.await.unwrap();
    }
    assert_eq!(state.get("n").as_deref(), Some(&(1 + TASKS as u64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_visible_on_another_thread_as_soon_as_it_resolves() {
    let state = ThreadSafeState::<u64>::new();
    for i in 1..=200u64 {
        let version = state.set("latest", i).await.unwrap();
        let reader = state.clone();
        let (seen_version, seen_value) =
            std::thread::spawn(move || (reader.version(), reader.get("latest").map(|v| *v)))
                .join()
                .unwrap();
        assert!(seen_version >= version);
        assert_eq!(seen_value, Some(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_get_a_distinct_version() {
    let state = ThreadSafeState::<u64>::new();
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for i in 0..50 {
                    versions.push(state.set(format!("t{t}-{i}"), i).await.unwrap());
                }
                versions
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let versions = task.await.unwrap();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        all.extend(versions);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 800);
    assert_eq!(all.last(), Some(&Version::new(800)));
    assert_eq!(state.len(), 800);
}
