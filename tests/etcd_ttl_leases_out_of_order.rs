//! (Review 2.) Concurrent `set_with_ttl`s of one key can revoke the lease
//! of the write that won, deleting the key at once instead of after its
//! TTL.
//!
//! Each `set_with_ttl` grants a lease and puts the key with it; the writer
//! records the key's lease in `TtlLeases::granted` when the txn's task
//! *finishes*, and the lease it replaces is revoked as an orphan. Tasks
//! finish in any order: if the put at revision 11 (lease B) finishes before
//! the put at revision 10 (lease A), `granted(k, A, 10)` replaces
//! `(B, 11)` without comparing revisions and returns B to revoke. B is the
//! lease the key holds now (its newest put): revoking it deletes the key.
//! (Then the mirror's commit of revision 11 also revokes A.)
//!
//! Expected: after any number of concurrent `set_with_ttl(k, _, 60 s)`
//! calls that all succeed, `k` exists (with the value of the newest put)
//! until its TTL runs out.

mod common;

use std::time::Duration;

use common::etcd::{caught_up, endpoint, prefix};
use thread_safe_state::ThreadSafeState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ttl_sets_never_delete_the_key() {
    let Some(endpoint) = endpoint("review_ttl_lease_reorder") else {
        return;
    };
    let prefix = prefix("review-ttl-lease-reorder");
    let state = ThreadSafeState::<i64>::builder()
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    for round in 0..30 {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..24 {
            let state = state.clone();
            calls.spawn(async move {
                state
                    .set_with_ttl("job", round * 100 + i, Duration::from_secs(60))
                    .await
                    .unwrap()
            });
        }
        let mut newest = thread_safe_state::Version::INITIAL;
        while let Some(version) = calls.join_next().await {
            newest = newest.max(version.unwrap());
        }
        // Let the orphan revokes run, then read etcd afresh (a new handle
        // lists the prefix).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fresh = ThreadSafeState::<i64>::builder()
            .etcd([&endpoint], &prefix)
            .connect()
            .await
            .unwrap();
        caught_up_i64(&fresh, newest).await;
        assert!(
            fresh.contains_key("job") && state.contains_key("job"),
            "round {round}: `job` was deleted right after 24 set_with_ttl(60 s) calls all succeeded (newest at {newest:?}; the handle shows {:?})",
            state.get("job")
        );
    }
    let _ = caught_up;
}

async fn caught_up_i64(state: &ThreadSafeState<i64>, version: thread_safe_state::Version) {
    state
        .wait_for_timeout(|s| s.version() >= version, Duration::from_secs(10))
        .await
        .unwrap();
}

/// The control (passes): the same calls one after another keep the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_ttl_sets_keep_the_key() {
    let Some(endpoint) = endpoint("review_ttl_lease_sequential") else {
        return;
    };
    let prefix = prefix("review-ttl-lease-sequential");
    let state = ThreadSafeState::<i64>::builder()
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let mut newest = thread_safe_state::Version::INITIAL;
    for i in 0..24 {
        newest = state
            .set_with_ttl("job", i, Duration::from_secs(60))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = ThreadSafeState::<i64>::builder()
        .etcd([&endpoint], &prefix)
        .connect()
        .await
        .unwrap();
    caught_up_i64(&fresh, newest).await;
    assert_eq!(fresh.get("job").as_deref(), Some(&23));
}
