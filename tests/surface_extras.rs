//! Small parts of the surface that the larger tests pass by: each call
//! here has a doc example too, which line coverage does not count.

use thread_safe_state::{Modification, StateError, ThreadSafeState, Version};

#[tokio::test]
async fn remove_default_and_modified_clones() {
    let state: ThreadSafeState<u32> = ThreadSafeState::default();
    let v1 = state.set("k", 1).await.unwrap();
    assert_eq!(state.remove("k").await.unwrap(), Some(v1.next()));
    assert_eq!(state.remove("k").await.unwrap(), None);
    let modified = state
        .modify("n", |n: Option<&u32>| {
            Modification::Set(n.map_or(1, |n| n + 1))
        })
        .await
        .unwrap();
    let copy = modified.clone();
    assert_eq!(
        (copy.version, copy.value.as_deref(), copy.committed),
        (Version::new(3), Some(&1), true)
    );
}

#[test]
fn a_blocking_close_after_the_state_closed_returns_at_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = ThreadSafeState::<u32>::builder().build_on(runtime.handle());
    state.blocking().set("k", 1).unwrap();
    state.blocking().close().unwrap();
    // The mailbox is closed: this close waits for the writer's end, which
    // has already come.
    state.blocking().close().unwrap();
    assert_eq!(state.blocking().set("k", 2), Err(StateError::Closed));
    assert_eq!(state.get("k").as_deref(), Some(&1));
}

#[test]
fn the_first_version_has_no_predecessor() {
    assert_eq!(Version::INITIAL.prev(), None);
    assert_eq!(Version::new(3).prev(), Some(Version::new(2)));
}

/// A second `close` from another thread while the first is still
/// draining a long queue waits for the writer's end too.
#[test]
fn concurrent_blocking_closes_both_wait_for_the_end() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = ThreadSafeState::<u32>::builder().build_on(runtime.handle());
    let writers: Vec<_> = (0..2000)
        .map(|n| {
            let state = state.clone();
            runtime.spawn(async move { state.set(format!("k{n}"), n).await })
        })
        .collect();
    let closers: Vec<_> = (0..4)
        .map(|_| {
            let state = state.clone();
            std::thread::spawn(move || state.blocking().close())
        })
        .collect();
    for closer in closers {
        closer.join().unwrap().unwrap();
        // Every write queued before the closes is answered by now.
        assert_eq!(state.blocking().set("late", 1), Err(StateError::Closed));
    }
    for writer in writers {
        let _ = runtime.block_on(writer).unwrap();
    }
}
