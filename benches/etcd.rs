//! The etcd backend against bare etcd-client calls on the same server, in
//! one run:
//!
//! - `etcd_get`: a local read of an etcd state (its mirror) against the
//!   in-memory state's `get`, 1,000 keys each.
//! - `etcd_set`: one awaited `set` (a txn, resolved once the handle's own
//!   mirror has published its revision) against a bare put followed by
//!   waiting for the watch to echo its revision: the least a client that
//!   wants read-your-writes from a watch cache does.
//! - `etcd_64_writers`: 64 tasks each doing awaited writes, against 64
//!   tasks doing bare puts (no watch), one client each way.
//!
//! The server is `TSS_ETCD_ENDPOINT` if set, or an `etcd` from `PATH` that
//! the bench starts on free loopback ports and stops.
//!
//! Run: `cargo bench --features etcd --bench etcd`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use thread_safe_state::etcd_client::{Client, EventType, Txn, TxnOp, WatchOptions, WatchStream};
use thread_safe_state::ThreadSafeState;

const KEYS: usize = 1_000;
const WRITERS: usize = 64;
const WRITES_PER_WRITER: usize = 16;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The etcd the bench runs against, stopped on drop if the bench
/// started it.
struct Server {
    endpoint: String,
    child: Option<Child>,
    data: Option<std::path::PathBuf>,
}

impl Server {
    fn get() -> Self {
        if let Ok(endpoint) = std::env::var("TSS_ETCD_ENDPOINT") {
            return Self {
                endpoint,
                child: None,
                data: None,
            };
        }
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client, peer) = (free(), free());
        let data = std::env::temp_dir().join(format!("tss-bench-etcd-{}", std::process::id()));
        let endpoint = format!("http://127.0.0.1:{client}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("no TSS_ETCD_ENDPOINT and no `etcd` on PATH to start");
        Self {
            endpoint,
            child: Some(child),
            data: Some(data),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(data) = &self.data {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

/// A fresh prefix for each state, so runs do not see each other's keys.
fn prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tss-bench/{name}/{nanos}/")
}

/// Connect, retrying while a just-started server comes up.
async fn connect(endpoint: &str, prefix: &str) -> ThreadSafeState<u64> {
    let started = Instant::now();
    loop {
        match ThreadSafeState::<u64>::builder()
            .etcd([endpoint], prefix)
            .connect()
            .await
        {
            Ok(state) => return state,
            Err(error) if started.elapsed() > Duration::from_secs(20) => {
                panic!("etcd at {endpoint}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn client(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.unwrap()
}

fn key(n: usize) -> String {
    format!("key-{n:04}")
}

fn get(c: &mut Criterion) {
    let server = Server::get();
    let rt = runtime();
    let etcd = rt.block_on(async {
        let state = connect(&server.endpoint, &prefix("get")).await;
        let items: Vec<_> = (0..KEYS).map(|n| (key(n), n as u64)).collect();
        for chunk in items.chunks(100) {
            state.update(chunk.to_vec()).await.unwrap();
        }
        state
    });
    let memory = rt.block_on(async {
        let state = ThreadSafeState::<u64>::new();
        state
            .update((0..KEYS).map(|n| (key(n), n as u64)))
            .await
            .unwrap();
        state
    });
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let mut group = c.benchmark_group("etcd_get");
    for (name, state) in [("etcd_mirror", &etcd), ("in_memory", &memory)] {
        let mut n = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                n = (n + 7) % KEYS;
                state.get(&keys[n])
            })
        });
    }
    group.finish();
    rt.block_on(etcd.close()).unwrap();
}

fn set(c: &mut Criterion) {
    let server = Server::get();
    let rt = runtime();
    let state = rt.block_on(connect(&server.endpoint, &prefix("set")));
    let bare_prefix = prefix("set-bare");
    let (mut kv, mut watch) = rt.block_on(async {
        let mut client = client(&server.endpoint).await;
        let stream = client
            .watch(
                bare_prefix.as_str(),
                Some(WatchOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        (client.kv_client(), stream)
    });
    let mut group = c.benchmark_group("etcd_set");
    let mut n = 0u64;
    group.bench_function("thread_safe_state", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(state.set(key(n as usize % KEYS), n)).unwrap()
        })
    });
    group.bench_function("bare_put_and_watch_echo", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(async {
                let key = format!("{bare_prefix}{}", key(n as usize % KEYS));
                let put = kv.put(key, n.to_string(), None).await.unwrap();
                let revision = put.header().unwrap().revision();
                echoed(&mut watch, revision).await
            })
        })
    });
    group.bench_function("bare_txn_and_watch_echo", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(async {
                let key = format!("{bare_prefix}{}", key(n as usize % KEYS));
                let txn = Txn::new().and_then([TxnOp::put(key, n.to_string(), None)]);
                let done = kv.txn(txn).await.unwrap();
                let revision = done.header().unwrap().revision();
                echoed(&mut watch, revision).await
            })
        })
    });
    group.finish();
    rt.block_on(state.close()).unwrap();
}

/// Wait for `watch` to deliver a put at `revision` or later.
async fn echoed(watch: &mut WatchStream, revision: i64) -> i64 {
    loop {
        let message = watch.message().await.unwrap().unwrap();
        let echoed = message.events().iter().any(|event| {
            event.event_type() == EventType::Put
                && event.kv().is_some_and(|kv| kv.mod_revision() >= revision)
        });
        if echoed {
            return revision;
        }
    }
}

fn sixty_four_writers(c: &mut Criterion) {
    let server = Server::get();
    let rt = runtime();
    let state = rt.block_on(connect(&server.endpoint, &prefix("writers")));
    let bare_prefix = prefix("writers-bare");
    let kv = rt.block_on(client(&server.endpoint)).kv_client();
    let mut group = c.benchmark_group("etcd_64_writers");
    group.throughput(Throughput::Elements((WRITERS * WRITES_PER_WRITER) as u64));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("thread_safe_state", "awaited set"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|writer| {
                        let state = state.clone();
                        tokio::spawn(async move {
                            for n in 0..WRITES_PER_WRITER {
                                state.set(format!("w{writer}"), n as u64).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("bare_put", "awaited put"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|writer| {
                        let mut kv = kv.clone();
                        let key = format!("{bare_prefix}w{writer}");
                        tokio::spawn(async move {
                            for n in 0..WRITES_PER_WRITER {
                                kv.put(key.as_str(), n.to_string(), None).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.finish();
    rt.block_on(state.close()).unwrap();
}

criterion_group!(benches, get, set, sixty_four_writers);
criterion_main!(benches);
