//! Regression (found by review; failed before the fix). Expected (Export docs): an import "gives back the same get, version,
//! per-key versions, history, snapshot_at and rollback targets", and
//! tests/export.rs checks that it "behaves the same from there". So the same
//! rollback on the original and on the copy must commit the same records
//! and leave the same per-key versions.
//!
//! Actual: two rollbacks in the window restore the very same value `Arc`
//! from a target older than the export's base. The replay cannot find that
//! target (`Replay::value_at` returns None when the key changed between the
//! target and the base) and gives each rollback its own deserialized copy.
//! A later rollback compares values by pointer: the original sees "same
//! value" and writes nothing, the copy sees a difference and rewrites the
//! key at the new version.

use thread_safe_state::{Export, ThreadSafeState, Version};

#[tokio::test]
async fn a_rollback_after_import_matches_the_original() {
    let state = ThreadSafeState::builder().max_history(3).build();
    let v1 = state.set("k", 1u32).await.unwrap(); // v1: k = a1
    state.set("k", 2).await.unwrap(); // v2
    let v3 = state.rollback(v1).await.unwrap(); // v3: k = a1
    state.set("k", 3).await.unwrap(); // v4
    state.rollback(v1).await.unwrap(); // v5: k = a1 again (v1 still retained)
    let json = serde_json::to_string(&state.export()).unwrap();
    let export: Export<u32> = serde_json::from_str(&json).unwrap();
    let copy = ThreadSafeState::builder()
        .max_history(3)
        .import(export)
        .try_build()
        .unwrap();
    assert_eq!(copy.history(None, None), state.history(None, None));

    let mut seen = Vec::new();
    for s in [&state, &copy] {
        let v6 = s.rollback(v3).await.unwrap();
        assert_eq!(v6, Version::new(6));
        let records: Vec<_> = s
            .history(None, None)
            .into_iter()
            .filter(|r| r.version == v6)
            .map(|r| (r.key, r.old_value, r.new_value))
            .collect();
        seen.push((records, s.snapshot().modified_version("k")));
    }
    assert_eq!(
        seen[1], seen[0],
        "copy (left) differs from original (right)"
    );
}
