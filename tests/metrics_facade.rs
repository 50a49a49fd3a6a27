//! With the `metrics` feature, a state publishes its figures through the
//! `metrics` facade: a recorder installed before the state is built sees
//! them. Run: `cargo test --features metrics --test metrics_facade`.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use thread_safe_state::ThreadSafeState;

/// Every value recorded, by metric name and labels.
#[derive(Default)]
struct Seen {
    counters: BTreeMap<String, u64>,
    gauges: BTreeMap<String, f64>,
    histograms: BTreeMap<String, Vec<f64>>,
}

#[derive(Clone, Default)]
struct TestRecorder(Arc<Mutex<Seen>>);

/// One registered metric: its name with labels, and where it records.
struct Handle {
    name: String,
    seen: Arc<Mutex<Seen>>,
}

fn describe(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|label| format!("{}={}", label.key(), label.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .seen
            .lock()
            .unwrap()
            .counters
            .entry(self.name.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.seen
            .lock()
            .unwrap()
            .counters
            .insert(self.name.clone(), value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        *self
            .seen
            .lock()
            .unwrap()
            .gauges
            .entry(self.name.clone())
            .or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self
            .seen
            .lock()
            .unwrap()
            .gauges
            .entry(self.name.clone())
            .or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.seen
            .lock()
            .unwrap()
            .gauges
            .insert(self.name.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        let mut seen = self.seen.lock().unwrap();
        seen.histograms
            .entry(self.name.clone())
            .or_default()
            .push(value);
    }
}

impl TestRecorder {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        Arc::new(Handle {
            name: describe(key),
            seen: Arc::clone(&self.0),
        })
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

#[test]
fn an_installed_recorder_sees_every_figure() {
    let recorder = TestRecorder::default();
    // A current-thread runtime runs the writer on this thread, where the
    // local recorder is installed.
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let state = ThreadSafeState::builder().name("wf").build();
            state.set("a", 1).await.unwrap();
            state.set("b", 2).await.unwrap();
            state.delete("a").await.unwrap();
            let _ = state.get("b");
            let _ = state.snapshot();
            state.set("c", 3).await.unwrap(); // exports the reads above
        });
    });
    let seen = recorder.0.lock().unwrap();
    let counter = |name: &str| seen.counters.get(name).copied();
    assert_eq!(
        counter("thread_safe_state_writes_total{operation=set,state=wf}"),
        Some(3)
    );
    assert_eq!(
        counter("thread_safe_state_writes_total{operation=delete,state=wf}"),
        Some(1)
    );
    assert_eq!(
        counter("thread_safe_state_commits_total{state=wf}"),
        Some(4)
    );
    assert_eq!(
        counter("thread_safe_state_reads_total{kind=get,state=wf}"),
        Some(1)
    );
    assert_eq!(
        counter("thread_safe_state_reads_total{kind=snapshot,state=wf}"),
        Some(1)
    );
    assert_eq!(
        seen.gauges.get("thread_safe_state_version{state=wf}"),
        Some(&4.0)
    );
    let latencies = &seen.histograms["thread_safe_state_write_latency_seconds{state=wf}"];
    assert_eq!(latencies.len(), 4);
    assert!(
        latencies.iter().all(|&s| s > 0.0 && s < 10.0),
        "{latencies:?}"
    );
    assert_eq!(
        seen.histograms["thread_safe_state_group_size{state=wf}"],
        [1.0; 4]
    );
    assert_eq!(
        seen.histograms["thread_safe_state_commit_seconds{state=wf}"].len(),
        4
    );
}

/// Review (break round): states that share a name (the default is "")
/// share their exported series; the counters must add up, not overwrite
/// each other (a counter that falls reads as a reset to Prometheus).
#[test]
fn states_sharing_a_name_add_up_in_their_counters() {
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let a = ThreadSafeState::new();
            let b = ThreadSafeState::new();
            for i in 0..3 {
                a.set("k", i).await.unwrap();
            }
            b.set("k", 0).await.unwrap();
            let _ = a.get("k");
            let _ = b.get("k");
            a.set("k", 9).await.unwrap(); // exports a's read
            b.set("k", 9).await.unwrap(); // and b's
        });
    });
    let seen = recorder.0.lock().unwrap();
    let counter = |name: &str| seen.counters.get(name).copied();
    assert_eq!(
        counter("thread_safe_state_writes_total{operation=set,state=}"),
        Some(6),
        "{:?}",
        seen.counters
    );
    assert_eq!(counter("thread_safe_state_commits_total{state=}"), Some(6));
    assert_eq!(
        counter("thread_safe_state_reads_total{kind=get,state=}"),
        Some(2)
    );
}
