//! `Subscriber`: watch's vocabulary over owned snapshots.

use thread_safe_state::{StateError, ThreadSafeState, Version};

#[tokio::test]
async fn borrow_marks_nothing_and_borrow_and_update_marks_the_latest() {
    let state = ThreadSafeState::new();
    let mut updates = state.subscribe();
    assert_eq!(updates.has_changed(), Ok(false));
    state.set("k", 1).await.unwrap();
    state.set("k", 2).await.unwrap();
    assert_eq!(updates.borrow().version(), Version::new(2));
    assert_eq!(updates.has_changed(), Ok(true)); // borrow marked nothing
    let clone = updates.clone(); // starts with the same mark
    assert_eq!(updates.borrow_and_update().get("k").as_deref(), Some(&2));
    assert_eq!(updates.has_changed(), Ok(false));
    assert_eq!(clone.has_changed(), Ok(true));
    assert!(format!("{updates:?}").contains("seen"));
}

#[tokio::test]
async fn changed_coalesces_and_wait_for_returns_the_snapshot_it_held_for() {
    let state = ThreadSafeState::new();
    let mut updates = state.subscribe();
    for i in 0..5 {
        state.set("n", i).await.unwrap();
    }
    updates.changed().await.unwrap(); // five versions, one wake-up
    assert_eq!(updates.has_changed(), Ok(false));
    let writer = state.clone();
    tokio::spawn(async move { writer.set("n", 10).await });
    let ten = updates
        .wait_for(|s| s.get("n").is_some_and(|n| *n == 10))
        .await
        .unwrap();
    assert_eq!(ten.version(), Version::new(6));
}

#[tokio::test]
async fn after_the_writer_stops_unseen_versions_come_first_then_closed() {
    let state = ThreadSafeState::new();
    let mut updates = state.subscribe();
    state.set("k", 1).await.unwrap();
    state.close().await.unwrap();
    assert_eq!(updates.has_changed(), Ok(true));
    updates.changed().await.unwrap();
    assert_eq!(updates.has_changed(), Err(StateError::Closed));
    assert_eq!(updates.changed().await, Err(StateError::Closed));
    let error = updates.wait_for(|s| s.contains_key("never")).await;
    assert_eq!(error.unwrap_err(), StateError::Closed);
    // What already holds is still found.
    assert!(updates.wait_for(|s| s.contains_key("k")).await.is_ok());
}
