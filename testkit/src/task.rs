//! Task messages (v1) for tests: a builder whose defaults are a QuickFix task on
//! `acme/payments` asked by `dev1`, so a test states only what it is about.

use shared::task::{IssueRef, TriggerInfo};
use shared::{Mode, RepoUrl, TaskMessage, Tracker};

/// The repository every default task targets.
pub const REPO_URL: &str = "https://github.com/acme/payments";

/// A stable issue number for a task id (FNV-1a, folded into 1..=999_999): distinct tasks
/// get distinct issues, so the per-issue lock serializes them only when a test says so.
pub fn issue_number_of(id: &str) -> u64 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 999_999 + 1
}

/// Builds a [`TaskMessage`]; see the module doc for the defaults.
#[derive(Debug, Clone)]
pub struct TaskBuilder {
    task: TaskMessage,
}

impl TaskBuilder {
    /// A GitHub `issues.labeled` task with id `id` on the issue [`issue_number_of`]`(id)`.
    pub fn github(id: &str) -> Self {
        let number = issue_number_of(id);
        Self {
            task: TaskMessage {
                version: 1,
                task_id: id.to_owned(),
                mode: Mode::Quickfix,
                source: Tracker::Github,
                repo_url: RepoUrl::parse(REPO_URL).expect("url"),
                base_branch: None,
                issue: IssueRef {
                    tracker: Tracker::Github,
                    key: format!("acme/payments#{number}"),
                    number: Some(number),
                    title: "test".into(),
                    body: String::new(),
                    url: format!("{REPO_URL}/issues/1"),
                    labels: Vec::new(),
                    pull_request: false,
                },
                trigger_user: "dev1".into(),
                trigger: TriggerInfo {
                    event: "issues.labeled".into(),
                    delivery_id: id.into(),
                    received_at: chrono::Utc::now(),
                    comment_id: None,
                },
                approval: None,
                revision: None,
                instruction: None,
                review: None,
                checks: None,
                retry: None,
            },
        }
    }

    pub fn labels(mut self, labels: &[&str]) -> Self {
        self.task.issue.labels = labels.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The issue `number` of `acme/payments` (key and URL follow).
    pub fn issue(mut self, number: u64) -> Self {
        self.task.issue.number = Some(number);
        self.task.issue.key = format!("acme/payments#{number}");
        self.task.issue.url = format!("{REPO_URL}/issues/{number}");
        self
    }

    pub fn title(mut self, title: &str) -> Self {
        self.task.issue.title = title.into();
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.task.issue.body = body.into();
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.task.trigger_user = user.into();
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.task.mode = mode;
        self
    }

    pub fn build(self) -> TaskMessage {
        self.task
    }
}
