//! Fault injection under the real database: redb runs on a storage
//! backend that fails its syncs or writes (or reports a full disk) on
//! command, and the state must fail exactly the affected writes, publish
//! nothing of them, and lose nothing it acknowledged.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use redb::StorageBackend;

use crate::{StateError, ThreadSafeState, Version};

const HEALTHY: u8 = 0;
const FAIL_SYNC: u8 = 1;
const FAIL_WRITE: u8 = 2;
const DISK_FULL: u8 = 3;

/// A file backend with a switch.
#[derive(Debug)]
struct Faulty {
    file: redb::backends::FileBackend,
    mode: Arc<AtomicU8>,
}

impl Faulty {
    fn error(&self) -> io::Error {
        match self.mode.load(Ordering::SeqCst) {
            DISK_FULL => io::Error::from_raw_os_error(28), // ENOSPC
            _ => io::Error::other("injected I/O failure"),
        }
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.mode.load(Ordering::SeqCst) == DISK_FULL {
            return Err(self.error());
        }
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        if self.mode.load(Ordering::SeqCst) == FAIL_SYNC {
            return Err(self.error());
        }
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if matches!(self.mode.load(Ordering::SeqCst), FAIL_WRITE | DISK_FULL) {
            return Err(self.error());
        }
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }
}

struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("tss-fault-{name}-{}.redb", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn open_faulty(path: &Path, mode: &Arc<AtomicU8>) -> ThreadSafeState<u32> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let mode = Arc::clone(mode);
    ThreadSafeState::builder()
        .max_history(50)
        .durable(path)
        .checkpoint_every(5)
        .backend(move || {
            Box::new(Faulty {
                file: redb::backends::FileBackend::new(file).unwrap(),
                mode,
            })
        })
        .open()
        .await
        .unwrap()
}

async fn open_plain(path: &Path) -> ThreadSafeState<u32> {
    ThreadSafeState::builder()
        .max_history(50)
        .durable(path)
        .open()
        .await
        .unwrap()
}

/// One failure mode, end to end: acknowledged writes survive; the failed
/// group (several concurrent writes) is answered with `JournalFailed` and
/// never published; later writes fail fast; reads still work; after a
/// reopen on a healthy disk everything acknowledged is there, refused
/// writes are not, and the failed group is wholly absent (a failed write)
/// or, after a failed sync, wholly absent or wholly present.
async fn a_failure_loses_nothing_acknowledged(mode_on_failure: u8, name: &str) {
    let file = TempPath::new(name);
    let mode = Arc::new(AtomicU8::new(HEALTHY));
    let state = open_faulty(&file.0, &mode).await;
    let mut acknowledged = Vec::new();
    for n in 0..12 {
        acknowledged.push((
            format!("k{n}"),
            n,
            state.set(format!("k{n}"), n).await.unwrap(),
        ));
    }
    let before = state.version();
    let mut subscriber = state.subscribe();
    subscriber.borrow_and_update();

    mode.store(mode_on_failure, Ordering::SeqCst);
    let writes: Vec<_> = (0..8)
        .map(|n| {
            let state = state.clone();
            tokio::spawn(async move { state.set("failed", 100 + n).await })
        })
        .collect();
    for write in writes {
        let error = write.await.unwrap().unwrap_err();
        assert!(matches!(error, StateError::JournalFailed { .. }), "{error}");
        if mode_on_failure == DISK_FULL {
            let cause = std::error::Error::source(&error).unwrap().to_string();
            assert!(cause.contains("No space left"), "{cause}");
        }
    }
    // Nothing of it was published.
    assert_eq!(state.version(), before);
    assert_eq!(state.get("failed"), None);
    assert!(!subscriber.has_changed().unwrap());
    assert_eq!(state.history(None, None)[0].version, before);
    assert_eq!(
        state.snapshot_at(before.next()).unwrap_err(),
        StateError::FutureVersion {
            target: before.next(),
            current: before
        }
    );
    // The journal is unusable now, even if the disk recovers.
    mode.store(HEALTHY, Ordering::SeqCst);
    let refused = state.set("later", 1).await.unwrap_err();
    assert!(
        matches!(refused, StateError::JournalFailed { .. }),
        "{refused}"
    );
    assert_eq!(state.get("k3").as_deref(), Some(&3));
    let metrics = state.metrics();
    assert_eq!(metrics.failed_commands, 9);
    state.close().await.unwrap();

    let state = open_plain(&file.0).await;
    if mode_on_failure == FAIL_SYNC {
        // The data was written, only its sync failed: whether it reached
        // the disk is unknown (here it sits in the page cache and is
        // read back). Either the whole group is there or none of it.
        let failed_group = state.version().get() - before.get();
        assert!(failed_group <= 8, "{failed_group}");
        assert_eq!(state.get("failed").is_some(), failed_group > 0);
        assert_eq!(
            state
                .history(None, None)
                .iter()
                .filter(|r| r.key == "failed")
                .count() as u64,
            failed_group
        );
    } else {
        assert_eq!(state.version(), before);
        assert_eq!(state.get("failed"), None);
    }
    let before = state.version();
    for (key, value, version) in &acknowledged {
        let entry = state.snapshot().entry(key).cloned().unwrap();
        assert_eq!((**entry.value(), entry.modified()), (*value, *version));
    }
    assert_eq!(state.get("later"), None);
    // And it takes writes again, continuing the versions.
    assert_eq!(state.set("after", 1).await.unwrap(), before.next());
    state.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync() {
    a_failure_loses_nothing_acknowledged(FAIL_SYNC, "sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write() {
    a_failure_loses_nothing_acknowledged(FAIL_WRITE, "write").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk() {
    a_failure_loses_nothing_acknowledged(DISK_FULL, "full").await;
}

#[tokio::test]
async fn checkpoints_keep_the_log_bounded() {
    let file = TempPath::new("bounded");
    let state = ThreadSafeState::<u32>::builder()
        .max_history(10)
        .durable(&file.0)
        .checkpoint_every(20)
        .open()
        .await
        .unwrap();
    for n in 0..2000 {
        state.set(format!("k{}", n % 10), n).await.unwrap();
    }
    state.close().await.unwrap();
    let database = redb::Database::open(&file.0).unwrap();
    let transaction = redb::ReadableDatabase::begin_read(&database).unwrap();
    let log = transaction
        .open_table(redb::TableDefinition::<u64, &[u8]>::new("log"))
        .unwrap();
    let len = redb::ReadableTableMetadata::len(&log).unwrap();
    assert!((10..=30).contains(&len), "log holds {len} commits");
    drop((log, transaction, database));
    let state = ThreadSafeState::<u32>::builder()
        .max_history(10)
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    assert_eq!(state.version(), Version::new(2000));
    assert_eq!(state.history(None, None).len(), 10);
    assert_eq!(state.get("k9").as_deref(), Some(&1999));
    state.close().await.unwrap();
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    use crate::journal::format::{header, Header, FORMAT};
    let file = TempPath::new("format");
    let state = open_plain(&file.0).await;
    state.close().await.unwrap();
    let database = redb::Database::open(&file.0).unwrap();
    let transaction = database.begin_write().unwrap();
    {
        let mut table = transaction
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("header"))
            .unwrap();
        let newer = Header {
            format: FORMAT + 1,
            base: 0,
            value_type: "u32".into(),
        };
        table.insert("header", header(&newer).as_slice()).unwrap();
    }
    transaction.commit().unwrap();
    drop(database);
    let error = ThreadSafeState::<u32>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(error, crate::OpenError::NewerFormat { found, supported, .. } if found == FORMAT + 1 && supported == FORMAT),
        "{error}"
    );
}
