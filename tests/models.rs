//! Typed models over `ThreadSafeState<serde_json::Value>`, and the seed
//! design's sequential and parallel agent scenarios.

use serde_json::{json, Value};
use thread_safe_state::{
    AgentCoordinationState, CodeGenerationState, Modification, StateError, ThreadSafeState, Version,
};

#[tokio::test]
async fn a_model_round_trips_through_the_state_one_key_per_field() {
    let state = ThreadSafeState::new();
    let workflow = CodeGenerationState {
        workflow_id: "wf-1".into(),
        contracts_parsed: vec!["user.yaml".into(), "order.yaml".into()],
        generated_models: vec!["user.rs".into()],
        type_registry: [("User".to_string(), json!({"fields": 3}))].into(),
        quality_metrics: [("coverage".to_string(), 0.97)].into(),
        ..Default::default()
    };
    let version = state.load_model(&workflow).await.unwrap();
    assert_eq!(version, Version::new(1), "one version for the whole model");
    assert_eq!(state.len(), 8);
    assert_eq!(*state.get("workflow_id").unwrap(), json!("wf-1"));
    let back: CodeGenerationState = state.snapshot().to_model().unwrap();
    assert_eq!(back, workflow);
}

#[tokio::test]
async fn typed_reads_report_mismatches_and_missing_keys() {
    let state = ThreadSafeState::new();
    state.set("agent_count", json!("five")).await.unwrap();
    let error = state.get_as::<usize>("agent_count").unwrap_err();
    assert!(matches!(
        &error,
        StateError::TypeMismatch { key: Some(key), .. } if key == "agent_count"
    ));
    assert!(
        error
            .to_string()
            .contains("\"agent_count\" has the wrong shape"),
        "{error}"
    );
    assert!(matches!(
        state.get_as::<usize>("missing"),
        Err(StateError::KeyNotFound { .. })
    ));
    assert!(matches!(
        state.snapshot().get_as::<usize>("missing"),
        Err(StateError::KeyNotFound { .. })
    ));
    let model: Result<AgentCoordinationState, _> = state.snapshot().to_model();
    assert!(matches!(
        model,
        Err(StateError::TypeMismatch { key: None, .. })
    ));
}

#[tokio::test]
async fn loading_something_that_is_not_an_object_writes_nothing() {
    let state = ThreadSafeState::new();
    let error = state.load_model(&json!([1, 2, 3])).await.unwrap_err();
    assert!(matches!(error, StateError::TypeMismatch { key: None, .. }));
    assert_eq!(state.version(), Version::INITIAL);
}

#[tokio::test]
async fn missing_fields_take_the_models_defaults_and_extra_keys_are_ignored() {
    let state = ThreadSafeState::new();
    state
        .update([("session_id", json!("s-9")), ("scratch", json!(true))])
        .await
        .unwrap();
    let session: AgentCoordinationState = state.snapshot().to_model().unwrap();
    assert_eq!(session.session_id, "s-9");
    assert_eq!(session.agent_count, 0);
    assert!(session.completed_agents.is_empty());
}

/// The seed's sequential scenario: each phase runs after the previous one
/// and records its output; the final state holds every phase's work.
#[tokio::test]
async fn sequential_agents_build_on_each_other() {
    let state = ThreadSafeState::<Value>::new();
    state
        .load_model(&CodeGenerationState {
            workflow_id: "wf-seq".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (agent, key, output) in [
        ("parser", "contracts_parsed", "user.yaml"),
        ("modeler", "generated_models", "user.rs"),
        ("validator", "generated_validators", "user_validator.rs"),
        ("tester", "generated_tests", "user_test.rs"),
    ] {
        let handle = state.for_agent(agent);
        handle
            .modify(key, move |files| {
                let mut files = files.cloned().unwrap_or_else(|| json!([]));
                let Some(list) = files.as_array_mut() else {
                    return Modification::Keep; // not a list: leave it alone
                };
                list.push(json!(output));
                Modification::Set(files)
            })
            .await
            .unwrap();
    }
    let done: CodeGenerationState = state.snapshot().to_model().unwrap();
    assert_eq!(done.generated_tests, ["user_test.rs"]);
    assert_eq!(done.generated_validators, ["user_validator.rs"]);
    let authors: Vec<Option<String>> = state
        .history(None, Some(4))
        .into_iter()
        .map(|r| r.changed_by)
        .collect();
    assert_eq!(
        authors,
        [
            Some("tester"),
            Some("validator"),
            Some("modeler"),
            Some("parser")
        ]
        .map(|a| a.map(str::to_owned))
    );
}

/// The seed's parallel scenario: five agents finish concurrently and each
/// records its completion; none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_agents_record_every_completion() {
    let state = ThreadSafeState::<Value>::new();
    state
        .load_model(&AgentCoordinationState {
            session_id: "s-par".into(),
            agent_count: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    let agents: Vec<_> = (0..5)
        .map(|i| {
            let agent = state.for_agent(format!("agent-{i}"));
            tokio::spawn(async move {
                agent
                    .set(format!("output/agent-{i}.rs"), json!({"lines": i * 10}))
                    .await?;
                agent
                    .modify("completed_agents", move |done| {
                        let mut done = done.cloned().unwrap_or_else(|| json!([]));
                        let Some(list) = done.as_array_mut() else {
                            return Modification::Keep; // not a list: leave it alone
                        };
                        list.push(json!(format!("agent-{i}")));
                        Modification::Set(done)
                    })
                    .await
            })
        })
        .collect();
    let all_done = state
        .wait_for(|s| {
            s.get_as::<Vec<String>>("completed_agents")
                .is_ok_and(|done| done.len() == 5)
        })
        .await
        .unwrap();
    for agent in agents {
        agent.await.unwrap().unwrap();
    }
    let session: AgentCoordinationState = all_done.to_model().unwrap();
    let mut completed = session.completed_agents;
    completed.sort();
    assert_eq!(
        completed,
        (0..5).map(|i| format!("agent-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(state.version(), Version::new(11));
}

#[tokio::test]
async fn a_type_mismatch_keeps_serdes_error_as_its_source() {
    use std::error::Error as _;
    let state = ThreadSafeState::new();
    state
        .set("count", serde_json::json!("three"))
        .await
        .unwrap();
    let error = state.get_as::<u32>("count").unwrap_err();
    let StateError::TypeMismatch { cause, .. } = &error else {
        panic!("{error:?}")
    };
    let cause = cause.clone().expect("serde's error");
    assert!(cause.to_string().contains("invalid type"), "{cause}");
    assert!(format!("{cause:?}").contains("invalid type"), "{cause:?}");
    assert!(cause.source().is_none());
    assert_eq!(
        error.source().map(ToString::to_string),
        Some(cause.to_string())
    );
    // Clones compare equal; so do two errors with the same message.
    assert_eq!(error.clone(), error);
    assert_eq!(state.get_as::<u32>("count").unwrap_err(), error);
}
