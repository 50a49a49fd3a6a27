//! (Found by review.) non-finite floats on etcd are acknowledged and then lost.
//!
//! serde_json writes `NaN` and `±inf` as `null`. The journal refuses them
//! (`src/journal/json.rs`, tests/durable_refuses_non_finite_floats.rs), but
//! the etcd txn builder encodes with plain `serde_json::to_vec`. So on etcd:
//! - `ThreadSafeState<f64>`: `set("x", f64::INFINITY)` returns `Ok`, etcd
//!   stores `null`, the mirror cannot decode it and commits the key as
//!   *absent*. As the key was absent already, that commit changes nothing
//!   and `apply_remote` skips it, so the revision is never published and
//!   the `set` never answers (the writer is wedged: see
//!   review_undecodable_revision_hangs.rs);
//! - `ThreadSafeState<Option<f64>>`: `Some(NaN)` comes back as `None`.
//!
//! Expected (as for the journal, `StateError::NotSerializable`): a value
//! etcd cannot hold faithfully is refused before it is sent, never
//! acknowledged and then read back as something else.

mod common;

use std::time::Duration;

use common::etcd::{endpoint, prefix};
use thread_safe_state::{StateError, ThreadSafeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_float_is_refused_or_read_back() {
    let Some(endpoint) = endpoint("review_etcd_inf") else {
        return;
    };
    let state = ThreadSafeState::<f64>::builder()
        .etcd([endpoint.as_str()], prefix("review-etcd-inf"))
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let written = tokio::time::timeout(Duration::from_secs(10), state.set("x", f64::INFINITY))
        .await
        .expect("set(x, inf) never answered");
    match written {
        Err(StateError::NotSerializable { .. }) => {}
        Ok(_) => assert_eq!(
            state.get("x").as_deref(),
            Some(&f64::INFINITY),
            "set(x, inf) was acknowledged, but the key reads back as absent"
        ),
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn some_nan_does_not_come_back_as_none() {
    let Some(endpoint) = endpoint("review_etcd_nan") else {
        return;
    };
    let state = ThreadSafeState::<Option<f64>>::builder()
        .etcd([endpoint.as_str()], prefix("review-etcd-nan"))
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let written = state.set("x", Some(f64::NAN)).await;
    match written {
        Err(StateError::NotSerializable { .. }) => {}
        Ok(_) => {
            let read = state.get("x");
            assert!(
                read.as_deref().is_some_and(|v| v.is_some_and(f64::is_nan)),
                "set(x, Some(NaN)) was acknowledged, but reads back as {read:?}"
            );
        }
        Err(other) => panic!("{other:?}"),
    }
}
