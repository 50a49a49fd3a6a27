//! Bad input: each gets a typed error or a documented behaviour, and none
//! corrupts the state (the next write and read work as usual).

use thread_safe_state::{BuildError, Modification, StateError, ThreadSafeState, Version};

/// After any rejected input the state still serves reads and writes.
async fn still_serves(state: &ThreadSafeState<Vec<u8>>) {
    let before = state.version();
    let version = state.set("probe", vec![1]).await.unwrap();
    assert_eq!(version, Version::new(before.get() + 1));
    assert_eq!(state.get("probe").as_deref(), Some(&vec![1]));
}

#[tokio::test]
async fn empty_keys_are_rejected_everywhere() {
    let state = ThreadSafeState::<Vec<u8>>::new();
    assert_eq!(state.set("", vec![]).await, Err(StateError::EmptyKey));
    assert_eq!(
        state.update([("", vec![])]).await,
        Err(StateError::EmptyKey)
    );
    assert_eq!(state.delete("").await, Err(StateError::EmptyKey));
    assert_eq!(
        state
            .modify("", |_| Modification::Delete)
            .await
            .map(|modified| modified.version),
        Err(StateError::EmptyKey)
    );
    assert!(state.get("").is_none());
    assert_eq!(state.version(), Version::INITIAL);
    still_serves(&state).await;
}

#[tokio::test]
async fn a_one_mebibyte_key_is_an_ordinary_key() {
    let state = ThreadSafeState::<Vec<u8>>::new();
    let key = "k".repeat(1 << 20);
    state.set(key.as_str(), vec![7]).await.unwrap();
    assert_eq!(state.get(&key).as_deref(), Some(&vec![7]));
    assert_eq!(state.history(Some(&key), None).len(), 1);
    still_serves(&state).await;
}

#[tokio::test]
async fn a_huge_value_is_stored_once_and_shared() {
    let state = ThreadSafeState::<Vec<u8>>::new();
    state.set("blob", vec![0xAB; 64 << 20]).await.unwrap();
    let a = state.get("blob").unwrap();
    let b = state.snapshot().get("blob").unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "values are shared, not copied"
    );
    assert_eq!(a.len(), 64 << 20);
    still_serves(&state).await;
}

#[tokio::test]
async fn rollback_to_zero_current_future_and_compacted_versions() {
    let state = ThreadSafeState::<Vec<u8>>::builder().max_history(2).build();
    assert_eq!(
        state.rollback(Version::INITIAL).await,
        Err(StateError::InvalidVersion {
            target: Version::INITIAL,
            current: Version::INITIAL,
        })
    );
    for i in 0..4u8 {
        state.set("k", vec![i]).await.unwrap();
    }
    let current = state.version();
    for target in [current, Version::new(current.get() + 5)] {
        assert_eq!(
            state.rollback(target).await,
            Err(StateError::InvalidVersion { target, current })
        );
    }
    assert_eq!(
        state.rollback(Version::INITIAL).await,
        Err(StateError::VersionCompacted {
            target: Version::INITIAL,
            oldest_retained: Version::new(2),
        })
    );
    assert_eq!(state.version(), current);
    assert_eq!(state.get("k").as_deref(), Some(&vec![3]));
    still_serves(&state).await;
}

#[tokio::test]
async fn max_history_of_one_keeps_one_step_of_undo() {
    let state = ThreadSafeState::<Vec<u8>>::builder().max_history(1).build();
    state.set("k", vec![1]).await.unwrap();
    let v2 = state.set("k", vec![2]).await.unwrap();
    state.set("k", vec![3]).await.unwrap();
    assert_eq!(state.history(None, None).len(), 1);
    assert!(matches!(
        state.rollback(Version::new(1)).await,
        Err(StateError::VersionCompacted { oldest_retained, .. }) if oldest_retained == v2
    ));
    state.rollback(v2).await.unwrap();
    assert_eq!(state.get("k").as_deref(), Some(&vec![2]));
}

#[tokio::test]
async fn max_history_of_zero_keeps_no_history_but_works() {
    let state = ThreadSafeState::<Vec<u8>>::builder().max_history(0).build();
    state.set("k", vec![1]).await.unwrap();
    assert!(state.history(None, None).is_empty());
    assert_eq!(state.metrics().retained_versions, 1);
    assert!(state.snapshot_at(state.version()).is_ok());
    still_serves(&state).await;
}

#[tokio::test]
async fn zero_capacities_are_build_errors() {
    assert_eq!(
        ThreadSafeState::<u8>::builder()
            .mailbox_capacity(0)
            .try_build()
            .unwrap_err(),
        BuildError::ZeroMailboxCapacity
    );
    assert_eq!(
        ThreadSafeState::<u8>::builder()
            .change_stream_capacity(0)
            .try_build()
            .unwrap_err(),
        BuildError::ZeroChangeStreamCapacity
    );
}

#[tokio::test]
#[should_panic(expected = "mailbox_capacity must be at least 1")]
async fn build_panics_with_the_same_message() {
    let _ = ThreadSafeState::<u8>::builder().mailbox_capacity(0).build();
}
