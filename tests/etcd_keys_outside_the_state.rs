//! (Found by review.) a key the mirror ignores wedges the writer.
//!
//! The mirror drops watch events whose key is *exactly* the prefix (the
//! empty state key) or not UTF-8 (`Mirror::strip` returns `None`), and when
//! that leaves a revision with no event it sends nothing for it. But the
//! txns of this crate cover those keys: `clear` deletes the whole prefix
//! range, and a transaction compares that *no key under the prefix* was put
//! after its snapshot. So:
//!
//! - `clear()` on a prefix whose only key is the bare prefix key (written
//!   e.g. by another state whose prefix has no trailing slash) gets a
//!   revision from etcd that the mirror never publishes: the caller waits
//!   for it forever, and so does every later `modify`/`transaction` of the
//!   handle and `close()`. Expected: `clear()` answers (the doc: "a write
//!   resolves only after the mirror has published its revision" must not
//!   become "never").
//! - after another process puts the bare prefix key once, every
//!   `transaction` of this idle handle conflicts (its snapshot revision is
//!   older than the ignored put), and `transaction_retrying` gives up with
//!   `Conflict` after 10 s although nobody is writing any more. Expected:
//!   the transaction commits.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix};
use thread_safe_state::Write;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_answers_when_the_bare_prefix_key_is_deleted() {
    let Some(endpoint) = endpoint("review_clear_bare_prefix_key") else {
        return;
    };
    let prefix = prefix("review-clear-bare");
    let state = connect(&endpoint, &prefix).await;
    // Another state whose prefix lacks the trailing slash: its key "/" is
    // etcd key `prefix` itself.
    let other = connect(&endpoint, prefix.trim_end_matches('/')).await;
    other.set("/", 7).await.unwrap();
    assert!(
        state.is_empty(),
        "the bare prefix key is no key of this state"
    );

    let cleared = tokio::time::timeout(Duration::from_secs(10), state.clear()).await;
    assert!(
        cleared.is_ok(),
        "clear() never answered: its revision (a delete of the bare prefix key) is never mirrored"
    );
    cleared.unwrap().unwrap();
    // The handle still writes afterwards.
    let modified = tokio::time::timeout(
        Duration::from_secs(10),
        state.modify("k", |_| thread_safe_state::Modification::Set(1)),
    )
    .await;
    assert!(modified.is_ok(), "a modify queued after it never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_commits_after_a_foreign_put_of_the_bare_prefix_key() {
    let Some(endpoint) = endpoint("review_txn_bare_prefix_key") else {
        return;
    };
    let prefix = prefix("review-txn-bare");
    let state = connect(&endpoint, &prefix).await;
    state.set("a", 1).await.unwrap();
    let other = connect(&endpoint, prefix.trim_end_matches('/')).await;
    other.set("/", 7).await.unwrap();
    drop(other);
    // Nobody writes from here on.
    let once = state
        .transaction(|s| Ok::<_, String>(vec![Write::set("a", *s.get("a").unwrap() + 1)]))
        .await;
    eprintln!("transaction: {once:?}");
    let retried = tokio::time::timeout(
        Duration::from_secs(30),
        state.transaction_retrying(|s| {
            Ok::<_, String>(vec![Write::set("a", *s.get("a").unwrap() + 1)])
        }),
    )
    .await
    .expect("transaction_retrying returns");
    assert!(
        retried.is_ok(),
        "an idle handle's transaction keeps conflicting on a key its mirror ignores: {retried:?}"
    );
}
