//! (Review 2.) A rollback's `Conflict` names the wrong key: always the
//! first key the rollback writes, with that key's own precondition, even
//! when its compare held and another key's failed.
//!
//! `rollback` (within the window and from etcd's history) builds one txn
//! with a compare per restored key, but reads the answer as
//! `Expect::Key { first key }`: the failure branch's first read is the
//! first key, so the error says `Conflict { key: first, expected:
//! ModifiedAt(n), found: Some(n) }`, a precondition that holds. The caller
//! cannot tell which key moved (and `found` is no winner's revision to
//! wait for).
//!
//! Set-up (deterministic): the handle changes `a` and `b` after the target;
//! then another program overwrites `b` with a value that is not a `V` (the
//! mirror shows `b` absent, etcd holds it). Rolling back restores `a`
//! (compare holds) and `b` (compared as absent: fails).
//!
//! Expected: the conflict names `b` (or at least a key whose precondition
//! does not hold at `found`).

mod common;

use std::time::Duration;

use common::etcd::{endpoint, prefix};
use thread_safe_state::{Precondition, StateError, ThreadSafeState, Version};

fn holds(expected: Precondition, found: Option<Version>) -> bool {
    match expected {
        Precondition::Absent => found.is_none(),
        Precondition::Exists => found.is_some(),
        Precondition::ModifiedAt(version) => found == Some(version),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_conflict_names_the_key_that_moved() {
    let Some(endpoint) = endpoint("review_rollback_conflict_key") else {
        return;
    };
    let prefix = prefix("review-rollback-conflict-key");
    let state = ThreadSafeState::<i64>::builder()
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let target = state.update([("a", 1), ("b", 5)]).await.unwrap();
    state.update([("a", 2), ("b", 6)]).await.unwrap();

    let other = ThreadSafeState::<String>::builder()
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let moved = other.set("b", "no longer a number".into()).await.unwrap();
    drop(other);
    // The mirror sees b's put (as a removal: it does not decode).
    let _ = state
        .wait_for_timeout(|s| !s.contains_key("b"), Duration::from_secs(10))
        .await;
    assert!(!state.contains_key("b"));
    let _ = moved;

    match state.rollback(target).await {
        Err(StateError::Conflict {
            key,
            expected,
            found,
        }) => assert!(
            key == "b" && !holds(expected, found),
            "the conflict names `{key}` (expected {expected:?}, found {found:?}): a precondition that holds; `b` is the key that moved"
        ),
        other => panic!("expected a conflict on `b`, got {other:?}"),
    }
}
