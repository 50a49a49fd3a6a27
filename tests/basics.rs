//! The Python design's basic test plan: set/get, missing keys, delete, batch
//! update, contains/len, version counting, fallbacks, agents, retain.

use std::sync::Arc;

use thread_safe_state::{BuildError, Modification, StateError, ThreadSafeState, Version};

#[tokio::test]
async fn set_then_get_returns_the_value() {
    let state = ThreadSafeState::new();
    state.set("phase", "parse".to_string()).await.unwrap();
    assert_eq!(
        state.get("phase").as_deref().map(String::as_str),
        Some("parse")
    );
    state.set("phase", "generate".to_string()).await.unwrap();
    assert_eq!(
        state.get("phase").as_deref().map(String::as_str),
        Some("generate")
    );
}

#[tokio::test]
async fn missing_key_is_none() {
    let state = ThreadSafeState::<u32>::new();
    assert_eq!(state.get("nope"), None);
    assert!(!state.contains_key("nope"));
}

#[tokio::test]
async fn delete_removes_and_reports_presence() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    assert!(state.delete("a").await.unwrap());
    assert_eq!(state.get("a"), None);
    let version = state.version();
    assert!(!state.delete("a").await.unwrap());
    assert_eq!(state.version(), version, "a no-op delete commits nothing");
}

#[tokio::test]
async fn batch_update_sets_every_key_as_one_version() {
    let state = ThreadSafeState::new();
    let version = state.update([("a", 1), ("b", 2), ("c", 3)]).await.unwrap();
    assert_eq!(version, Version::new(1));
    assert_eq!(state.len(), 3);
    for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(state.get(key).as_deref(), Some(&value));
        assert_eq!(state.snapshot().modified_version(key), Some(version));
    }
}

#[tokio::test]
async fn contains_len_is_empty_and_keys_track_the_contents() {
    let state = ThreadSafeState::new();
    assert!(state.is_empty());
    state.update([("b", 2), ("a", 1)]).await.unwrap();
    assert!(state.contains_key("a"));
    assert_eq!(state.len(), 2);
    assert!(!state.is_empty());
    assert_eq!(state.keys(), ["a", "b"]);
}

#[tokio::test]
async fn every_write_adds_exactly_one_version() {
    let state = ThreadSafeState::new();
    assert_eq!(state.version(), Version::INITIAL);
    assert_eq!(state.set("a", 1).await.unwrap(), Version::new(1));
    assert_eq!(
        state.update([("b", 2), ("c", 3)]).await.unwrap(),
        Version::new(2)
    );
    assert!(state.delete("a").await.unwrap());
    assert_eq!(state.version(), Version::new(3));
    assert_eq!(
        state
            .modify("b", |v| v
                .map_or(Modification::Keep, |v| Modification::Set(v + 1)))
            .await
            .unwrap()
            .version,
        Version::new(4)
    );
    assert_eq!(state.clear().await.unwrap(), Version::new(5));
    assert_eq!(state.version(), Version::new(5));
}

#[tokio::test]
async fn no_op_writes_commit_nothing() {
    let state = ThreadSafeState::new();
    assert_eq!(state.clear().await.unwrap(), Version::INITIAL);
    assert_eq!(
        state.update(Vec::<(&str, u8)>::new()).await.unwrap(),
        Version::INITIAL
    );
    assert_eq!(
        state
            .modify("absent", |_| Modification::Delete)
            .await
            .unwrap()
            .version,
        Version::INITIAL
    );
    assert_eq!(state.retain(["anything"]).await.unwrap(), Version::INITIAL);
    assert!(state.history(None, None).is_empty());
    assert_eq!(state.metrics().commits, 0);
}

#[tokio::test]
async fn per_key_versions_track_creation_and_modification() {
    let state = ThreadSafeState::new();
    let created = state.set("a", 1).await.unwrap();
    state.set("b", 1).await.unwrap();
    let modified = state.set("a", 2).await.unwrap();
    let snapshot = state.snapshot();
    assert_eq!(snapshot.created_version("a"), Some(created));
    assert_eq!(snapshot.modified_version("a"), Some(modified));
    state.delete("a").await.unwrap();
    let recreated = state.set("a", 3).await.unwrap();
    assert_eq!(state.snapshot().created_version("a"), Some(recreated));
}

#[tokio::test]
async fn get_required_names_the_missing_key_and_the_available_ones() {
    let state = ThreadSafeState::new();
    state.update([("beta", 2), ("alpha", 1)]).await.unwrap();
    assert_eq!(*state.get_required("alpha").unwrap(), 1);
    let error = state.get_required("gamma").unwrap_err();
    let StateError::KeyNotFound {
        key,
        available,
        total_keys,
        ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(key, "gamma");
    assert_eq!(available, &["alpha", "beta"]);
    assert_eq!(*total_keys, 2);
    assert_eq!(
        error.to_string(),
        r#"key "gamma" not found; available keys: "alpha", "beta""#
    );
}

#[tokio::test]
async fn get_required_message_lists_at_most_ten_keys() {
    let state = ThreadSafeState::new();
    state
        .update((0..25).map(|i| (format!("key{i:02}"), i)))
        .await
        .unwrap();
    let error = state.get_required("missing").unwrap_err();
    let StateError::KeyNotFound {
        available,
        total_keys,
        ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(available.len(), 10);
    assert_eq!(*total_keys, 25);
    let message = error.to_string();
    assert!(message.contains("\"key09\""), "{message}");
    assert!(!message.contains("\"key10\""), "{message}");
    assert!(message.ends_with("..."), "{message}");
}

#[tokio::test]
async fn get_with_fallback_takes_the_first_present_key() {
    let state = ThreadSafeState::new();
    state.update([("second", 2), ("third", 3)]).await.unwrap();
    assert_eq!(
        state
            .get_with_fallback("first", &["second", "third"])
            .as_deref(),
        Some(&2)
    );
    assert_eq!(
        state.get_with_fallback("third", &["second"]).as_deref(),
        Some(&3)
    );
    assert_eq!(state.get_with_fallback("x", &["y"]), None);
    assert_eq!(state.get_with_fallback("x", &[]), None);
}

#[tokio::test]
async fn empty_keys_are_rejected_and_nothing_is_written() {
    let state = ThreadSafeState::new();
    assert_eq!(state.set("", 1).await, Err(StateError::EmptyKey));
    assert_eq!(
        state.update([("ok", 1), ("", 2)]).await,
        Err(StateError::EmptyKey)
    );
    assert_eq!(state.delete("").await, Err(StateError::EmptyKey));
    assert_eq!(
        state
            .modify("", |_| Modification::Set(1))
            .await
            .map(|modified| modified.version),
        Err(StateError::EmptyKey)
    );
    assert!(state.is_empty());
    assert_eq!(state.version(), Version::INITIAL);
}

#[tokio::test]
async fn modify_reads_and_writes_atomically_and_delete_deletes() {
    let state = ThreadSafeState::new();
    state
        .modify("n", |n| Modification::Set(n.copied().unwrap_or(10) * 2))
        .await
        .unwrap();
    assert_eq!(state.get("n").as_deref(), Some(&20));
    state.modify("n", |_| Modification::Delete).await.unwrap();
    assert!(!state.contains_key("n"));
}

#[tokio::test]
async fn retain_keeps_only_the_named_keys_as_one_version() {
    let state = ThreadSafeState::new();
    state
        .update([
            ("session_id", 1),
            ("agent_count", 2),
            ("junk", 3),
            ("more_junk", 4),
        ])
        .await
        .unwrap();
    let version = state
        .retain(["session_id", "agent_count", "absent"])
        .await
        .unwrap();
    assert_eq!(version, Version::new(2));
    assert_eq!(state.keys(), ["agent_count", "session_id"]);
    let records = state.history(None, None);
    assert_eq!(records.iter().filter(|r| r.version == version).count(), 2);
}

#[tokio::test]
async fn builder_sets_initial_state_at_version_zero() {
    let state = ThreadSafeState::builder()
        .initial_state([("a", 1), ("b", 2), ("a", 3)])
        .build();
    assert_eq!(state.version(), Version::INITIAL);
    assert_eq!(state.get("a").as_deref(), Some(&3), "later pairs win");
    assert_eq!(
        state.snapshot().created_version("b"),
        Some(Version::INITIAL)
    );
    assert!(state.history(None, None).is_empty());
}

#[tokio::test]
async fn builder_rejects_bad_configuration_with_typed_errors() {
    let error = ThreadSafeState::<u8>::builder()
        .mailbox_capacity(0)
        .try_build()
        .unwrap_err();
    assert_eq!(error, BuildError::ZeroMailboxCapacity);
    let error = ThreadSafeState::builder()
        .initial_state([("", 1)])
        .try_build()
        .unwrap_err();
    assert_eq!(error, BuildError::EmptyKey);
}

#[test]
fn building_outside_a_runtime_is_a_typed_error() {
    let error = ThreadSafeState::<u8>::builder().try_build().unwrap_err();
    assert_eq!(error, BuildError::NoRuntime);
    assert!(error.to_string().contains("inside a tokio runtime"));
}

#[test]
#[should_panic(expected = "must be built inside a tokio runtime")]
fn new_outside_a_runtime_panics_with_a_message_that_says_so() {
    let _ = ThreadSafeState::<u8>::new();
}

#[tokio::test]
async fn for_agent_writes_the_same_state_and_records_the_agent() {
    let state = ThreadSafeState::new();
    let agent = state.for_agent("model-generator");
    agent.set("models", 3).await.unwrap();
    state.set("models", 4).await.unwrap();
    assert_eq!(state.get("models").as_deref(), Some(&4));
    let records = state.history(Some("models"), None);
    assert_eq!(records[0].changed_by, None);
    assert_eq!(records[1].changed_by.as_deref(), Some("model-generator"));
}

#[tokio::test]
async fn values_are_shared_not_copied() {
    let state = ThreadSafeState::new();
    state.set("big", vec![0u8; 1024]).await.unwrap();
    let a = state.get("big").unwrap();
    let b = state.snapshot().get("big").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[tokio::test]
async fn metrics_count_reads_writes_commits_and_failures() {
    let state = ThreadSafeState::builder().max_history(10).build();
    let other_handle = state.clone();
    state.set("a", 1).await.unwrap();
    state.update([("b", 2), ("c", 3)]).await.unwrap();
    state.delete("zzz").await.unwrap();
    state.modify("a", |_| panic!("boom")).await.unwrap_err();
    state.rollback(Version::new(1)).await.unwrap();
    let _ = state.get("a");
    let _ = other_handle.snapshot();
    let _ = other_handle.contains_key("a");

    let metrics = state.metrics();
    assert_eq!(metrics.version, Version::new(3));
    assert_eq!(metrics.writes, 5);
    assert_eq!(metrics.commits, 3);
    assert_eq!(metrics.rollbacks, 1);
    assert_eq!(metrics.failed_commands, 1);
    assert_eq!(metrics.reads, 3);
    assert_eq!(metrics.history_len, 3);
    assert_eq!(metrics.retained_versions, 4);
    assert_eq!(metrics.mailbox_depth, 0);
}
