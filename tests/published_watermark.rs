//! Regression (review finding 2): no read API shows a version before
//! `version()` does: not `history`, not `snapshot_at`, not a change stream,
//! even with a rollback in the middle of a slow group.
mod common;

use std::time::{Duration, Instant};

use common::{queued, Gate};
use thread_safe_state::{Modification, ThreadSafeState, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_seen_in_the_history_is_already_readable() {
    let state = ThreadSafeState::<u64>::new();
    state.set("a", 0).await.unwrap(); // v1
                                      // Park the writer so the next 3 commands form one group.
    let gate = Gate::park(&state, "gate").await; // v2
    let mut commands = Vec::new();
    let s = state.clone();
    commands.push(tokio::spawn(async move { s.set("a", 1).await })); // v3
    queued(&state, 1).await;
    let s = state.clone();
    commands.push(tokio::spawn(
        async move { s.rollback(Version::new(1)).await },
    )); // v4
    queued(&state, 2).await;
    let s = state.clone();
    commands.push(tokio::spawn(async move {
        s.modify("slow", |_| {
            std::thread::sleep(Duration::from_millis(800));
            Modification::Set(1)
        })
        .await
        .map(|modified| modified.version)
    })); // v5
    queued(&state, 3).await;
    gate.open(); // (not awaiting `gate`: see finding 7)
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.snapshot_at(Version::new(3)).is_err() {
        assert!(Instant::now() < deadline)
    }
    let newest = state.history(None, Some(1))[0].version;
    let streamed = state
        .changes_since(Version::new(2))
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap()
        .version;
    let (version, a) = (state.version(), state.get("a"));
    println!("snapshot_at(3) ok, history newest = {newest}, stream delivered v{streamed}, but version() = {version}, get(a) = {a:?}");
    gate.finish().await.unwrap();
    for t in commands {
        t.await.unwrap().unwrap();
    }
    assert!(
        version >= Version::new(3),
        "saw v3 in history, then version() = {version}"
    );
}
