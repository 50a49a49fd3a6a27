//! (Review 2.) A rollback behind the local window conflicts forever when
//! the prefix holds a value that does not decode as `V`.
//!
//! `rollback_from_history` diffs etcd's keys at the target revision
//! (every UTF-8 key, decodable or not) against the mirror's snapshot
//! (which treats an undecodable key as absent). A key whose value never
//! decoded, and that nobody touched since the target, is then "absent now,
//! present then": the txn compares it as `Absent` (create_revision == 0),
//! which etcd finds false, so the rollback fails with `Conflict` on a key
//! the caller cannot see, on every attempt. Within the local window the
//! same rollback succeeds (it only looks at keys of the state), and the
//! previous review's fix made such keys harmless to transactions.
//!
//! Expected: the rollback restores the state's keys (an untouched
//! undecodable key is no difference), as a rollback within the window does.

mod common;

use std::time::Duration;

use common::etcd::{caught_up, endpoint, prefix};
use thread_safe_state::{StateError, ThreadSafeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_from_history_ignores_an_untouched_undecodable_key() {
    let Some(endpoint) = endpoint("review_undecodable_history_rollback") else {
        return;
    };
    let prefix = prefix("review-undecodable-history-rollback");
    let state = ThreadSafeState::<i64>::builder()
        .max_history(2)
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    // Another program (or an older schema) keeps a note under the prefix.
    let other = ThreadSafeState::<String>::builder()
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    other.set("note", "not a number".into()).await.unwrap();
    drop(other);

    let good = state.set("a", 1).await.unwrap();
    state.set("a", 2).await.unwrap();
    state.set("b", 5).await.unwrap();
    let last = state.set("a", 3).await.unwrap();
    caught_up(&state, last).await;
    assert!(state.snapshot_at(good).is_err(), "behind the local window");

    let rolled = state.rollback(good).await;
    match &rolled {
        // (The error names `a`, whose compare held: see
        // `etcd_review_rollback_conflict_key`; the compare that fails is
        // the one on `note`.)
        Err(StateError::Conflict { .. }) => panic!(
            "rollback from etcd's history conflicts although nobody wrote since it was planned (the untouched undecodable `note` is compared as Absent): {rolled:?}"
        ),
        other => {
            other.as_ref().unwrap();
        }
    }
    assert_eq!(state.get("a").as_deref(), Some(&1));
    assert_eq!(state.get("b"), None);
}
