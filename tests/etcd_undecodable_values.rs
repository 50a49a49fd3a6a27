//! (Found by review.) a revision that changes nothing the mirror can see is never
//! published, so a write that made it never answers.
//!
//! The mirror turns a put whose value does not decode as `V` into a
//! deletion, and `Committer::apply_remote` skips a revision whose changes
//! are all no-ops (deleting a key that is already absent). The writer,
//! though, answers a caller only once the mirror has published the txn's
//! revision. So with a key under the prefix that does not decode as `V`
//! (another process of another type, an older schema):
//!
//! - `delete(key)` deletes it in etcd (a real revision), the mirror sees a
//!   deletion of a key it already shows as absent, commits nothing, and the
//!   `delete` waits forever; every later `modify`/`transaction`/`rollback`
//!   of the handle, and `close()`, wait behind it.
//! - after another process puts an undecodable value under the prefix,
//!   the handle's version stays below that revision, so every
//!   `transaction` fails the "nothing put after the snapshot" compare, even
//!   one that never touches that key, long after the last foreign write
//!   (and `transaction_retrying` gives up with `Conflict` after 10 s).
//!
//! Expected: both answer — the revision is published (an empty commit, as
//! a relist does) so the version reaches it.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix};
use thread_safe_state::{ThreadSafeState, Write};

async fn foreign(endpoint: &str, prefix: &str) -> ThreadSafeState<String> {
    ThreadSafeState::<String>::builder()
        .etcd([endpoint], prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_undecodable_key_answers() {
    let Some(endpoint) = endpoint("review_delete_undecodable") else {
        return;
    };
    let prefix = prefix("review-delete-undecodable");
    let state = connect(&endpoint, &prefix).await; // i64
    let other = foreign(&endpoint, &prefix).await; // String
    let v = other.set("x", "not a number".into()).await.unwrap();
    state
        .wait_for_timeout(|s| s.version() >= v, Duration::from_secs(5))
        .await
        .ok(); // not published either (see the second test): do not insist
    assert!(!state.contains_key("x"));

    let deleted = tokio::time::timeout(Duration::from_secs(10), state.delete("x")).await;
    assert!(
        deleted.is_ok(),
        "delete of a key whose value does not decode never answered"
    );
    deleted.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_commits_after_a_foreign_undecodable_put() {
    let Some(endpoint) = endpoint("review_txn_undecodable") else {
        return;
    };
    let prefix = prefix("review-txn-undecodable");
    let state = connect(&endpoint, &prefix).await;
    state.set("a", 1).await.unwrap();
    let other = foreign(&endpoint, &prefix).await;
    other.set("note", "hello".into()).await.unwrap();
    drop(other);
    // Nobody writes from here on; give every mirror time to catch up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let once = state
        .transaction(|s| Ok::<_, String>(vec![Write::set("a", *s.get("a").unwrap() + 1)]))
        .await;
    assert!(
        once.is_ok(),
        "a transaction that neither reads nor writes `note`, 2 s after the last foreign write, conflicts: {once:?}"
    );
}
