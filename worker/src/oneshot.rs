//! `worker run`: one task through the agent's pipeline, without queue or webhook. With
//! `--dry-run` it publishes through the agent's dry-run publisher, which touches no
//! tracker, and prints what it recorded (the diff, or the plan): how a person tries the
//! agent on their repository in one command. The printing is here, not in the agent.

use crate::agent::Agent;
use crate::agent::meter::Meter;
use crate::agent::modes::{self, Outcome};
use crate::agent::publisher::DryRun;
use crate::agent::repo_policy::{self, Admission};
use crate::agent::session::IssueSession;
use crate::agent::settings::AgentSettings;
use crate::runtime::handler::TaskError;
use crate::settings::WorkerSettings;
use anyhow::{Context as _, bail};
use shared::settings::Env;
use shared::task::{IssueRef, TriggerInfo};
use shared::{Mode, RepoUrl, TaskMessage, Tracker};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The repository: `https://github.com/<owner>/<name>`, or a local git folder (dry run).
    #[arg(long)]
    pub repo: String,
    /// The issue: its first line is the title, the rest the body.
    #[arg(long)]
    pub issue_file: PathBuf,
    /// quickfix (plan follows the same way once the plan mode is in).
    #[arg(long, default_value = "quickfix")]
    pub mode: String,
    /// Print the diff; do not push, open a PR or comment anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// The GitHub issue number to work on (required without --dry-run).
    #[arg(long)]
    pub issue: Option<u64>,
    /// Base branch (default: the repository's default branch).
    #[arg(long)]
    pub base: Option<String>,
}

fn task_for(args: &RunArgs, repo_url: RepoUrl, mode: Mode) -> anyhow::Result<TaskMessage> {
    let text = std::fs::read_to_string(&args.issue_file)
        .with_context(|| format!("reading {}", args.issue_file.display()))?;
    let mut lines = text.lines();
    let title = lines
        .next()
        .unwrap_or("")
        .trim()
        .trim_start_matches('#')
        .trim()
        .to_owned();
    let body = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
    let number = args.issue.unwrap_or(0);
    Ok(TaskMessage {
        version: shared::task::TASK_VERSION,
        task_id: format!("cli:{}", uuid::Uuid::new_v4()),
        mode,
        source: Tracker::Github,
        issue: IssueRef {
            tracker: Tracker::Github,
            key: format!("{}#{number}", repo_url.full_name()),
            number: Some(number),
            title,
            body,
            url: format!("{repo_url}/issues/{number}"),
            labels: Vec::new(),
            pull_request: false,
        },
        repo_url,
        base_branch: args.base.clone(),
        trigger_user: "cli".into(),
        trigger: TriggerInfo {
            event: "cli".into(),
            delivery_id: "cli".into(),
            received_at: chrono::Utc::now(),
            comment_id: None,
        },
        approval: None,
        revision: None,
        instruction: None,
        review: None,
        checks: None,
        retry: None,
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<DryRunReport> {
    let env = Env::process();
    let mode: Mode = args.mode.parse().map_err(anyhow::Error::msg)?;
    if mode == Mode::Implement {
        bail!("--mode must be quickfix or plan");
    }
    let local = std::path::Path::new(&args.repo);
    let (repo_url, clone_source) = if local.is_dir() {
        if !args.dry_run {
            bail!("a local folder can only be tried with --dry-run");
        }
        let abs = local.canonicalize()?;
        let name = abs
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("repo")
            .replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.',
                "-",
            );
        (
            RepoUrl::parse(&format!("https://local/{name}/{name}")).map_err(anyhow::Error::msg)?,
            Some(format!("file://{}", abs.display())),
        )
    } else {
        (
            RepoUrl::parse(&args.repo).map_err(anyhow::Error::msg)?,
            None,
        )
    };
    if !args.dry_run && args.issue.is_none() {
        bail!("--issue N is required without --dry-run (the issue to comment on and fix)");
    }
    let settings = if args.dry_run {
        AgentSettings::without_github(&env)?
    } else {
        AgentSettings::from_env(&env)?
    };
    let worker = WorkerSettings::from_env(&env)?;
    let task = task_for(&args, repo_url, mode)?;
    std::fs::create_dir_all(&worker.workspace_dir)
        .with_context(|| format!("WORKSPACE_DIR {}", worker.workspace_dir.display()))?;
    // Named like a worker's task dir (with this pid), so that a worker starting on the same
    // WORKSPACE_DIR leaves it alone while this process lives, and sweeps it once it is gone.
    let workdir = RunDir(crate::runtime::workspace::create(
        &worker.workspace_dir,
        &task.task_id,
    )?);
    let agent = Agent::new(settings, worker)?;
    let dry_run = args.dry_run.then(|| Arc::new(DryRun::default()));
    let session = match &dry_run {
        Some(dry) => IssueSession::dry(&agent, &task, dry.clone()).await,
        None => IssueSession::open(&agent, &task).await,
    };
    let mut session = session.map_err(describe)?;
    if dry_run.is_none() {
        session.publish_status().await.map_err(describe)?;
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut job = agent.job(
        &task,
        session,
        &workdir.0,
        cancel,
        Meter::detached(),
        clone_source,
    );
    if let Admission::Refused(reason) = repo_policy::admit(&mut job).await.map_err(describe)? {
        bail!("refused by the repository's config: {reason}");
    }
    let outcome = modes::execute(&mut job).await.map_err(describe)?;
    Ok(match dry_run {
        Some(dry) => DryRunReport::of(&dry, &outcome),
        None => DryRunReport::default(),
    })
}

/// What a dry run recorded, for `worker run` to print: the diffs (each with a summary line)
/// and the comments (the plan); the pull requests' texts are not shown. Empty for a live
/// run, whose effects are on the tracker.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DryRunReport {
    /// For standard output: each diff, then each comment.
    pub shown: Vec<String>,
    /// For standard error: one summary line per diff.
    pub summaries: Vec<String>,
}

impl DryRunReport {
    fn of(dry: &DryRun, outcome: &Outcome) -> Self {
        let recorded = dry.recorded();
        let summary = format!(
            "dry run: {} file(s) changed; {} input / {} output tokens; nothing pushed",
            outcome.files_changed, outcome.usage.input_tokens, outcome.usage.output_tokens
        );
        Self {
            shown: recorded
                .diffs
                .iter()
                .chain(&recorded.comments)
                .cloned()
                .collect(),
            summaries: recorded.diffs.iter().map(|_| summary.clone()).collect(),
        }
    }
}

/// The run's dir, removed when the run ends (also on an error).
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = crate::runtime::workspace::remove(&self.0);
    }
}

fn describe(error: TaskError) -> anyhow::Error {
    match error {
        TaskError::Transient(r)
        | TaskError::Delayed { reason: r, .. }
        | TaskError::QuotaWait { reason: r, .. } => {
            anyhow::anyhow!("temporary failure (try again): {r}")
        }
        TaskError::Permanent(r) | TaskError::Unsupported(r) | TaskError::Cancelled(r) => {
            anyhow::anyhow!("{r}")
        }
    }
}
