//! The synchronous commit core: apply, record, publish, notify, reply.
//!
//! The async writer loop only moves commands from the mailbox into
//! [`Committer::commit_batch`]; everything that decides what readers see
//! happens here, in plain synchronous code, so the loom models can drive it
//! from loom threads.
//!
//! Order for one batch (see `DESIGN.md`):
//! 1. apply each command to the writer's private map, producing the next map;
//! 2. for each command that changed something, push its records and its
//!    snapshot to the bounded history;
//! 3. publish the batch's last snapshot to the snapshot cell;
//! 4. notify subscribers;
//! 5. reply to every caller of the batch.
//!
//! Replying last is what makes `set(..).await` read-your-writes: by the time
//! a caller learns its version, every reader on every thread can see it.

use std::collections::HashSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use time::OffsetDateTime;

use crate::command::{Applied, Command, ModifyFn, Op, Reply};
use crate::error::StateError;
use crate::history::{Change, Commit, Operation, Unreachable};
use crate::metrics::Counters;
use crate::shared::Shared;
use crate::snapshot::{Entry, Map, Snapshot};
use crate::sync::{lock, oneshot, Arc};
use crate::Version;

/// Owns the writer's private copy of the map and the version counter.
pub(crate) struct Committer<V> {
    map: Map<V>,
    version: Version,
    shared: Arc<Shared<V>>,
    /// Loom models only: an ordering bug on purpose, to prove the models
    /// catch it.
    #[cfg(thread_safe_state_loom)]
    pub(crate) broken_order: BrokenOrder,
}

impl<V> Committer<V> {
    /// A committer continuing from `shared`'s current snapshot.
    pub(crate) fn new(shared: Arc<Shared<V>>) -> Self {
        let current = Snapshot::from_inner(shared.current.load_full());
        Self {
            map: current.map().clone(),
            version: current.version(),
            shared,
            #[cfg(thread_safe_state_loom)]
            broken_order: BrokenOrder::None,
        }
    }

    /// Apply `commands` in order, publish once, then answer every caller.
    ///
    /// Each command that changes something gets its own version and history
    /// entry; publishing once per batch is what makes a busy writer cheap
    /// (group commit).
    pub(crate) fn commit_batch(&mut self, commands: impl IntoIterator<Item = Command<V>>) {
        let mut answers: Vec<(oneshot::Sender<Reply>, Reply)> = Vec::new();
        let mut committed = false;
        for command in commands {
            let reply = self.apply(command.op, command.changed_by);
            committed |= matches!(
                reply,
                Ok(Applied {
                    committed: true,
                    ..
                })
            );
            answers.push((command.reply, reply));
        }
        #[cfg(thread_safe_state_loom)]
        if self.broken_order == BrokenOrder::ReplyBeforePublish {
            Self::reply(answers);
            if committed {
                self.publish();
            }
            return;
        }
        if committed {
            self.publish();
        }
        Self::reply(answers);
    }

    fn reply(answers: Vec<(oneshot::Sender<Reply>, Reply)>) {
        for (caller, reply) in answers {
            // A caller that stopped waiting (dropped its future) is fine:
            // the command was applied all the same.
            let _ = caller.send(reply);
        }
    }

    /// Publish the writer's latest commit to readers, then wake subscribers.
    fn publish(&self) {
        let snapshot = {
            let history = lock(&self.shared.history);
            history.current().clone()
        };
        debug_assert_eq!(snapshot.version(), self.version);
        #[cfg(thread_safe_state_loom)]
        if self.broken_order == BrokenOrder::NotifyBeforePublish {
            self.shared.notifier.notify(snapshot.clone());
            self.shared.current.store(Arc::clone(snapshot.inner()));
            return;
        }
        self.shared.current.store(Arc::clone(snapshot.inner()));
        self.shared.notifier.notify(snapshot);
    }

    /// Apply one command to the private map and record it if it changed
    /// anything. Nothing is visible to readers until [`Self::publish`].
    fn apply(&mut self, op: Op<V>, changed_by: Option<Arc<str>>) -> Reply {
        Counters::bump(&self.shared.counters.writes);
        let next = self.version.next();
        let (operation, changes) = match op {
            Op::Set { key, value } => {
                (Operation::Set, vec![self.write(key, Arc::new(value), next)])
            }
            Op::Update(items) => (
                Operation::Update,
                items
                    .into_iter()
                    .map(|(key, value)| self.write(key, Arc::new(value), next))
                    .collect(),
            ),
            Op::Delete(key) => (Operation::Delete, self.remove(key).into_iter().collect()),
            Op::Clear => (Operation::Clear, self.clear()),
            Op::Retain(keys) => (Operation::Retain, self.retain(&keys)),
            Op::Modify { key, f } => match self.modify(key, f, next) {
                Ok(changes) => (Operation::Modify, changes),
                Err(error) => return self.fail(error),
            },
            Op::Rollback(target) => match self.rollback(target, next) {
                Ok(changes) => (Operation::Rollback, changes),
                Err(error) => return self.fail(error),
            },
        };
        if changes.is_empty() {
            return Ok(Applied {
                version: self.version,
                committed: false,
            });
        }
        self.record(next, operation, changed_by, changes);
        if operation == Operation::Rollback {
            Counters::bump(&self.shared.counters.rollbacks);
        }
        Ok(Applied {
            version: next,
            committed: true,
        })
    }

    fn fail(&self, error: StateError) -> Reply {
        tracing::warn!(%error, "write command failed; state unchanged");
        Counters::bump(&self.shared.counters.failed);
        Err(error)
    }

    /// Push a commit to the history and advance the version.
    fn record(
        &mut self,
        version: Version,
        operation: Operation,
        changed_by: Option<Arc<str>>,
        changes: Vec<Change<V>>,
    ) {
        let span = tracing::debug_span!(
            "commit",
            version = version.get(),
            ?operation,
            keys = ?KeyNames(&changes),
            changed_by = changed_by.as_deref(),
        );
        let _entered = span.enter();
        if operation == Operation::Rollback {
            tracing::info!(
                version = version.get(),
                records = changes.len(),
                "rolled back"
            );
        } else {
            tracing::debug!(records = changes.len(), "committed");
        }
        let commit = Commit {
            timestamp: OffsetDateTime::now_utc(),
            operation,
            changed_by,
            changes,
            snapshot: Snapshot::new(version, self.map.clone()),
        };
        lock(&self.shared.history).push(commit);
        self.version = version;
        Counters::bump(&self.shared.counters.commits);
    }

    fn write(&mut self, key: Arc<str>, value: Arc<V>, version: Version) -> Change<V> {
        let old = self.map.get(&*key);
        let created = old.map_or(version, Entry::created);
        let old = old.map(|entry| Arc::clone(entry.value()));
        self.map.insert_mut(
            Arc::clone(&key),
            Entry::new(Arc::clone(&value), version, created),
        );
        Change {
            key,
            old,
            new: Some(value),
        }
    }

    fn remove(&mut self, key: Arc<str>) -> Option<Change<V>> {
        let old = Arc::clone(self.map.get(&*key)?.value());
        self.map.remove_mut(&*key);
        Some(Change {
            key,
            old: Some(old),
            new: None,
        })
    }

    fn clear(&mut self) -> Vec<Change<V>> {
        let changes = self
            .map
            .iter()
            .map(|(key, entry)| Change {
                key: Arc::clone(key),
                old: Some(Arc::clone(entry.value())),
                new: None,
            })
            .collect();
        self.map = Map::new_sync();
        changes
    }

    fn retain(&mut self, keep: &[Arc<str>]) -> Vec<Change<V>> {
        let keep: HashSet<&str> = keep.iter().map(|key| &**key).collect();
        let dropped: Vec<Arc<str>> = self
            .map
            .keys()
            .filter(|key| !keep.contains(&***key))
            .cloned()
            .collect();
        dropped
            .into_iter()
            .filter_map(|key| self.remove(key))
            .collect()
    }

    fn modify(
        &mut self,
        key: Arc<str>,
        f: ModifyFn<V>,
        version: Version,
    ) -> Result<Vec<Change<V>>, StateError> {
        // The closure reads its own reference-counted copy, so it borrows
        // nothing of the map, and a panic leaves the map untouched.
        let current = self.map.get(&*key).map(|entry| Arc::clone(entry.value()));
        let outcome = catch_unwind(AssertUnwindSafe(|| f(current.as_deref())));
        match outcome {
            Ok(Some(value)) => Ok(vec![self.write(key, Arc::new(value), version)]),
            Ok(None) => Ok(self.remove(key).into_iter().collect()),
            Err(payload) => Err(StateError::ModifyPanicked {
                key: key.to_string(),
                message: panic_message(payload.as_ref()),
            }),
        }
    }

    /// Make the map equal to `target`'s, touching only the keys written
    /// since `target`. Restored keys count as written by this new version.
    fn rollback(
        &mut self,
        target: Version,
        version: Version,
    ) -> Result<Vec<Change<V>>, StateError> {
        let current = self.version;
        let invalid = StateError::InvalidVersion { target, current };
        if target >= current {
            return Err(invalid);
        }
        let (restored, keys) = {
            let history = lock(&self.shared.history);
            let restored = match history.snapshot_at(target) {
                Ok(snapshot) => snapshot.map().clone(),
                Err(Unreachable::Compacted { oldest_retained }) => {
                    return Err(StateError::VersionCompacted {
                        target,
                        oldest_retained,
                    })
                }
                Err(Unreachable::Future) => return Err(invalid),
            };
            (restored, history.keys_changed_after(target))
        };
        let mut next = restored;
        let mut changes = Vec::new();
        for key in keys {
            let now = self.map.get(&*key);
            let then = next.get(&*key).map(|entry| Arc::clone(entry.value()));
            match (now, then) {
                (None, None) => {}
                (Some(now), Some(then)) if Arc::ptr_eq(now.value(), &then) => {
                    // Same value: keep its current per-key versions.
                    next.insert_mut(Arc::clone(&key), now.clone());
                }
                (now, then) => {
                    if let Some(value) = &then {
                        let created = now.map_or(version, Entry::created);
                        next.insert_mut(
                            Arc::clone(&key),
                            Entry::new(Arc::clone(value), version, created),
                        );
                    }
                    changes.push(Change {
                        key,
                        old: now.map(|entry| Arc::clone(entry.value())),
                        new: then,
                    });
                }
            }
        }
        changes.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        self.map = next;
        Ok(changes)
    }
}

/// Deliberate ordering bugs that the loom models must catch.
#[cfg(thread_safe_state_loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokenOrder {
    /// The correct order.
    None,
    /// Answer callers before publishing the snapshot.
    ReplyBeforePublish,
    /// Wake subscribers before publishing the snapshot.
    NotifyBeforePublish,
}

/// The text of a panic payload, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Formats at most a few of a commit's keys, lazily, for the commit span.
struct KeyNames<'a, V>(&'a [Change<V>]);

impl<V> fmt::Debug for KeyNames<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        let mut list = f.debug_list();
        list.entries(self.0.iter().take(SHOWN).map(|change| &change.key));
        if self.0.len() > SHOWN {
            list.entry(&format_args!("... {} more", self.0.len() - SHOWN));
        }
        list.finish()
    }
}
