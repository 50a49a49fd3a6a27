//! What the etcd tests share: the server, a fresh prefix each, handles,
//! and etcd's JSON gateway for what the crate does not do itself.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thread_safe_state::{ThreadSafeState, Version};

pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// The shared server's endpoint, or `None` (skip) when it is not given
/// outside CI.
pub(crate) fn endpoint(test: &str) -> Option<String> {
    match std::env::var("TSS_ETCD_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if under_ci() => {
            panic!("TSS_ETCD_ENDPOINT is not set: CI must run the etcd tests against a server")
        }
        _ => {
            eprintln!("skipping {test}: set TSS_ETCD_ENDPOINT=http://127.0.0.1:PORT to run it");
            None
        }
    }
}

/// A prefix no other test (or earlier run) uses.
pub(crate) fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tss-test/{test}/{}-{nanos}/", std::process::id())
}

pub(crate) async fn connect(endpoint: &str, prefix: &str) -> ThreadSafeState<i64> {
    ThreadSafeState::<i64>::builder()
        .etcd([endpoint], prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to etcd")
}

/// Wait (bounded) until `state` has published `version`.
pub(crate) async fn caught_up(state: &ThreadSafeState<i64>, version: Version) {
    state
        .wait_for_timeout(
            |snapshot| snapshot.version() >= version,
            Duration::from_secs(10),
        )
        .await
        .expect("the mirror catches up");
}

/// Revoke lease `id` behind the crate's back (its keys go), as an
/// operator or another program would.
pub(crate) async fn revoke_lease(endpoint: &str, id: i64) {
    gateway_post(endpoint, "/v3/lease/revoke", &format!(r#"{{"ID":"{id}"}}"#)).await;
}

/// POST `body` to etcd's JSON gateway at `path` (a plain HTTP request: no
/// second client library in the tests); panics unless it answers 200.
pub(crate) async fn gateway_post(endpoint: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = endpoint.trim_start_matches("http://");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{path} failed: {response}"
    );
    response
}

/// An etcd process of the test's own, on free ports and a temp data dir.
pub(crate) struct OwnEtcd {
    child: Option<Child>,
    dir: std::path::PathBuf,
    client_port: u16,
    peer_port: u16,
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OwnEtcd {
    fn binary() -> Option<String> {
        let binary = std::env::var("TSS_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let found = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        found.then_some(binary)
    }

    pub(crate) fn start(test: &str) -> Option<Self> {
        if Self::binary().is_none() {
            assert!(
                !under_ci(),
                "the etcd binary is missing: CI must install it (etcd-server)"
            );
            eprintln!("skipping {test}: no etcd binary (set TSS_ETCD_BIN)");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("tss-etcd-{}-{}", std::process::id(), free_port()));
        let mut etcd = Self {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.spawn();
        Some(etcd)
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub(crate) fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(Self::binary().unwrap())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) async fn connect_retrying(endpoint: &str, prefix: &str) -> ThreadSafeState<i64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connected = ThreadSafeState::<i64>::builder()
            .etcd([endpoint], prefix)
            .request_timeout(Duration::from_millis(500))
            .connect()
            .await;
        match connected {
            Ok(state) => return state,
            Err(error) if Instant::now() < deadline => {
                eprintln!("waiting for etcd: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
}
