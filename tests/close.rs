//! `close()`: an orderly stop; and `build_on`: a state whose writer runs on
//! a runtime of the caller's choice.

use thread_safe_state::{StateError, ThreadSafeState, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_either_applied_and_answered_or_refused() {
    let state = ThreadSafeState::<u64>::new();
    let writers: Vec<_> = (0..64)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move { (i, state.set(format!("k{i}"), i).await) })
        })
        .collect();
    state.close().await.unwrap();
    let mut applied = 0;
    for writer in writers {
        let (i, outcome) = writer.await.unwrap();
        match outcome {
            Ok(version) => {
                applied += 1;
                // Answered, so visible, at its version.
                let snapshot = state.snapshot();
                assert_eq!(snapshot.get(&format!("k{i}")).as_deref(), Some(&i));
                assert_eq!(snapshot.modified_version(&format!("k{i}")), Some(version));
            }
            Err(StateError::Closed) => assert!(!state.contains_key(&format!("k{i}"))),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(state.version(), Version::new(applied));
    assert_eq!(state.set("late", 0).await, Err(StateError::Closed));
}

#[tokio::test]
async fn after_close_waits_end_and_reads_go_on() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    let mut stream = state.changes_since(Version::INITIAL).unwrap();
    let mut watch = state.watch_key("a");
    state.close().await.unwrap();
    state.close().await.unwrap(); // closing twice is fine
    assert_eq!(
        state
            .wait_for(|s| s.contains_key("never"))
            .await
            .unwrap_err(),
        StateError::Closed
    );
    assert_eq!(watch.changed().await, Err(StateError::Closed));
    assert_eq!(
        stream.next().await.unwrap().unwrap().version,
        Version::new(1)
    );
    assert!(stream.next().await.is_none(), "a close is a normal end");
    assert_eq!(state.get("a").as_deref(), Some(&1));
    // From a plain thread too.
    let closer = state.clone();
    let closed = std::thread::spawn(move || closer.blocking().close());
    assert_eq!(closed.join().unwrap(), Ok(()));
}

#[test]
fn a_state_built_on_a_long_lived_runtime_serves_other_runtimes() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let state = ThreadSafeState::builder().build_on(main.handle());
    // A short-lived runtime (a test's, a request's) uses it and ends; the
    // writer lives on the main runtime and keeps serving.
    for round in 0..3u64 {
        let short = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        short.block_on(async {
            state.set("round", round).await.unwrap();
        });
    }
    assert_eq!(state.get("round").as_deref(), Some(&2));
    assert_eq!(state.blocking().close(), Ok(()));
}
