//! Snapshots: immutable while the state changes, shared when nothing
//! committed, never half a batch; subscriptions wake on every version.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use thread_safe_state::{Modification, Snapshot, ThreadSafeState, Version};

#[tokio::test]
async fn a_snapshot_never_changes_while_the_state_does() {
    let state = ThreadSafeState::new();
    state.update([("a", 1), ("b", 2)]).await.unwrap();
    let snapshot = state.snapshot();
    state.set("a", 100).await.unwrap();
    state.delete("b").await.unwrap();
    state.set("c", 3).await.unwrap();
    state.clear().await.unwrap();

    assert_eq!(snapshot.version(), Version::new(1));
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot.get("a").as_deref(), Some(&1));
    assert_eq!(snapshot.get("b").as_deref(), Some(&2));
    assert!(!snapshot.contains_key("c"));
    assert!(state.is_empty());
}

#[tokio::test]
async fn snapshots_with_no_commit_between_are_the_same_object() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    let first = state.snapshot();
    let second = state.snapshot();
    assert!(Snapshot::ptr_eq(&first, &second));

    // A no-op publishes nothing, so the snapshot stays the same object.
    state.delete("absent").await.unwrap();
    assert!(Snapshot::ptr_eq(&first, &state.snapshot()));

    state.set("a", 2).await.unwrap();
    assert!(!Snapshot::ptr_eq(&first, &state.snapshot()));
}

#[tokio::test]
async fn snapshot_serializes_with_sorted_keys() {
    let state = ThreadSafeState::new();
    state.update([("b", 2), ("a", 1), ("c", 3)]).await.unwrap();
    assert_eq!(
        serde_json::to_string(&state.snapshot()).unwrap(),
        r#"{"version":1,"data":{"a":1,"b":2,"c":3}}"#
    );
}

#[tokio::test]
async fn snapshot_iterates_keys_and_values() {
    let state = ThreadSafeState::new();
    state
        .update((0..100).map(|i| (format!("k{i}"), i)))
        .await
        .unwrap();
    let snapshot = state.snapshot();
    assert_eq!(snapshot.keys().count(), 100);
    assert_eq!(snapshot.iter().map(|(_, v)| **v).sum::<i32>(), 4950);
    let entry = snapshot.entry("k5").unwrap();
    assert_eq!(**entry.value(), 5);
    assert_eq!(entry.created(), Version::new(1));
}

/// A reader taking snapshots while a writer applies batches never sees a
/// half-applied batch, and each snapshot's contents match its version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_half_applied_batch() {
    const BATCHES: u64 = 500;
    let state = ThreadSafeState::<u64>::new();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let state = state.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut seen = 0;
            let mut last = Version::INITIAL;
            // Check at least once, however fast the writer finishes.
            loop {
                let finished = done.load(Ordering::Acquire);
                let snapshot = state.snapshot();
                assert!(snapshot.version() >= last, "versions went back");
                last = snapshot.version();
                let values: Vec<u64> = ["a", "b", "c", "d"]
                    .iter()
                    .map(|k| snapshot.get(k).map_or(0, |v| *v))
                    .collect();
                assert!(
                    values.iter().all(|v| *v == snapshot.version().get()),
                    "snapshot {} holds {values:?}",
                    snapshot.version()
                );
                seen += 1;
                if finished {
                    return seen;
                }
            }
        })
    };
    for i in 1..=BATCHES {
        state
            .update([("a", i), ("b", i), ("c", i), ("d", i)])
            .await
            .unwrap();
    }
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    assert!(seen > 0);
    assert_eq!(state.version(), Version::new(BATCHES));
}

#[tokio::test]
async fn subscribers_wake_on_every_published_version() {
    let state = ThreadSafeState::new();
    let mut updates = state.subscribe();
    assert_eq!(updates.borrow().version(), Version::INITIAL);
    assert!(!updates.has_changed().unwrap());

    state.set("a", 1).await.unwrap();
    updates.changed().await.unwrap();
    assert_eq!(updates.borrow_and_update().version(), Version::new(1));

    // A no-op does not wake anyone.
    state.delete("absent").await.unwrap();
    assert!(!updates.has_changed().unwrap());

    // Coalescing is allowed, missing the latest is not.
    state.set("a", 2).await.unwrap();
    state.set("a", 3).await.unwrap();
    updates.changed().await.unwrap();
    let latest = updates.borrow_and_update().clone();
    assert_eq!(latest.version(), Version::new(3));
    assert_eq!(latest.get("a").as_deref(), Some(&3));
}

#[tokio::test]
async fn a_subscriber_can_wait_for_a_condition() {
    let state = ThreadSafeState::new();
    let mut updates = state.subscribe();
    let writer = state.clone();
    let agents = tokio::spawn(async move {
        for i in 0..5 {
            writer
                .for_agent(format!("agent-{i}"))
                .modify("completed", |n| {
                    Modification::Set(n.copied().unwrap_or(0) + 1)
                })
                .await
                .unwrap();
        }
    });
    let snapshot = updates
        .wait_for(|s| s.get("completed").is_some_and(|n| *n == 5))
        .await
        .unwrap()
        .clone();
    assert_eq!(snapshot.version(), Version::new(5));
    agents.await.unwrap();
}

#[tokio::test]
async fn subscriptions_end_when_the_state_is_gone() {
    let state = ThreadSafeState::<u8>::new();
    let mut updates = state.subscribe();
    drop(state);
    assert!(updates.changed().await.is_err());
}

#[tokio::test]
async fn a_late_subscriber_starts_from_the_latest_snapshot() {
    let state = ThreadSafeState::new();
    for i in 0..5 {
        state.set("k", i).await.unwrap(); // nobody subscribed yet
    }
    let mut updates = state.subscribe();
    assert_eq!(updates.borrow().version(), Version::new(5));
    assert_eq!(updates.borrow().get("k").as_deref(), Some(&4));
    state.set("k", 5).await.unwrap();
    updates.changed().await.unwrap();
    assert_eq!(updates.borrow().version(), Version::new(6));
}

/// A subscriber that arrives while the writer publishes to nobody must
/// still see that publish: either in its first borrow or by a wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_racing_an_unwatched_publish_never_misses_it() {
    let state = ThreadSafeState::<u64>::new();
    for round in 1..=500u64 {
        let subscriber = tokio::spawn({
            let state = state.clone();
            async move {
                let mut updates = state.subscribe();
                let waited = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    updates.wait_for(|s| s.version() >= Version::new(round)),
                )
                .await;
                assert!(waited.is_ok(), "round {round}: the publish was missed");
            }
        });
        state.set("k", round).await.unwrap();
        subscriber.await.unwrap();
    }
}
