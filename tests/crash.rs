//! Crash test with a real kill: the journal must hold every acknowledged
//! write, and never part of one, after the process dies at a random moment.
//!
//! The parent test (`kill_and_recover`) runs this test binary again as a
//! child process that executes only `crash_child`, with the journal's path
//! in an environment variable. The child opens the durable state on a
//! multi-thread runtime and runs [`TASKS`] writer tasks; each one commits
//! `a/<task>` and `b/<task>` to the same counter `n` in one `update`
//! (continuing from the recovered value) and, once the write is
//! acknowledged, prints `ack <task> <n> <version>` and flushes.
//!
//! The parent reads the child's stdout on a thread, kills the child with
//! `Child::kill` (SIGKILL on Unix) 20 to 300 ms after its first ack, then
//! reopens the file and checks:
//!
//! - `a/<task>` == `b/<task>` for every task (no half-committed batch), and
//!   both are at least the last acknowledged `n`;
//! - `version()` is at least the highest acknowledged version;
//! - the history window holds contiguous versions ending at `version()`,
//!   each one a two-key update by the task whose keys it names;
//!
//! then closes the state and starts the next child on the same file, whose
//! versions must continue above the recovered one.
//!
//! Environment: `TSS_CRASH_KILLS` (kill cycles, default 20),
//! `TSS_CRASH_SEED` (seed of the kill delays; printed in the summary).
//! `TSS_CRASH_JOURNAL` is set only for the child: without it `crash_child`
//! does nothing, so a normal `cargo test` run passes it at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use thread_safe_state::{Operation, ThreadSafeState, Version};

/// Carries the journal's path to the child (and makes it a child).
const JOURNAL_VAR: &str = "TSS_CRASH_JOURNAL";
const KILLS_VAR: &str = "TSS_CRASH_KILLS";
const SEED_VAR: &str = "TSS_CRASH_SEED";
/// The child test's name, run with `--exact`.
const CHILD_TEST: &str = "crash_child";

/// Writer tasks in the child.
const TASKS: usize = 16;
/// Small window and frequent checkpoints, so kills land during both
/// appends and checkpoints, and recovery reads the base and the log.
const MAX_HISTORY: usize = 64;
const CHECKPOINT_EVERY: u64 = 16;
/// A child nobody killed (its parent died) ends on its own after this.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// How long the parent waits for a child's first ack.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(30);

fn key_a(task: usize) -> String {
    format!("a/{task}")
}

fn key_b(task: usize) -> String {
    format!("b/{task}")
}

async fn open(path: &Path) -> ThreadSafeState<u64> {
    ThreadSafeState::<u64>::builder()
        .max_history(MAX_HISTORY)
        .durable(path)
        .checkpoint_every(CHECKPOINT_EVERY)
        .open()
        .await
        .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()))
}

// ---------------------------------------------------------------- child --

/// The child process: write until killed. A no-op without the variable.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(JOURNAL_VAR) else {
        return;
    };
    let path = PathBuf::from(path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = open(&path).await;
        // Ends the harness's `test crash_child ... ` line; the parent
        // checks that this child starts where the last one was recovered.
        emit(&format!("\nstart {}", state.version().get()));
        for task in 0..TASKS {
            let state = state.for_agent(format!("task-{task}"));
            tokio::spawn(async move {
                let mut n = state.get(&key_a(task)).map_or(0, |n| *n);
                loop {
                    n += 1;
                    match state.update([(key_a(task), n), (key_b(task), n)]).await {
                        Ok(version) => emit(&format!("ack {task} {n} {}", version.get())),
                        Err(error) => {
                            emit(&format!("error {task} {error}"));
                            std::process::exit(3);
                        }
                    }
                }
            });
        }
        tokio::time::sleep(CHILD_LIFETIME).await;
        emit("expired");
        std::process::exit(4);
    });
}

/// One line to stdout, flushed before returning. The parent is gone if
/// stdout is: end quietly rather than write on.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(5);
    }
}

// --------------------------------------------------------------- parent --

/// What the child printed.
#[derive(Debug)]
enum Event {
    Start(u64),
    Ack { task: usize, n: u64, version: u64 },
    Other(String),
}

fn parse(line: &str) -> Event {
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    match words.first() {
        Some(&"start") => {
            if let Some(version) = number(1) {
                return Event::Start(version);
            }
        }
        Some(&"ack") => {
            if let (Some(task), Some(n), Some(version)) = (number(1), number(2), number(3)) {
                return Event::Ack {
                    task: task as usize,
                    n,
                    version,
                };
            }
        }
        _ => {}
    }
    Event::Other(line.to_owned())
}

/// xorshift64*: deterministic kill delays, no dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// What one child did, as far as its stdout tells.
#[derive(Default)]
struct Run {
    start: Option<u64>,
    /// Last acknowledged `n` per task.
    last_n: BTreeMap<usize, u64>,
    acks: u64,
    max_version: u64,
    min_version: u64,
    other: Vec<String>,
}

/// Removes the journal when the test ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child that outlives a failing parent would write on for a while.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a child on `path`, kill it `delay` after its first ack, and
/// return everything it printed.
fn run_child(path: &Path, delay: Duration) -> Run {
    let exe = std::env::current_exe().unwrap();
    let mut child = Killed(
        Command::new(exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(JOURNAL_VAR, path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the child"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (sender, events) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            if sender.send(parse(&line)).is_err() {
                break;
            }
        }
    });

    let mut run = Run {
        min_version: u64::MAX,
        ..Run::default()
    };
    let record = |run: &mut Run, event: Event| match event {
        Event::Start(version) => run.start = Some(version),
        Event::Ack { task, n, version } => {
            let last = run.last_n.entry(task).or_insert(0);
            assert!(n > *last, "task {task} acknowledged {n} after {last}");
            *last = n;
            run.acks += 1;
            run.max_version = run.max_version.max(version);
            run.min_version = run.min_version.min(version);
        }
        Event::Other(line) => run.other.push(line),
    };

    // Wait for the first ack, then let the load run a random while.
    let deadline = Instant::now() + FIRST_ACK_TIMEOUT;
    while run.acks == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => record(&mut run, event),
            Err(error) => panic!(
                "no ack from the child ({error:?}); it printed {:?}, exit {:?}",
                run.other,
                child.0.try_wait()
            ),
        }
    }
    thread::sleep(delay);
    if let Some(status) = child.0.try_wait().unwrap() {
        panic!(
            "the child exited on its own ({status}); it printed {:?}",
            run.other
        );
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The pipe is closed now: every line the child wrote is still read.
    reader.join().unwrap();
    for event in events.try_iter() {
        record(&mut run, event);
    }
    assert!(
        !run.other
            .iter()
            .any(|line| line.starts_with("error") || line.starts_with("expired")),
        "the child failed: {:?}",
        run.other
    );
    run
}

/// Reopen the journal after a kill and check it against what the child
/// acknowledged. Returns the recovered version and counters.
fn check_recovered(
    state: &ThreadSafeState<u64>,
    run: &Run,
    before: &BTreeMap<usize, u64>,
    cycle: u64,
) -> BTreeMap<usize, u64> {
    let version = state.version().get();
    assert!(
        version >= run.max_version,
        "cycle {cycle}: recovered version {version} < acknowledged {}",
        run.max_version
    );

    // Keys: both or neither of a task's keys, equal, never behind an ack
    // or behind the previous recovery.
    let snapshot = state.snapshot();
    assert_eq!(snapshot.version().get(), version);
    let mut counters = BTreeMap::new();
    for task in 0..TASKS {
        let (a, b) = (snapshot.entry(&key_a(task)), snapshot.entry(&key_b(task)));
        let n = match (a, b) {
            (None, None) => 0,
            (Some(a), Some(b)) => {
                assert_eq!(
                    a.value(),
                    b.value(),
                    "cycle {cycle}: task {task} half committed"
                );
                assert_eq!(a.modified(), b.modified(), "cycle {cycle}: task {task}");
                assert!(a.created() <= a.modified() && a.modified().get() <= version);
                **a.value()
            }
            _ => panic!("cycle {cycle}: task {task} has one key of two: {a:?} {b:?}"),
        };
        let acked = run.last_n.get(&task).copied().unwrap_or(0);
        assert!(
            n >= acked,
            "cycle {cycle}: task {task} recovered {n}, acknowledged {acked}: lost"
        );
        let previous = before.get(&task).copied().unwrap_or(0);
        assert!(
            n >= previous,
            "cycle {cycle}: task {task} went from {previous} to {n}"
        );
        counters.insert(task, n);
    }
    // Every version is one task's increment, nothing else writes: the
    // counts add up to the version exactly.
    let counted: u64 = counters.values().sum();
    assert_eq!(
        counted, version,
        "cycle {cycle}: counts do not add up to the version"
    );

    // History: contiguous versions ending at `version`, the whole window,
    // each one an update of one task's two keys to the same value.
    let history = state.history(None, None);
    let mut by_version: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for record in &history {
        by_version
            .entry(record.version.get())
            .or_default()
            .push(record);
    }
    let versions: Vec<u64> = by_version.keys().copied().collect();
    let window = (MAX_HISTORY as u64).min(version);
    let expected: Vec<u64> = (version + 1 - window..=version).collect();
    assert_eq!(versions, expected, "cycle {cycle}: history versions");
    assert!(
        history.windows(2).all(|w| w[0].version >= w[1].version),
        "cycle {cycle}: history is not newest first"
    );
    for (&at, records) in &by_version {
        let keys: BTreeSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(records.len(), 2, "cycle {cycle}: version {at}: {records:?}");
        let task: usize = records[0].key[2..].parse().unwrap();
        assert_eq!(
            keys,
            BTreeSet::from([key_a(task).as_str(), key_b(task).as_str()]),
            "cycle {cycle}: version {at}"
        );
        let agent = format!("task-{task}");
        for record in records {
            assert_eq!(
                record.operation,
                Operation::Update,
                "cycle {cycle}: version {at}"
            );
            assert_eq!(record.changed_by.as_deref(), Some(agent.as_str()));
            assert!(record.new_value.is_some());
        }
        assert_eq!(records[0].new_value, records[1].new_value);
        assert_eq!(records[0].old_value, records[1].old_value);
        let new = **records[0].new_value.as_ref().unwrap();
        let old = records[0].old_value.as_deref().copied().unwrap_or(0);
        assert_eq!(new, old + 1, "cycle {cycle}: version {at} skips a count");
    }

    // The oldest retained version is still a consistent whole state.
    if let Some(&oldest) = versions.first() {
        let past = state.snapshot_at(Version::new(oldest)).unwrap();
        for task in 0..TASKS {
            assert_eq!(past.get(&key_a(task)), past.get(&key_b(task)));
        }
    }
    counters
}

#[test]
fn kill_and_recover() {
    if std::env::var_os(JOURNAL_VAR).is_some() {
        return; // a child runs only `crash_child`
    }
    let kills = env_u64(KILLS_VAR).unwrap_or(20);
    let seed = env_u64(SEED_VAR).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let mut random = XorShift::new(seed);
    let path = std::env::temp_dir().join(format!("tss-crash-{}-{seed:x}.redb", std::process::id()));
    let _cleanup = TempFile(path.clone());
    let _ = std::fs::remove_file(&path);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut recovered_version = 0;
    let mut counters = BTreeMap::new();
    let mut total_acks = 0;
    for cycle in 0..kills {
        let delay = Duration::from_millis(random.between(20, 300));
        let run = run_child(&path, delay);

        // The child started exactly where the last recovery left the file,
        // and its versions continue above it.
        assert_eq!(
            run.start,
            Some(recovered_version),
            "cycle {cycle}: child started elsewhere; it printed {:?}",
            run.other
        );
        assert!(
            run.min_version > recovered_version,
            "cycle {cycle}: version {} acknowledged again (recovered {recovered_version})",
            run.min_version
        );

        runtime.block_on(async {
            let state = open(&path).await;
            counters = check_recovered(&state, &run, &counters, cycle);
            recovered_version = state.version().get();
            state.close().await.unwrap();
        });
        total_acks += run.acks;
        eprintln!(
            "crash cycle {cycle}: killed {delay:?} after the first ack; {} acks, \
             highest acknowledged {}, recovered {recovered_version}",
            run.acks, run.max_version
        );
    }

    println!(
        "crash summary: {kills} kills, {total_acks} acks checked, max version {recovered_version}, \
         seed {seed} ({SEED_VAR}), {:.1?}",
        started.elapsed()
    );
    assert!(
        total_acks >= kills,
        "every cycle acknowledges at least one write"
    );
}
