//! Regression (review finding 3): a panic in a value's `Drop` inside the
//! writer loses no reply and does not stop the writer.
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use thread_safe_state::{Modification, StateError, ThreadSafeState};

static ARMED: AtomicBool = AtomicBool::new(false);
struct Bomb(u32);
impl Drop for Bomb {
    fn drop(&mut self) {
        if ARMED.load(SeqCst) && self.0 == 1 {
            panic!("drop of value 1")
        }
    }
}

#[tokio::test]
async fn a_panicking_drop_in_the_writer_loses_no_reply() {
    let state = ThreadSafeState::<Bomb>::builder().max_history(0).build();
    state.set("k", Bomb(1)).await.unwrap();
    ARMED.store(true, SeqCst);
    let second = state.set("k", Bomb(2)).await;
    let visible = state.get("k").map(|b| b.0);
    let third = state.set("other", Bomb(3)).await;
    ARMED.store(false, SeqCst);
    println!("second = {second:?}, get(k) = {visible:?}, third = {third:?}");
    assert!(
        !(second == Err(StateError::Closed) && visible == Some(2)),
        "Closed, yet applied"
    );
}

/// A value whose `Drop` panics, captured by a closure that runs in the writer.
struct Captured(u32);

impl Drop for Captured {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("captured value {} dropped", self.0);
        }
    }
}

/// Review (break round): a closure's captures are dropped in the writer
/// when the closure returns. Documented behaviour: a panic there fails that
/// command like a panic in the closure, nothing is written, and the writer
/// keeps serving; the caller is told the truth.
#[tokio::test]
async fn a_closure_capture_that_panics_in_drop_fails_only_its_command() {
    let state = ThreadSafeState::<u32>::new();
    state.set("k", 1).await.unwrap();
    let captured = Captured(7);
    let modified = state
        .modify("k", move |old| {
            let whole = &captured; // capture the value itself, not a copy of its field
            Modification::Set(old.copied().unwrap_or(0) + whole.0)
        })
        .await;
    assert!(
        matches!(&modified, Err(StateError::ModifyPanicked { message, .. }) if message.contains("captured value 7")),
        "{modified:?}"
    );
    assert_eq!(state.get("k").as_deref(), Some(&1));
    let captured = Captured(8);
    let transaction = state
        .transaction(move |_| {
            let whole = &captured;
            Ok::<_, std::convert::Infallible>(vec![thread_safe_state::Write::set("t", whole.0)])
        })
        .await;
    assert!(
        matches!(
            &transaction,
            Err(thread_safe_state::TransactionError::State(
                StateError::TransactionPanicked { .. }
            ))
        ),
        "{transaction:?}"
    );
    assert!(!state.contains_key("t"));
    assert_eq!(
        state.set("k", 2).await,
        Ok(thread_safe_state::Version::new(2))
    );
}
