//! `worker run`: one task through the agent's pipeline, without queue or webhook. With
//! `--dry-run` it prints the diff and touches no tracker: how a person tries the agent on
//! their repository in one command.

use crate::agent::Agent;
use crate::agent::run::{Failure, Run};
use crate::agent::settings::AgentSettings;
use crate::handler::TaskContext;
use crate::runtime::handler::TaskMetrics;
use crate::settings::WorkerSettings;
use anyhow::{Context as _, bail};
use shared::settings::Env;
use shared::task::{IssueRef, TriggerInfo};
use shared::{Mode, RepoUrl, TaskMessage, Tracker};
use std::path::PathBuf;

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
        },
        approval: None,
        revision: None,
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
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
    let ctx = TaskContext {
        workdir: workdir.0.clone(),
        cancel: tokio_util::sync::CancellationToken::new(),
        attempt: 1,
        last_attempt: true,
        metrics: TaskMetrics::new(),
        received_at: std::time::Instant::now(),
    };
    let started = if args.dry_run {
        Run::start_dry(&agent, &task, &ctx, clone_source).await
    } else {
        Run::start(&agent, &task, &ctx).await
    };
    let mut run = started.map_err(describe)?;
    if !args.dry_run {
        run.publish_status().await.map_err(describe)?;
    }
    Agent::execute(&mut run).await.map_err(describe)
}

/// The run's dir, removed when the run ends (also on an error).
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = crate::runtime::workspace::remove(&self.0);
    }
}

fn describe(failure: Failure) -> anyhow::Error {
    match failure {
        Failure::Transient(r) => anyhow::anyhow!("temporary failure (try again): {r}"),
        Failure::Permanent(r) | Failure::Unsupported(r) => anyhow::anyhow!("{r}"),
    }
}
