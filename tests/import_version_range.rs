//! Regression (found by review; failed before the fix). Expected (Builder::import docs): "a bad one ... is
//! BuildError::InvalidImport or BuildError::EmptyKey, never a panic in the
//! writer", and DESIGN.md: no input may kill the writer. An edited export
//! whose version is u64::MAX leaves no room for another version: the
//! builder must refuse it (or the next write must fail with a typed error),
//! neither the builder nor the writer may panic.
//!
//! Actual: the import is accepted; the first write computes
//! `Version::next()` (`self.0 + 1`) in the writer, which overflows: the
//! writer task panics (debug) and every write gets `Closed` (in release it
//! would wrap to version 0). With a commit after a base at u64::MAX the
//! builder itself panics in `Replay::next_version`.

use serde_json::json;
use thread_safe_state::{BuildError, Export, StateError, ThreadSafeState};

async fn export_json() -> serde_json::Value {
    let state = ThreadSafeState::<u32>::new();
    state.set("a", 1).await.unwrap();
    serde_json::to_value(state.export()).unwrap()
}

#[tokio::test]
async fn an_import_at_u64_max_does_not_kill_the_writer() {
    let mut json = export_json().await;
    json["version"] = json!(u64::MAX);
    json["base"]["version"] = json!(u64::MAX);
    json["commits"] = json!([]);
    let export: Export<u32> = serde_json::from_value(json).unwrap();
    let state = match ThreadSafeState::builder().import(export).try_build() {
        Err(BuildError::InvalidImport { .. }) => return, // refused: fine
        Err(other) => panic!("{other:?}"),
        Ok(state) => state,
    };
    let write = state.set("b", 2).await;
    assert!(
        !matches!(write, Err(StateError::Closed)),
        "the writer died on the first write after the import: {write:?}"
    );
    assert!(state.set("c", 3).await.is_ok() || write.is_err());
}

#[tokio::test]
async fn a_commit_after_a_base_at_u64_max_is_a_typed_error_not_a_builder_panic() {
    let mut json = export_json().await;
    json["version"] = json!(u64::MAX);
    json["base"]["version"] = json!(u64::MAX);
    // keep the one commit (version 1): it cannot follow u64::MAX
    let export: Export<u32> = serde_json::from_value(json).unwrap();
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ThreadSafeState::builder()
            .import(export)
            .try_build()
            .map(|_| ())
    }));
    match built {
        Ok(Err(BuildError::InvalidImport { .. })) => {}
        Ok(other) => panic!("expected InvalidImport, got {other:?}"),
        Err(_) => panic!("try_build panicked on an edited export"),
    }
}
