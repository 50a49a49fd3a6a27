//! A tour of the API: five agents share one state, record their work
//! atomically, wait for each other without polling, and undo a bad write.
//!
//! Run with `cargo run --example quickstart`.

use serde_json::{json, Value};
use thread_safe_state::{Modification, StateError, ThreadSafeState};

#[tokio::main]
async fn main() -> Result<(), StateError> {
    let state = ThreadSafeState::<Value>::builder()
        .initial_state([
            ("session_id", json!("session-42")),
            ("completed_agents", json!([])),
            ("current_phase", json!("generate")),
        ])
        .build();

    // Five agents run in parallel; each records its completion with an
    // atomic read-modify-write, so no completion is lost.
    let agents: Vec<_> = (0..5)
        .map(|i| {
            let agent = state.for_agent(format!("agent-{i}"));
            tokio::spawn(async move {
                agent
                    .set(format!("output/agent-{i}.rs"), json!({ "lines": 10 * i }))
                    .await?;
                agent
                    .modify("completed_agents", move |done| {
                        let mut done = done.cloned().unwrap_or_else(|| json!([]));
                        let Some(list) = done.as_array_mut() else {
                            return Modification::Keep; // not a list: leave it alone
                        };
                        list.push(json!(i));
                        Modification::Set(done)
                    })
                    .await
            })
        })
        .collect();

    // A supervisor waits for all five without polling.
    let mut updates = state.subscribe();
    let finished = updates
        .wait_for(|s| {
            s.get("completed_agents")
                .and_then(|v| v.as_array().map(Vec::len))
                == Some(5)
        })
        .await?;
    for agent in agents {
        agent.await.expect("agent task panicked")?;
    }
    println!(
        "all agents done at version {}: {}",
        finished.version(),
        finished.get("completed_agents").unwrap()
    );

    // A bad write, then a rollback to the good version (a new version).
    let good = state.set("current_phase", json!("validate")).await?;
    state.set("current_phase", json!("corrupted!")).await?;
    let restored = state.rollback(good).await?;
    println!(
        "rolled back to version {good}'s contents as version {restored}: phase = {}",
        state.get_required("current_phase")?
    );

    // Typed errors say what is wrong.
    if let Err(error) = state.get_required("curent_phase") {
        println!("typo caught: {error}");
    }

    println!("\nlast changes:");
    for record in state.history(None, Some(4)) {
        println!(
            "  v{} {:?} {} by {}",
            record.version,
            record.operation,
            record.key,
            record.changed_by.as_deref().unwrap_or("-")
        );
    }
    println!(
        "\nsnapshot: {}",
        serde_json::to_string(&state.snapshot()).unwrap()
    );
    println!("metrics: {:?}", state.metrics());
    Ok(())
}
