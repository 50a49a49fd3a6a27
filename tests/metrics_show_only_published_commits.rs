//! Regression (break round): `metrics()` never counts commits that `version()` does not show yet.
//!
//! Before the fix the writer counted `commits` / `rollbacks` / `writes` when
//! it *applied* a command, before the group was published, while
//! `metrics().version` (and `history_len`) were clamped to the published
//! horizon. So one `Metrics` value said "2 commits, 1 rollback" next to
//! "version 1, no rollback in the history": a read API showing a version
//! `version()` did not show.
mod common;

use common::{queued, Gate};
use thread_safe_state::{Operation, ThreadSafeState, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_never_count_unpublished_commits() {
    let state = ThreadSafeState::<u64>::new();
    // Gate 1 parks the writer so the next commands form one group.
    let gate1 = Gate::park(&state, "gate1").await; // v1

    let s = state.clone();
    let set = tokio::spawn(async move { s.set("a", 7).await }); // v2
    queued(&state, 1).await;
    let s = state.clone();
    let rb = tokio::spawn(async move { s.rollback(Version::new(1)).await }); // v3
    queued(&state, 2).await;
    // Gate 2: the last command of the second group, parks the writer after
    // it applied `set` and `rollback` but before it publishes them.
    let mut gate2 = Gate::queue(&state, "gate2"); // v4
    queued(&state, 3).await;
    gate1.open();
    gate2.entered().await;

    // The writer is parked inside gate2: v2 and v3 are applied, not published.
    let m = state.metrics();
    let version = state.version();
    let rollbacks_in_history = state
        .history(None, None)
        .iter()
        .filter(|r| r.operation == Operation::Rollback)
        .count();
    gate2.open();
    gate1.finish().await.unwrap();
    set.await.unwrap().unwrap();
    rb.await.unwrap().unwrap();
    gate2.finish().await.unwrap();

    println!(
        "version() = {version}, metrics = {m:?}, rollback records visible = {rollbacks_in_history}"
    );
    assert_eq!(version, Version::new(1));
    assert_eq!(m.version, Version::new(1));
    // Every commit of this state is a version (no initial state): a metrics
    // snapshot of version 1 cannot have seen more than 1 commit.
    assert!(
        m.commits <= m.version.get(),
        "metrics() shows {} commits but its own version (and version()) is {}",
        m.commits,
        m.version
    );
    assert!(
        m.rollbacks == 0,
        "metrics() shows {} rollback(s) that neither version() nor history() shows yet",
        m.rollbacks
    );
}
