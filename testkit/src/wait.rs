//! Waiting for something to become true, bounded: tests poll a condition against a deadline
//! instead of sleeping a guessed time, so they are as fast as the system and fail with a name.
//! The same for a service's readiness over HTTP (a bench's ingest in a child process).

use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(25);

/// Polls `condition` until it holds or `within` passes (then panics naming `what`).
pub async fn wait_until<F: FnMut() -> bool>(what: &str, within: Duration, mut condition: F) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `GET <base>/readyz` until it answers 200 or `within` passes (then panics).
pub async fn wait_http_ready(base: &str, within: Duration) {
    let client = reqwest::Client::new();
    let url = format!("{base}/readyz");
    let deadline = Instant::now() + within;
    loop {
        let status = client.get(&url).send().await.map(|r| r.status().as_u16());
        if status.is_ok_and(|s| s == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `probe` until its answer satisfies `done` or `within` passes (then panics naming
/// `what` and the last answer); returns the answer that did.
pub async fn poll_until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> F,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let answer = probe().await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what} (last: {answer:?})"
        );
        tokio::time::sleep(POLL).await;
    }
}
