//! Regression (break round): `metrics()` never counts commits that `version()` does not show yet.
//!
//! The writer bumps `commits` / `rollbacks` / `writes` when it *applies* a
//! command, before the group is published, while `metrics().version` (and
//! `history_len`) are clamped to the published horizon. So one `Metrics`
//! value says "2 commits, 1 rollback" next to "version 1, no rollback in the
//! history": a read API showing a version `version()` does not show.
use thread_safe_state::{Operation, ThreadSafeState, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_never_count_unpublished_commits() {
    let state = ThreadSafeState::<u64>::new();
    // Gate 1 parks the writer so the next commands form one group.
    let (in1_tx, in1_rx) = std::sync::mpsc::channel::<()>();
    let (go1_tx, go1_rx) = std::sync::mpsc::channel::<()>();
    let s = state.clone();
    let gate1 = tokio::spawn(async move {
        s.modify("gate1", move |_| {
            in1_tx.send(()).unwrap();
            go1_rx.recv().unwrap();
            Some(1)
        })
        .await
    }); // v1
    tokio::task::spawn_blocking(move || in1_rx.recv().unwrap())
        .await
        .unwrap();

    let s = state.clone();
    let set = tokio::spawn(async move { s.set("a", 7).await }); // v2
    while state.metrics().mailbox_depth < 1 {
        tokio::task::yield_now().await
    }
    let s = state.clone();
    let rb = tokio::spawn(async move { s.rollback(Version::new(1)).await }); // v3
    while state.metrics().mailbox_depth < 2 {
        tokio::task::yield_now().await
    }
    // Gate 2: the last command of the second group, parks the writer after
    // it applied `set` and `rollback` but before it publishes them.
    let (in2_tx, in2_rx) = std::sync::mpsc::channel::<()>();
    let (go2_tx, go2_rx) = std::sync::mpsc::channel::<()>();
    let s = state.clone();
    let gate2 = tokio::spawn(async move {
        s.modify("gate2", move |_| {
            in2_tx.send(()).unwrap();
            go2_rx.recv().unwrap();
            Some(1)
        })
        .await
    }); // v4
    while state.metrics().mailbox_depth < 3 {
        tokio::task::yield_now().await
    }
    go1_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || in2_rx.recv().unwrap())
        .await
        .unwrap();

    // The writer is parked inside gate2: v2 and v3 are applied, not published.
    let m = state.metrics();
    let version = state.version();
    let rollbacks_in_history = state
        .history(None, None)
        .iter()
        .filter(|r| r.operation == Operation::Rollback)
        .count();
    go2_tx.send(()).unwrap();
    gate1.await.unwrap().unwrap();
    set.await.unwrap().unwrap();
    rb.await.unwrap().unwrap();
    gate2.await.unwrap().unwrap();

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
