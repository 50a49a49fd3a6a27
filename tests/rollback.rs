//! Rollback: restores every key of the target version as a new version, and
//! fails with typed errors for targets it cannot reach.

use std::collections::BTreeMap;

use thread_safe_state::{Modification, Operation, Snapshot, StateError, ThreadSafeState, Version};

fn contents(snapshot: &Snapshot<i32>) -> BTreeMap<String, i32> {
    snapshot.iter().map(|(k, v)| (k.to_owned(), **v)).collect()
}

#[tokio::test]
async fn rollback_restores_every_key_across_set_update_delete_and_clear() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    state.update([("b", 2), ("c", 3)]).await.unwrap();
    let target = state.version();
    let expected = contents(&state.snapshot());

    state.set("a", 10).await.unwrap();
    state.delete("b").await.unwrap();
    state.update([("c", 30), ("d", 40)]).await.unwrap();
    state.clear().await.unwrap();
    state.set("e", 50).await.unwrap();

    let before = state.version();
    let version = state.rollback(target).await.unwrap();
    assert_eq!(version, Version::new(before.get() + 1));
    assert_eq!(contents(&state.snapshot()), expected);
    assert_eq!(state.snapshot().version(), version);
}

#[tokio::test]
async fn rollback_to_every_retained_version_restores_it() {
    let state = ThreadSafeState::builder().max_history(20).build();
    let mut past = vec![contents(&state.snapshot())];
    for i in 0..10 {
        match i % 4 {
            0 => state.set(format!("k{i}"), i).await.unwrap(),
            1 => state.update([("k0", i), ("shared", i)]).await.unwrap(),
            2 => {
                state.delete("k0").await.unwrap();
                state.version()
            }
            _ => {
                state
                    .modify("shared", move |v| {
                        Modification::Set(v.copied().unwrap_or(0) + i)
                    })
                    .await
                    .unwrap()
                    .version
            }
        };
        past.push(contents(&state.snapshot()));
    }
    for (target, expected) in past.iter().enumerate().take(past.len() - 1) {
        state.rollback(Version::new(target as u64)).await.unwrap();
        assert_eq!(
            &contents(&state.snapshot()),
            expected,
            "rollback to {target}"
        );
    }
}

#[tokio::test]
async fn rollback_to_the_initial_state_empties_it() {
    let state = ThreadSafeState::new();
    state.update([("a", 1), ("b", 2)]).await.unwrap();
    state.rollback(Version::INITIAL).await.unwrap();
    assert!(state.is_empty());
    assert_eq!(state.version(), Version::new(2));
}

#[tokio::test]
async fn rollback_is_recorded_and_never_rewrites_history() {
    let state = ThreadSafeState::new();
    let v1 = state.set("a", 1).await.unwrap();
    state.set("a", 2).await.unwrap();
    state.set("b", 3).await.unwrap();
    let v4 = state.rollback(v1).await.unwrap();

    let history = state.history(None, None);
    assert_eq!(history.len(), 5, "3 writes + 2 rollback records");
    let rollback: Vec<_> = history.iter().filter(|r| r.version == v4).collect();
    assert!(rollback.iter().all(|r| r.operation == Operation::Rollback));
    let a = rollback.iter().find(|r| r.key == "a").unwrap();
    assert_eq!(a.old_value.as_deref(), Some(&2));
    assert_eq!(a.new_value.as_deref(), Some(&1));
    let b = rollback.iter().find(|r| r.key == "b").unwrap();
    assert_eq!(b.old_value.as_deref(), Some(&3));
    assert_eq!(b.new_value, None);
    // The restored contents are version 1's; a key the rollback changed is
    // modified at the rollback (never backwards), created when it was.
    assert_eq!(state.snapshot().modified_version("a"), Some(v4));
    assert_eq!(state.snapshot().created_version("a"), Some(v1));
    assert_eq!(state.snapshot().version(), v4);
}

#[tokio::test]
async fn rollback_to_the_current_or_a_future_version_is_invalid() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    let current = state.set("a", 2).await.unwrap();
    for target in [current, Version::new(99)] {
        assert_eq!(
            state.rollback(target).await,
            Err(StateError::InvalidVersion { target, current })
        );
    }
    let message = state
        .rollback(Version::new(99))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("99") && message.contains('2'), "{message}");
    assert_eq!(state.version(), current);
    assert_eq!(state.get("a").as_deref(), Some(&2));
}

#[tokio::test]
async fn rollback_past_the_retained_history_names_the_oldest_reachable_version() {
    let state = ThreadSafeState::builder().max_history(3).build();
    for i in 0..10 {
        state.set("k", i).await.unwrap();
    }
    let error = state.rollback(Version::new(6)).await.unwrap_err();
    assert_eq!(
        error,
        StateError::VersionCompacted {
            target: Version::new(6),
            oldest_retained: Version::new(7),
        }
    );
    assert!(error
        .to_string()
        .contains("oldest version still retained is 7"));
    assert_eq!(state.version(), Version::new(10));
    state.rollback(Version::new(7)).await.unwrap();
    assert_eq!(state.get("k").as_deref(), Some(&6));
}

#[tokio::test]
async fn zero_max_history_allows_no_rollback() {
    let state = ThreadSafeState::builder().max_history(0).build();
    state.set("k", 1).await.unwrap();
    state.set("k", 2).await.unwrap();
    assert_eq!(
        state.rollback(Version::new(1)).await,
        Err(StateError::VersionCompacted {
            target: Version::new(1),
            oldest_retained: Version::new(2),
        })
    );
    assert!(state.history(None, None).is_empty());
}

#[tokio::test]
async fn rollback_to_identical_contents_still_commits_with_no_records() {
    let state = ThreadSafeState::new();
    let v1 = state.set("a", 1).await.unwrap();
    state.set("a", 2).await.unwrap();
    let v3 = state.rollback(v1).await.unwrap();
    // Version 3 already equals version 1's contents: a rollback still
    // commits, so every successful write adds exactly one version.
    let v4 = state.rollback(v1).await.unwrap();
    assert_eq!(v4, Version::new(v3.get() + 1));
    assert_eq!(state.get("a").as_deref(), Some(&1));
    assert!(state.history(None, None).iter().all(|r| r.version != v4));
}

#[tokio::test]
async fn rollback_is_attributed_to_the_agent() {
    let state = ThreadSafeState::new();
    let v1 = state.set("a", 1).await.unwrap();
    state.set("a", 2).await.unwrap();
    state.for_agent("supervisor").rollback(v1).await.unwrap();
    let record = &state.history(None, Some(1))[0];
    assert_eq!(record.operation, Operation::Rollback);
    assert_eq!(record.changed_by.as_deref(), Some("supervisor"));
}

/// Regression (found by the model test): a rollback that fails after a
/// write of the same group commit must not keep that write unpublished.
#[tokio::test]
async fn a_failed_rollback_in_a_group_still_publishes_the_groups_writes() {
    let state = ThreadSafeState::builder().max_history(0).build();
    // On a current_thread runtime both reach the mailbox before the writer
    // runs, so they are committed as one group.
    let write = tokio::spawn({
        let state = state.clone();
        async move { state.set("a", 1).await }
    });
    let rollback = tokio::spawn({
        let state = state.clone();
        async move { state.rollback(Version::INITIAL).await }
    });
    assert_eq!(write.await.unwrap(), Ok(Version::new(1)));
    assert!(matches!(
        rollback.await.unwrap(),
        Err(StateError::VersionCompacted { .. })
    ));
    assert_eq!(state.version(), Version::new(1));
    assert_eq!(state.get("a").as_deref(), Some(&1));
}

#[tokio::test]
async fn a_rollback_can_target_a_version_committed_earlier_in_its_group() {
    let state = ThreadSafeState::new();
    let writes: Vec<_> = (1..=3)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move { state.set("k", i).await })
        })
        .collect();
    let rollback = tokio::spawn({
        let state = state.clone();
        async move { state.rollback(Version::new(2)).await }
    });
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(rollback.await.unwrap(), Ok(Version::new(4)));
    assert_eq!(state.get("k").as_deref(), Some(&2));
    assert_eq!(
        state.snapshot().modified_version("k"),
        Some(Version::new(4))
    );
}
