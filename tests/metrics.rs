//! The metrics the seed design reports, and more: per-kind read and write
//! counts, write latency and commit time as distributions, group sizes.

mod common;

use common::{queued, Gate};
use thread_safe_state::{Modification, ThreadSafeState, Version};

#[tokio::test]
async fn reads_and_writes_are_counted_by_kind() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    state.update([("b", 2), ("c", 3)]).await.unwrap();
    state.delete("a").await.unwrap();
    state.delete("absent").await.unwrap(); // processed, nothing committed
    state
        .modify("b", |n| {
            n.map_or(Modification::Keep, |n| Modification::Set(n + 1))
        })
        .await
        .unwrap();
    state
        .set_if("c", 4, thread_safe_state::Precondition::Absent)
        .await
        .unwrap_err();
    state.rollback(Version::new(1)).await.unwrap();
    let _ = state.get("b");
    let _ = state.get_required("b");
    let _ = state.get_with_fallback("x", &["b"]);
    let _ = state.snapshot();
    let _ = state.contains_key("b");

    let metrics = state.metrics();
    assert_eq!((metrics.gets, metrics.snapshots, metrics.reads), (3, 1, 5));
    let writes = metrics.writes_by_operation;
    assert_eq!(
        (writes.set, writes.update, writes.delete, writes.modify),
        (1, 1, 2, 1)
    );
    assert_eq!((writes.set_if, writes.rollback, writes.clear), (1, 1, 0));
    assert_eq!(metrics.writes, 7);
    assert_eq!(metrics.commits, 5);
    assert_eq!(metrics.failed_commands, 1);
}

#[tokio::test]
async fn every_write_has_a_latency_and_every_group_a_size_and_a_commit_time() {
    let state = ThreadSafeState::new();
    for i in 0..20 {
        state.set("k", i).await.unwrap();
    }
    let metrics = state.metrics();
    assert_eq!(metrics.write_latency_ns.count, 20);
    assert!(metrics.write_latency_ns.max >= metrics.write_latency_ns.p99);
    assert!(metrics.write_latency_ns.p99 >= metrics.write_latency_ns.p50);
    assert!(metrics.write_latency_ns.p50 > 0);
    // One awaited set at a time: every group holds one command.
    assert_eq!(metrics.group_size.count, 20);
    assert_eq!((metrics.group_size.p50, metrics.group_size.max), (1, 1));
    assert_eq!(metrics.commit_time_ns.count, 20);
    assert!(metrics.commit_time_ns.max > 0);
}

/// The figure that shows group commit working: commands queued behind a
/// parked writer are committed as one group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_commands_form_one_group() {
    let state = ThreadSafeState::<u64>::new();
    let gate = Gate::park(&state, "gate").await;
    let writers: Vec<_> = (0..5)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move { state.set(format!("k{i}"), i).await })
        })
        .collect();
    queued(&state, 5).await;
    gate.open();
    gate.finish().await.unwrap();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let groups = state.metrics().group_size;
    assert_eq!(groups.count, 2, "{groups:?}"); // the gate, then the five
    assert_eq!(groups.max, 5, "{groups:?}");
    assert!((groups.mean - 3.0).abs() < 1e-9, "{groups:?}");
    // The queued writes waited for the gate: their latency shows it.
    let latency = state.metrics().write_latency_ns;
    assert_eq!(latency.count, 6);
}
