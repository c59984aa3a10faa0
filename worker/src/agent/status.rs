//! The status comment: one per issue, edited in place as the task moves through its
//! checklist, found again by its marker (hidden on GitHub, a visible last line on Jira).
//! Its task line says which task wrote it, how it ended and in which mode (what `/retry`
//! runs again, with the approval, review or checks it needs); its cancel line keeps the
//! newest `/cancel`, so a task of the issue asked for before it is skipped when it starts.
//! Both are read back by [`Prior::of`] from the agent's own comments only.

mod markers;

use markers::token;
pub use markers::{CancelMark, Prior, TaskLine};
use shared::TaskMessage;
use shared::task::{Approval, ChecksRef, ReviewRef};

pub const GITHUB_MARKER: &str = "<!-- agent-fleet:status -->";
pub const JIRA_MARKER: &str = "agent-fleet:status";

/// One line of the checklist every mode shows, in order. A mode names its own steps (an
/// enum in its module) and says which line each one ticks; the labels are what people and
/// tests read on the issue, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Queued,
    Cloned,
    Context,
    Llm,
    Syntax,
    Pushed,
    Pr,
}

impl Step {
    /// The checklist, in order.
    pub const ALL: [Step; 7] = [
        Step::Queued,
        Step::Cloned,
        Step::Context,
        Step::Llm,
        Step::Syntax,
        Step::Pushed,
        Step::Pr,
    ];

    /// The line's text on the status comment.
    pub fn label(self) -> &'static str {
        match self {
            Step::Queued => "queued",
            Step::Cloned => "cloned",
            Step::Context => "context",
            Step::Llm => "LLM",
            Step::Syntax => "syntax",
            Step::Pushed => "pushed",
            Step::Pr => "PR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Working,
    Done,
    WaitingForApproval,
    Failed(String),
    Refused(String),
    /// Stopped by `/cancel` (who asked, as the headline shows them: `@login`).
    Cancelled(String),
}

impl State {
    fn key(&self) -> &'static str {
        match self {
            State::Working => "working",
            State::Done => "done",
            State::WaitingForApproval => "waiting",
            State::Failed(_) => "failed",
            State::Refused(_) => "refused",
            State::Cancelled(_) => "cancelled",
        }
    }
}

/// Everything the status comment shows.
#[derive(Debug, Clone)]
pub struct Status {
    pub task_id: String,
    pub mode: String,
    /// How many of [`Step::ALL`] are done.
    pub done: usize,
    pub state: State,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The LLM cost so far, when `LLM_PRICES` prices the model.
    pub cost_usd: Option<f64>,
    pub context_files: Vec<String>,
    pub pr_url: Option<String>,
    /// The checks' line: which are running, then their results.
    pub checks: Option<String>,
    pub notes: Vec<String>,
    /// What a `/retry` of this task needs again (carried in the task line).
    pub approval: Option<Approval>,
    pub review: Option<ReviewRef>,
    pub fixing: Option<ChecksRef>,
    /// The newest cancel, kept through every rewrite of the comment.
    pub cancel: Option<CancelMark>,
}

impl Status {
    pub fn new(task: &TaskMessage) -> Self {
        Self {
            task_id: task.task_id.clone(),
            mode: task.mode.to_string(),
            done: 1,
            state: State::Working,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            context_files: Vec::new(),
            pr_url: None,
            checks: None,
            notes: Vec::new(),
            approval: task.approval.clone(),
            review: task.review.clone(),
            fixing: task.checks.clone(),
            cancel: None,
        }
    }

    /// Takes over the mode and refs the task line of an earlier comment names: a status
    /// written for a retry or a cancel keeps what a later `/retry` needs.
    pub fn resume(&mut self, line: &TaskLine) {
        self.mode = line.mode.map(|m| m.to_string()).unwrap_or_default();
        self.approval.clone_from(&line.approval);
        self.review.clone_from(&line.review);
        self.fixing.clone_from(&line.checks);
    }

    /// Keeps `mark` unless a newer cancel is kept already.
    pub fn keep_cancel(&mut self, mark: CancelMark) {
        if self.cancel.as_ref().is_none_or(|c| mark.at >= c.at) {
            self.cancel = Some(mark);
        }
    }

    /// Marks `step` and everything before it done.
    pub fn reach(&mut self, step: Step) {
        let position = Step::ALL.iter().position(|s| *s == step).unwrap_or(0);
        self.done = self.done.max(position + 1);
    }

    fn headline(&self) -> String {
        match &self.state {
            State::Working => format!("agent-fleet is working on this ({}).", self.mode),
            State::Done => match &self.pr_url {
                Some(url) => format!("agent-fleet opened a pull request: {}", flat(url)),
                None => "agent-fleet finished.".to_owned(),
            },
            State::WaitingForApproval => {
                "agent-fleet posted a plan and is waiting for approval (`/approve` or `/revise <feedback>`).".to_owned()
            }
            State::Failed(reason) => format!("agent-fleet could not finish: {}", flat(reason)),
            State::Refused(reason) => {
                format!("agent-fleet will not work on this: {}", flat(reason))
            }
            State::Cancelled(by) => format!("agent-fleet: cancelled by {}.", flat(by)),
        }
    }

    /// The checklist; none for a status that never started one (a cancel recorded while
    /// nothing ran).
    fn checklist(&self, checked: &str, unchecked: &str) -> Vec<String> {
        if self.done == 0 {
            return Vec::new();
        }
        Step::ALL
            .iter()
            .enumerate()
            .map(|(i, step)| {
                format!(
                    "- {} {}",
                    if i < self.done { checked } else { unchecked },
                    step.label()
                )
            })
            .collect()
    }

    fn details(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.input_tokens + self.output_tokens > 0 {
            let cost = self
                .cost_usd
                .map(|usd| format!(" (about ${usd:.4})"))
                .unwrap_or_default();
            lines.push(format!(
                "Token usage: {} input, {} output{cost}.",
                self.input_tokens, self.output_tokens
            ));
        }
        if !self.context_files.is_empty() {
            lines.push(format!("Context: {}", flat(&self.context_files.join(", "))));
        }
        lines.extend(self.checks.iter().map(|c| flat(c)));
        lines.extend(self.notes.iter().map(|n| flat(n)));
        lines
    }

    /// The task line's fields after the state: the mode and what a retry needs.
    fn line_fields(&self) -> String {
        let mut fields = String::new();
        if !self.mode.is_empty() {
            fields.push_str(&format!(" mode={}", token(&self.mode)));
        }
        if let Some(a) = &self.approval {
            fields.push_str(&format!(
                " approval={} approver={}",
                token(&a.comment_id),
                token(&a.approver)
            ));
        }
        if let Some(r) = &self.review {
            fields.push_str(&format!(
                " review={}/{}",
                r.pull_number,
                token(&r.review_id)
            ));
        }
        if let Some(c) = &self.fixing {
            fields.push_str(&format!(
                " checks={}/{}/{}",
                c.pull_number,
                token(&c.head_sha),
                token(&c.check_suite_id)
            ));
        }
        fields
    }

    /// The hidden task line lets a redelivered task see that it already finished, and a
    /// `/retry` what to run again.
    fn task_line(&self) -> String {
        format!(
            "<!-- agent-fleet:task id={} state={}{} -->",
            self.task_id,
            self.state.key(),
            self.line_fields()
        )
    }

    pub fn markdown(&self) -> String {
        let mut out = vec![GITHUB_MARKER.to_owned(), self.task_line()];
        if let Some(mark) = &self.cancel {
            out.push(format!("<!-- agent-fleet:{} -->", mark.fields()));
        }
        out.push(format!("**{}**", self.headline()));
        out.push(String::new());
        out.extend(self.checklist("[x]", "[ ]"));
        let details = self.details();
        if !details.is_empty() {
            out.push(String::new());
            out.extend(details);
        }
        out.push(String::new());
        out.push(format!("<sub>task `{}`</sub>", self.task_id));
        out.join("\n")
    }

    pub fn plain(&self) -> String {
        let mut out = vec![self.headline(), String::new()];
        let checklist = self.checklist("[x]", "[ ]");
        if !checklist.is_empty() {
            out.push(checklist.join("\n"));
        }
        let details = self.details();
        if !details.is_empty() {
            out.push(String::new());
            out.push(details.join("\n"));
        }
        out.push(String::new());
        out.push(format!(
            "task {} state={}{}",
            self.task_id,
            self.state.key(),
            self.line_fields()
        ));
        if let Some(mark) = &self.cancel {
            out.push(mark.fields());
        }
        out.push(String::new());
        out.push(JIRA_MARKER.to_owned());
        out.join("\n")
    }
}

/// Whether a status comment says this task already finished (so a redelivery can stop).
pub fn finished_task(comment_text: &str, task_id: &str) -> bool {
    markers::marker_lines(comment_text)
        .into_iter()
        .filter_map(TaskLine::parse)
        .any(|line| line.id == task_id && matches!(line.state.as_str(), "done" | "waiting"))
}

/// Free text as the status comment shows it: on one line (a line break in a file's name
/// or a check's output would start a line that reads like a marker) and without HTML
/// comment delimiters (which would hide text, or pose as a hidden marker).
pub fn flat(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
        .replace("<!--", "<!- -")
        .replace("-->", "- ->")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checklist_reads_as_it_always_did() {
        let labels: Vec<&str> = Step::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(
            labels,
            [
                "queued", "cloned", "context", "LLM", "syntax", "pushed", "PR"
            ]
        );
    }

    #[test]
    fn markers_and_checklist() {
        let mut s = Status {
            task_id: "github:abc".into(),
            mode: "quickfix".into(),
            done: 1,
            state: State::Working,
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: None,
            context_files: vec!["a.py".into()],
            pr_url: None,
            checks: None,
            notes: vec![],
            approval: None,
            review: None,
            fixing: None,
            cancel: None,
        };
        s.reach(Step::Context);
        let md = s.markdown();
        assert!(md.starts_with(GITHUB_MARKER));
        assert!(md.contains("- [x] context\n- [ ] LLM"));
        assert!(md.contains("Token usage: 10 input, 5 output."));
        s.cost_usd = Some(0.01234);
        assert!(
            s.markdown()
                .contains("Token usage: 10 input, 5 output (about $0.0123).")
        );
        assert!(!finished_task(&md, "github:abc"));
        s.state = State::Done;
        assert!(finished_task(&s.markdown(), "github:abc"));
        assert!(finished_task(&s.plain(), "github:abc"));
        assert!(s.plain().trim_end().ends_with(JIRA_MARKER));
    }
}
