//! A workflow that survives being killed.
//!
//! Ten agent tasks are marked done one by one in a durable state: each
//! mark is a write that is on disk before `set` returns, with a history
//! record saying who wrote it.
//!
//! 1. This program starts a copy of itself (`--child`) that works through
//!    the tasks, and kills it (`Child::kill`: SIGKILL on Unix, no chance to
//!    clean up) after it reported its fourth task done.
//! 2. It then opens the same file itself: the tasks the child finished are
//!    there, with the version counter and the history window, and it
//!    finishes the rest.
//!
//! ```text
//! cargo run --example resume --features durable
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use thread_safe_state::ThreadSafeState;

/// How many tasks the workflow has.
const TASKS: usize = 10;
/// The child is killed after reporting this many tasks done.
const KILL_AFTER: usize = 4;

fn task_key(task: usize) -> String {
    format!("task/{task:02}")
}

/// Open (or create) the workflow's journal.
async fn open(path: &Path) -> Result<ThreadSafeState<String>, Box<dyn std::error::Error>> {
    let state = ThreadSafeState::<String>::builder()
        .max_history(100)
        .durable(path)
        .open()
        .await?;
    Ok(state)
}

/// Mark every task that is not done yet, one durable write each, as the
/// agent `agent`; `pause` stands for the work a task takes.
async fn work(
    state: &ThreadSafeState<String>,
    agent: &str,
    pause: Duration,
    report: impl Fn(usize, u64),
) -> Result<(), Box<dyn std::error::Error>> {
    let worker = state.for_agent(agent);
    for task in 1..=TASKS {
        if state.contains_key(&task_key(task)) {
            continue; // done before: skip it
        }
        tokio::time::sleep(pause).await; // the task's "work"
        let version = worker
            .set(task_key(task), format!("done by {agent}"))
            .await?;
        // `set` has returned: the write is synced to the file.
        report(task, version.get());
    }
    Ok(())
}

/// The child: work slowly and report each task on stdout, until killed.
async fn child(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let state = open(path).await?;
    work(
        &state,
        "worker-1",
        Duration::from_millis(100),
        |task, version| {
            let mut out = std::io::stdout().lock();
            // The parent reads these lines as they come.
            let _ = writeln!(out, "done {task} {version}");
            let _ = out.flush();
        },
    )
    .await?;
    state.close().await?;
    Ok(())
}

/// Run the child until it has reported `KILL_AFTER` tasks, then kill it.
fn run_child_and_kill_it(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let mut reported = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("  child: {line}");
        if line.starts_with("done ") {
            reported += 1;
            if reported == KILL_AFTER {
                break;
            }
        }
    }
    child.kill()?; // SIGKILL: the child gets no chance to close anything
    child.wait()?;
    println!("killed the child after it reported {reported} tasks done\n");
    Ok(())
}

/// The parent: let a child start the workflow, kill it, then reopen the
/// same file here and finish.
async fn parent(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("journal: {}\n", path.display());
    println!("1. a child process starts the workflow");
    run_child_and_kill_it(path)?;

    println!("2. reopen the file in this process");
    let state = open(path).await?;
    println!("recovered version: {}", state.version());
    let done: Vec<usize> = (1..=TASKS)
        .filter(|&task| state.contains_key(&task_key(task)))
        .collect();
    println!("tasks done: {done:?} of {TASKS}");

    println!("history window (oldest first):");
    for record in state.history(None, None).iter().rev() {
        println!(
            "  v{:<2} {:?} {} = {:?} by {}",
            record.version,
            record.operation,
            record.key,
            record.new_value.as_deref(),
            record.changed_by.as_deref().unwrap_or("-"),
        );
    }

    println!("\n3. finish the remaining tasks");
    work(&state, "resumed", Duration::ZERO, |task, version| {
        println!("  task {task} done at version {version}");
    })
    .await?;

    // Every task done, each by exactly one durable write.
    assert!((1..=TASKS).all(|task| state.contains_key(&task_key(task))));
    assert_eq!(state.version().get(), TASKS as u64);
    println!("\nall {TASKS} tasks done; version {}", state.version());
    state.close().await?; // releases the file
    Ok(())
}

/// Removes the journal when the example ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = args.as_slice() {
        if flag == "--child" {
            return child(Path::new(path)).await;
        }
    }
    let path = std::env::temp_dir().join(format!("resume-example-{}.redb", std::process::id()));
    let _remove = RemoveOnDrop(path.clone());
    parent(&path).await
}
