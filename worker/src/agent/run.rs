//! One task's run of the agent: the clients it needs, its status comment, its token usage,
//! and the steps every mode shares (permission check, clone, context, LLM calls, the edit
//! loop with its repair round and syntax gate, commit and push). Failures are typed as
//! transient (requeue) or permanent (reported on the issue, then acked).

use super::Agent;
use super::prompts;
use super::status::{self, State, Status};
use super::syntax;
use crate::git::{CommitSpec, Git, GitError, Identity, Pushed};
use crate::handler::{TaskContext, TaskError};
use crate::tracker::IssueThread;
use crate::tracker::github::{ApiError, GitHub};
use crate::tracker::jira::Jira;
use fleet_edits::{Applied, EditError, Policy, apply, parse_blocks};
use fleet_llm::{LlmError, LlmRequest, Message, Phase, Usage};
use shared::{TaskMessage, Tracker};
use std::path::PathBuf;
use std::time::Instant;

/// Why a step stopped the task.
#[derive(Debug)]
pub enum Failure {
    /// Retry later (requeue).
    Transient(String),
    /// Will not get better: report on the issue, ack.
    Permanent(String),
    /// The message is not a task for us (dead-letter).
    Unsupported(String),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

impl From<GitError> for Failure {
    fn from(e: GitError) -> Self {
        if !e.is_transient() {
            Failure::Permanent(e.to_string())
        } else {
            Failure::Transient(e.to_string())
        }
    }
}

/// How long a task waits (a delayed retry) when the LLM server still answers "overloaded"
/// or "rate-limited" after the client's own retries: an immediate requeue would spend the
/// delivery limit in seconds against a server that asked for patience.
pub const LLM_OVERLOAD_DEFERRAL: std::time::Duration = std::time::Duration::from_secs(60);

impl From<LlmError> for Failure {
    fn from(e: LlmError) -> Self {
        if let LlmError::Http {
            status: 429 | 529, ..
        } = e
        {
            crate::runtime::wait::defer_current(LLM_OVERLOAD_DEFERRAL);
        }
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

/// The branch the agent owns for an issue: `agent/github-<number>` or `agent/jira-<KEY>`.
pub fn branch_for(tracker: Tracker, number: Option<u64>, key: &str) -> String {
    match (tracker, number) {
        (Tracker::Github, Some(number)) => format!("agent/github-{number}"),
        _ => format!("agent/jira-{key}"),
    }
}

/// The issue number an agent PR belongs to: from its branch name, else from the marker the
/// agent writes into its PR bodies.
pub fn issue_of_pull(head: &str, body: &str) -> Option<u64> {
    if let Some(n) = head
        .strip_prefix("agent/github-")
        .and_then(|n| n.parse().ok())
    {
        return Some(n);
    }
    let marker = body.split("<!-- agent-fleet:issue ").nth(1)?;
    let number = marker.split("number=").nth(1)?;
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The edits of one answer, applied and through the syntax gate.
#[derive(Debug)]
pub struct Edited {
    pub applied: Vec<fleet_edits::ChangedFile>,
    pub summary: String,
}

#[derive(Debug)]
pub struct Run<'a> {
    pub agent: &'a Agent,
    pub task: &'a TaskMessage,
    pub ctx: &'a TaskContext,
    pub github: GitHub,
    pub thread: IssueThread,
    pub status: Status,
    pub usage: Usage,
    pub git: Git,
    pub repo_dir: PathBuf,
    /// The GitHub issue the task is about (a PR comment's task is mapped back to it).
    pub issue_number: Option<u64>,
    /// The agent's branch for the issue.
    pub branch: String,
    /// `worker run --dry-run`: no tracker is touched, nothing is pushed.
    pub dry_run: bool,
    /// Clone from here instead of the task's repository (`worker run` on a local folder).
    pub clone_source: Option<String>,
    /// The agent's own account on the thread's tracker (GitHub login or Jira account id):
    /// only its comments count as status, done, plan and plan-task markers.
    pub agent_account: String,
    /// The issue's title and body as the tracker has them (a command on the plan's PR
    /// reads the issue's, not the PR's; a Jira task reads Jira's), and its labels.
    pub issue_title: String,
    pub issue_body: String,
    pub issue_labels: Vec<String>,
    /// The agent's status comment once found or posted, and the body last published.
    status_comment: Option<(String, String)>,
}

/// Says which setting names the agent when its identity could not be read from the token.
fn unknown_identity(setting: &str, error: ApiError) -> Failure {
    let message = format!(
        "the agent's own account is unknown (needed to tell its comments from anyone else's): set {setting}, or give credentials that may read it ({error})"
    );
    if error.is_transient() {
        Failure::Transient(message)
    } else {
        Failure::Permanent(message)
    }
}

impl<'a> Run<'a> {
    pub async fn start(
        agent: &'a Agent,
        task: &'a TaskMessage,
        ctx: &'a TaskContext,
    ) -> Result<Run<'a>, Failure> {
        let auth = agent.settings.github_auth.as_ref().ok_or_else(|| {
            Failure::Permanent("GITHUB_TOKEN (or a GitHub App) is not configured".into())
        })?;
        let github = GitHub::connect(&agent.settings.github_api, auth, &task.repo_url).await?;
        let mut issue_number = task.issue.number;
        let mut issue_title = task.issue.title.clone();
        let mut issue_body = task.issue.body.clone();
        let mut issue_labels = task.issue.labels.clone();
        let agent_account;
        let thread = match task.issue.tracker {
            Tracker::Github => {
                let mut number = task.issue.number.ok_or_else(|| {
                    Failure::Unsupported("a GitHub task without an issue number".into())
                })?;
                if task.issue.pull_request {
                    let pull = github.pull(number).await?.ok_or_else(|| {
                        Failure::Permanent(format!("pull request #{number} not found"))
                    })?;
                    number = issue_of_pull(&pull.head, &pull.body).ok_or_else(|| {
                        Failure::Permanent(format!(
                            "pull request #{number} is not an agent-fleet pull request"
                        ))
                    })?;
                    tracing::info!(
                        pull = pull.number,
                        issue = number,
                        "comment on a pull request mapped to its issue"
                    );
                    issue_number = Some(number);
                    // The message carries the PR's title and description: the work is on
                    // the issue, so its text comes from the issue.
                    (issue_title, issue_body) = github.issue_text(number).await?;
                    issue_labels.clear();
                }
                // Resolved at start-up (startup.rs); asked here only when it was not.
                agent_account = match &agent.settings.agent_login {
                    Some(login) => login.clone(),
                    None => crate::tracker::github::authenticated_login(
                        &agent.settings.github_api,
                        auth,
                    )
                    .await
                    .map_err(|e| unknown_identity("AGENT_GITHUB_LOGIN", e))?,
                };
                IssueThread::Github {
                    github: github.clone(),
                    number,
                }
            }
            Tracker::Jira => {
                let jira = agent.settings.jira.as_ref().ok_or_else(|| {
                    Failure::Unsupported("a Jira task, but JIRA_BASE_URL is not set".into())
                })?;
                let client = Jira::new(&jira.base_url, &jira.user_email, jira.api_token.clone())?;
                agent_account = match &agent.settings.agent_jira_account_id {
                    Some(id) => id.clone(),
                    None => client
                        .myself()
                        .await
                        .map_err(|e| unknown_identity("AGENT_JIRA_ACCOUNT_ID", e))?,
                };
                // Jira's webhooks for comments carry no description nor labels: Jira's own
                // fields are the issue text for every Jira task.
                let issue = client.issue(&task.issue.key).await?;
                if !issue.summary.trim().is_empty() {
                    issue_title = issue.summary;
                }
                issue_body = issue.description;
                issue_labels = issue.labels;
                IssueThread::Jira {
                    jira: client,
                    key: task.issue.key.clone(),
                }
            }
        };
        let origin = format!("https://{}", task.repo_url.host());
        let git = Git::new(Some(github.token().clone()), &origin);
        Ok(Run {
            agent,
            task,
            ctx,
            github,
            thread,
            status: Status::new(task),
            usage: Usage::default(),
            git,
            repo_dir: ctx.workdir.join("repo"),
            branch: branch_for(task.issue.tracker, issue_number, &task.issue.key),
            issue_number,
            dry_run: false,
            clone_source: None,
            agent_account,
            issue_title,
            issue_body,
            issue_labels,
            status_comment: None,
        })
    }

    /// A run that touches no tracker and pushes nothing (`worker run --dry-run`).
    pub async fn start_dry(
        agent: &'a Agent,
        task: &'a TaskMessage,
        ctx: &'a TaskContext,
        clone_source: Option<String>,
    ) -> Result<Run<'a>, Failure> {
        let token = match &agent.settings.github_auth {
            Some(crate::tracker::github::GithubAuth::Token(token)) => token.clone(),
            _ => secrecy::SecretString::from(String::new()),
        };
        let github = GitHub::connect(
            &agent.settings.github_api,
            &crate::tracker::github::GithubAuth::Token(token.clone()),
            &task.repo_url,
        )
        .await?;
        let origin = format!("https://{}", task.repo_url.host());
        Ok(Run {
            agent,
            task,
            ctx,
            thread: IssueThread::Github {
                github: github.clone(),
                number: task.issue.number.unwrap_or(0),
            },
            github,
            status: Status::new(task),
            usage: Usage::default(),
            git: Git::new(Some(token), &origin),
            repo_dir: ctx.workdir.join("repo"),
            branch: branch_for(task.issue.tracker, task.issue.number, &task.issue.key),
            issue_number: task.issue.number,
            dry_run: true,
            clone_source,
            // No tracker is read: nobody's comments count.
            agent_account: String::new(),
            issue_title: task.issue.title.clone(),
            issue_body: task.issue.body.clone(),
            issue_labels: task.issue.labels.clone(),
            status_comment: None,
        })
    }

    /// Whether `user` may ask the agent for work on this issue: `write` or higher on the
    /// GitHub repository, or `EDIT_ISSUES` (or `JIRA_APPROVERS`) on Jira.
    pub async fn may_act(&self, user: &str) -> Result<bool, Failure> {
        // The agent never acts on its own word (a loop, or a forged trigger).
        let settings = &self.agent.settings;
        let own = [
            Some(self.agent_account.as_str()),
            settings.agent_login.as_deref(),
            settings.agent_jira_account_id.as_deref(),
        ];
        if user.trim().is_empty()
            || own
                .iter()
                .flatten()
                .any(|a| crate::tracker::github::same_account(a, user))
        {
            return Ok(false);
        }
        match &self.thread {
            IssueThread::Github { github, .. } => Ok(github.can_write(user).await?),
            IssueThread::Jira { jira, key } => {
                if self.agent.settings.jira_approvers.iter().any(|a| a == user) {
                    return Ok(true);
                }
                Ok(jira.can_edit(key, user).await?)
            }
        }
    }

    /// Posts or edits the status comment.
    pub async fn publish_status(&mut self) -> Result<(), Failure> {
        if self.dry_run {
            return Ok(());
        }
        self.status.input_tokens = self.usage.input_tokens;
        self.status.output_tokens = self.usage.output_tokens;
        let markdown = self.status.markdown();
        let plain = self.status.plain();
        // Found once by author and marker, then edited by its id; an unchanged body is not
        // sent again.
        if let Some((_, last)) = &self.status_comment
            && *last == markdown
        {
            return Ok(());
        }
        let known = self.status_comment.as_ref().map(|(id, _)| id.clone());
        let id = self
            .thread
            .upsert(
                &self.agent_account,
                known.as_deref(),
                status::GITHUB_MARKER,
                &markdown,
                status::JIRA_MARKER,
                &plain,
                None,
            )
            .await?;
        self.status_comment = Some((id, markdown));
        Ok(())
    }

    pub async fn step(&mut self, step: &str) -> Result<(), Failure> {
        self.status.reach(step);
        self.publish_status().await
    }

    /// Reports a permanent failure or refusal on the issue (best effort) and returns the
    /// error that acks the delivery.
    pub async fn finish_failed(&mut self, state: State) -> TaskError {
        let reason = match &state {
            State::Failed(r) | State::Refused(r) => r.clone(),
            _ => String::new(),
        };
        self.status.state = state;
        if let Err(error) = self.publish_status().await {
            tracing::warn!(?error, "could not report the failure on the issue");
        }
        TaskError::Permanent(reason)
    }

    /// Whether the agent's own status comment says this very task already finished (the
    /// same marker in anyone else's comment means nothing).
    pub async fn already_done(&self) -> Result<bool, Failure> {
        Ok(self.thread.comments().await?.iter().any(|c| {
            c.by(&self.agent_account) && status::finished_task(&c.text, &self.task.task_id)
        }))
    }

    /// Clones the task's repository (at `branch`, else its default branch) and returns the
    /// branch checked out. Refused before cloning when GitHub reports the repository over
    /// `CLONE_MAX_BYTES`; stopped while cloning when it grows past it; refused before any
    /// LLM call when the agent's branch holds commits the agent did not write (the push
    /// would have to drop them).
    pub async fn clone_repo(&mut self, branch: Option<&str>) -> Result<String, Failure> {
        let settings = &self.agent.worker;
        // `worker run` on a local folder (and a dry run) asks no API.
        if self.clone_source.is_none() && !self.dry_run {
            match self.github.repo_size_kib().await {
                Ok(Some(kib)) if kib.saturating_mul(1024) > settings.clone_max_bytes => {
                    return Err(Failure::Permanent(format!(
                        "GitHub reports the repository at {} bytes, over the limit of {} (CLONE_MAX_BYTES); raise CLONE_MAX_BYTES to let the agent work on it",
                        kib.saturating_mul(1024),
                        settings.clone_max_bytes
                    )));
                }
                Ok(_) => {}
                // The clone's own guard still holds: no reason to fail the task here.
                Err(error) => tracing::warn!(%error, "could not read the repository's size"),
            }
        }
        let url = self
            .clone_source
            .clone()
            .unwrap_or_else(|| self.task.repo_url.to_string());
        let cloned = self
            .git
            .shallow_clone_url(
                &url,
                branch,
                &self.repo_dir,
                settings.clone_timeout,
                settings.clone_max_bytes,
                &self.ctx.cancel,
            )
            .await?;
        self.ctx.metrics.clone_seconds.observe(cloned.seconds);
        self.ctx.metrics.clone_bytes.observe(cloned.bytes as f64);
        self.ctx.metrics.phase("clone", cloned.seconds);
        tracing::info!(bytes = cloned.bytes, seconds = cloned.seconds, "cloned");
        let current = self
            .git
            .current_branch(&self.repo_dir, &self.ctx.cancel)
            .await?;
        if !self.dry_run && current != self.branch {
            let email = self.agent.settings.git_email.clone();
            let basis = crate::git::Basis {
                base: &current,
                agent_email: &email,
            };
            let remote = self
                .git
                .inspect_branch(
                    &self.repo_dir,
                    &self.branch,
                    &basis,
                    settings.clone_timeout,
                    &self.ctx.cancel,
                )
                .await?;
            if let Some(remote) = remote.filter(|r| !r.foreign.is_empty()) {
                return Err(GitError::Foreign {
                    branch: self.branch.clone(),
                    commits: remote.foreign,
                }
                .into());
            }
        }
        Ok(current)
    }

    /// The issue text as the LLM sees it: what a reader of the issue sees (hidden markup
    /// and invisible characters removed), each field capped at `ISSUE_TEXT_MAX_BYTES` with
    /// a note when cut.
    pub fn issue_text(&self) -> (String, String) {
        let max = self.agent.settings.issue_text_max_bytes;
        (
            prompts::sanitize_untrusted(&self.issue_title, max),
            prompts::sanitize_untrusted(&self.issue_body, max),
        )
    }

    /// Context selection (blocking work, off the runtime).
    pub async fn select_context(
        &mut self,
        extra_query: &str,
    ) -> Result<fleet_context::Selection, Failure> {
        let started = Instant::now();
        let (title, body) = self.issue_text();
        let query = format!("{title}\n\n{body}\n\n{extra_query}");
        let repo = self.repo_dir.clone();
        let options = fleet_context::SelectOptions {
            budget: self.agent.settings.context_budget,
            ..fleet_context::SelectOptions::default()
        };
        let selection =
            tokio::task::spawn_blocking(move || fleet_context::select(&repo, &query, &options))
                .await
                .map_err(|e| Failure::Transient(format!("context selection did not run: {e}")))?
                .map_err(|e| Failure::Permanent(format!("context selection failed: {e:#}")))?;
        self.ctx
            .metrics
            .phase("context", started.elapsed().as_secs_f64());
        self.status.context_files = selection.included.clone();
        tracing::info!(
            files = selection.included.len(),
            tokens = selection.tokens,
            "context selected"
        );
        Ok(selection)
    }

    pub fn system_prompt(&self) -> String {
        prompts::render(
            prompts::SYSTEM,
            &[
                ("repo", self.task.repo_url.full_name()),
                (
                    "repo_instructions",
                    &prompts::repo_instructions(&self.repo_dir),
                ),
            ],
        )
    }

    /// One LLM call; usage and metrics are recorded here.
    pub async fn ask(
        &mut self,
        phase: Phase,
        system: &str,
        messages: Vec<Message>,
    ) -> Result<String, Failure> {
        let started = Instant::now();
        let provider = self.agent.llm.provider().as_str();
        let request = LlmRequest {
            task_id: self.task.task_id.clone(),
            phase,
            system: system.to_owned(),
            messages,
        };
        let result = self.agent.llm.complete(&request).await;
        self.ctx
            .metrics
            .phase("llm", started.elapsed().as_secs_f64());
        match result {
            Ok(response) => {
                self.ctx
                    .metrics
                    .llm_requests
                    .with_label_values(&[provider, phase.as_str(), "ok"])
                    .inc();
                self.ctx
                    .metrics
                    .llm_tokens
                    .with_label_values(&[provider, "input"])
                    .inc_by(response.usage.input_tokens);
                self.ctx
                    .metrics
                    .llm_tokens
                    .with_label_values(&[provider, "output"])
                    .inc_by(response.usage.output_tokens);
                self.usage += response.usage;
                tracing::info!(
                    phase = phase.as_str(),
                    input_tokens = response.usage.input_tokens,
                    output_tokens = response.usage.output_tokens,
                    "LLM answered"
                );
                Ok(response.text)
            }
            Err(error) => {
                self.ctx
                    .metrics
                    .llm_requests
                    .with_label_values(&[provider, phase.as_str(), error.kind()])
                    .inc();
                Err(error.into())
            }
        }
    }

    fn policy(&self, allowed_paths: Option<Vec<String>>) -> Policy {
        Policy {
            allow_workflow_edits: self.agent.settings.allow_workflow_edits,
            protected_paths: self.agent.settings.protected_paths.clone(),
            allowed_paths,
            ..Policy::default()
        }
    }

    /// Asks for edits, applies them (one repair round for an answer that does not apply,
    /// one for syntax errors it introduced), and leaves them on disk.
    pub async fn edit(
        &mut self,
        prompt: String,
        allowed_paths: Option<Vec<String>>,
    ) -> Result<Edited, Failure> {
        let system = self.system_prompt();
        let mut messages = vec![Message::user(prompt)];
        let mut answer = self.ask(Phase::Edit, &system, messages.clone()).await?;
        self.step("LLM").await?;
        let policy = self.policy(allowed_paths);
        let mut repaired_apply = false;
        let mut repaired_syntax = false;
        let mut changed: Vec<fleet_edits::ChangedFile> = Vec::new();
        let mut summary = summary_of(&answer);
        loop {
            let outcome = self.apply_answer(&answer, &policy);
            let problem = match outcome {
                Ok(applied) => {
                    merge_changes(&mut changed, applied.files);
                    let problems: Vec<syntax::SyntaxProblem> = changed
                        .iter()
                        .flat_map(|f| syntax::introduced(&f.path, f.previous.as_deref(), &f.new))
                        .collect();
                    if problems.is_empty() {
                        break;
                    }
                    if repaired_syntax {
                        let list = problems
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ");
                        return Err(Failure::Permanent(format!(
                            "the edits still have syntax errors after a repair round: {list}"
                        )));
                    }
                    repaired_syntax = true;
                    let files: Vec<String> = changed.iter().map(|f| f.path.clone()).collect();
                    let list = problems
                        .iter()
                        .map(|p| format!("- {p}"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    (
                        format!("The edited files have syntax errors:\n{list}"),
                        files,
                    )
                }
                Err((message, files)) => {
                    if repaired_apply {
                        return Err(Failure::Permanent(format!(
                            "the model's edits could not be applied after a repair round: {message}"
                        )));
                    }
                    repaired_apply = true;
                    (message, files)
                }
            };
            let (message, files) = problem;
            tracing::info!(problem = %message, "asking for a repair");
            let repair = prompts::render(
                prompts::REPAIR,
                &[
                    ("problem", &message),
                    ("files", &self.show_files(&files)),
                    ("edit_format", prompts::EDIT_FORMAT),
                ],
            );
            messages.push(Message::assistant(answer.clone()));
            messages.push(Message::user(repair));
            answer = self.ask(Phase::Repair, &system, messages.clone()).await?;
            let repaired_summary = summary_of(&answer);
            if summary.is_empty() {
                summary = repaired_summary;
            }
        }
        if changed.is_empty() {
            return Err(Failure::Permanent("the model proposed no change".into()));
        }
        self.step("syntax").await?;
        Ok(Edited {
            applied: changed,
            summary,
        })
    }

    /// Parses and applies one answer; on failure, the message for the repair prompt and the
    /// files it is about.
    fn apply_answer(
        &self,
        answer: &str,
        policy: &Policy,
    ) -> Result<Applied, (String, Vec<String>)> {
        let blocks = parse_blocks(answer)
            .map_err(|e| (format!("Your answer could not be parsed: {e}"), Vec::new()))?;
        if blocks.is_empty() {
            return Err((
                "Your answer contained no SEARCH/REPLACE blocks.".into(),
                Vec::new(),
            ));
        }
        let files: Vec<String> = blocks.iter().map(|b| b.path.clone()).collect();
        apply(&self.repo_dir, &blocks, policy).map_err(|e: EditError| (e.feedback(), files))
    }

    /// The current content of files, for a repair: read through the checkout boundary, so
    /// an answer naming `docs/ref/environ` (with `docs/ref -> /proc/self`) shows nothing.
    fn show_files(&self, files: &[String]) -> String {
        /// A repair round shows whole files; bigger ones are not worth the prompt.
        const MAX_SHOWN_BYTES: u64 = 256 * 1024;
        let checkout = crate::checkout::Checkout::new(&self.repo_dir);
        let mut seen = Vec::new();
        let mut out = String::new();
        for path in files {
            if seen.contains(path) {
                continue;
            }
            seen.push(path.clone());
            if let Ok(text) = checkout.read_text(path, MAX_SHOWN_BYTES) {
                let numbered: String = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| format!("{:>5} | {l}\n", i + 1))
                    .collect();
                out.push_str(&format!("{path}\n```\n{numbered}```\n\n"));
            }
        }
        if out.is_empty() {
            "(no existing files involved)".into()
        } else {
            out
        }
    }

    pub fn identity(&self) -> Identity {
        Identity {
            name: self.agent.settings.git_name.clone(),
            email: self.agent.settings.git_email.clone(),
        }
    }

    /// Commits `paths` on the agent's branch and pushes it. The push never drops a commit
    /// the agent did not write (it is refused and reported instead), and a rejected push
    /// is permanent.
    pub async fn commit_and_push(
        &mut self,
        paths: &[String],
        message: &str,
        allow_empty: bool,
    ) -> Result<Pushed, Failure> {
        let started = Instant::now();
        let branch = self.branch.clone();
        let identity = self.identity();
        let cancel = self.ctx.cancel.clone();
        // A link checked out as a plain file (`core.symlinks=false`) still is a link in
        // the index: an edit of it would re-point the link.
        let links = self.git.links_among(&self.repo_dir, paths, &cancel).await?;
        if !links.is_empty() {
            return Err(Failure::Permanent(format!(
                "the edits change {}, a symbolic link in the repository; the agent does not change links: edit the file it points to instead",
                links
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // What the branch is based on: the branch that was cloned (QuickFix, Plan), or,
        // when the agent's branch itself was cloned (Implement), the repository's base.
        let current = self.git.current_branch(&self.repo_dir, &cancel).await?;
        let base = if current == branch {
            match &self.task.base_branch {
                Some(base) => base.clone(),
                None => {
                    self.git
                        .remote_default_branch(&self.repo_dir, &cancel)
                        .await?
                }
            }
        } else {
            current
        };
        let change = CommitSpec {
            branch: &branch,
            paths,
            message,
            allow_empty,
        };
        self.git
            .commit(&self.repo_dir, &change, &identity, &cancel)
            .await?;
        let basis = crate::git::Basis {
            base: &base,
            agent_email: &identity.email,
        };
        let pushed = self
            .git
            .push_branch(
                &self.repo_dir,
                &branch,
                &basis,
                self.agent.worker.clone_timeout,
                &cancel,
            )
            .await?;
        self.ctx
            .metrics
            .phase("publish", started.elapsed().as_secs_f64());
        tracing::info!(?pushed, branch, "branch published");
        Ok(pushed)
    }

    /// The hidden line in PR bodies that maps a PR back to its issue.
    pub fn pull_marker(&self) -> String {
        format!(
            "<!-- agent-fleet:issue key={} number={} task={} -->",
            self.task.issue.key,
            self.issue_number.map(|n| n.to_string()).unwrap_or_default(),
            self.task.task_id
        )
    }

    /// The line a PR body or Jira comment uses to point at the issue.
    pub fn issue_reference(&self) -> String {
        match (self.task.issue.tracker, self.issue_number) {
            (Tracker::Github, Some(n)) => format!("Fixes #{n}"),
            _ => format!("Jira: [{}]({})", self.task.issue.key, self.task.issue.url),
        }
    }
}

/// The changed files as a markdown list for a PR body.
pub fn files_list(files: &[fleet_edits::ChangedFile]) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "- `{}`{}",
                f.path,
                if f.previous.is_none() { " (new)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Later answers (repairs) replace earlier content of the same file; the first `previous`
/// stays, so the syntax gate compares against the original file.
fn merge_changes(
    changed: &mut Vec<fleet_edits::ChangedFile>,
    newer: Vec<fleet_edits::ChangedFile>,
) {
    for file in newer {
        match changed.iter_mut().find(|f| f.path == file.path) {
            Some(existing) => existing.new = file.new,
            None => changed.push(file),
        }
    }
}

/// The answer's one-line summary: its first line of prose before the first block.
pub fn summary_of(answer: &str) -> String {
    let lines: Vec<&str> = answer.lines().map(str::trim).collect();
    let first_block = lines
        .iter()
        .position(|l| l.starts_with("```") || l.starts_with("<<<<<<<"))
        .unwrap_or(lines.len());
    // The last non-empty line before the first block names its file: not prose.
    let path_line = lines[..first_block].iter().rposition(|l| !l.is_empty());
    let prose_end = match path_line {
        Some(i) if first_block < lines.len() => i,
        _ => first_block,
    };
    lines[..prose_end]
        .iter()
        .find(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches(['#', '*', '-', ' '])
                .trim_end_matches('*')
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_map_back_to_their_issue() {
        assert_eq!(issue_of_pull("agent/github-42", ""), Some(42));
        assert_eq!(
            issue_of_pull(
                "feature",
                "x <!-- agent-fleet:issue key=a/b#7 number=7 task=t -->"
            ),
            Some(7)
        );
        assert_eq!(issue_of_pull("feature", "no marker"), None);
        assert_eq!(
            branch_for(Tracker::Jira, None, "PAY-42"),
            "agent/jira-PAY-42"
        );
    }

    #[test]
    fn summary_is_the_first_prose_line() {
        assert_eq!(
            summary_of("Fix the refund rounding.\n\npay/refunds.py\n```python\n<<<<<<< SEARCH"),
            "Fix the refund rounding."
        );
        assert_eq!(summary_of("pay/refunds.py\n<<<<<<< SEARCH\n"), "");
        assert_eq!(
            summary_of("**Use a/b paths.**\n\nsrc/a.rs\n```rust\n<<<<<<< SEARCH"),
            "Use a/b paths."
        );
        assert_eq!(summary_of("Only prose, no block."), "Only prose, no block.");
    }
}
