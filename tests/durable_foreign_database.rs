//! Regression (found by review; failed before the fix): an existing redb database that is not a journal is
//! silently adopted as a new, empty journal (and written to).
//!
//! `Store::open` treats a missing `header` table as "new journal" and
//! creates the journal's tables in whatever redb file it was given. A path
//! that points at some other application's redb database (a typo, a
//! config mix-up) opens as an *empty* state, and the journal's tables are
//! added to the foreign file.
//!
//! Expected behaviour (`OpenError` docs: "Nothing was changed on disk,
//! except that a missing file is created"; `OpenError::Corrupt`: "... or it
//! is not a journal at all"; README: "A damaged file ... is an
//! `OpenError`, never a panic or a silently empty state"): opening an
//! existing file that is not a journal is an error and leaves it alone.

mod common;

use common::TempPath;
use std::path::PathBuf;

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition, TableHandle};
use thread_safe_state::{OpenError, ThreadSafeState};

const USERS: TableDefinition<&str, u64> = TableDefinition::new("users");

#[tokio::test]
async fn another_applications_redb_file_is_not_opened_as_an_empty_journal() {
    let file = TempPath::new("foreign-redb");
    {
        let db = redb::Database::create(&file.0).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut users = txn.open_table(USERS).unwrap();
            users.insert("alice", 1).unwrap();
            users.insert("bob", 2).unwrap();
        }
        txn.commit().unwrap();
    }

    let opened = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .open()
        .await;
    let tables_after = |path: &PathBuf| {
        let db = redb::Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let mut names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        names.sort();
        let users = txn.open_table(USERS).unwrap().len().unwrap();
        (names, users)
    };
    match opened {
        Ok(state) => {
            let len = state.len();
            state.close().await.unwrap();
            let (tables, _) = tables_after(&file.0);
            panic!(
                "a foreign redb database opened as a journal with {len} keys; its tables are now {tables:?}"
            );
        }
        Err(error) => {
            assert!(matches!(error, OpenError::Corrupt { .. }), "{error}");
            assert_eq!(tables_after(&file.0), (vec!["users".to_owned()], 2));
        }
    }
}
