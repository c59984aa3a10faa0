//! Waiting for something to become true, bounded: tests poll a condition against a deadline
//! instead of sleeping a guessed time, so they are as fast as the system and fail with a name.

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
