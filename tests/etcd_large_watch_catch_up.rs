//! (Review 2.) A mirror that falls behind by more than 64 MiB of values
//! never catches up: it retries the same watch forever.
//!
//! After a connection error the mirror watches again from the next
//! revision it has not seen. etcd sends a lagging (unsynced) watcher the
//! missed events in one `WatchResponse` of up to 1000 revisions, since the
//! mirror does not ask for fragmented responses; the watch client decodes
//! at most 64 MiB per message. With more than 64 MiB of puts missed (e.g. 56
//! values of 1.4 MiB, each one an ordinary write under etcd's request
//! limit), every new watch fails with "decoded message length too large",
//! the mirror backs off and asks for the same revisions again, for ever:
//! reads serve the old snapshot, and every later write of the handle
//! (answered only once mirrored) and `close()` hang. No relist is tried,
//! since the watch is not cancelled.
//!
//! Set-up: the handle reaches a private etcd through a TCP proxy that the
//! test cuts (a partition) while another client writes, then restores.
//!
//! Expected: once the partition heals, the handle catches up (e.g. with
//! fragmented watch responses, or by relisting).

mod common;
#[path = "review_support/proxy.rs"]
mod proxy;

use std::time::Duration;

use common::etcd::{connect_retrying, prefix, OwnEtcd};
use proxy::Proxy;
use thread_safe_state::ThreadSafeState;

/// The control (passes): the same partition with small values heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_catches_up_after_a_partition_with_small_writes() {
    partition_then_heal(10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_catches_up_after_a_partition_with_many_large_writes() {
    partition_then_heal(1_400_000).await;
}

async fn partition_then_heal(value_len: usize) {
    let Some(etcd) = OwnEtcd::start("review_watch_catch_up_too_large") else {
        return;
    };
    let prefix = prefix("review-catch-up");
    drop(connect_retrying(&etcd.endpoint(), &prefix).await);
    let proxy = Proxy::start(&etcd.endpoint()).await;
    let cut_off = ThreadSafeState::<String>::builder()
        .etcd([proxy.endpoint()], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    cut_off.set("start", "x".into()).await.unwrap();

    proxy.cut();
    let direct = ThreadSafeState::<String>::builder()
        .etcd([etcd.endpoint()], &prefix)
        .request_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let value = "v".repeat(value_len);
    let mut last = None;
    for i in 0..56 {
        last = Some(
            direct
                .set(format!("blob-{}", i % 4), value.clone())
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    proxy.restore();

    let caught_up = cut_off
        .wait_for_timeout(|s| s.version() >= last, Duration::from_secs(30))
        .await;
    assert!(
        caught_up.is_ok(),
        "30 s after the partition healed the handle still shows version {:?} (etcd is at {last:?}): {caught_up:?}",
        cut_off.version()
    );
}
