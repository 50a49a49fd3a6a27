//! (Review 2.) `fetch_snapshot_at(Version::INITIAL)` and `rollback(Version::INITIAL)`
//! on an etcd state read etcd "at revision 0", which etcd takes to mean
//! *the newest revision*: the state as it is now.
//!
//! - `fetch_snapshot_at(0)` returns today's contents labelled version 0,
//!   a state that never existed at version 0 (before any write the
//!   prefix was empty; in memory version 0 is the empty initial state);
//! - `rollback(0)` finds "no differences" and answers `Ok` with the
//!   current version, writing nothing: the caller believes the state is
//!   back at version 0 while every key is still there.
//!
//! Expected: version 0 is the empty state (or a typed error such as
//! `VersionCompacted`/`InvalidVersion`), never the newest contents.

mod common;

use std::time::Duration;

use common::etcd::{endpoint, prefix};
use thread_safe_state::{StateError, ThreadSafeState, Version};

async fn connect(endpoint: &str, prefix: &str) -> ThreadSafeState<i64> {
    ThreadSafeState::<i64>::builder()
        .max_history(2)
        .etcd([endpoint], prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to etcd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_snapshot_at_version_zero_is_not_the_newest_state() {
    let Some(endpoint) = endpoint("review_fetch_zero") else {
        return;
    };
    let prefix = prefix("review-fetch-zero");
    let state = connect(&endpoint, &prefix).await;
    state.set("a", 1).await.unwrap();
    state.set("b", 2).await.unwrap();
    state.set("c", 3).await.unwrap();
    match state.fetch_snapshot_at(Version::INITIAL).await {
        Ok(snapshot) => assert!(
            snapshot.is_empty(),
            "the state at version 0 shows keys written later: {:?} (version {:?})",
            snapshot.keys().collect::<Vec<_>>(),
            snapshot.version()
        ),
        Err(StateError::VersionCompacted { .. } | StateError::InvalidVersion { .. }) => {}
        Err(other) => panic!("unexpected error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_version_zero_does_not_claim_success_without_writing() {
    let Some(endpoint) = endpoint("review_rollback_zero") else {
        return;
    };
    let prefix = prefix("review-rollback-zero");
    let state = connect(&endpoint, &prefix).await;
    state.set("a", 1).await.unwrap();
    state.set("b", 2).await.unwrap();
    state.set("c", 3).await.unwrap();
    match state.rollback(Version::INITIAL).await {
        Ok(version) => assert!(
            state.is_empty(),
            "rollback(0) answered Ok({version:?}) but the state still holds {:?}",
            state.snapshot().keys().collect::<Vec<_>>()
        ),
        Err(StateError::VersionCompacted { .. } | StateError::InvalidVersion { .. }) => {}
        Err(other) => panic!("unexpected error: {other:?}"),
    }
}
