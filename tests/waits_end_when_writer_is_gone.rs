//! Regression (review finding 4): once no writer can publish again, every
//! wait ends with `Closed` instead of hanging: `wait_for`, `KeyWatch`,
//! `Subscriber::changed` and change streams, whether the writer's runtime
//! shut down or every handle was dropped.

use std::time::Duration;

use thread_safe_state::{StateError, ThreadSafeState, Version};

const PATIENCE: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn waits_end_with_closed_once_the_writers_runtime_is_gone() {
    let first = runtime();
    let state = first.block_on(async {
        let state = ThreadSafeState::<u32>::new();
        state.set("seen", 1).await.unwrap();
        state
    });
    let (mut stream, mut key, mut updates) = first.block_on(async {
        (
            state.changes_since(Version::INITIAL).unwrap(),
            state.watch_key("k"),
            state.subscribe(),
        )
    });
    drop(first); // the writer task is dropped with its runtime

    runtime().block_on(async {
        assert_eq!(state.set("k", 1).await, Err(StateError::Closed));
        let waited = tokio::time::timeout(PATIENCE, state.wait_for(|s| s.contains_key("k")));
        assert_eq!(
            waited.await.expect("wait_for hung").unwrap_err(),
            StateError::Closed
        );
        // Already true: resolves with the last published snapshot.
        let now = state.wait_for(|s| s.contains_key("seen")).await.unwrap();
        assert_eq!(now.version(), Version::new(1));

        let changed = tokio::time::timeout(PATIENCE, key.changed()).await;
        assert_eq!(changed.expect("KeyWatch hung"), Err(StateError::Closed));
        let changed = tokio::time::timeout(PATIENCE, updates.changed()).await;
        assert_eq!(changed.expect("Subscriber hung"), Err(StateError::Closed));

        // The stream delivers what was published, then says the writer died.
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.version, Version::new(1));
        let end = tokio::time::timeout(PATIENCE, stream.next()).await;
        assert_eq!(
            end.expect("stream hung").unwrap().unwrap_err(),
            StateError::Closed
        );
        assert!(stream.next().await.is_none());
        assert!(matches!(
            state.changes_since(Version::INITIAL),
            Err(StateError::Closed)
        ));
    });
}

#[tokio::test]
async fn waits_end_with_closed_once_every_handle_is_dropped() {
    let state = ThreadSafeState::<u32>::new();
    let mut key = state.watch_key("k");
    let mut updates = state.subscribe();
    let mut stream = state.changes_since(Version::INITIAL).unwrap();
    state.set("k", 1).await.unwrap();
    drop(state);
    assert_eq!(key.changed().await.unwrap().as_deref(), Some(&1));
    assert_eq!(key.changed().await, Err(StateError::Closed));
    updates.changed().await.unwrap(); // version 1 was not seen yet
    assert_eq!(updates.changed().await, Err(StateError::Closed));
    assert_eq!(
        stream.next().await.unwrap().unwrap().version,
        Version::new(1)
    );
    assert!(stream.next().await.is_none(), "a normal end is no error");
}
