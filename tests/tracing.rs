//! Tracing: a debug span per commit with its version, keys and agent; an
//! info event for a rollback; failed commands only at debug level (their
//! error is the reply), a lost compare-and-set included.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thread_safe_state::{Precondition, ThreadSafeState, Version};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// What the recorder saw: (level, span name or "event", fields).
type Seen = Arc<Mutex<Vec<(Level, String, String)>>>;

/// A minimal subscriber that records every span and event it is given.
struct Recorder {
    seen: Seen,
    next_id: AtomicU64,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        let meta = span.metadata();
        self.seen
            .lock()
            .unwrap()
            .push((*meta.level(), meta.name().to_owned(), fields.0));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let level = *event.metadata().level();
        self.seen
            .lock()
            .unwrap()
            .push((level, "event".to_owned(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn commits_rollbacks_and_failures_are_traced_at_their_levels() {
    let seen: Seen = Arc::default();
    let _guard = tracing::subscriber::set_default(Recorder {
        seen: Arc::clone(&seen),
        next_id: AtomicU64::new(0),
    });
    // A current_thread runtime runs the writer on this thread, under the
    // recorder set as this thread's default.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = ThreadSafeState::new();
        let agent = state.for_agent("parser");
        agent
            .update((0..10).map(|i| (format!("k{i}"), i)))
            .await
            .unwrap();
        state.rollback(Version::INITIAL).await.unwrap();
        state.modify("k", |_| panic!("boom")).await.unwrap_err();
        state
            .set_if("k0", 1, Precondition::Exists)
            .await
            .unwrap_err();
    });
    let seen = seen.lock().unwrap();
    let commit = seen
        .iter()
        .find(|(_, name, _)| name == "commit")
        .expect("a commit span");
    assert_eq!(commit.0, Level::DEBUG);
    for field in [
        "version=1",
        "operation=Update",
        "changed_by=\"parser\"",
        "... 2 more",
    ] {
        assert!(
            commit.2.contains(field),
            "{field} missing from {}",
            commit.2
        );
    }
    let events = |level: Level| -> Vec<&String> {
        seen.iter()
            .filter(|(l, name, _)| *l == level && name == "event")
            .map(|(_, _, fields)| fields)
            .collect()
    };
    assert!(events(Level::INFO)
        .iter()
        .any(|f| f.contains("rolled back")));
    // A failed command is reported once, to its caller; the writer does not
    // log it again as a warning, only at debug level for tracing.
    let warnings = events(Level::WARN);
    assert!(warnings.is_empty(), "{warnings:?}");
    let debug = events(Level::DEBUG);
    assert!(debug.iter().any(|f| f.contains("boom")), "{debug:?}");
    assert!(
        debug
            .iter()
            .any(|f| f.contains("Conflict") || f.contains("conflict")),
        "{debug:?}"
    );
}
