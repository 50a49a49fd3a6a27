//! Regression (found by review; failed before the fix): a value whose `Serialize` impl *panics* kills the
//! journal thread, and with it every later write of the state.
//!
//! `Store::append` runs `serde_json::to_writer` (user code) on the journal
//! thread with no `catch_unwind`. The panic unwinds the thread, the
//! writer sees "the journal thread stopped unexpectedly" and from then on
//! refuses every write with `JournalFailed` until the state is reopened,
//! although the storage is perfectly fine.
//!
//! Expected behaviour: like a `Serialize` that returns an error
//! (`StateError::NotSerializable` docs: "nothing of the group was applied
//! ... the journal stays usable, so a write whose own values serialize can
//! simply be retried"), and like a panicking `modify` closure (which fails
//! only its own command), a panic in user code must fail its group and
//! leave the journal usable.

mod common;

use common::TempPath;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use thread_safe_state::{StateError, ThreadSafeState};

/// Serializes as a number, except 13, whose impl panics (a bug in user
/// code, e.g. an `unwrap` inside a hand-written impl).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Touchy(u32);

impl Serialize for Touchy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert_ne!(self.0, 13, "unlucky value");
        serializer.serialize_u32(self.0)
    }
}

#[tokio::test]
async fn a_panicking_serialize_fails_its_write_and_nothing_else() {
    let file = TempPath::new("serialize-panic");
    let state = ThreadSafeState::<Touchy>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    state.set("ok", Touchy(1)).await.unwrap();

    let bad = tokio::time::timeout(Duration::from_secs(10), state.set("bad", Touchy(13)))
        .await
        .expect("the panicking write was never answered");
    assert!(
        bad.is_err(),
        "a value that cannot be serialized was acknowledged"
    );
    assert_eq!(state.get("bad"), None);

    // The journal is fine: a write whose value serializes must succeed.
    let next = tokio::time::timeout(Duration::from_secs(10), state.set("next", Touchy(2)))
        .await
        .expect("never answered");
    assert!(
        !matches!(next, Err(StateError::JournalFailed { .. })),
        "one panicking Serialize broke the journal for good: {next:?}"
    );
    next.unwrap();
    state.close().await.unwrap();

    let state = ThreadSafeState::<Touchy>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    assert_eq!(state.get("ok").as_deref(), Some(&Touchy(1)));
    assert_eq!(state.get("next").as_deref(), Some(&Touchy(2)));
    state.close().await.unwrap();
}
