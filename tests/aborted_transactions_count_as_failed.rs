//! Regression (break round): `Metrics::failed_commands` counts "write
//! commands that failed with an error", and an aborted transaction is one
//! (its caller gets `TransactionError::Aborted`); it used to be counted as
//! a successful no-op.

use thread_safe_state::{ThreadSafeState, TransactionError, Write};

#[tokio::test]
async fn an_aborted_transaction_is_counted_as_a_failed_command() {
    let state = ThreadSafeState::<u64>::new();
    let result = state
        .transaction(|_| Err::<Vec<Write<u64>>, _>("insufficient funds"))
        .await;
    assert!(matches!(result, Err(TransactionError::Aborted(_))));

    let metrics = state.metrics();
    assert_eq!(metrics.writes, 1, "{metrics:?}");
    assert_eq!(metrics.writes_by_operation.transaction, 1, "{metrics:?}");
    assert_eq!(
        metrics.failed_commands, 1,
        "the caller got an error: {metrics:?}"
    );
}
