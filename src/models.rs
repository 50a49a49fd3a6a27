//! Typed state models over `ThreadSafeState<serde_json::Value>`: one key
//! per field, loaded in one version, read back from a snapshot.

use std::collections::BTreeMap;

use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Cause;
use crate::error::StateError;
use crate::snapshot::{missing_key, Snapshot};
use crate::state::ThreadSafeState;
use crate::Version;

/// The shared state of a multi-agent session (the Python design's model).
///
/// # Examples
///
/// ```
/// use thread_safe_state::{AgentCoordinationState, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let session = AgentCoordinationState {
///     session_id: "s-1".into(),
///     agent_count: 5,
///     current_phase: "parse".into(),
///     ..Default::default()
/// };
/// state.load_model(&session).await?;
/// assert_eq!(state.get_as::<usize>("agent_count")?, 5);
/// let back: AgentCoordinationState = state.snapshot().to_model()?;
/// assert_eq!(back, session);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentCoordinationState {
    /// The session's id.
    pub session_id: String,
    /// How many agents take part.
    pub agent_count: usize,
    /// Ids of the agents that have finished.
    pub completed_agents: Vec<String>,
    /// Context every agent can read.
    pub shared_context: BTreeMap<String, Value>,
    /// Paths of the files generated so far.
    pub generated_files: Vec<String>,
    /// The workflow's current phase.
    pub current_phase: String,
}

/// The state of a code-generation workflow (the Python design's model).
///
/// # Examples
///
/// ```
/// use thread_safe_state::{CodeGenerationState, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let workflow = CodeGenerationState {
///     workflow_id: "wf-7".into(),
///     contracts_parsed: vec!["user.yaml".into()],
///     ..Default::default()
/// };
/// state.load_model(&workflow).await?;
/// assert_eq!(state.get_as::<Vec<String>>("contracts_parsed")?, ["user.yaml"]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeGenerationState {
    /// The workflow's id.
    pub workflow_id: String,
    /// Contracts parsed so far.
    pub contracts_parsed: Vec<String>,
    /// Generated model files.
    pub generated_models: Vec<String>,
    /// Generated validator files.
    pub generated_validators: Vec<String>,
    /// Generated test files.
    pub generated_tests: Vec<String>,
    /// Known types by name.
    pub type_registry: BTreeMap<String, Value>,
    /// Imports the generated code needs.
    pub import_statements: Vec<String>,
    /// Quality scores by metric.
    pub quality_metrics: BTreeMap<String, f64>,
}

impl ThreadSafeState<Value> {
    /// Write each field of `model` to the key of the same name, as one
    /// version. Keys that are not fields of the model are left alone.
    ///
    /// # Errors
    ///
    /// [`StateError::TypeMismatch`] if `model` does not serialize to a JSON
    /// object (nothing is written); [`StateError::Closed`] if the writer
    /// task has stopped.
    ///
    /// # Cancel safety
    ///
    /// As for [`update`](Self::update).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let v = state.load_model(&serde_json::json!({"phase": "init", "agents": 3})).await?;
    /// assert_eq!(v.get(), 1);
    /// assert_eq!(state.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_model<M: Serialize + ?Sized>(
        &self,
        model: &M,
    ) -> Result<Version, StateError> {
        let fields = match serde_json::to_value(model) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => {
                return Err(StateError::TypeMismatch {
                    key: None,
                    message: format!("a model must serialize to a JSON object, not {other}"),
                    cause: None,
                })
            }
            Err(error) => return Err(mismatch(None, error)),
        };
        self.update(fields).await
    }

    /// The value of `key`, deserialized into a `T`.
    ///
    /// # Errors
    ///
    /// [`StateError::KeyNotFound`] if the key is absent;
    /// [`StateError::TypeMismatch`] if its value does not fit `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::StateError;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// state.set("agent_count", serde_json::json!(5)).await?;
    /// assert_eq!(state.get_as::<u32>("agent_count")?, 5);
    /// assert!(matches!(state.get_as::<String>("agent_count"), Err(StateError::TypeMismatch { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<T, StateError> {
        let value = self.get_required(key)?;
        T::deserialize(&*value).map_err(|error| mismatch(Some(key), error))
    }
}

impl Snapshot<Value> {
    /// The snapshot read back into a model: each field from the key of the
    /// same name. Keys that are not fields are ignored; missing fields take
    /// the model's defaults if it has them.
    ///
    /// # Errors
    ///
    /// [`StateError::TypeMismatch`] if the contents do not fit `M`.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::Deserialize;
    /// use serde_json::json;
    ///
    /// #[derive(Deserialize)]
    /// struct Progress { done: u32, total: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// state.update([("done", json!(2)), ("total", json!(5)), ("other", json!(null))]).await?;
    /// let progress: Progress = state.snapshot().to_model()?;
    /// assert_eq!((progress.done, progress.total), (2, 5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_model<M: DeserializeOwned>(&self) -> Result<M, StateError> {
        let fields = MapDeserializer::<_, serde_json::Error>::new(
            self.iter().map(|(key, value)| (key, &**value)),
        );
        M::deserialize(fields).map_err(|error| mismatch(None, error))
    }

    /// The value of `key` in this snapshot, deserialized into a `T`.
    ///
    /// # Errors
    ///
    /// [`StateError::KeyNotFound`] if the key is absent;
    /// [`StateError::TypeMismatch`] if its value does not fit `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// state.set("files", serde_json::json!(["a.rs"])).await?;
    /// assert_eq!(state.snapshot().get_as::<Vec<String>>("files")?, ["a.rs"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<T, StateError> {
        let value = self.get(key).ok_or_else(|| missing_key(self.map(), key))?;
        T::deserialize(&*value).map_err(|error| mismatch(Some(key), error))
    }
}

fn mismatch(key: Option<&str>, error: serde_json::Error) -> StateError {
    StateError::TypeMismatch {
        key: key.map(str::to_owned),
        message: error.to_string(),
        cause: Some(Cause::new(error)),
    }
}
