//! The one file that names concurrency primitives.
//!
//! Everything else in the crate goes through the names defined here, so that
//! under `--cfg thread_safe_state_loom` the loom model checker can swap in its
//! own instrumented types and explore every interleaving of the real commit
//! and read code. loom cannot see inside `arc-swap` or tokio's channels, so
//! under that cfg the snapshot cell becomes a loom `Mutex` around an `Arc`
//! (same API, same publication semantics: a store happens-before any load
//! that observes it).

#[cfg(not(thread_safe_state_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(thread_safe_state_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// Counters for [`Metrics`](crate::Metrics). Always std atomics, even under
/// loom: statistics take no part in the publication protocol, and keeping
/// them out of loom's view keeps the models' state space small.
pub(crate) use std::sync::{
    atomic::{AtomicU64 as StatCounter, Ordering as StatOrdering},
    Mutex as StatMutex,
};

pub(crate) use std::sync::{Arc, OnceLock};

/// Lock a mutex, ignoring poisoning.
///
/// The crate never runs user code while holding a lock, so a poisoned lock
/// can only come from a bug in the crate itself, and the data behind it is
/// still consistent (every update is a single push or replace).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(thread_safe_state_loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    #[cfg(thread_safe_state_loom)]
    {
        mutex.lock().unwrap()
    }
}

/// The published, current snapshot: written by the writer, read by everyone.
pub(crate) struct SnapshotCell<T> {
    #[cfg(not(thread_safe_state_loom))]
    current: arc_swap::ArcSwap<T>,
    #[cfg(thread_safe_state_loom)]
    current: loom::sync::Mutex<Arc<T>>,
}

impl<T> SnapshotCell<T> {
    pub(crate) fn new(initial: Arc<T>) -> Self {
        Self {
            #[cfg(not(thread_safe_state_loom))]
            current: arc_swap::ArcSwap::new(initial),
            #[cfg(thread_safe_state_loom)]
            current: loom::sync::Mutex::new(initial),
        }
    }

    /// Run `read` against the current value without taking a reference count
    /// in the common case (arc-swap's thread-local debt slots): the read path
    /// stays lock-free and touches no shared counter.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(thread_safe_state_loom))]
        {
            read(&self.current.load())
        }
        #[cfg(thread_safe_state_loom)]
        {
            let current = Arc::clone(&self.current.lock().unwrap());
            read(&current)
        }
    }

    /// An owned handle to the current value.
    pub(crate) fn load_full(&self) -> Arc<T> {
        #[cfg(not(thread_safe_state_loom))]
        {
            self.current.load_full()
        }
        #[cfg(thread_safe_state_loom)]
        {
            Arc::clone(&self.current.lock().unwrap())
        }
    }

    /// Publish a new value. Loads that start after this returns see it.
    pub(crate) fn store(&self, next: Arc<T>) {
        #[cfg(not(thread_safe_state_loom))]
        {
            self.current.store(next);
        }
        #[cfg(thread_safe_state_loom)]
        {
            *self.current.lock().unwrap() = next;
        }
    }
}

/// Wakes subscribers after each publish.
///
/// It is a `tokio::sync::watch` sender in every build: subscribers receive
/// a `watch::Receiver`, the type the public API promises. Under loom it also
/// counts notifications behind a loom `Mutex` and `Condvar`, because a
/// `watch` receiver picks its internal wait list at random, which loom
/// cannot replay; the models wait on that stand-in instead.
pub(crate) struct Notifier<T> {
    sender: tokio::sync::watch::Sender<T>,
    #[cfg(thread_safe_state_loom)]
    notifications: loom::sync::Mutex<u64>,
    #[cfg(thread_safe_state_loom)]
    wake: loom::sync::Condvar,
}

impl<T> Notifier<T> {
    pub(crate) fn new(initial: T) -> Self {
        Self {
            sender: tokio::sync::watch::Sender::new(initial),
            #[cfg(thread_safe_state_loom)]
            notifications: loom::sync::Mutex::new(0),
            #[cfg(thread_safe_state_loom)]
            wake: loom::sync::Condvar::new(),
        }
    }

    pub(crate) fn notify(&self, value: T) {
        if self.sender.receiver_count() > 0 {
            self.sender.send_replace(value);
        } else {
            // Nobody to wake, and waking nobody still costs a lock per
            // internal wait list. Store the value for future subscribers
            // without notifying, then look again: a subscriber that arrived
            // in between may have borrowed the old value and be waiting.
            // It cannot be missed: it counts itself in `subscribe()` before
            // it borrows under the channel's lock, so if its borrow came
            // before our store, its count happens before our second look.
            let mut next = Some(value);
            self.sender.send_if_modified(|current| {
                if let Some(next) = next.take() {
                    *current = next;
                }
                false
            });
            if self.sender.receiver_count() > 0 {
                self.sender.send_modify(|_| {});
            }
        }
        #[cfg(thread_safe_state_loom)]
        {
            *self.notifications.lock().unwrap() += 1;
            self.wake.notify_all();
        }
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<T> {
        self.sender.subscribe()
    }

    /// How many notifications have been sent.
    #[cfg(thread_safe_state_loom)]
    pub(crate) fn notifications(&self) -> u64 {
        *self.notifications.lock().unwrap()
    }

    /// Block until more than `seen` notifications have been sent; returns
    /// the new count.
    #[cfg(thread_safe_state_loom)]
    pub(crate) fn wait_past(&self, seen: u64) -> u64 {
        let mut count = self.notifications.lock().unwrap();
        while *count == seen {
            count = self.wake.wait(count).unwrap();
        }
        *count
    }
}

pub(crate) use tokio::sync::{broadcast, mpsc, oneshot};
