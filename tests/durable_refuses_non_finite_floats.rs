//! Regression (found by review; failed before the fix): a non-finite float is acknowledged as durable, but the
//! journal cannot give it back.
//!
//! serde_json writes `NaN` and `±inf` as `null` (no error). So:
//! - `ThreadSafeState<f64>`: `set("x", f64::NAN)` succeeds, and after
//!   `close` the journal no longer opens at all (`OpenError::Decode`):
//!   every acknowledged write in the file is lost to the application;
//! - `ThreadSafeState<Option<f64>>`: `Some(inf)` silently comes back as
//!   `None`.
//!
//! Expected behaviour (README "Durability", `StateError::NotSerializable`
//! docs): a write is acknowledged only once it is durable and reopening
//! recovers the acknowledged values exactly. A value the journal cannot
//! store faithfully must be refused (`NotSerializable`), never
//! acknowledged and then lost or changed.

mod common;

use common::TempPath;
use thread_safe_state::{StateError, ThreadSafeState};

#[tokio::test]
async fn an_acknowledged_nan_does_not_make_the_journal_unopenable() {
    let file = TempPath::new("nan");
    let state = ThreadSafeState::<f64>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    state.set("important", 42.0).await.unwrap();
    let nan = state.set("ratio", f64::NAN).await;
    state.close().await.unwrap();

    let reopened = ThreadSafeState::<f64>::builder()
        .durable(&file.0)
        .open()
        .await;
    match nan {
        // Refusing the value is fine...
        Err(StateError::NotSerializable { .. }) => {
            let state = reopened.expect("the journal must still open");
            assert_eq!(state.get("important").as_deref(), Some(&42.0));
            state.close().await.unwrap();
        }
        Err(other) => panic!("unexpected error {other}"),
        // ...but once acknowledged it must come back.
        Ok(_) => {
            let state = reopened.unwrap_or_else(|error| {
                panic!("NaN was acknowledged, and now the journal does not open: {error}")
            });
            assert_eq!(state.get("important").as_deref(), Some(&42.0));
            assert!(state.get("ratio").unwrap().is_nan());
            state.close().await.unwrap();
        }
    }
}

#[tokio::test]
async fn an_acknowledged_infinity_does_not_silently_become_none() {
    let file = TempPath::new("inf");
    let state = ThreadSafeState::<Option<f64>>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    let written = state.set("limit", Some(f64::INFINITY)).await;
    state.close().await.unwrap();

    let state = ThreadSafeState::<Option<f64>>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    if written.is_ok() {
        assert_eq!(
            state.get("limit").as_deref(),
            Some(&Some(f64::INFINITY)),
            "acknowledged Some(inf), recovered something else"
        );
    } else {
        assert!(matches!(written, Err(StateError::NotSerializable { .. })));
    }
    state.close().await.unwrap();
}
