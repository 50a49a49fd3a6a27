//! (Review 2.) A state larger than 4 MiB cannot be connected, relisted or
//! read from etcd's history.
//!
//! Each value is within etcd's request limit (1.5 MiB), so the state's
//! writes all succeed, but every *range* the backend makes (the first
//! listing in `connect`, the relist after a compaction, `range_at` for
//! `fetch_snapshot_at` / `rollback` behind the window) goes through a
//! `KvClient` with tonic's default 4 MiB decoding limit (only the watch
//! client's limit is raised, to 64 MiB). A prefix holding more than 4 MiB
//! in total is then unreadable: a new handle fails with
//! `EtcdError::Connect` ("decoded message length too large"), and an
//! existing one fails history reads (and would relist forever after a
//! compaction).
//!
//! Expected: a second handle connects to the state the first one wrote,
//! and `fetch_snapshot_at` behind the window reads it.

mod common;

use std::time::Duration;

use common::etcd::{endpoint, prefix};
use thread_safe_state::ThreadSafeState;

async fn connect(
    endpoint: &str,
    prefix: &str,
) -> Result<ThreadSafeState<String>, thread_safe_state::EtcdError> {
    ThreadSafeState::<String>::builder()
        .max_history(1)
        .etcd([endpoint], prefix)
        .request_timeout(Duration::from_secs(10))
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_of_five_megabytes_connects_and_reads_its_history() {
    let Some(endpoint) = endpoint("review_large_state") else {
        return;
    };
    let prefix = prefix("review-large-state");
    let writer = connect(&endpoint, &prefix).await.unwrap();
    // Five values of 1 MB each: every put well under etcd's 1.5 MiB.
    let mut versions = Vec::new();
    for i in 0..5 {
        let value = char::from(b'a' + i as u8).to_string().repeat(1_000_000);
        versions.push(writer.set(format!("blob-{i}"), value).await.unwrap());
    }
    writer.set("small", "x".into()).await.unwrap();
    writer.set("small", "y".into()).await.unwrap();
    // Behind the local window of one commit: read from etcd's history.
    let at = *versions.last().unwrap();
    assert!(writer.snapshot_at(at).is_err());
    let fetched = writer.fetch_snapshot_at(at).await;
    let second = connect(&endpoint, &prefix).await;
    let fetched = fetched.map(|snapshot| snapshot.len());
    let second = second.map(|state| state.len());
    assert!(
        matches!((&fetched, &second), (Ok(5), Ok(6))),
        "a 5 MB state is unreadable:\n  fetch_snapshot_at: {fetched:?}\n  a second handle: {second:?}"
    );
    // Tidy up the shared server.
    writer.clear().await.unwrap();
}
