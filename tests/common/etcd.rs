//! What the etcd tests share: the server, a fresh prefix each, handles,
//! and etcd's JSON gateway for what the crate does not do itself.

use std::time::Duration;

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
