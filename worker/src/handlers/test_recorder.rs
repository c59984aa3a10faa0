//! TEST ONLY (`WORKER_HANDLER=test`): a handler that records each task it handles, and can
//! sleep and fail on demand, so that the runtime's delivery guarantees can be proven with
//! real processes and the real broker. It never touches a tracker, git or an LLM.
//!
//! Behaviour comes from the task's labels:
//! - `test:sleep=<ms>`: sleep (cancellable) before finishing;
//! - `test:fail=transient|permanent|unsupported|panic`: end that way;
//! - `test:fail-first=<n>`: fail transiently on the first n attempts, then succeed.
//!
//! Files in `TEST_HANDLER_DIR`, named after the task id (`:`, `/`, `#` replaced by `_`):
//! `<id>.started` gets a line per attempt as it starts, `<id>.done` a line per completed
//! run, `<id>.exhausted` the reason when the last attempt failed, `<id>.cancelled` the
//! cancel that stopped it (`cancel=<cancel id> by=<who>`); `<cancel id>.recorded` a line
//! per time the durable cancel queue's consumer recorded that cancel. Each line is
//! `pid=<pid> attempt=<n> workdir=<path>`.

use crate::runtime::handler::{TaskContext, TaskError, TaskHandler};
use shared::TaskMessage;
use shared::control::ControlMessage;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct TestRecorder {
    record_dir: PathBuf,
}

impl TestRecorder {
    pub fn new(record_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&record_dir)?;
        Ok(Self { record_dir })
    }
}

/// The record file name for a task id.
pub fn record_name(task_id: &str) -> String {
    task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")?;
    file.sync_all()
}

fn directive<'a>(task: &'a TaskMessage, key: &str) -> Option<&'a str> {
    task.issue.labels.iter().find_map(|label| {
        label
            .strip_prefix("test:")?
            .strip_prefix(key)?
            .strip_prefix('=')
    })
}

impl TaskHandler for TestRecorder {
    async fn handle(&self, task: &TaskMessage, ctx: &TaskContext) -> Result<(), TaskError> {
        let base = self.record_dir.join(record_name(&task.task_id));
        let line = format!(
            "pid={} attempt={} workdir={}",
            std::process::id(),
            ctx.attempt,
            ctx.workdir.display()
        );
        let io = |e: std::io::Error| TaskError::Transient(e.to_string());
        // Prove the dir is ours and usable, as a clone would.
        std::fs::write(ctx.workdir.join("scratch.txt"), &task.task_id).map_err(io)?;
        append(&base.with_extension("started"), &line).map_err(io)?;
        if let Some(ms) = directive(task, "sleep").and_then(|v| v.parse().ok()) {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                () = ctx.cancel.cancelled() => return Err(TaskError::Transient("cancelled".into())),
            }
        }
        if let Some(n) = directive(task, "fail-first").and_then(|v| v.parse::<u32>().ok())
            && ctx.attempt <= n
        {
            return Err(TaskError::Transient(format!(
                "failing attempt {} of the first {n}",
                ctx.attempt
            )));
        }
        match directive(task, "fail") {
            Some("transient") => return Err(TaskError::Transient("asked to fail".into())),
            Some("permanent") => return Err(TaskError::Permanent("asked to fail".into())),
            Some("unsupported") => return Err(TaskError::Unsupported("asked to refuse".into())),
            Some("panic") => panic!("test handler asked to panic"),
            _ => {}
        }
        append(&base.with_extension("done"), &line).map_err(io)
    }

    async fn report_exhausted(&self, task: &TaskMessage, reason: &str) {
        let base = self.record_dir.join(record_name(&task.task_id));
        if let Err(error) = append(&base.with_extension("exhausted"), reason) {
            tracing::warn!(%error, "cannot record the exhausted task");
        }
    }

    async fn cancelled(&self, task: &TaskMessage, cancel: &ControlMessage) {
        let base = self.record_dir.join(record_name(&task.task_id));
        let line = format!("cancel={} by={}", cancel.cancel_id, cancel.requested_by);
        if let Err(error) = append(&base.with_extension("cancelled"), &line) {
            tracing::warn!(%error, "cannot record the cancel");
        }
    }

    async fn record_cancel(&self, cancel: &ControlMessage) -> Result<(), TaskError> {
        let base = self.record_dir.join(record_name(&cancel.cancel_id));
        let line = format!("pid={} issue={}", std::process::id(), cancel.issue_key);
        append(&base.with_extension("recorded"), &line)
            .map_err(|e| TaskError::Transient(e.to_string()))
    }
}
