//! History: order, key filter, limit, bound, serialization.

use thread_safe_state::{Operation, ThreadSafeState, Version};

#[tokio::test]
async fn history_is_most_recent_first_with_old_and_new_values() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    state.set("a", 2).await.unwrap();
    state.delete("a").await.unwrap();

    let history = state.history(None, None);
    let versions: Vec<u64> = history.iter().map(|r| r.version.get()).collect();
    assert_eq!(versions, [3, 2, 1]);
    let ops: Vec<Operation> = history.iter().map(|r| r.operation).collect();
    assert_eq!(ops, [Operation::Delete, Operation::Set, Operation::Set]);
    assert_eq!(history[0].old_value.as_deref(), Some(&2));
    assert_eq!(history[0].new_value, None);
    assert_eq!(history[1].old_value.as_deref(), Some(&1));
    assert_eq!(history[1].new_value.as_deref(), Some(&2));
    assert_eq!(history[2].old_value, None);
    assert!(history[0].timestamp >= history[2].timestamp);
}

#[tokio::test]
async fn history_filters_by_key_and_limits() {
    let state = ThreadSafeState::new();
    for i in 0..5 {
        state.update([("a", i), ("b", i)]).await.unwrap();
    }
    let of_a = state.history(Some("a"), None);
    assert_eq!(of_a.len(), 5);
    assert!(of_a.iter().all(|r| r.key == "a"));
    assert_eq!(of_a[0].new_value.as_deref(), Some(&4));

    let last_two = state.history(Some("b"), Some(2));
    let versions: Vec<u64> = last_two.iter().map(|r| r.version.get()).collect();
    assert_eq!(versions, [5, 4]);
    assert_eq!(state.history(None, Some(3)).len(), 3);
    assert!(state.history(None, Some(0)).is_empty());
    assert!(state.history(Some("absent"), None).is_empty());
}

#[tokio::test]
async fn batch_records_share_one_version_and_clear_records_each_key() {
    let state = ThreadSafeState::new();
    let batch = state.update([("x", 1), ("y", 2)]).await.unwrap();
    let cleared = state.clear().await.unwrap();
    let history = state.history(None, None);
    assert_eq!(history.len(), 4);
    assert!(history[..2]
        .iter()
        .all(|r| r.version == cleared && r.operation == Operation::Clear));
    assert!(history[2..]
        .iter()
        .all(|r| r.version == batch && r.operation == Operation::Update));
}

#[tokio::test]
async fn history_is_bounded_by_max_history_commits() {
    let state = ThreadSafeState::builder().max_history(10).build();
    for i in 0..1000 {
        state.set(format!("k{}", i % 7), i).await.unwrap();
    }
    let history = state.history(None, None);
    assert_eq!(history.len(), 10);
    assert_eq!(history[0].version, Version::new(1000));
    assert_eq!(history[9].version, Version::new(991));
    let metrics = state.metrics();
    assert_eq!(metrics.history_len, 10);
    assert_eq!(metrics.retained_versions, 11);
}

#[tokio::test]
async fn default_max_history_is_1000() {
    let state = ThreadSafeState::new();
    for i in 0..1005 {
        state.set("k", i).await.unwrap();
    }
    assert_eq!(state.history(None, None).len(), 1000);
    assert_eq!(thread_safe_state::DEFAULT_MAX_HISTORY, 1000);
}

#[tokio::test]
async fn records_serialize_to_json() {
    let state = ThreadSafeState::new();
    state.for_agent("parser").set("contracts", 3).await.unwrap();
    let record = &state.history(None, None)[0];
    let json = serde_json::to_value(record).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["key"], "contracts");
    assert_eq!(json["operation"], "set");
    assert_eq!(json["old_value"], serde_json::Value::Null);
    assert_eq!(json["new_value"], 3);
    assert_eq!(json["changed_by"], "parser");
    let timestamp = json["timestamp"].as_str().unwrap();
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339).unwrap();
}
