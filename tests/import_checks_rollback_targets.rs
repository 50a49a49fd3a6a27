//! Regression (found by review; failed before the fix). Expected (Builder::import docs): "The export is checked when the state is
//! built"; an export that does not fit together is InvalidImport, and an
//! accepted import gives back the exported values. A rollback commit whose
//! `restored_from` is not before it (here: in the future) is inconsistent:
//! either refuse it, or at least keep the value the export records.
//!
//! Actual: the builder accepts it and silently replaces the recorded value
//! with whatever `Replay::value_at` finds for the future version (the value
//! of an older commit), so `get` and the history disagree with the export.

use serde_json::json;
use thread_safe_state::{BuildError, Export, ThreadSafeState};

#[tokio::test]
async fn a_rollback_restored_from_the_future_is_refused_or_keeps_its_value() {
    let state = ThreadSafeState::<u32>::new();
    state.set("k", 1).await.unwrap(); // v1
    state.set("k", 2).await.unwrap(); // v2
    state.set("k", 7).await.unwrap(); // v3
    let mut json = serde_json::to_value(state.export()).unwrap();
    // Pretend v3 was a rollback "restored from" v99.
    json["commits"][2]["operation"] = json!("rollback");
    json["commits"][2]["restored_from"] = json!(99);
    let export: Export<u32> = serde_json::from_value(json).unwrap();
    match ThreadSafeState::builder().import(export).try_build() {
        Err(BuildError::InvalidImport { .. }) => {}
        Err(other) => panic!("{other:?}"),
        Ok(copy) => {
            assert_eq!(
                copy.get("k").as_deref(),
                Some(&7),
                "the import silently changed the exported value of k"
            );
        }
    }
}
