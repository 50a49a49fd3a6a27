//! Regression (found by review; failed before the fix). Expected (PrefixWatch::changed docs): `StateError::Closed` "once the
//! writer has stopped and every commit before has been returned";
//! `StateError::Lagged` if the watch fell behind. A watch that lagged while
//! the state is alive must not report `Closed` afterwards: the writer has
//! not stopped (it could keep reporting Lagged, or end some other way, but
//! `Closed` tells the caller the state is gone).
//!
//! Actual: after the Lagged error the inner change stream ends (`None`),
//! and `changed()` maps that to `Closed` while the writer is still running.

use thread_safe_state::{StateError, ThreadSafeState};

#[tokio::test]
async fn a_lagged_prefix_watch_does_not_claim_the_state_is_closed() {
    let state = ThreadSafeState::<u32>::builder()
        .change_stream_capacity(2)
        .build();
    let mut watch = state.watch_prefix("task/").unwrap();
    for n in 0..10 {
        state.set(format!("task/{n}"), n).await.unwrap();
    }
    let first = watch.changed().await;
    assert!(matches!(first, Err(StateError::Lagged { .. })), "{first:?}");
    // The state is alive and keeps committing.
    state.set("task/x", 1).await.unwrap();
    let second = watch.changed().await;
    assert_ne!(
        second.as_ref().err(),
        Some(&StateError::Closed),
        "Closed reported while the writer is alive"
    );
}
