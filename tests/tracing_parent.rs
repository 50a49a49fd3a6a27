//! The writer's work for a command shows in a trace under the span of the
//! caller that sent it: who caused a commit is visible.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thread_safe_state::ThreadSafeState;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Instrument, Metadata, Subscriber};
use tracing_core::span::Current;

/// Span names, each with its parent's name.
type Parents = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A subscriber that keeps the entered-span stack per thread, as
/// `tracing-subscriber`'s registry does, so `Span::current()` works.
struct StackRecorder {
    next_id: AtomicU64,
    spans: Mutex<HashMap<u64, &'static Metadata<'static>>>,
    parents: Parents,
}

thread_local! {
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl StackRecorder {
    fn name(&self, id: u64) -> Option<String> {
        self.spans
            .lock()
            .unwrap()
            .get(&id)
            .map(|m| m.name().to_owned())
    }
}

impl Subscriber for StackRecorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let parent = if let Some(parent) = span.parent() {
            Some(parent.into_u64())
        } else if span.is_contextual() {
            STACK.with(|stack| stack.borrow().last().copied())
        } else {
            None
        };
        self.spans.lock().unwrap().insert(id, span.metadata());
        let parent = parent.and_then(|p| self.name(p));
        self.parents
            .lock()
            .unwrap()
            .push((span.metadata().name().to_owned(), parent));
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, id: &Id) {
        STACK.with(|stack| stack.borrow_mut().push(id.into_u64()));
    }
    fn exit(&self, _: &Id) {
        STACK.with(|stack| stack.borrow_mut().pop());
    }
    fn current_span(&self) -> Current {
        let top = STACK.with(|stack| stack.borrow().last().copied());
        match top.and_then(|id| Some((id, *self.spans.lock().unwrap().get(&id)?))) {
            Some((id, metadata)) => Current::new(Id::from_u64(id), metadata),
            None => Current::none(),
        }
    }
}

#[test]
fn a_commit_span_is_a_child_of_the_callers_span() {
    let parents = Parents::default();
    let _guard = tracing::subscriber::set_default(StackRecorder {
        next_id: AtomicU64::new(0),
        spans: Mutex::default(),
        parents: Arc::clone(&parents),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = ThreadSafeState::new();
        state
            .set("plan", 1)
            .instrument(tracing::info_span!("planner_agent"))
            .await
            .unwrap();
        state
            .set("review", 2)
            .instrument(tracing::info_span!("reviewer_agent"))
            .await
            .unwrap();
    });
    let parents = parents.lock().unwrap();
    let commits: Vec<Option<&str>> = parents
        .iter()
        .filter(|(name, _)| name == "commit")
        .map(|(_, parent)| parent.as_deref())
        .collect();
    assert_eq!(
        commits,
        [Some("planner_agent"), Some("reviewer_agent")],
        "{parents:?}"
    );
}
