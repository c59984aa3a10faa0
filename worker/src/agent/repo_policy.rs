//! The repository's own word on the agent: `.agent-fleet.yml` (or
//! `.github/agent-fleet.yml`) read from the base branch before anything else is cloned,
//! and its `enabled` and `triggers` enforced before any other work. A malformed file stops
//! the task with the file, the line and what is wrong; unknown keys become notes on the
//! status comment.

use super::modes::Job;
use crate::adapters::git::BranchFile;
use crate::runtime::handler::TaskError;
use fleet_repo_config::{CONFIG_PATHS, RepoConfig};
use shared::{Mode, TaskMessage, Tracker};

/// The repository's configuration as this task uses it.
#[derive(Debug, Clone, Default)]
pub struct RepoPolicy {
    pub config: RepoConfig,
    /// The file it came from; `None`: the repository has none (the defaults hold).
    pub file: Option<String>,
}

/// Whether the task may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused, and why (for the status comment).
    Refused(String),
}

/// Reads the config into `job.repo` and applies its trigger policy. A malformed config is
/// a permanent failure that names the file and the line.
pub async fn admit(job: &mut Job<'_>) -> Result<Admission, TaskError> {
    let found = read_config(job).await?;
    let policy = match found {
        None => RepoPolicy::default(),
        Some(file) => {
            let parsed = fleet_repo_config::parse(&file.path, &file.text).map_err(|error| {
                TaskError::Permanent(format!("{error}; fix the file and ask again"))
            })?;
            for warning in &parsed.warnings {
                tracing::info!(file = file.path, warning, "repository config");
                job.session
                    .status
                    .notes
                    .push(format!("`{}`: {warning}.", file.path));
            }
            RepoPolicy {
                config: parsed.config,
                file: Some(file.path),
            }
        }
    };
    let verdict = judge(job, &policy).await?;
    job.workspace
        .set_base_branch(policy.config.base_branch.clone());
    job.repo = policy;
    Ok(verdict)
}

/// The config of the task's base branch (else the default branch), without a checkout;
/// a repository the tracker reports as too large is refused before even that.
async fn read_config(job: &Job<'_>) -> Result<Option<BranchFile>, TaskError> {
    let publisher = &job.session.publisher;
    publisher
        .check_size(job.workspace.clone_max_bytes())
        .await?;
    job.workspace
        .base_file(&CONFIG_PATHS)
        .await
        .map_err(|error| match error {
            TaskError::Permanent(reason) => {
                TaskError::Permanent(format!("the repository's agent config: {reason}"))
            }
            other => other,
        })
}

/// `enabled`, then the users and teams, then the labels.
async fn judge(job: &Job<'_>, policy: &RepoPolicy) -> Result<Admission, TaskError> {
    let file = policy.file.as_deref().unwrap_or(CONFIG_PATHS[0]);
    let config = &policy.config;
    if !config.enabled {
        return Ok(Admission::Refused(format!(
            "the agent is turned off for this repository (`enabled: false` in `{file}`)"
        )));
    }
    let user = asking_user(job.task);
    let triggers = &config.triggers;
    let restricted = !triggers.allowed_users.is_empty() || !triggers.allowed_teams.is_empty();
    if restricted && needs_write_access(job.task) && !allowed(job, user, triggers).await? {
        let mut who = triggers.allowed_users.clone();
        who.extend(triggers.allowed_teams.iter().map(|t| format!("team {t}")));
        return Ok(Admission::Refused(format!(
            "@{user} is not among the users and teams `{file}` lets ask the agent ({})",
            who.join(", ")
        )));
    }
    // A follow-up works on the agent's open PR: its issue passed the labels rule when the PR
    // was opened, and a review's or a check suite's task carries no labels.
    let on_pull = matches!(job.task.mode, Mode::Followup | Mode::Fixci);
    if !triggers.labels.is_empty() && !on_pull {
        let labels = &job.session.issue.labels;
        let carries = |wanted: &String| labels.iter().any(|l| l.eq_ignore_ascii_case(wanted));
        if !triggers.labels.iter().any(carries) {
            return Ok(Admission::Refused(format!(
                "the issue carries none of the labels `{file}` asks for ({})",
                triggers.labels.join(", ")
            )));
        }
    }
    Ok(Admission::Admitted)
}

/// Who asked: the approver of an implement task, else the trigger's user (the one whose
/// permission and place in `triggers` count).
pub fn asking_user(task: &TaskMessage) -> &str {
    match (task.mode, &task.approval) {
        (Mode::Implement, Some(approval)) => approval.approver.as_str(),
        _ => task.trigger_user.as_str(),
    }
}

/// Whether the task's asking user must have write access (and be among `allowed_users`
/// and `allowed_teams`): everyone's but a `fixci` task's. A check suite has no author (its
/// sender is often a CI app); fixci works only on the agent's own pull request, which a
/// person allowed to ask started, and checks that instead.
pub fn needs_write_access(task: &TaskMessage) -> bool {
    // A `/retry` of a fixci was asked by a person: their rights count.
    task.mode != Mode::Fixci || task.retry.is_some()
}

/// Named in `allowed_users`, or (a GitHub user) an active member of an `allowed_teams` team.
async fn allowed(
    job: &Job<'_>,
    user: &str,
    triggers: &fleet_repo_config::Triggers,
) -> Result<bool, TaskError> {
    if triggers
        .allowed_users
        .iter()
        .any(|u| crate::adapters::github::same_account(u.trim_start_matches('@'), user))
    {
        return Ok(true);
    }
    // Teams are GitHub's: a Jira account is never a member.
    if job.task.issue.tracker != Tracker::Github {
        return Ok(false);
    }
    for team in &triggers.allowed_teams {
        let Some((org, slug)) = team.split_once('/') else {
            continue;
        };
        if job.session.github.in_team(org, slug, user).await? {
            return Ok(true);
        }
    }
    Ok(false)
}
