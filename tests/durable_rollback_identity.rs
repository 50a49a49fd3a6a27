//! Regression (found by review; failed before the fix): after a reopen, a rollback writes a record (and bumps a
//! key's modified version) that the same rollback without the restart
//! does not write.
//!
//! Rollback compares values by pointer. Recovery shares a logged
//! rollback's values with its target (`Replay::value_at`), but when the
//! target is older than the stored snapshot it only finds the value if
//! the key was not *modified* since the target, although the snapshot
//! may still hold the very same value (a key restored by an earlier
//! rollback, modified at that rollback's version). It then deserializes a
//! fresh copy, and a later rollback sees a difference where there is none.
//!
//! Expected behaviour (README: "`history`, `snapshot_at`, `rollback` and
//! `changes_since` carry on across the restart"; commit 987168e "Recovery
//! restores a rollback's shared values, so a later rollback behaves as it
//! would have without the restart"): the rollback at v7 records the same
//! changes whether or not the state was reopened in between.

mod common;

use common::TempPath;
use std::path::Path;

use thread_safe_state::{ThreadSafeState, Version};

async fn open(path: &Path) -> ThreadSafeState<u64> {
    ThreadSafeState::builder()
        .max_history(3)
        .durable(path)
        .checkpoint_every(1)
        .open()
        .await
        .unwrap()
}

/// v1..v6; with a window of 3 and a checkpoint after every commit, the
/// stored snapshot ends at v3 and the log holds v4..v6.
async fn prepare(state: &ThreadSafeState<u64>) {
    let v1 = state.set("a", 1).await.unwrap();
    state.set("a", 2).await.unwrap(); // v2
    state.rollback(v1).await.unwrap(); // v3: a = v1's value, modified at 3
    state.set("a", 3).await.unwrap(); // v4
    state.rollback(v1).await.unwrap(); // v5: a = v1's value again
    state.set("x", 0).await.unwrap(); // v6
    assert_eq!(state.version(), Version::new(6));
}

/// Roll back to v3 and describe what that commit did.
async fn rollback_to_v3(state: &ThreadSafeState<u64>) -> (Vec<(String, Option<u64>)>, Version) {
    let v7 = state.rollback(Version::new(3)).await.unwrap();
    let records = state
        .history(None, None)
        .into_iter()
        .filter(|record| record.version == v7)
        .map(|record| (record.key, record.new_value.map(|v| *v)))
        .collect();
    let modified = state.snapshot().modified_version("a").unwrap();
    (records, modified)
}

#[tokio::test]
async fn a_rollback_after_reopen_records_what_it_would_have_recorded() {
    let live = TempPath::new("rollback-live");
    let state = open(&live.0).await;
    prepare(&state).await;
    let without_restart = rollback_to_v3(&state).await;
    state.close().await.unwrap();

    let restarted = TempPath::new("rollback-restarted");
    let state = open(&restarted.0).await;
    prepare(&state).await;
    state.close().await.unwrap();
    let state = open(&restarted.0).await;
    let with_restart = rollback_to_v3(&state).await;
    state.close().await.unwrap();

    assert_eq!(
        with_restart, without_restart,
        "(records of the rollback at v7, a's modified version)"
    );
}
