//! (Review 2.) After a relist, `snapshot_at` / `fetch_snapshot_at` answer
//! for revisions the handle never saw with a state etcd never had.
//!
//! When the mirror misses revisions that etcd then compacts (a partition,
//! a slow mirror), it relists at revision R and commits the differences
//! as one version R. The local history then holds commit A (before the
//! gap) and commit R, and `snapshot_at(v)` for a `v` in between is "the
//! state at the newer commit at or before v", i.e. at A. The docs justify
//! that by other prefixes taking the revisions in between; here the
//! state's own keys changed in them. `fetch_snapshot_at(v)` serves it from
//! the local window too, so it never reaches etcd, which would answer
//! `VersionCompacted`; and `rollback(v)` "restores" that state.
//!
//! Set-up: a handle behind a TCP proxy writes `k = 1` (revision A); the
//! proxy is cut; another client writes `k = 2` (B) and `k = 3` (C) and
//! compacts etcd at C; the proxy is restored and the handle relists.
//!
//! Expected: the state at B is `k = 2` or `VersionCompacted`, never
//! `k = 1`.

mod common;
#[path = "review_support/proxy.rs"]
mod proxy;

use std::time::Duration;

use common::etcd::{connect_retrying, gateway_post, prefix, OwnEtcd};
use proxy::Proxy;
use thread_safe_state::{StateError, ThreadSafeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_inside_a_relisted_gap_is_not_made_up() {
    let Some(etcd) = OwnEtcd::start("review_relist_gap_history") else {
        return;
    };
    let prefix = prefix("review-relist-gap");
    drop(connect_retrying(&etcd.endpoint(), &prefix).await);
    let proxy = Proxy::start(&etcd.endpoint()).await;
    let cut_off = ThreadSafeState::<i64>::builder()
        .etcd([proxy.endpoint()], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    cut_off.set("k", 1).await.unwrap();

    proxy.cut();
    let direct = ThreadSafeState::<i64>::builder()
        .etcd([etcd.endpoint()], &prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let b = direct.set("k", 2).await.unwrap();
    let c = direct.set("k", 3).await.unwrap();
    let body = format!(r#"{{"revision":"{}","physical":true}}"#, c.get());
    gateway_post(&etcd.endpoint(), "/v3/kv/compaction", &body).await;
    proxy.restore();

    cut_off
        .wait_for_timeout(
            |s| s.get("k").as_deref() == Some(&3),
            Duration::from_secs(20),
        )
        .await
        .expect("the handle relists");
    let local = cut_off.snapshot_at(b).map(|s| s.get("k").map(|v| *v));
    let fetched = cut_off
        .fetch_snapshot_at(b)
        .await
        .map(|s| s.get("k").map(|v| *v));
    for (what, outcome) in [("snapshot_at", &local), ("fetch_snapshot_at", &fetched)] {
        assert!(
            matches!(
                outcome,
                Ok(Some(2)) | Err(StateError::VersionCompacted { .. })
            ),
            "{what}({b:?}) = {outcome:?}: etcd held k = 2 at that revision (and has compacted it)"
        );
    }
    // A change stream from inside the gap would deliver the relist's
    // differences, which include changes made before it.
    assert!(matches!(
        cut_off.changes_since(b).err(),
        Some(StateError::VersionCompacted { .. })
    ));
}
