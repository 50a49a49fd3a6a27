//! `modify`'s three outcomes: `Set` writes and hands back what it wrote,
//! `Delete` removes, `Keep` commits nothing; and a panicking closure fails
//! only its own command.

use std::sync::Arc;

use thread_safe_state::{
    Modification, Operation, Precondition, StateError, ThreadSafeState, Version,
};

#[tokio::test]
async fn keep_commits_nothing_and_returns_the_current_version_and_value() {
    let state = ThreadSafeState::new();
    state.set("k", 1).await.unwrap();
    let current = state.set("other", 2).await.unwrap(); // state version > k's
    let before = state.get("k").unwrap();

    let kept = state.modify("k", |_| Modification::Keep).await.unwrap();

    assert!(!kept.committed);
    assert_eq!(kept.version, current);
    assert_eq!(state.version(), current);
    let value = kept.value.expect("the current value");
    assert!(Arc::ptr_eq(&value, &before), "the very current value");
    assert_eq!(state.history(None, None).len(), 2, "no record");
    assert_eq!(state.metrics().commits, 2);
}

#[tokio::test]
async fn keep_of_an_absent_key_returns_no_value() {
    let state = ThreadSafeState::<u8>::new();
    let kept = state
        .modify("absent", |_| Modification::Keep)
        .await
        .unwrap();
    assert!(!kept.committed);
    assert_eq!(kept.version, Version::INITIAL);
    assert!(kept.value.is_none());
    assert!(!state.contains_key("absent"));
}

#[tokio::test]
async fn a_compare_and_set_token_taken_before_a_keep_still_succeeds() {
    let state = ThreadSafeState::new();
    state.set("k", 1).await.unwrap();
    let token = state.snapshot().modified_version("k").unwrap();

    state
        .modify("k", |n| match n {
            Some(&n) if n > 100 => Modification::Set(0),
            _ => Modification::Keep,
        })
        .await
        .unwrap();

    let set = state
        .set_if("k", 2, Precondition::ModifiedAt(token))
        .await
        .unwrap();
    assert_eq!(set, Version::new(2));
    assert_eq!(state.get("k").as_deref(), Some(&2));
}

/// The contrast: writing back a clone of the current value is a new
/// version, and it invalidates the token (what `Keep` exists to avoid).
#[tokio::test]
async fn setting_a_clone_commits_and_invalidates_the_token() {
    let state = ThreadSafeState::new();
    state.set("k", 1).await.unwrap();
    let token = state.snapshot().modified_version("k").unwrap();

    let rewritten = state
        .modify("k", |n| Modification::Set(*n.unwrap()))
        .await
        .unwrap();
    assert!(rewritten.committed);
    assert_eq!(rewritten.version, Version::new(2));

    let error = state
        .set_if("k", 2, Precondition::ModifiedAt(token))
        .await
        .unwrap_err();
    assert!(matches!(error, StateError::Conflict { .. }), "{error}");
}

#[tokio::test]
async fn set_returns_the_value_it_wrote() {
    let state = ThreadSafeState::new();
    let created = state
        .modify("n", |n| Modification::Set(n.copied().unwrap_or(10) * 2))
        .await
        .unwrap();
    assert!(created.committed);
    assert_eq!(created.version, Version::new(1));
    assert_eq!(created.value.as_deref(), Some(&20));

    let doubled = state
        .modify("n", |n| Modification::Set(n.copied().unwrap_or(10) * 2))
        .await
        .unwrap();
    assert_eq!(doubled.version, Version::new(2));
    let written = doubled.value.clone().expect("the written value");
    assert_eq!(*written, 40);
    let read = state.get("n").unwrap();
    assert!(Arc::ptr_eq(&written, &read), "the very Arc readers get");
    assert!(Arc::ptr_eq(&written, &state.snapshot().get("n").unwrap()));
    let record = &state.history(Some("n"), Some(1))[0];
    assert_eq!(record.operation, Operation::Modify);
    assert_eq!(record.version, doubled.version);
    // `Modified` is Debug and Clone.
    assert!(format!("{doubled:?}").contains("committed: true"));
}

#[tokio::test]
async fn delete_of_a_present_key_commits_and_returns_no_value() {
    let state = ThreadSafeState::new();
    state.set("k", 1).await.unwrap();
    let deleted = state.modify("k", |_| Modification::Delete).await.unwrap();
    assert!(deleted.committed);
    assert_eq!(deleted.version, Version::new(2));
    assert!(deleted.value.is_none());
    assert!(!state.contains_key("k"));
    assert_eq!(state.version(), Version::new(2));
    let record = &state.history(Some("k"), Some(1))[0];
    assert_eq!(record.operation, Operation::Modify);
}

#[tokio::test]
async fn delete_of_an_absent_key_commits_nothing() {
    let state = ThreadSafeState::new();
    let current = state.set("other", 1).await.unwrap();
    let deleted = state
        .modify("absent", |_| Modification::<i32>::Delete)
        .await
        .unwrap();
    assert!(!deleted.committed);
    assert_eq!(deleted.version, current);
    assert!(deleted.value.is_none());
    assert_eq!(state.version(), current);
    assert_eq!(state.history(None, None).len(), 1);
}

/// Commands queued together commit as one group (current-thread runtime:
/// nothing runs until the test awaits). Each `modify` gets the outcome at
/// its own place in the group, and the panicking one fails alone.
#[tokio::test]
async fn each_command_of_a_group_gets_its_own_outcome_and_a_panic_fails_only_its_own() {
    let state = ThreadSafeState::<u32>::new();
    state.set("k", 1).await.unwrap();
    let spawn = |f: fn(Option<&u32>) -> Modification<u32>| {
        let state = state.clone();
        tokio::spawn(async move { state.modify("k", f).await })
    };
    let set = spawn(|n| Modification::Set(n.unwrap() + 1)); // v2: 2
    let kept = spawn(|_| Modification::Keep); // still v2: 2
    let panicked = spawn(|_| panic!("agent bug"));
    let deleted = spawn(|_| Modification::Delete); // v3: gone
    let recreated = spawn(|n| Modification::Set(n.map_or(7, |n| n + 100))); // v4: 7

    let set = set.await.unwrap().unwrap();
    assert_eq!((set.version, set.committed), (Version::new(2), true));
    assert_eq!(set.value.as_deref(), Some(&2));

    let kept = kept.await.unwrap().unwrap();
    assert_eq!((kept.version, kept.committed), (Version::new(2), false));
    assert!(Arc::ptr_eq(&kept.value.unwrap(), &set.value.unwrap()));

    let error = panicked.await.unwrap().unwrap_err();
    assert_eq!(
        error,
        StateError::ModifyPanicked {
            key: "k".into(),
            message: "agent bug".into(),
        }
    );

    let deleted = deleted.await.unwrap().unwrap();
    assert_eq!(
        (deleted.version, deleted.committed, deleted.value),
        (Version::new(3), true, None)
    );

    let recreated = recreated.await.unwrap().unwrap();
    assert_eq!(
        (recreated.version, recreated.committed),
        (Version::new(4), true)
    );
    assert_eq!(recreated.value.as_deref(), Some(&7));

    assert_eq!(state.get("k").as_deref(), Some(&7));
    assert_eq!(state.version(), Version::new(4));
    assert_eq!(state.metrics().failed_commands, 1);
    // The writer keeps serving.
    assert_eq!(state.set("k", 8).await.unwrap(), Version::new(5));
}

#[test]
fn the_blocking_form_reports_the_same_outcomes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async { ThreadSafeState::<u32>::new() });
    let writes = state.blocking();

    let set = writes.modify("k", |_| Modification::Set(5)).unwrap();
    assert_eq!((set.version, set.committed), (Version::new(1), true));
    assert!(Arc::ptr_eq(
        set.value.as_ref().unwrap(),
        &state.get("k").unwrap()
    ));

    let kept = writes.modify("k", |_| Modification::Keep).unwrap();
    assert_eq!((kept.version, kept.committed), (Version::new(1), false));
    assert_eq!(kept.value.as_deref(), Some(&5));

    let deleted = writes.modify("k", |_| Modification::Delete).unwrap();
    assert_eq!(
        (deleted.version, deleted.committed, deleted.value),
        (Version::new(2), true, None)
    );

    let error = writes.modify("k", |_| panic!("boom")).unwrap_err();
    assert!(
        matches!(error, StateError::ModifyPanicked { .. }),
        "{error}"
    );
    assert_eq!(state.version(), Version::new(2));
}
