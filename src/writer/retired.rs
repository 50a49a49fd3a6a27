//! What a group commit retires, and where it is dropped.
//!
//! Dropping a value runs its `Drop`, which is user code: it may be slow or
//! panic. The writer therefore never drops a value, map, snapshot or
//! history commit in the middle of a group: it moves each one here, and
//! [`Retired::drop_all`] drops them after the group is published and every
//! caller has its answer, one at a time under `catch_unwind`. A panicking
//! `Drop` then costs the panic message in the log, never a reply, the
//! writer task or the state.
//!
//! Values are reference-counted and shared with snapshots, history records
//! and readers, so most of what lands here is only a reference count going
//! down; the value itself is dropped wherever its last `Arc` goes, which is
//! often a reader's thread.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::history::Commit;
use crate::map::Map;
use crate::snapshot::{Snapshot, SnapshotInner};
use crate::stream::FeedItem;
use crate::sync::Arc;

/// One retired thing. An enum rather than `Box<dyn Any>` so retiring
/// allocates nothing: the bin's buffer is reused group after group.
// The fields are never read: they are held only to be dropped later.
#[allow(dead_code)]
pub(crate) enum Item<V> {
    /// A value the writer owned (e.g. the writes of a failed transaction).
    Value(V),
    /// A history commit that fell out of the window.
    Commit(Commit<V>),
    /// A map the writer replaced (clear).
    Map(Map<V>),
    /// A snapshot: the one a publish replaced, a history base, a rollback's
    /// target.
    Snapshot(Snapshot<V>),
    /// A published snapshot's inner value, as the snapshot cell hands it back.
    Published(Arc<SnapshotInner<V>>),
    /// A change-stream group the broadcast ring no longer holds.
    Feed(FeedItem<V>),
    /// A command that was refused without being applied (its value, or the
    /// captures of its closure).
    Op(crate::writer::command::Op<V>),
}

/// The retired things of the current group.
pub(crate) struct Retired<V> {
    items: Vec<Item<V>>,
}

impl<V> Retired<V> {
    pub(crate) fn new() -> Self {
        Self { items: Vec::new() }
    }

    pub(crate) fn push(&mut self, item: Item<V>) {
        self.items.push(item);
    }

    pub(crate) fn extend(&mut self, items: impl IntoIterator<Item = Item<V>>) {
        self.items.extend(items);
    }

    /// Drop everything retired so far, each item on its own, so that one
    /// panicking `Drop` neither stops the others nor leaves the writer.
    /// Call only after the group's replies are sent.
    pub(crate) fn drop_all(&mut self) {
        for item in self.items.drain(..) {
            if catch_unwind(AssertUnwindSafe(move || drop(item))).is_err() {
                // A warning, not an error: the panic is contained and
                // nothing is lost (the panic message itself went to the
                // panic hook).
                tracing::warn!(
                    "a value's Drop panicked while the writer released it; \
                     the panic was contained and the state is unaffected"
                );
            }
        }
    }
}
