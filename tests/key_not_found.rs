//! A miss in `get_required` / `get_as` on a large state carries only the
//! keys its message lists and a count, not a sorted copy of every key.

use thread_safe_state::{StateError, ThreadSafeState};

const KEYS: usize = 200_000;

#[tokio::test]
async fn a_miss_on_a_large_state_carries_ten_keys_and_the_total() {
    // Inserted in a scrambled order, so the smallest keys are not simply
    // the first ones the map happens to yield.
    let state = ThreadSafeState::builder()
        .initial_state((0..KEYS).map(|i| (format!("key{:06}", (i * 7919) % KEYS), i)))
        .build();
    assert_eq!(state.len(), KEYS);

    let error = state.get_required("missing").unwrap_err();
    let StateError::KeyNotFound {
        key,
        available,
        total_keys,
        ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(key, "missing");
    assert_eq!(*total_keys, KEYS);
    assert!(available.len() <= 10, "{} keys carried", available.len());
    let smallest: Vec<String> = (0..10).map(|i| format!("key{i:06}")).collect();
    assert_eq!(available, &smallest, "the ten smallest keys, sorted");
    assert_eq!(
        error.to_string(),
        format!(
            "key \"missing\" not found; available keys: {}, ...",
            smallest
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
}

#[tokio::test]
async fn get_as_reports_the_same_bounded_miss() {
    let state = ThreadSafeState::builder()
        .initial_state((0..KEYS).map(|i| (format!("k{i}"), serde_json::json!(i))))
        .build();
    let error = state.get_as::<u64>("missing").unwrap_err();
    let StateError::KeyNotFound {
        available,
        total_keys,
        ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(*total_keys, KEYS);
    assert!(available.len() <= 10, "{} keys carried", available.len());
    assert!(available.windows(2).all(|w| w[0] < w[1]), "{available:?}");
}

#[tokio::test]
async fn a_miss_on_a_small_state_lists_every_key() {
    let state = ThreadSafeState::new();
    state
        .update([("b", 2), ("a", 1), ("c", 3)].map(|(k, v)| (k, serde_json::json!(v))))
        .await
        .unwrap();
    let error = state.snapshot().get_as::<u8>("z").unwrap_err();
    assert!(
        matches!(&error, StateError::KeyNotFound { available, total_keys: 3, .. } if available == &["a", "b", "c"]),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        r#"key "z" not found; available keys: "a", "b", "c""#
    );
}
