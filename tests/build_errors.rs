//! Out-of-range builder capacities are typed `BuildError`s, never panics
//! from inside tokio (its mpsc semaphore caps permits at `usize::MAX >> 3`;
//! its broadcast asserts `capacity <= usize::MAX >> 1` and allocates the
//! whole ring up front).

use std::panic::{catch_unwind, AssertUnwindSafe};

use thread_safe_state::{
    BuildError, ThreadSafeState, MAX_CHANGE_STREAM_CAPACITY, MAX_MAILBOX_CAPACITY,
};

/// `try_build` with `configure`, with any panic turned into a test failure.
fn try_build(
    configure: impl FnOnce(thread_safe_state::Builder<u8>) -> thread_safe_state::Builder<u8>,
) -> Result<ThreadSafeState<u8>, BuildError> {
    catch_unwind(AssertUnwindSafe(|| {
        configure(ThreadSafeState::builder()).try_build()
    }))
    .unwrap_or_else(|_| panic!("try_build panicked instead of returning a BuildError"))
}

#[tokio::test]
async fn a_huge_mailbox_capacity_is_a_build_error() {
    for requested in [usize::MAX, MAX_MAILBOX_CAPACITY + 1] {
        let error = try_build(|b| b.mailbox_capacity(requested)).err();
        assert!(
            matches!(
                error,
                Some(BuildError::MailboxCapacityTooLarge { requested: r, max, .. })
                    if r == requested && max == MAX_MAILBOX_CAPACITY
            ),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_huge_change_stream_capacity_is_a_build_error() {
    for requested in [usize::MAX, usize::MAX >> 1, MAX_CHANGE_STREAM_CAPACITY + 1] {
        let error = try_build(|b| b.change_stream_capacity(requested)).err();
        assert!(
            matches!(
                error,
                Some(BuildError::ChangeStreamCapacityTooLarge { requested: r, max, .. })
                    if r == requested && max == MAX_CHANGE_STREAM_CAPACITY
            ),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn the_largest_capacities_build_and_work() {
    let state = try_build(|b| {
        b.mailbox_capacity(MAX_MAILBOX_CAPACITY)
            .change_stream_capacity(MAX_CHANGE_STREAM_CAPACITY)
    })
    .unwrap();
    let version = state.set("k", 1).await.unwrap();
    assert_eq!(state.version(), version);
    assert_eq!(state.metrics().mailbox_depth, 0);
}

#[test]
fn the_messages_say_what_is_allowed() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let mailbox = try_build(|b| b.mailbox_capacity(usize::MAX))
        .err()
        .unwrap()
        .to_string();
    assert!(
        mailbox.contains(&format!("between 1 and {MAX_MAILBOX_CAPACITY}")),
        "{mailbox}"
    );
    let stream = try_build(|b| b.change_stream_capacity(usize::MAX))
        .err()
        .unwrap()
        .to_string();
    assert!(
        stream.contains(&format!("between 1 and {MAX_CHANGE_STREAM_CAPACITY}")),
        "{stream}"
    );
}

#[tokio::test]
#[should_panic(expected = "change_stream_capacity(18446744073709551615) is too large")]
#[cfg(target_pointer_width = "64")]
async fn build_panics_with_the_build_error_message() {
    let _ = ThreadSafeState::<u8>::builder()
        .change_stream_capacity(usize::MAX)
        .build();
}
