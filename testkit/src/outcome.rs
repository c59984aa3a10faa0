//! The outcome of a task as the worker logs it: the `task finished` JSON log line carries
//! `task_id` and `outcome` (`done`, `failed`, ...). Tests read it from the worker's log file.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// How long a task may take to finish before the assertion gives up.
pub const FINISH_WITHIN: Duration = Duration::from_secs(60);

/// The JSON lines of a log file (other lines skipped; a missing file is empty).
pub fn json_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The outcome of the last `task finished` line of task `id` in `log`, once there is one.
pub async fn logged_outcome(log: &Path, id: &str) -> String {
    let mut outcome = String::new();
    crate::wait_until(&format!("{id} finished"), FINISH_WITHIN, || {
        outcome = json_lines(log)
            .iter()
            .rev()
            .find(|l| l["task_id"] == id && l["message"] == "task finished")
            .and_then(|l| l["outcome"].as_str().map(str::to_owned))
            .unwrap_or_default();
        !outcome.is_empty()
    })
    .await;
    outcome
}

/// Waits for task `id` to finish and asserts its outcome is `want` (the log on failure).
pub async fn assert_outcome(log: &Path, id: &str, want: &str) {
    let outcome = logged_outcome(log, id).await;
    assert_eq!(
        outcome,
        want,
        "outcome of {id}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
