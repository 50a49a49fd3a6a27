//! A code-generation workflow run by agents sharing one state.
//!
//! Contract parsers run in parallel; the model generator waits for all of
//! them; the validator and test generators wait for the models; five
//! reviewers then finish in parallel, each recording its completion with an
//! atomic write. Every wait is a subscription, never a sleep or a poll. A
//! logger follows the change stream. At the end it prints the final state,
//! the last history records and the metrics.
//!
//! Run with `cargo run --example agents`.

use std::convert::Infallible;
use std::time::Instant;

use serde_json::{json, Value};
use thread_safe_state::{
    AgentCoordinationState, CodeGenerationState, Modification, Precondition, StateError,
    ThreadSafeState, Version, Write,
};

const CONTRACTS: [&str; 3] = ["user.yaml", "order.yaml", "invoice.yaml"];
const REVIEWERS: usize = 5;

/// Append `item` to the JSON array at `key`, atomically.
async fn push(
    state: &ThreadSafeState<Value>,
    key: &str,
    item: Value,
) -> Result<Version, StateError> {
    state
        .modify(key, move |list| {
            let mut list = list.cloned().unwrap_or_else(|| json!([]));
            let Some(items) = list.as_array_mut() else {
                return Modification::Keep; // not a list: leave it alone
            };
            items.push(item);
            Modification::Set(list)
        })
        .await
        .map(|modified| modified.version)
}

fn list_len(value: Option<&Value>) -> usize {
    value.and_then(Value::as_array).map_or(0, Vec::len)
}

#[tokio::main]
async fn main() -> Result<(), StateError> {
    let started = Instant::now();
    let state = ThreadSafeState::<Value>::new();
    state
        .load_model(&AgentCoordinationState {
            session_id: "session-42".into(),
            agent_count: CONTRACTS.len() + 3 + REVIEWERS,
            current_phase: "parse".into(),
            ..Default::default()
        })
        .await?;
    state
        .load_model(&CodeGenerationState {
            workflow_id: "workflow-7".into(),
            ..Default::default()
        })
        .await?;

    // A logger that follows every commit from here on.
    let mut changes = state.changes_since(state.version())?;
    let logger = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(Ok(set)) = changes.next().await {
            let keys: Vec<&str> = set.records.iter().map(|r| r.key.as_str()).collect();
            lines.push(format!(
                "  v{:<3} {:<12} {:?} {}",
                set.version,
                set.changed_by.as_deref().unwrap_or("-"),
                set.operation,
                keys.join(", ")
            ));
        }
        lines
    });

    // Stage 1: parse every contract in parallel.
    let mut agents = Vec::new();
    for contract in CONTRACTS {
        let parser = state.for_agent(format!("parser:{contract}"));
        agents.push(tokio::spawn(async move {
            let name = contract.trim_end_matches(".yaml").to_string();
            // Register the contract's type: read, change and write the
            // registry as one atomic step.
            parser
                .transaction(move |s| {
                    let mut registry = s.get("type_registry").map_or(json!({}), |r| (*r).clone());
                    registry[&name] = json!({ "source": contract });
                    Ok::<_, Infallible>(vec![Write::set("type_registry", registry)])
                })
                .await?;
            push(&parser, "contracts_parsed", json!(contract)).await
        }));
    }

    // Stage 2: models wait for every contract.
    let modeler = state.for_agent("model-generator");
    agents.push(tokio::spawn(async move {
        let parsed = modeler
            .wait_for(|s| list_len(s.get("contracts_parsed").as_deref()) == CONTRACTS.len())
            .await?;
        modeler.set("current_phase", json!("generate")).await?;
        let contracts: Vec<String> = parsed.get_as("contracts_parsed")?;
        let models: Vec<Value> = contracts
            .iter()
            .map(|c| json!(c.replace(".yaml", "_model.rs")))
            .collect();
        modeler.set("generated_models", json!(models)).await
    }));

    // Stage 3: validators and tests wait for the models, in parallel.
    for (agent, key, suffix) in [
        (
            "validator-generator",
            "generated_validators",
            "_validator.rs",
        ),
        ("test-generator", "generated_tests", "_test.rs"),
    ] {
        let generator = state.for_agent(agent);
        agents.push(tokio::spawn(async move {
            let mut models = generator.watch_key("generated_models");
            let models = match models.current() {
                Some(models) if list_len(Some(&models)) > 0 => models,
                _ => models
                    .changed()
                    .await?
                    .expect("models are set, not deleted"),
            };
            let files: Vec<Value> = models
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|m| json!(m.replace("_model.rs", suffix)))
                .collect();
            for file in &files {
                push(&generator, "generated_files", file.clone()).await?;
            }
            generator.set(key, json!(files)).await
        }));
    }

    // Stage 4: five reviewers wait for both generators, then finish in
    // parallel, each recording completion atomically.
    for i in 0..REVIEWERS {
        let reviewer = state.for_agent(format!("reviewer-{i}"));
        agents.push(tokio::spawn(async move {
            let seen = reviewer
                .wait_for(|s| {
                    list_len(s.get("generated_tests").as_deref()) > 0
                        && list_len(s.get("generated_validators").as_deref()) > 0
                })
                .await?;
            // Exactly one reviewer moves the phase from "generate" to
            // "review": the others lose the compare-and-set (or see it
            // done already) and carry on.
            if seen.get("current_phase").as_deref() == Some(&json!("generate")) {
                let version = seen.modified_version("current_phase").expect("present");
                match reviewer
                    .set_if(
                        "current_phase",
                        json!("review"),
                        Precondition::ModifiedAt(version),
                    )
                    .await
                {
                    Ok(_) | Err(StateError::Conflict { .. }) => {}
                    Err(other) => return Err(other),
                }
            }
            push(
                &reviewer,
                "completed_agents",
                json!(format!("reviewer-{i}")),
            )
            .await
        }));
    }

    // The supervisor waits for every reviewer, then closes the session.
    let done = state
        .wait_for(|s| list_len(s.get("completed_agents").as_deref()) == REVIEWERS)
        .await?;
    for agent in agents {
        agent.await.expect("agent task panicked")?;
    }
    state
        .for_agent("supervisor")
        .set_if(
            "current_phase",
            json!("done"),
            Precondition::ModifiedAt(done.modified_version("current_phase").unwrap()),
        )
        .await?;
    let elapsed = started.elapsed();

    let workflow: CodeGenerationState = state.snapshot().to_model()?;
    let session: AgentCoordinationState = state.snapshot().to_model()?;
    println!(
        "workflow {} finished in {elapsed:.2?}",
        workflow.workflow_id
    );
    println!("  phase:      {}", session.current_phase);
    println!("  contracts:  {:?}", workflow.contracts_parsed);
    println!("  models:     {:?}", workflow.generated_models);
    println!("  validators: {:?}", workflow.generated_validators);
    println!("  tests:      {:?}", workflow.generated_tests);
    println!(
        "  reviewed:   {} by {:?}",
        session.completed_agents.len(),
        session.completed_agents
    );

    println!("\nlast history records:");
    for record in state.history(None, Some(5)) {
        println!(
            "  v{:<3} {:<12} {:?} {} -> {}",
            record.version,
            record.changed_by.as_deref().unwrap_or("-"),
            record.operation,
            record.key,
            record
                .new_value
                .as_deref()
                .map_or("(removed)".into(), Value::to_string)
        );
    }

    let metrics = state.metrics();
    println!(
        "\nmetrics: version {}, {} commits, {} writes, {} failed (lost compare-and-sets), {} reads",
        metrics.version, metrics.commits, metrics.writes, metrics.failed_commands, metrics.reads
    );

    drop(state); // ends the change stream
    println!("\ncommit log (from the change stream):");
    for line in logger.await.expect("logger panicked") {
        println!("{line}");
    }
    Ok(())
}
