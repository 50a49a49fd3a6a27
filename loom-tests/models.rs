//! Loom models of the writer/reader protocol.
//!
//! Each model runs the crate's real code: the handle's read and write
//! methods, and the real async writer loop (`writer::run`, with its
//! synchronous commit core), driven by `loom::future::block_on` on loom
//! threads. Under `--cfg thread_safe_state_loom` the snapshot cell and the
//! history lock are loom types (see `src/sync.rs`), so loom explores every
//! interleaving of publish, reply and read. tokio's channels and `watch`
//! stay tokio's: loom treats each of their operations as one atomic step
//! (they are checked by tokio's own loom suite).
//!
//! Run (see `.ci/run`):
//! `RUSTFLAGS="--cfg thread_safe_state_loom" LOOM_MAX_PREEMPTIONS=2 \
//!  CARGO_TARGET_DIR=target/loom cargo test --release --test loom`
#![cfg(thread_safe_state_loom)]

use loom::future::block_on;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use thread_safe_state::__loom::{check_before_listen, state_and_writer, LoomWriter};
use thread_safe_state::{Modification, StateError, ThreadSafeState, Version};

/// The stack of every model thread, the model's body included.
///
/// loom runs its threads as coroutines on 32 KiB stacks, and the model's
/// first thread always gets that default (`loom::model::Builder` has no
/// stack setting in loom 0.7). Building a state and awaiting writes there
/// outgrew it once the map gained its ordered key index: an overflow does
/// not fail the test, it hangs it after printing "coroutine has overflowed
/// its stack". So each body runs on a spawned thread with this stack (64 KiB
/// was measured to be enough for the body). `thread::Builder::stack_size`
/// documents bytes, but loom 0.7.3 hands the number to its coroutine library
/// as 8-byte words; 128 Ki is ample either way (128 KiB or 1 MiB) and cost
/// nothing measurable in the suite's run time.
const STACK_SIZE: usize = 128 * 1024;

/// `loom::model`, reporting how many interleavings it explored and how long
/// that took, so a model that stops exploring is noticed. The body runs on
/// a model thread with a [`STACK_SIZE`] stack; the first thread only joins
/// it (a panic in the body, an assertion or a detected deadlock, still
/// fails the model with its own message).
fn model<F: Fn() + Sync + Send + 'static>(name: &str, body: F) {
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&iterations);
    let started = std::time::Instant::now();
    let body = std::sync::Arc::new(body);
    loom::model(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = std::sync::Arc::clone(&body);
        spawn(move || body()).join().unwrap();
    });
    eprintln!(
        "loom model {name}: {} interleavings in {:.2?}",
        iterations.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed()
    );
}

fn new_state(max_history: usize) -> (ThreadSafeState<u64>, LoomWriter<u64>) {
    state_and_writer(ThreadSafeState::builder().max_history(max_history))
}

/// Run a subscriber's future. Under loom, waiting on the notifier blocks
/// the loom thread (a loom `Condvar`) instead of returning `Pending`, so
/// the future is ready on its first poll. Not loom's `block_on`: when loom
/// reports a deadlock it unwinds the blocked threads, and `block_on`'s
/// own loom objects cannot be dropped then.
fn now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a subscriber's wait returned Pending under loom"),
    }
}

/// `loom::thread::spawn` with a [`STACK_SIZE`] stack.
fn spawn<F, T>(f: F) -> thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new()
        .stack_size(STACK_SIZE)
        .spawn(f)
        .expect("loom spawns")
}

fn spawn_writer(writer: LoomWriter<u64>) -> thread::JoinHandle<()> {
    spawn(move || block_on(writer.run()))
}

/// Model 1: once the caller of `set` holds its version, a read on another
/// thread that starts after the caller signals it sees that version or a
/// later one, and the value written.
fn read_your_writes(name: &str, writer_order: fn(LoomWriter<u64>) -> LoomWriter<u64>) {
    model(name, move || {
        let (state, writer) = new_state(4);
        let writer = spawn_writer(writer_order(writer));
        let acknowledged = Arc::new(AtomicU64::new(0));

        let reader = {
            let state = state.clone();
            let acknowledged = Arc::clone(&acknowledged);
            spawn(move || {
                let version = acknowledged.load(Ordering::Acquire);
                if version > 0 {
                    let snapshot = state.snapshot();
                    assert!(
                        snapshot.version().get() >= version,
                        "read version {} after the caller was told {version}",
                        snapshot.version()
                    );
                    assert_eq!(snapshot.get("k").as_deref(), Some(&7));
                    assert_eq!(state.get("k").as_deref(), Some(&7));
                }
            })
        };

        let version = block_on(state.set("k", 7)).unwrap();
        acknowledged.store(version.get(), Ordering::Release);
        drop(state);
        reader.join().unwrap();
        writer.join().unwrap();
    });
}

#[test]
fn model_1_read_your_writes() {
    read_your_writes("1 read-your-writes", |writer| writer);
}

/// Model 7: the same model against a writer that answers before it
/// publishes. If this does not fail, the models are too weak.
#[test]
#[should_panic(expected = "after the caller was told")]
fn model_7_teeth_reply_before_publish_is_caught() {
    read_your_writes("7a reply-before-publish", LoomWriter::reply_before_publish);
}

/// Model 2: two successive reads on one thread never go back in version.
#[test]
fn model_2_monotonic_reads() {
    model("2 monotonic-reads", || {
        let (state, writer) = new_state(4);
        let writer = spawn_writer(writer);
        let reader = {
            let state = state.clone();
            spawn(move || {
                let first = state.version();
                let second = state.snapshot().version();
                let third = state.version();
                assert!(
                    first <= second && second <= third,
                    "{first} {second} {third}"
                );
            })
        };
        block_on(state.set("a", 1)).unwrap();
        block_on(state.set("a", 2)).unwrap();
        drop(state);
        reader.join().unwrap();
        writer.join().unwrap();
    });
}

/// Model 3: a reader never sees part of a batch nor a mix of pre- and
/// post-rollback contents; every snapshot's contents match its version.
#[test]
fn model_3_batch_and_rollback_atomicity() {
    model("3 batch-and-rollback-atomicity", || {
        let (state, writer) = new_state(4);
        let writer = spawn_writer(writer);
        // Contents by version: v1 = {a:1, b:1}, v2 = {a:2, b:2}, v3 = rollback to v1.
        let expected = |version: Version| match version.get() {
            0 => None,
            1 | 3 => Some(1),
            2 => Some(2),
            other => panic!("unexpected version {other}"),
        };
        let reader = {
            let state = state.clone();
            spawn(move || {
                for _ in 0..2 {
                    let snapshot = state.snapshot();
                    let want = expected(snapshot.version());
                    assert_eq!(snapshot.get("a").as_deref().copied(), want);
                    assert_eq!(snapshot.get("b").as_deref().copied(), want);
                    assert_eq!(snapshot.len(), if want.is_some() { 2 } else { 0 });
                }
            })
        };
        let v1 = block_on(state.update([("a", 1), ("b", 1)])).unwrap();
        block_on(state.update([("a", 2), ("b", 2)])).unwrap();
        assert_eq!(block_on(state.rollback(v1)).unwrap(), Version::new(3));
        drop(state);
        reader.join().unwrap();
        writer.join().unwrap();
    });
}

/// Model 4: a subscriber (the real `Subscriber`, whose `changed` listens
/// on the notifier, then checks the published version) observes the final
/// version after the writer's last commit. A lost wake-up shows as a
/// deadlock, which loom reports.
fn no_lost_wake_up(
    name: &str,
    writer_order: fn(LoomWriter<u64>) -> LoomWriter<u64>,
    broken_waiter: bool,
) {
    model(name, move || {
        let (state, writer) = new_state(4);
        if broken_waiter {
            check_before_listen(&state);
        }
        // The writer serves the two writes and stays alive without closing:
        // a close would wake the subscriber and hide a lost wake-up.
        let mut writer = writer_order(writer);
        let writer = spawn(move || {
            block_on(writer.serve(2));
            writer
        });
        let mut updates = state.subscribe();
        let subscriber = spawn(move || loop {
            let snapshot = updates.borrow_and_update();
            if snapshot.version() == Version::new(2) {
                assert_eq!(snapshot.get("k").as_deref(), Some(&2));
                return;
            }
            now(updates.changed()).unwrap();
        });
        block_on(state.set("k", 1)).unwrap();
        block_on(state.set("k", 2)).unwrap();
        let writer = writer.join().unwrap();
        subscriber.join().unwrap();
        drop(state);
        drop(writer);
    });
}

#[test]
fn model_4_no_lost_wake_up() {
    no_lost_wake_up("4 no-lost-wake-up", |writer| writer, false);
}

/// Model 7b: waking subscribers before publishing loses the last wake-up.
#[test]
#[should_panic(expected = "deadlock")]
fn model_7_teeth_notify_before_publish_is_caught() {
    no_lost_wake_up(
        "7b notify-before-publish",
        LoomWriter::notify_before_publish,
        false,
    );
}

/// Model 7c: a waiter that checks before it listens loses a wake-up.
#[test]
#[should_panic(expected = "deadlock")]
fn model_7_teeth_check_before_listen_is_caught() {
    no_lost_wake_up("7c check-before-listen", |writer| writer, true);
}

/// Model 9: a waiter blocked in `changed` when the writer stops hears
/// `Closed`; it never hangs.
#[test]
fn model_9_a_waiter_hears_the_writer_stop() {
    model("9 waiter-vs-writer-stop", || {
        let (state, writer) = new_state(4);
        let mut updates = state.subscribe();
        let waiter = spawn(move || {
            let mut versions = 0;
            loop {
                match now(updates.changed()) {
                    Ok(()) => versions += 1,
                    Err(StateError::Closed) => return versions,
                    Err(other) => panic!("unexpected {other}"),
                }
            }
        });
        let stopper = spawn(move || drop(writer));
        let _ = block_on(state.set("k", 1));
        stopper.join().unwrap();
        assert!(waiter.join().unwrap() <= 1);
    });
}

std::thread_local! {
    /// Set on the thread that runs the writer of model 10.
    static ON_WRITER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A value whose `Drop` panics if armed and dropped by the writer. (A
/// reader that holds the last reference drops it on its own thread, as
/// documented; that is not what this model is about.)
struct Bomb {
    armed: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.armed && ON_WRITER.with(std::cell::Cell::get) {
            panic!("a value's Drop panicked");
        }
    }
}

/// Model 10: a value whose `Drop` panics when the writer releases it (its
/// replacement evicted it, `max_history(0)`) costs no reply, no version and
/// not the writer: the caller is told the truth, and later writes work.
#[test]
fn model_10_a_panicking_drop_in_the_writer_loses_nothing() {
    // The contained panics are expected; keep their messages out of the log
    // (any other panic still reaches the previous hook). The filter stays
    // installed: loom's coroutine library chains its own hook over it.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"a value's Drop panicked") {
            hook(info);
        }
    }));
    model("10 panicking-drop", || {
        let (state, writer) = state_and_writer(ThreadSafeState::builder().max_history(0));
        let writer = spawn(move || {
            ON_WRITER.with(|on| on.set(true));
            block_on(writer.run());
        });
        let reader = {
            let state = state.clone();
            spawn(move || {
                let version = state.version();
                assert!(version <= Version::new(3));
            })
        };
        assert_eq!(
            block_on(state.set("k", Bomb { armed: true })),
            Ok(Version::new(1))
        );
        assert_eq!(
            block_on(state.set("k", Bomb { armed: false })),
            Ok(Version::new(2))
        );
        assert_eq!(
            block_on(state.set("j", Bomb { armed: false })),
            Ok(Version::new(3))
        );
        reader.join().unwrap();
        drop(state);
        writer.join().unwrap();
    });
}

/// Model 5: two concurrent `modify` increments end at +2.
#[test]
fn model_5_no_lost_update() {
    model("5 no-lost-update", || {
        let (state, writer) = new_state(4);
        let writer = spawn_writer(writer);
        let increment = |n: Option<&u64>| Modification::Set(n.copied().unwrap_or(0) + 1);
        let other = {
            let state = state.clone();
            spawn(move || block_on(state.modify("n", increment)).unwrap().version)
        };
        let mine = block_on(state.modify("n", increment)).unwrap().version;
        let theirs = other.join().unwrap();
        assert_ne!(mine, theirs);
        assert_eq!(state.get("n").as_deref(), Some(&2));
        assert_eq!(state.version(), Version::new(2));
        drop(state);
        writer.join().unwrap();
    });
}

/// Model 6a: a write racing the drop of the last other handle is applied
/// and answered: the writer drains its mailbox before it stops.
#[test]
fn model_6_queued_write_is_answered_when_the_last_handle_drops() {
    model("6a queued-write-answered", || {
        let (state, writer) = new_state(4);
        let writer = spawn_writer(writer);
        let mut updates = state.subscribe();
        let caller = {
            let state = state.clone();
            spawn(move || block_on(state.set("k", 1)))
        };
        drop(state);
        assert_eq!(caller.join().unwrap(), Ok(Version::new(1)));
        writer.join().unwrap();
        assert_eq!(updates.borrow_and_update().version(), Version::new(1));
        assert_eq!(now(updates.changed()), Err(StateError::Closed));
    });
}

/// Model 6b: when the writer task is dropped (its runtime shut down) while
/// a write is in flight, the caller gets `Closed`; it never hangs.
#[test]
fn model_6_write_racing_writer_shutdown_gets_closed_not_a_hang() {
    model("6b write-vs-shutdown", || {
        let (state, writer) = new_state(4);
        let shutdown = spawn(move || drop(writer));
        assert_eq!(block_on(state.set("k", 1)), Err(StateError::Closed));
        shutdown.join().unwrap();
        assert_eq!(state.version(), Version::INITIAL);
    });
}

/// Model 8: a change stream opened while a write commits delivers that
/// commit exactly once, whether it finds it in the history backlog or on
/// the live feed, and ends when the state is gone.
#[test]
fn model_8_stream_opened_during_a_commit_misses_nothing() {
    model("8 stream-vs-commit", || {
        let (state, writer) = new_state(4);
        let writer = spawn_writer(writer);
        let streamer = {
            let state = state.clone();
            spawn(move || {
                let mut stream = state.changes_since(Version::INITIAL).unwrap();
                drop(state);
                let mut versions = Vec::new();
                while let Some(set) = block_on(stream.next()) {
                    versions.push(set.unwrap().version.get());
                }
                versions
            })
        };
        block_on(state.set("k", 1)).unwrap();
        drop(state);
        assert_eq!(streamer.join().unwrap(), [1]);
        writer.join().unwrap();
    });
}
