//! The rest of the public surface: blocking writes, Debug and Display
//! output, conversions, and the stream as a `futures` Stream.

use std::convert::Infallible;
use std::error::Error as _;
use std::pin::Pin;

use futures_core::Stream;
use thread_safe_state::{
    Precondition, StateError, ThreadSafeState, TransactionError, Version, Write,
};

#[test]
fn every_blocking_write_behaves_like_its_async_namesake() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async { ThreadSafeState::<u32>::new() });
    let worker = state.for_agent("thread");
    std::thread::spawn(move || {
        let blocking = worker.blocking();
        let v1 = blocking.update([("a", 1), ("b", 2), ("c", 3)]).unwrap();
        assert!(blocking.delete("a").unwrap());
        assert!(!blocking.delete("a").unwrap());
        assert_eq!(blocking.retain(["b"]).unwrap(), Version::new(3));
        blocking.rollback(v1).unwrap();
        assert_eq!(worker.len(), 3);
        blocking.clear().unwrap();
        assert!(worker.is_empty());
        assert_eq!(blocking.set("", 1), Err(StateError::EmptyKey));
        let v = blocking.set_if("lock", 1, Precondition::Absent).unwrap();
        assert!(matches!(
            blocking.set_if("lock", 2, Precondition::Absent),
            Err(StateError::Conflict { .. })
        ));
        let moved = blocking
            .transaction(|s| {
                let lock = *s.get("lock").unwrap();
                Ok::<_, &str>(vec![Write::set("moved", lock)])
            })
            .unwrap();
        assert_eq!(moved, Version::new(v.get() + 1));
        assert_eq!(
            blocking.transaction(|_| Err::<Vec<Write<u32>>, _>("no")),
            Err(TransactionError::Aborted("no"))
        );
        assert!(blocking
            .delete_if("lock", Precondition::ModifiedAt(v))
            .unwrap());
        assert!(format!("{blocking:?}").starts_with("Blocking(ThreadSafeState"));
    })
    .join()
    .unwrap();
    let history = state.history(None, None);
    assert!(history
        .iter()
        .all(|r| r.changed_by.as_deref() == Some("thread")));
}

#[tokio::test]
async fn debug_output_names_what_matters_without_dumping_the_state() {
    let state = ThreadSafeState::builder()
        .initial_state([("a", 1u8)])
        .build();
    let agent = state.for_agent("agent-7");
    assert_eq!(agent.agent_id(), Some("agent-7"));
    let debug = format!("{agent:?}");
    assert!(
        debug.contains("version: Version(0)") && debug.contains("len: 1"),
        "{debug}"
    );
    assert!(debug.contains("agent-7"), "{debug}");
    let snapshot = state.snapshot();
    assert_eq!(
        format!("{snapshot:?}"),
        "Snapshot { version: Version(0), len: 1, .. }"
    );
    let entry = snapshot.entry("a").unwrap().clone();
    assert!(format!("{entry:?}").contains("value: 1"));
    let builder = format!("{:?}", ThreadSafeState::<u8>::builder().max_history(3));
    assert!(builder.contains("max_history: 3"), "{builder}");
    let watch = state.watch_key("a");
    assert_eq!(watch.key(), "a");
    assert_eq!(watch.current().as_deref(), Some(&1));
    assert!(format!("{watch:?}").contains("KeyWatch"));
    let stream = state.changes_since(Version::INITIAL).unwrap();
    assert_eq!(stream.next_version(), Version::new(1));
    assert!(format!("{stream:?}").contains("ChangeStream"));
    assert_eq!(
        format!("{:?}", Write::set("k", 1)),
        r#"Set { key: "k", value: 1 }"#
    );
    assert_eq!(
        format!("{:?}", Write::<u8>::delete("k")),
        r#"Delete { key: "k" }"#
    );
}

#[test]
fn error_messages_say_what_happened_and_what_to_do() {
    let conflict = |expected, found| {
        StateError::Conflict {
            key: "k".into(),
            expected,
            found,
        }
        .to_string()
    };
    assert_eq!(
        conflict(Precondition::Absent, Some(Version::new(4))),
        r#"conflict on key "k": expected the key to be absent, found it last modified at version 4"#
    );
    assert_eq!(
        conflict(Precondition::Exists, None),
        r#"conflict on key "k": expected the key to exist, found it absent"#
    );
    let lagged = StateError::Lagged {
        resume_from: Version::new(8),
    };
    assert!(lagged.to_string().ends_with("resume with changes_from(8)"));
    let future = StateError::FutureVersion {
        target: Version::new(9),
        current: Version::new(3),
    };
    assert_eq!(
        future.to_string(),
        "version 9 has not been committed yet: the current version is 3"
    );
    let mismatch = StateError::TypeMismatch {
        key: None,
        message: "missing field `x`".into(),
        cause: None,
    };
    assert_eq!(
        mismatch.to_string(),
        "the state does not fit the model: missing field `x`"
    );

    let aborted: TransactionError<std::io::Error> =
        TransactionError::Aborted(std::io::Error::other("disk full"));
    assert_eq!(aborted.to_string(), "transaction aborted: disk full");
    // The abort error's message is part of this error's; it is not repeated
    // as a source (which would print it twice in an error report).
    assert!(aborted.source().is_none());
    // Any printable abort type makes an `Error`, `&str` included.
    let boxed: Box<dyn std::error::Error> = Box::new(TransactionError::<&str>::Aborted("no funds"));
    assert_eq!(boxed.to_string(), "transaction aborted: no funds");
    let refused: TransactionError<std::io::Error> = StateError::Closed.into();
    assert_eq!(refused.to_string(), StateError::Closed.to_string());
    assert!(refused.source().is_some());
    let never: TransactionError<Infallible> = TransactionError::State(StateError::EmptyKey);
    assert_eq!(StateError::from(never), StateError::EmptyKey);
}

#[test]
fn versions_convert_to_and_from_numbers() {
    let v: Version = 5u64.into();
    assert_eq!(u64::from(v), 5);
    assert_eq!(v.to_string(), "5");
    assert_eq!(serde_json::to_string(&v).unwrap(), "5");
    assert_eq!(serde_json::from_str::<Version>("5").unwrap(), v);
}

#[tokio::test]
async fn a_modify_panicking_with_a_non_string_payload_is_reported() {
    let state = ThreadSafeState::<u8>::new();
    let error = state
        .modify("k", |_| std::panic::panic_any(42u32))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StateError::ModifyPanicked {
            key: "k".into(),
            message: "non-string panic payload".into(),
        }
    );
}

#[tokio::test]
async fn a_change_stream_is_a_futures_stream() {
    let state = ThreadSafeState::<u8>::new();
    let mut stream = state.changes_since(Version::INITIAL).unwrap();
    assert_eq!(stream.size_hint(), (0, None));
    state.set("k", 1).await.unwrap();
    let set = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.version, Version::new(1));
    assert_eq!(
        serde_json::to_value(&set).unwrap()["records"][0]["key"],
        "k"
    );
}

#[tokio::test]
async fn a_model_that_cannot_serialize_is_a_type_mismatch() {
    let state = ThreadSafeState::new();
    // JSON object keys must be strings.
    let model: std::collections::BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    let error = state.load_model(&model).await.unwrap_err();
    assert!(
        matches!(error, StateError::TypeMismatch { key: None, .. }),
        "{error}"
    );
    assert_eq!(state.version(), Version::INITIAL);
}

#[tokio::test]
async fn keys_can_be_any_string_like_type() {
    let state = ThreadSafeState::new();
    let owned = String::from("owned");
    let shared: std::sync::Arc<str> = std::sync::Arc::from("shared");
    state.set(&owned, 1).await.unwrap(); // &String
    state.set(owned.clone(), 2).await.unwrap(); // String
    state.set(shared.clone(), 3).await.unwrap(); // Arc<str>
    state.set(std::borrow::Cow::from("cow"), 4).await.unwrap();
    let names = vec![String::from("x"), String::from("y")];
    state.update(names.iter().map(|n| (n, 5))).await.unwrap(); // (&String, V)
    state.retain(&names).await.unwrap();
    assert_eq!(state.keys(), ["x", "y"]);
    let agent = state.for_agent(&owned);
    assert_eq!(agent.agent_id(), Some("owned"));
    assert_eq!(state.watch_key(&owned).key(), "owned");
}
