//! A rollback writes the keys it changes at the rollback's own version, so
//! a key's modified version never goes backwards and a compare-and-set
//! token taken before the rolled-back write cannot succeed again (the ABA
//! case; etcd's `mod_revision` behaves the same way).
//!
//! From the review reproduction `rollback_aba.rs`.

use thread_safe_state::{Precondition, StateError, ThreadSafeState};

#[tokio::test]
async fn a_rollback_moves_the_modified_version_forward_and_stale_cas_fails() {
    let state = ThreadSafeState::<&'static str>::new();
    let v1 = state.set("k", "A").await.unwrap();
    let v2 = state.set("k", "B").await.unwrap();
    let v3 = state.rollback(v1).await.unwrap();
    assert!(v1 < v2 && v2 < v3);

    let entry = state.snapshot().entry("k").cloned().unwrap();
    assert_eq!(**entry.value(), "A");
    let newest = state.history(Some("k"), Some(1))[0].version;
    assert_eq!(newest, v3, "the rollback is k's newest history record");
    assert_eq!(
        entry.modified(),
        v3,
        "k is modified at the rollback's version, the version of its newest record"
    );
    assert_eq!(
        entry.created(),
        v1,
        "k existed throughout, so its creation stands"
    );

    // A compare-and-set token taken at v1, before B was written, is stale.
    let stale = state.set_if("k", "C", Precondition::ModifiedAt(v1)).await;
    assert_eq!(
        stale,
        Err(StateError::Conflict {
            key: "k".into(),
            expected: Precondition::ModifiedAt(v1),
            found: Some(v3),
        })
    );
    assert_eq!(state.get("k").as_deref(), Some(&"A"));
    assert_eq!(
        state.version(),
        v3,
        "a failed compare-and-set writes nothing"
    );
}

#[tokio::test]
async fn a_key_a_rollback_recreates_is_created_at_the_rollback() {
    let state = ThreadSafeState::<&'static str>::new();
    let v1 = state.set("k", "A").await.unwrap();
    state.delete("k").await.unwrap();
    let v3 = state.rollback(v1).await.unwrap();
    let entry = state.snapshot().entry("k").cloned().unwrap();
    assert_eq!(
        (**entry.value(), entry.created(), entry.modified()),
        ("A", v3, v3)
    );
    let stale = state.set_if("k", "C", Precondition::ModifiedAt(v1)).await;
    assert!(
        matches!(stale, Err(StateError::Conflict { found: Some(v), .. }) if v == v3),
        "{stale:?}"
    );
}

#[tokio::test]
async fn a_key_a_rollback_leaves_alone_keeps_its_versions() {
    let state = ThreadSafeState::<&'static str>::new();
    let kept = state.set("kept", "X").await.unwrap();
    let v2 = state.set("k", "A").await.unwrap();
    state.set("k", "B").await.unwrap();
    state.rollback(v2).await.unwrap();
    let entry = state.snapshot().entry("kept").cloned().unwrap();
    assert_eq!((entry.created(), entry.modified()), (kept, kept));
    state
        .set_if("kept", "Y", Precondition::ModifiedAt(kept))
        .await
        .unwrap();
}
