//! Prefix queries and prefix watches: agents namespace their keys.

use std::collections::BTreeSet;

use proptest::prelude::*;
use thread_safe_state::{Modification, StateError, ThreadSafeState, Version};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[derive(Clone, Debug)]
enum Step {
    Set(String),
    Delete(String),
    Clear,
    Rollback(u64),
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "a/", "a/x", "a/y", "ab", "b/1", "b/2", "é/1", "é",
    ])
    .prop_map(str::to_owned)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => key().prop_map(Step::Set),
        2 => key().prop_map(Step::Delete),
        1 => Just(Step::Clear),
        1 => (1u64..5).prop_map(Step::Rollback),
    ]
}

proptest! {
    /// After any writes, deletes, clears and rollbacks, the ordered index
    /// agrees with a scan of the keys, for every prefix.
    #[test]
    fn prefix_queries_agree_with_a_scan(steps in prop::collection::vec(step(), 0..30)) {
        runtime().block_on(async {
            let state = ThreadSafeState::new();
            for step in steps {
                match step {
                    Step::Set(key) => { state.set(key, 1).await.unwrap(); }
                    Step::Delete(key) => { state.delete(key).await.unwrap(); }
                    Step::Clear => { state.clear().await.unwrap(); }
                    Step::Rollback(back) => {
                        let target = state.version().get().saturating_sub(back);
                        let _ = state.rollback(Version::new(target)).await;
                    }
                }
                let snapshot = state.snapshot();
                let all: BTreeSet<String> = snapshot.keys().map(str::to_owned).collect();
                assert_eq!(state.keys(), all.iter().cloned().collect::<Vec<_>>());
                for prefix in ["", "a", "a/", "b/", "é", "z"] {
                    let scanned: Vec<&String> = all.iter().filter(|k| k.starts_with(prefix)).collect();
                    let indexed: Vec<&str> = snapshot.keys_with_prefix(prefix).collect();
                    assert_eq!(indexed, scanned, "prefix {prefix:?}");
                }
            }
        });
    }
}

#[tokio::test]
async fn a_prefix_watch_sees_only_its_namespace_in_order() {
    let state = ThreadSafeState::new();
    state.set("task/0", 0).await.unwrap(); // before the watch: not seen
    let mut tasks = state.watch_prefix("task/").unwrap();
    state.set("agent/a", 1).await.unwrap();
    state.set("task/1", 1).await.unwrap();
    state.update([("agent/b", 2), ("task/2", 2)]).await.unwrap();
    state
        .modify("task/1", |_| Modification::Delete)
        .await
        .unwrap();
    state.close().await.unwrap();
    let mut seen = Vec::new();
    loop {
        match tasks.changed().await {
            Ok(change) => seen.push((
                change.version.get(),
                change
                    .records
                    .iter()
                    .map(|r| r.key.clone())
                    .collect::<Vec<_>>(),
            )),
            Err(StateError::Closed) => break,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            (3, vec!["task/1".to_owned()]),
            (4, vec!["task/2".to_owned()]),
            (5, vec!["task/1".to_owned()]),
        ]
    );
}

#[tokio::test]
async fn a_prefix_watch_names_its_prefix_and_snapshots_answer_prefix_queries() {
    let state = thread_safe_state::ThreadSafeState::new();
    let watch = state.watch_prefix("task/").unwrap();
    assert_eq!(watch.prefix(), "task/");
    assert!(format!("{watch:?}").contains("task/"));
    state
        .update([("task/1", 1), ("task/2", 2), ("agent/1", 3)])
        .await
        .unwrap();
    let snapshot = state.snapshot();
    let mut keys: Vec<_> = snapshot.keys_with_prefix("task/").collect();
    keys.sort_unstable();
    assert_eq!(keys, ["task/1", "task/2"]);
    assert_eq!(state.keys_with_prefix("agent/"), ["agent/1"]);
}
