//! The one file that names concurrency primitives.
//!
//! Everything else in the crate goes through the names defined here, so that
//! under `--cfg thread_safe_state_loom` the loom model checker can swap in its
//! own instrumented types and explore every interleaving of the real commit
//! and read code. loom cannot see inside `arc-swap` or tokio's `Notify`, so
//! under that cfg the snapshot cell becomes a loom `Mutex` around an `Arc`
//! and the notifier a loom `Mutex` + `Condvar` with the same contract (see
//! [`Notifier`]).

#[cfg(not(thread_safe_state_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicU8, Ordering},
    Mutex, MutexGuard,
};

#[cfg(thread_safe_state_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicU8, Ordering},
    Mutex, MutexGuard,
};

/// Counters for [`Metrics`](crate::Metrics). Always std atomics, even under
/// loom: statistics take no part in the publication protocol, and keeping
/// them out of loom's view keeps the models' state space small.
pub(crate) use std::sync::{
    atomic::{AtomicU64 as StatCounter, Ordering as StatOrdering},
    Mutex as StatMutex,
};

pub(crate) use std::sync::Arc;

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

    /// Publish a new value and hand back the one it replaces, so the caller
    /// decides where the old value is dropped. Loads that start after this
    /// returns see `next`.
    pub(crate) fn swap(&self, next: Arc<T>) -> Arc<T> {
        #[cfg(not(thread_safe_state_loom))]
        {
            self.current.swap(next)
        }
        #[cfg(thread_safe_state_loom)]
        {
            std::mem::replace(&mut *self.current.lock().unwrap(), next)
        }
    }
}

/// Whether a writer can still publish. See [`Notifier::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The writer is running.
    Open,
    /// The writer stopped after every handle was dropped and every queued
    /// command was answered: the normal end.
    Finished,
    /// The writer task was dropped while handles still existed (its runtime
    /// shut down): later writes get `Closed`.
    Aborted,
}

/// Wakes waiters after each publish, and once when the writer stops.
///
/// The contract, the same in both builds: a waiter *listens first, then
/// checks* its condition (`until`), and the writer *publishes first, then
/// notifies*. A waiter whose check missed a publish is therefore already
/// listening when that publish's notification comes, so no wake-up is lost.
///
/// In normal builds it is a `tokio::sync::Notify`: `notify_waiters` wakes
/// every `Notified` future created before the call, even one not yet
/// polled, which is exactly "listening". Why that holds on weak memory:
/// creating the future reads Notify's call counter with `SeqCst`, and
/// `notify_waiters` increments it with `SeqCst` after the writer's store of
/// the snapshot. If the waiter's read sees the increment, it synchronizes
/// with it, so the store happens-before the waiter's check and the check
/// sees the new snapshot; if it does not, the future compares the counter
/// again when polled and completes. This is message passing, not the
/// store-buffering pattern of two relaxed counters: there is no "nobody is
/// listening" shortcut whose correctness depends on both sides seeing each
/// other's writes.
///
/// Waiters run only the crate's own checks here (load a version, read the
/// liveness); user predicates run after `until` returns, with nothing held.
/// The writer takes Notify's waiter-list lock once per group; a waiter
/// holds it only to link or unlink itself, O(1).
///
/// Under loom it is a loom `Mutex<u64>` (notifications so far) and a
/// `Condvar`: `until` reads the count (listen), checks, and sleeps until the
/// count moves.
pub(crate) struct Notifier {
    liveness: AtomicU8,
    #[cfg(not(thread_safe_state_loom))]
    notify: tokio::sync::Notify,
    #[cfg(thread_safe_state_loom)]
    notifications: loom::sync::Mutex<u64>,
    #[cfg(thread_safe_state_loom)]
    wake: loom::sync::Condvar,
    /// Loom models only: check before listening, the ordering bug the
    /// lost-wake-up model must catch.
    #[cfg(thread_safe_state_loom)]
    pub(crate) check_before_listen: std::sync::atomic::AtomicBool,
}

impl Notifier {
    pub(crate) fn new() -> Self {
        Self {
            liveness: AtomicU8::new(Liveness::Open as u8),
            #[cfg(not(thread_safe_state_loom))]
            notify: tokio::sync::Notify::new(),
            #[cfg(thread_safe_state_loom)]
            notifications: loom::sync::Mutex::new(0),
            #[cfg(thread_safe_state_loom)]
            wake: loom::sync::Condvar::new(),
            #[cfg(thread_safe_state_loom)]
            check_before_listen: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Wake every waiter. Call after the publish it announces.
    pub(crate) fn notify(&self) {
        #[cfg(not(thread_safe_state_loom))]
        self.notify.notify_waiters();
        #[cfg(thread_safe_state_loom)]
        {
            *self.notifications.lock().unwrap() += 1;
            self.wake.notify_all();
        }
    }

    /// Record that no writer will publish again, and wake every waiter so
    /// it can report `Closed`. Idempotent; the first reason given wins.
    pub(crate) fn close(&self, how: Liveness) {
        let _ = self.liveness.compare_exchange(
            Liveness::Open as u8,
            how as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.notify();
    }

    pub(crate) fn liveness(&self) -> Liveness {
        match self.liveness.load(Ordering::SeqCst) {
            0 => Liveness::Open,
            1 => Liveness::Finished,
            _ => Liveness::Aborted,
        }
    }

    /// Wait until `check` returns `Some`, re-checking after every
    /// notification. `check` must be the crate's own, short code: it runs
    /// with Notify's waiter registered but no lock held.
    pub(crate) async fn until<T>(&self, mut check: impl FnMut() -> Option<T>) -> T {
        #[cfg(not(thread_safe_state_loom))]
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Listen first ...
            notified.as_mut().enable();
            // ... then check: a publish the check misses notifies us.
            if let Some(found) = check() {
                return found;
            }
            notified.await;
        }
        #[cfg(thread_safe_state_loom)]
        loop {
            let broken = self
                .check_before_listen
                .load(std::sync::atomic::Ordering::Relaxed);
            if broken {
                if let Some(found) = check() {
                    return found;
                }
            }
            let seen = *self.notifications.lock().unwrap();
            if !broken {
                if let Some(found) = check() {
                    return found;
                }
            }
            let mut count = self.notifications.lock().unwrap();
            while *count == seen {
                count = self.wake.wait(count).unwrap();
            }
        }
    }
}

pub(crate) use tokio::sync::{broadcast, mpsc, oneshot};

/// The writer's TTL timer (see `writer::expiry`): tokio's clock and sleep,
/// so a paused test clock drives expiry. The same under loom: no model sets
/// a TTL, so no timer is ever created there (one that did would fail for
/// want of a tokio runtime, loudly, not hang).
pub(crate) use tokio::time::{sleep_until, Instant as TimerInstant};

/// Run `future` to completion on this thread, parking between polls: the
/// blocking twin of an async wait that tokio has no blocking form of.
/// Like tokio's `blocking_recv`, it must not be called from async code.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }

        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        // A wake before this park leaves the token set, so it is not lost.
        std::thread::park();
    }
}
