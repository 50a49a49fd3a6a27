//! Shared, versioned, string-keyed state for tokio agent tasks.
//!
//! Many agents (tokio tasks or plain threads) read and write one
//! [`ThreadSafeState`]: which agents have finished, which files were
//! generated, the shared context. Every handle reads immutable snapshots
//! without locks; every write goes through one writer task per state, which
//! numbers it, records it in a bounded history and publishes the new snapshot.
//!
//! # Guarantees
//!
//! - **Read-your-writes.** When a write resolves with version `N`, every
//!   read that starts afterwards, on any thread, sees version `N` or later.
//! - **Monotonic versions.** Version 0 is the initial state; every
//!   successful write command commits exactly one new version (a batch
//!   [`update`](ThreadSafeState::update) is one). Failed commands and no-ops
//!   (deleting an absent key) commit nothing. A
//!   [`rollback`](ThreadSafeState::rollback) is a new version too: version
//!   numbers are never reused and history is never rewritten. So is the
//!   writer's removal of keys whose TTL ran out
//!   ([`set_with_ttl`](ThreadSafeState::set_with_ttl)).
//! - **One published watermark.** No read API shows a version before
//!   [`version`](ThreadSafeState::version) does: `get`, `snapshot`,
//!   [`history`](ThreadSafeState::history),
//!   [`snapshot_at`](ThreadSafeState::snapshot_at), `metrics`, change
//!   streams and waits all see a commit at the moment the writer publishes
//!   its snapshot.
//! - **Snapshot consistency.** A [`Snapshot`] is the whole state at one
//!   version; it never changes, and never shows part of a batch.
//! - **Per-key versions never go backwards.** A key's modified version is
//!   that of its newest history record; a rollback writes the keys it
//!   changes at its own version, so stale compare-and-set tokens fail.
//! - **Atomic read-modify-write** with [`modify`](ThreadSafeState::modify),
//!   which runs the closure in the writer; the closure names its outcome
//!   ([`Modification`]: set, delete, or keep without committing). A [`get`](ThreadSafeState::get)
//!   followed by a [`set`](ThreadSafeState::set) is *not* atomic: under
//!   concurrency it loses updates.
//! - **Bounded memory.** The history keeps the last `max_history` commits
//!   (default 1000), however many writes happen.
//! - **Nothing is dropped silently.** A write either resolves with its
//!   version or fails with a typed [`StateError`]; a panicking `modify`
//!   closure fails only its own command. Every wait ends with
//!   [`StateError::Closed`] once no writer can publish again.
//!
//! # User code and the writer
//!
//! The writer never waits on a reader, and no user code runs while a lock
//! the writer needs is held:
//!
//! - `modify` and `transaction` closures run *in* the writer, under
//!   `catch_unwind`: keep them short.
//! - [`wait_for`](ThreadSafeState::wait_for) predicates run in the waiting
//!   task on an owned snapshot. This is why
//!   [`subscribe`](ThreadSafeState::subscribe) returns a [`Subscriber`] of
//!   this crate rather than a `tokio::sync::watch::Receiver`: a watch
//!   `Ref` holds the channel's read lock, and publishing takes its write
//!   lock, so a `Ref` held across an `.await`, or a slow predicate, would
//!   stall the writer of every handle. A `Subscriber` reads the same
//!   lock-free cell as `get`, and is woken by a `Notify`, so what a
//!   subscriber does cannot delay a publish.
//! - A value's `Drop` runs wherever its last `Arc` goes. The writer
//!   releases what a group replaced only after the group is published and
//!   every caller answered, one value at a time under `catch_unwind`: a
//!   panicking `Drop` is logged and costs nothing else; a slow one delays
//!   the next group.
//!
//! Not promised: durability. The state lives in memory and is gone when the
//! process exits.
//!
//! # Coordinating agents
//!
//! - Conditional writes on per-key versions:
//!   [`set_if`](ThreadSafeState::set_if), [`delete_if`](ThreadSafeState::delete_if)
//!   with a [`Precondition`]; a lost race is a typed [`StateError::Conflict`].
//! - [`transaction`](ThreadSafeState::transaction): read a snapshot, return
//!   [`Write`]s, committed as one version, or abort with your own error.
//! - Waiting instead of polling: [`wait_for`](ThreadSafeState::wait_for),
//!   [`wait_for_timeout`](ThreadSafeState::wait_for_timeout),
//!   [`watch_key`](ThreadSafeState::watch_key), [`subscribe`](ThreadSafeState::subscribe).
//! - [`changes_since`](ThreadSafeState::changes_since): a stream of every
//!   commit after a version, history first, then live.
//! - [`snapshot_at`](ThreadSafeState::snapshot_at): the state at any
//!   retained version.
//! - Typed models over `serde_json::Value` state (cargo feature `models`,
//!   on by default): `AgentCoordinationState`, `CodeGenerationState`,
//!   `load_model`, `get_as`, `Snapshot::to_model`.
//!
//! # Cargo features, MSRV, runtime
//!
//! - `models` (default): the typed models over `serde_json::Value` state;
//!   without it the crate does not depend on `serde_json`.
//! - `metrics`: publish [`Metrics`] through the `metrics` facade.
//! - `durable`: a journal on disk (redb), so that a crash loses no
//!   acknowledged write and a restarted process resumes where it stopped:
//!   `Builder::durable` (see `DurableBuilder`). Reads are as fast as in
//!   memory; each group of writes costs one `fsync`. Needs Rust 1.90.
//!
//! - `etcd`: etcd as the source of truth, shared by several processes:
//!   `Builder::etcd` (see `EtcdBuilder`). Reads stay local (a mirror of the
//!   prefix); each write is an etcd txn and resolves once the mirror has
//!   published its revision. Versions are etcd revisions: monotonic but
//!   not dense. Building it needs `protoc`.
//!
//! The minimum supported Rust version is 1.88 (1.90 with `durable`, redb's
//! own minimum), and CI builds and tests with exactly that toolchain. The writer is a tokio task: build a state
//! inside a tokio runtime ([`ThreadSafeState::new`], [`Builder::build`]) or
//! hand it one ([`Builder::build_on`]); reads need no runtime, and
//! [`blocking`](ThreadSafeState::blocking) writes work from plain threads.
//!
//! # Observing it
//!
//! [`metrics`](ThreadSafeState::metrics) returns a [`Metrics`]: reads by
//! kind, writes by operation, commits, failures, rollbacks, mailbox depth,
//! and [`Distribution`]s of write latency (submission to reply), commit
//! time per group and group size. With the cargo feature `metrics` (off by
//! default) the same figures are published through the
//! [`metrics`](https://docs.rs/metrics) facade, labelled with
//! [`Builder::name`]; install the recorder before building the state.
//!
//! # How it works, and the trade-offs
//!
//! The state is an `Arc` of a persistent hash map (a HAMT with structural
//! sharing) published through [`arc-swap`](https://docs.rs/arc-swap). A read
//! loads the current `Arc` without locking or touching a shared counter, so
//! reads are O(1), scale across cores and never wait for writers. A
//! [`snapshot`](ThreadSafeState::snapshot) is an `Arc` clone, O(1) at any size.
//!
//! Writes are messages to the writer task over a bounded channel (a full
//! mailbox makes writers wait). The writer applies queued commands in a
//! group, copying only the O(log n) map nodes each one touches, pushes their
//! history records, publishes the last snapshot once, wakes subscribers, and
//! only then answers the callers. That order is what gives read-your-writes.
//! The price: a write costs a channel round trip (about a microsecond), more
//! than a write under a lock, and values are shared `Arc<V>`s rather than
//! deep copies, so isolation comes from immutability.
//!
//! # Example
//!
//! ```
//! use thread_safe_state::{Operation, ThreadSafeState};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), thread_safe_state::StateError> {
//! let state = ThreadSafeState::builder()
//!     .initial_state([("phase", "parse".to_string())])
//!     .build();
//!
//! // Agents write through their own handles...
//! let parser = state.for_agent("parser");
//! tokio::spawn(async move { parser.set("phase", "generate".to_string()).await })
//!     .await
//!     .unwrap()?;
//!
//! // ...and everyone reads the latest snapshot without locks.
//! assert_eq!(state.get("phase").as_deref().map(String::as_str), Some("generate"));
//! let record = &state.history(Some("phase"), Some(1))[0];
//! assert_eq!(record.operation, Operation::Set);
//! assert_eq!(record.changed_by.as_deref(), Some("parser"));
//!
//! // A bad change can be undone; the undo is a new version.
//! state.rollback(record.version.prev().expect("after version 0")).await?;
//! assert_eq!(state.get("phase").as_deref().map(String::as_str), Some("parse"));
//! assert_eq!(state.version().get(), 2);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod blocking;
mod builder;
mod conditional;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod export;
mod fetch;
mod histogram;
mod history;
#[cfg(feature = "durable")]
mod journal;
#[cfg(any(feature = "durable", feature = "etcd"))]
mod json;
mod lease;
mod map;
mod metrics;
#[cfg(feature = "metrics")]
mod metrics_export;
#[cfg(feature = "models")]
mod models;
mod modify;
mod prefix;
mod recovery;
mod replay;
mod retry;
mod shared;
mod snapshot;
mod state;
mod stream;
mod subscriber;
mod sync;
mod transaction;
mod ttl;
mod version;
mod waiting;
mod writer;

/// Every code block of README.md, compiled and run as a doctest.
#[cfg(all(doctest, feature = "models"))]
#[doc = include_str!("../README.md")]
mod readme {}

#[cfg(thread_safe_state_loom)]
#[doc(hidden)]
#[path = "loom_hooks.rs"]
pub mod __loom;

pub use blocking::Blocking;
pub use builder::{
    Builder, DEFAULT_CHANGE_STREAM_CAPACITY, DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAX_HISTORY,
    MAX_CHANGE_STREAM_CAPACITY, MAX_MAILBOX_CAPACITY,
};
pub use error::{BuildError, Cause, Precondition, StateError, TransactionError};
#[cfg(feature = "etcd")]
pub use etcd::{
    EtcdBuilder, EtcdError, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_REQUEST_TIMEOUT,
};
/// The etcd client this crate's etcd backend is built on (feature `etcd`),
/// re-exported so that code talking to the same cluster directly (a lease
/// of its own, a compaction, a benchmark's bare puts) uses the same
/// version.
///
/// # Examples
///
/// ```
/// use thread_safe_state::etcd_client::GetOptions;
/// let options = GetOptions::new().with_prefix();
/// ```
#[cfg(feature = "etcd")]
pub use etcd_client;
pub use export::Export;
pub use histogram::Distribution;
pub use history::{ChangeRecord, ChangeSet, Operation};
#[cfg(feature = "durable")]
pub use journal::{
    DurableBuilder, OpenError, DEFAULT_CHECKPOINT_BYTES, DEFAULT_CHECKPOINT_COMMITS,
};
pub use metrics::{Metrics, OperationCounts};
#[cfg(feature = "models")]
pub use models::{AgentCoordinationState, CodeGenerationState};
pub use modify::{Modification, Modified};
pub use prefix::PrefixWatch;
pub use retry::MAX_CONFLICT_RETRIES;
pub use snapshot::{Entry, Snapshot};
pub use state::ThreadSafeState;
pub use stream::ChangeStream;
pub use subscriber::Subscriber;
pub use transaction::Write;
pub use version::Version;
pub use waiting::KeyWatch;
