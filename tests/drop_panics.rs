//! Regression (review finding 3): a panic in a value's `Drop` inside the
//! writer loses no reply and does not stop the writer.
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use thread_safe_state::{StateError, ThreadSafeState};

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
