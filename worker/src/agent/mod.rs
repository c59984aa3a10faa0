//! The coding agent: the `agent` task handler (QuickFix, Plan, Implement) and the
//! collaborators a task's run is made of.
//!
//! | module | role |
//! |---|---|
//! | [`modes`] | one module per mode ([`modes::quickfix`], [`modes::plan`], [`modes::implement`]): the mode's script and its steps, returning an [`modes::Outcome`] |
//! | [`session`] | the issue side: tracker thread, the agent's account, permission check, status comment, idempotency markers (no workspace needed) |
//! | [`workspace`] | the checkout: clone, reads through [`crate::checkout`], commit, push, diff; blocking work off the runtime |
//! | [`edit_loop`] | the LLM call with usage and metrics, applying edits, the syntax gate, repair rounds |
//! | [`publisher`] | where effects go: [`publisher::Live`] (tracker, remote) or [`publisher::DryRun`] (recorded for `worker run --dry-run`) |
//! | [`errors`] | one settle vocabulary: `From` each adapter error into [`TaskError`], delayed retries |
//! | [`repo_policy`] | the repository's `.agent-fleet.yml`: read before anything is cloned, `enabled` and `triggers` enforced |
//! | [`checks`] | the repository's checks in the sandbox after the edits, repair rounds fed with new failures, the `### Checks` evidence |
//! | [`approval`] | what binds an `/approve` to the newest plan |
//! | [`plan`] | the plan's format, markers and hashes |
//! | [`status`] | the status comment, its checklist and its markers (task line, cancel) |
//! | [`cancel`] | `/cancel` on the issue: the stopped task's report, the cancel recorded when nothing ran |
//! | [`retry`] | what a `/retry` runs: the issue's last mode, with what that mode needs |
//! | [`prompts`], [`untrusted`] | prompt templates and how untrusted text reaches them |
//! | [`syntax`] | the tree-sitter syntax gate |
//! | [`meter`] | the agent's metrics |
//! | [`settings`] | the agent's settings |
//!
//! **Adding a mode** (`followup`, `fixci`, ...): one new module in `modes/` (see
//! [`modes`]) and one arm in [`modes::execute`]; a new checklist step is a variant of that
//! mode's `Step` enum. A new effect on the tracker is a [`publisher::Publisher`] method.

pub mod approval;
pub mod cancel;
pub mod checks;
pub mod edit_loop;
pub mod errors;
pub mod meter;
pub mod modes;
pub mod plan;
pub mod prompts;
pub mod publisher;
pub mod repo_policy;
pub mod retry;
pub mod session;
pub mod settings;
pub mod status;
pub mod syntax;
pub mod untrusted;
pub mod workspace;

use crate::runtime::handler::{TaskContext, TaskError, TaskHandler};
use crate::settings::WorkerSettings;
use edit_loop::Llm;
use fleet_ledger::AuditKind;
use fleet_llm::LlmClient;
use meter::Meter;
use modes::Job;
use repo_policy::Admission;
use session::IssueSession;
use settings::AgentSettings;
use shared::control::ControlMessage;
use shared::{Mode, TaskMessage};
use status::State;
use std::path::Path;
use tokio_util::sync::CancellationToken;
use workspace::{Workspace, WorkspaceSpec};

/// The agent handler.
#[derive(Debug)]
pub struct Agent {
    pub settings: AgentSettings,
    pub worker: WorkerSettings,
    pub llm: LlmClient,
    /// `SANDBOX`, or what [`fleet_sandbox::Mode::detect`] found on first use.
    sandbox: tokio::sync::OnceCell<fleet_sandbox::Mode>,
}

impl Agent {
    pub fn new(settings: AgentSettings, worker: WorkerSettings) -> anyhow::Result<Self> {
        let llm = LlmClient::new(settings.llm.clone())?;
        Ok(Self {
            settings,
            worker,
            llm,
            sandbox: tokio::sync::OnceCell::new(),
        })
    }

    /// Where checks run: `SANDBOX`, else bubblewrap when it works here (probed once),
    /// else the process sandbox.
    pub async fn sandbox_mode(&self) -> fleet_sandbox::Mode {
        *self
            .sandbox
            .get_or_init(|| async {
                let mode = match self.settings.checks.sandbox {
                    Some(mode) => mode,
                    None => fleet_sandbox::Mode::detect().await,
                };
                tracing::info!(sandbox = mode.as_str(), "checks run in this sandbox");
                mode
            })
            .await
    }

    /// The job of a task whose session is open: its workspace in `workdir` (cloned from
    /// `clone_source` when given, else from the task's repository).
    pub fn job<'a>(
        &'a self,
        task: &'a TaskMessage,
        session: IssueSession<'a>,
        workdir: &Path,
        cancel: CancellationToken,
        meter: Meter,
        clone_source: Option<String>,
    ) -> Job<'a> {
        let origin = format!("https://{}", task.repo_url.host());
        let workspace = Workspace::new(WorkspaceSpec {
            git: crate::adapters::git::Git::new(Some(session.github.token().clone()), &origin),
            workdir: workdir.to_path_buf(),
            source: clone_source.unwrap_or_else(|| task.repo_url.to_string()),
            branch: session.issue.branch.clone(),
            base_branch: task.base_branch.clone(),
            identity: crate::adapters::git::Identity {
                name: self.settings.git_name.clone(),
                email: self.settings.git_email.clone(),
            },
            clone_timeout: self.worker.clone_timeout,
            clone_max_bytes: self.worker.clone_max_bytes,
            cancel,
            meter: meter.clone(),
        });
        Job {
            agent: self,
            task,
            session,
            workspace,
            llm: Llm {
                client: &self.llm,
                task_id: &task.task_id,
                meter,
                budget: self.settings.budget,
                prices: &self.settings.prices,
            },
            repo: repo_policy::RepoPolicy::default(),
        }
    }

    async fn run_task(&self, task: &TaskMessage, ctx: &TaskContext) -> Result<(), TaskError> {
        let mut session = IssueSession::open(self, task)
            .await
            .map_err(errors::deferred)?;
        session.meter = Meter::new(ctx.metrics.clone(), ctx.ledger.clone());
        let prior = match session.prior().await {
            Ok(prior) => prior,
            Err(error) => return Err(report(&mut session, error).await),
        };
        // However a retry ends (refused included), its status keeps the mode it retries.
        if task.retry.is_some()
            && let Some(line) = prior.last.as_ref().filter(|l| l.mode.is_some())
        {
            session.status.resume(line);
        }
        let user = repo_policy::asking_user(task);
        // A check suite has no author: fixci checks instead that the PR is the agent's own.
        if repo_policy::needs_write_access(task) {
            // The agent's own words never ask it for work (a loop, when the ingest's
            // AGENT_GITHUB_LOGIN is unset): nothing is done and nothing is said.
            if session.is_own_account(user) {
                tracing::info!(user, "ignored: asked by the agent's own account");
                return Ok(());
            }
            self.authorize(&mut session, user).await?;
        }
        // A cancel of the issue after this task was asked for: it does not run at all.
        if let Some(cancel) = &prior.cancel
            && cancel.stops(task)
        {
            tracing::info!(cancel_id = %cancel.id, by = %cancel.by, "skipped: the issue was cancelled after this task was asked for");
            return Err(TaskError::Cancelled(format!(
                "the issue was cancelled by {} after this task was asked for",
                cancel.by
            )));
        }
        let resolved;
        let (task, mut session) = match retry::resolve(task, prior.last.as_ref()) {
            Ok(None) => (task, session),
            Ok(Some(again)) => {
                resolved = again;
                let session = session.retarget(&resolved);
                (&resolved, session)
            }
            Err(error) => return Err(report(&mut session, error).await),
        };
        // A retried implementation is the approver's as much as the requester's.
        if task.retry.is_some()
            && task.mode == Mode::Implement
            && let Some(approval) = &task.approval
        {
            self.authorize(&mut session, &approval.approver).await?;
        }
        if prior.finished {
            tracing::info!("this task already finished (redelivery); nothing to do");
            return Ok(());
        }
        // The fleet's quotas, once the asker is known to be allowed: over one, the task
        // waits (its status says which limit), and nothing is cloned or asked meanwhile.
        if let Err(wait) = ctx.quota.admit(user, task.repo_url.full_name()).await {
            let why = wait
                .reason
                .strip_prefix("waiting: ")
                .unwrap_or(&wait.reason);
            let note = format!("Waiting for a quota: {why}; the task starts when a slot is free.");
            session.status.notes.push(note);
            if let Err(error) = session.publish_status().await {
                tracing::warn!(?error, "could not show the wait on the issue");
            }
            return Err(TaskError::QuotaWait {
                reason: wait.reason,
                after: wait.after,
            });
        }
        let meter = session.meter.clone();
        let mut job = self.job(task, session, &ctx.workdir, ctx.cancel.clone(), meter, None);
        // The repository's own word comes before any work: nothing is cloned but its
        // config, and no LLM is asked, for a task it refuses.
        match repo_policy::admit(&mut job).await {
            Ok(Admission::Admitted) => {}
            Ok(Admission::Refused(reason)) => {
                tracing::info!(reason, "refused by the repository's config");
                return Err(job.session.finish_failed(State::Refused(reason)).await);
            }
            Err(error) => return Err(report(&mut job.session, error).await),
        }
        // The comment that asked is answered with a reaction at once: seen, and allowed.
        let asked_in = (task.trigger.comment_id.as_deref())
            .or(task.approval.as_ref().map(|a| a.comment_id.as_str()))
            .or(task.revision.as_ref().map(|r| r.comment_id.as_str()));
        if let Some(comment_id) = asked_in {
            job.session.publisher.acknowledge(comment_id).await;
        }
        if let Err(error) = job.session.publish_status().await {
            return Err(report(&mut job.session, error).await);
        }
        match modes::execute(&mut job).await {
            Ok(outcome) => {
                tracing::debug!(?outcome, "mode finished");
                Ok(())
            }
            Err(error) => Err(report(&mut job.session, error).await),
        }
    }
}

impl Agent {
    /// Refuses (reported on the issue) a task `user` may not ask for.
    async fn authorize(&self, session: &mut IssueSession<'_>, user: &str) -> Result<(), TaskError> {
        let permission = |allowed: bool, why: &str| {
            session.meter.audit(
                AuditKind::Permission,
                Some(user),
                serde_json::json!({ "allowed": allowed, "why": why }),
            );
        };
        match session.may_act(user).await {
            Ok(true) => {
                permission(true, "write access");
                Ok(())
            }
            Ok(false) => {
                tracing::info!(user, "refused: no write access");
                let reason = format!(
                    "@{user} does not have write access to {}",
                    session.task.repo_url.full_name()
                );
                permission(false, &reason);
                Err(session.finish_failed(State::Refused(reason)).await)
            }
            Err(error) => Err(report(session, error).await),
        }
    }
}

/// Permanent failures are reported on the issue before the ack; transient ones are not
/// (the retry may well succeed; the last attempt is reported by `report_exhausted`).
async fn report(session: &mut IssueSession<'_>, error: TaskError) -> TaskError {
    match error {
        TaskError::Permanent(reason) => {
            tracing::warn!(reason, "permanent failure");
            session.finish_failed(State::Failed(reason)).await
        }
        other => errors::deferred(other),
    }
}

impl TaskHandler for Agent {
    async fn handle(&self, task: &TaskMessage, ctx: &TaskContext) -> Result<(), TaskError> {
        self.run_task(task, ctx).await
    }

    async fn report_exhausted(&self, task: &TaskMessage, reason: &str) {
        // Only the issue is needed to say so: no workspace, no task context.
        match IssueSession::open(self, task).await {
            Ok(mut session) => {
                let reason = format!(
                    "gave up after {} attempts: {reason}",
                    self.worker.common.delivery_limit.saturating_add(1)
                );
                let _ = session.finish_failed(State::Failed(reason)).await;
            }
            Err(error) => tracing::warn!(?error, "cannot report the exhausted task on the issue"),
        }
    }

    async fn cancelled(&self, task: &TaskMessage, cancel: &ControlMessage) {
        cancel::report(self, task, cancel).await;
    }

    async fn record_cancel(&self, cancel: &ControlMessage) -> Result<(), TaskError> {
        cancel::record(self, cancel).await
    }
}
