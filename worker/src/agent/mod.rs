//! The coding agent: the `agent` task handler (QuickFix, Plan, Implement) and what it is
//! made of.

pub mod plan;
pub mod planning;
pub mod prompts;
pub mod quickfix;
pub mod run;
pub mod settings;
pub mod status;
pub mod syntax;
pub mod untrusted;

use crate::handler::{TaskContext, TaskError, TaskHandler};
use crate::settings::WorkerSettings;
use fleet_llm::LlmClient;
use run::{Failure, Run};
use settings::AgentSettings;
use shared::{Mode, TaskMessage};
use status::State;

/// The agent handler.
#[derive(Debug)]
pub struct Agent {
    pub settings: AgentSettings,
    pub worker: WorkerSettings,
    pub llm: LlmClient,
}

impl Agent {
    pub fn new(settings: AgentSettings, worker: WorkerSettings) -> anyhow::Result<Self> {
        let llm = LlmClient::new(settings.llm.clone())?;
        Ok(Self {
            settings,
            worker,
            llm,
        })
    }

    async fn run_task(&self, task: &TaskMessage, ctx: &TaskContext) -> Result<(), TaskError> {
        let mut run = match Run::start(self, task, ctx).await {
            Ok(run) => run,
            Err(failure) => return Err(into_task_error(failure)),
        };
        let user = match task.mode {
            Mode::Implement => task
                .approval
                .as_ref()
                .map_or(task.trigger_user.as_str(), |a| a.approver.as_str()),
            _ => task.trigger_user.as_str(),
        };
        match run.may_act(user).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(user, "refused: no write access");
                let reason = format!(
                    "@{user} does not have write access to {}",
                    task.repo_url.full_name()
                );
                return Err(run.finish_failed(State::Refused(reason)).await);
            }
            Err(failure) => return Err(self.report(&mut run, failure).await),
        }
        match run.already_done().await {
            Ok(true) => {
                tracing::info!("this task already finished (redelivery); nothing to do");
                return Ok(());
            }
            Ok(false) => {}
            Err(failure) => return Err(self.report(&mut run, failure).await),
        }
        if let Err(failure) = run.publish_status().await {
            return Err(self.report(&mut run, failure).await);
        }
        match Self::execute(&mut run).await {
            Ok(()) => Ok(()),
            Err(failure) => Err(self.report(&mut run, failure).await),
        }
    }

    /// The mode's pipeline, once the run is authorized (the CLI's entry point too).
    pub async fn execute(run: &mut Run<'_>) -> Result<(), Failure> {
        match run.task.mode {
            Mode::Quickfix => quickfix::run(run).await,
            Mode::Plan => planning::plan(run).await,
            Mode::Implement => planning::implement(run).await,
        }
    }

    /// Permanent failures are reported on the issue before the ack; transient ones are not
    /// (the retry may well succeed; the last attempt is reported by `report_exhausted`).
    async fn report(&self, run: &mut Run<'_>, failure: Failure) -> TaskError {
        match failure {
            Failure::Permanent(reason) => {
                tracing::warn!(reason, "permanent failure");
                run.finish_failed(State::Failed(reason)).await
            }
            other => into_task_error(other),
        }
    }
}

/// A transient failure after a rate limit that outlasted the in-process wait (recorded in the
/// attempt's wait budget by the tracker client) is a delayed retry: the task comes back when
/// the limit has passed instead of spending its delivery limit in seconds.
fn into_task_error(failure: Failure) -> TaskError {
    match failure {
        Failure::Transient(reason) => match crate::runtime::wait::current_deferral() {
            Some(after) => TaskError::Delayed { reason, after },
            None => TaskError::Transient(reason),
        },
        Failure::Permanent(reason) => TaskError::Permanent(reason),
        Failure::Unsupported(reason) => TaskError::Unsupported(reason),
    }
}

impl TaskHandler for Agent {
    async fn handle(&self, task: &TaskMessage, ctx: &TaskContext) -> Result<(), TaskError> {
        self.run_task(task, ctx).await
    }

    async fn report_exhausted(&self, task: &TaskMessage, reason: &str) {
        let ctx = TaskContext {
            workdir: std::env::temp_dir(),
            cancel: tokio_util::sync::CancellationToken::new(),
            attempt: 0,
            last_attempt: true,
            metrics: crate::runtime::handler::TaskMetrics::new(),
            received_at: std::time::Instant::now(),
        };
        match Run::start(self, task, &ctx).await {
            Ok(mut run) => {
                let reason = format!(
                    "gave up after {} attempts: {reason}",
                    self.worker.common.delivery_limit.saturating_add(1)
                );
                let _ = run.finish_failed(State::Failed(reason)).await;
            }
            Err(error) => tracing::warn!(?error, "cannot report the exhausted task on the issue"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wait::WaitBudget;
    use fleet_llm::LlmError;
    use std::time::Duration;

    fn llm_http(status: u16) -> LlmError {
        LlmError::Http {
            status,
            attempts: 4,
            message: "busy".into(),
        }
    }

    async fn settled_as(error: LlmError) -> TaskError {
        let budget = WaitBudget::new(Default::default(), Duration::from_secs(60));
        budget
            .scope(async move { into_task_error(Failure::from(error)) })
            .await
    }

    #[tokio::test]
    async fn an_llm_still_overloaded_after_its_retries_is_a_delayed_retry() {
        for status in [429, 529] {
            match settled_as(llm_http(status)).await {
                TaskError::Delayed { after, .. } => {
                    assert_eq!(after, run::LLM_OVERLOAD_DEFERRAL, "HTTP {status}")
                }
                other => panic!("HTTP {status} settled as {other:?}"),
            }
        }
        assert!(matches!(
            settled_as(llm_http(502)).await,
            TaskError::Transient(_)
        ));
        assert!(matches!(
            settled_as(llm_http(401)).await,
            TaskError::Permanent(_)
        ));
    }
}
