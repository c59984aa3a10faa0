//! The repository's own checks after the edits pass the syntax gate: configured in
//! `.agent-fleet.yml` or detected from its build files, run in the sandbox
//! ([`fleet_sandbox`]) on the edited checkout, a failure compared with the code before the
//! change (a second working tree, once per check and task), new failures fed back to the
//! model in repair rounds, and the `### Checks` evidence for the pull request.
//!
//! Nothing a check does reaches the commit: after every round the edited files are put
//! back as the edits left them and (in the process sandbox, where a check can write it) the
//! clone's whole `.git` from a copy taken before the checks, so a commit holds only the edits
//! and the worker's git is steered by nothing a check wrote.

mod undo;

use super::edit_loop::{self, Edited};
use super::modes::{self, Job};
use super::prompts;
use super::workspace::blocking;
use crate::runtime::handler::TaskError;
use fleet_repo_config::RepoConfig;
use fleet_sandbox::suite::{
    Base, BaseResults, Check, CheckRun, Runner, Verdict, checks_section, repair_feedback,
};
use fleet_sandbox::{Limits, Mode, Spec};
use secrecy::ExposeSecret as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use undo::{GitState, undo_side_effects};

/// Bytes of a failing check's output (its end) a repair prompt gets.
const FEEDBACK_TAIL_BYTES: usize = 16 * 1024;

/// Folders a check never sees (bubblewrap), besides the workspace with every task's
/// checkout: where Kubernetes and compose mount secrets.
const SECRET_MOUNTS: [&str; 2] = ["/var/run/secrets", "/run/secrets"];

/// What the checks said, for the pull request and the status comment.
#[derive(Debug, Clone)]
pub struct ChecksReport {
    /// The PR body's `### Checks` section.
    pub section: String,
    /// New failures remain after the repair rounds.
    pub failing: bool,
    /// Repair rounds fed with failing checks.
    pub rounds: u32,
    /// The blocking checks' names, when `failing`.
    pub failing_names: Vec<String>,
    /// Each check's name and how it ended (the last round).
    pub results: Vec<(String, Verdict)>,
}

impl ChecksReport {
    fn quiet(section: String) -> Self {
        Self {
            section,
            failing: false,
            rounds: 0,
            failing_names: Vec::new(),
            results: Vec::new(),
        }
    }
}

/// Runs the checks on `edited` (repairing with the model while new failures remain and
/// rounds are left) and returns the edits as they stand with the report.
/// `allowed_paths` limits the repairs' edits as it limited the first ones (a plan's files).
pub async fn verify(
    job: &mut Job<'_>,
    mut edited: Edited,
    allowed_paths: Option<Vec<String>>,
) -> Result<(Edited, ChecksReport), TaskError> {
    let settings = job.agent.settings.checks.clone();
    if !settings.enabled {
        let section = "### Checks\n\nChecks are turned off on this fleet (`CHECKS=off`).\n";
        return Ok((edited, ChecksReport::quiet(section.into())));
    }
    let config = job.repo.config.clone();
    let checks = checks_of(job, &config, settings.timeout).await?;
    let mode = job.agent.sandbox_mode().await;
    if checks.is_empty() {
        return Ok((
            edited,
            ChecksReport::quiet(checks_section(&[], mode.as_str())),
        ));
    }
    let started = Instant::now();
    job.workspace.meter().entered("check");
    let mut secrets = job.agent.settings.secret_values();
    // A GitHub App's installation token is minted per task: a secret the settings lack.
    secrets.push(job.session.github.token().expose_secret().to_owned());
    secrets.retain(|s| !s.is_empty());
    let suite = Suite::new(job, mode, &config, &secrets, settings.output_bytes);
    let before = GitState::of(job, mode).await?;
    // Read before any check runs: a check may rewrite the repository's instructions file.
    let system = modes::system_prompt(job).await?;
    let mut base = BaseResults::default();
    let mut set_up = config.setup.is_empty();
    let mut rounds = 0;
    let mut repair_failed = None;
    let runs = loop {
        show(
            job,
            format!(
                "Checks: running {} in the `{}` sandbox…",
                names(&checks),
                mode.as_str()
            ),
        )
        .await?;
        let mut runs = Vec::new();
        if !set_up {
            match suite
                .runner
                .setup(job.workspace.dir(), &config.setup, settings.timeout)
                .await
            {
                Ok(()) => set_up = true,
                Err(failed) => runs.push(CheckRun {
                    check: Check {
                        name: fleet_sandbox::suite::SETUP.into(),
                        run: failed.step,
                        timeout: settings.timeout,
                        detected: false,
                    },
                    verdict: verdict_of(&failed.finished),
                    finished: failed.finished,
                }),
            }
        }
        if set_up {
            runs = suite.runner.checks(job.workspace.dir(), &checks).await;
        }
        // The clone's git state goes back before the worker runs git again (the base
        // worktree), and once more after the base's runs.
        undo_side_effects(job, &before, &edited.applied).await?;
        if runs.iter().any(|r| r.verdict == Verdict::Failed) {
            suite
                .compare(job, &config, settings.timeout, &mut runs, &mut base)
                .await?;
            undo_side_effects(job, &before, &edited.applied).await?;
        }
        for run in &runs {
            job.workspace.meter().check_ran(
                &run.check.name,
                run.verdict.as_str(),
                run.finished.duration.as_secs_f64(),
            );
        }
        show(job, format!("Checks: {}.", results(&runs))).await?;
        let blocking = runs.iter().any(|r| r.verdict.blocks());
        if !blocking || rounds >= config.repair_rounds {
            break runs;
        }
        rounds += 1;
        tracing::info!(
            round = rounds,
            "checks fail with the edits; asking for a repair"
        );
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let failures = repair_feedback(&runs, &secret_refs, FEEDBACK_TAIL_BYTES);
        let files = edit_loop::show_files(&job.workspace, edited.paths()).await?;
        let prompt = prompts::render(
            prompts::CHECKS_REPAIR,
            &[
                ("failures", &failures),
                ("files", &files),
                ("edit_format", prompts::EDIT_FORMAT),
            ],
        );
        let policy = modes::policy(job, allowed_paths.clone());
        let editor = edit_loop::Editor {
            llm: &job.llm,
            workspace: &job.workspace,
            system: &system,
            policy: &policy,
        };
        let last_good = edited.clone();
        match edit_loop::revise(&mut job.session, editor, edited, prompt).await {
            Ok(revised) => edited = revised,
            // A repair that cannot be had (the budget, an answer that never applies) keeps
            // the last edits that passed the syntax gate, with what the checks said of them.
            Err(TaskError::Permanent(reason)) => {
                tracing::warn!(reason, "the repair round failed; keeping the last edits");
                edited = last_good;
                undo_side_effects(job, &before, &edited.applied).await?;
                repair_failed = Some(reason);
                break runs;
            }
            Err(other) => return Err(other),
        }
    };
    job.workspace
        .meter()
        .phase("check", started.elapsed().as_secs_f64());
    let failing_names: Vec<String> = runs
        .iter()
        .filter(|r| r.verdict.blocks())
        .map(|r| r.check.name.clone())
        .collect();
    let mut section = checks_section(&runs, mode.as_str());
    if rounds > 0 {
        section.push_str(&format!(
            "\nRepair rounds fed with failing checks: {rounds}.\n"
        ));
    }
    if let Some(reason) = &repair_failed {
        section.push_str(&format!("\nThe last repair round failed: {reason}.\n"));
    }
    if !failing_names.is_empty() {
        section.push_str(&format!(
            "\n**Still failing after {rounds} repair round(s): {}.**\n",
            failing_names.join(", ")
        ));
    }
    Ok((
        edited,
        ChecksReport {
            section,
            failing: !failing_names.is_empty(),
            rounds,
            failing_names,
            results: runs
                .iter()
                .map(|r| (r.check.name.clone(), r.verdict))
                .collect(),
        },
    ))
}

/// The configured checks, else the detected ones (labelled so).
async fn checks_of(
    job: &Job<'_>,
    config: &RepoConfig,
    default_timeout: Duration,
) -> Result<Vec<Check>, TaskError> {
    let timeout = |secs: Option<u64>| secs.map_or(default_timeout, Duration::from_secs);
    if let Some(configured) = &config.checks {
        return Ok(configured
            .iter()
            .map(|c| Check {
                name: c.name.clone(),
                run: c.run.clone(),
                timeout: timeout(c.timeout_secs),
                detected: false,
            })
            .collect());
    }
    let checkout = job.workspace.checkout();
    let detected = blocking("detecting the repository's checks", move || {
        fleet_repo_config::detect(|path| checkout.read_text(path, 1 << 20).ok(), on_path)
    })
    .await?;
    Ok(detected
        .into_iter()
        .map(|c| Check {
            name: c.name,
            run: c.run,
            timeout: timeout(c.timeout_secs),
            detected: true,
        })
        .collect())
}

/// Whether `tool` is an executable file in a folder of the worker's `PATH`.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The sandboxed runners: one for the edited checkout, one for the base's working tree
/// (which needs the clone's git state, read-only, to be a repository).
struct Suite {
    runner: Runner,
    base_runner: Runner,
    base_dir: PathBuf,
}

impl Suite {
    fn new(
        job: &Job<'_>,
        mode: Mode,
        config: &RepoConfig,
        secrets: &[String],
        output_cap: usize,
    ) -> Self {
        let settings = &job.agent.settings.checks;
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let lookup = |name: &str| std::env::var(name).ok();
        let mut hide = vec![job.agent.worker.workspace_dir.clone()];
        hide.extend(SECRET_MOUNTS.iter().map(PathBuf::from));
        let template = Spec {
            mode,
            command: String::new(),
            checkout: job.workspace.dir().to_path_buf(),
            scratch: job.workspace.scratch("sandbox"),
            hide,
            read_only: Vec::new(),
            network: config.network,
            timeout: settings.timeout,
            output_cap,
            env: fleet_sandbox::env::sandbox_env(lookup, &settings.extra_env, &secret_refs),
            limits: Limits::default(),
        };
        let mut base_template = template.clone();
        base_template.read_only = vec![job.workspace.dir().join(".git")];
        let cancel = job.workspace.cancel().clone();
        Self {
            runner: Runner {
                template,
                cancel: cancel.clone(),
            },
            base_runner: Runner {
                template: base_template,
                cancel,
            },
            base_dir: job.workspace.scratch("base"),
        }
    }

    /// Marks the failures the base commit has too; its working tree is made on first use.
    async fn compare(
        &self,
        job: &Job<'_>,
        config: &RepoConfig,
        setup_timeout: Duration,
        runs: &mut [CheckRun],
        cache: &mut BaseResults,
    ) -> Result<(), TaskError> {
        // Made once: a round whose only failure was the setup asks the base nothing, so
        // the cache alone cannot say whether the worktree exists.
        if !self.base_dir.exists() {
            let (git, dir) = (job.workspace.git(), job.workspace.dir());
            git.base_worktree(dir, &self.base_dir, job.workspace.cancel())
                .await?;
        }
        let base = Base {
            dir: &self.base_dir,
            setup: &config.setup,
            setup_timeout,
        };
        self.base_runner.compare_with_base(runs, &base, cache).await;
        Ok(())
    }
}

fn verdict_of(finished: &fleet_sandbox::Finished) -> Verdict {
    match finished.exit {
        fleet_sandbox::Exit::TimedOut => Verdict::TimedOut,
        _ => Verdict::Failed,
    }
}

/// Shows `line` as the checks' line of the status comment.
async fn show(job: &mut Job<'_>, line: String) -> Result<(), TaskError> {
    job.session.status.checks = Some(line);
    job.session.publish_status().await
}

fn names(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `tests passed (1.2 s), lint failed (0.3 s)`.
fn results(runs: &[CheckRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "`{}` {} ({:.1} s)",
                r.check.name,
                r.verdict.as_str(),
                r.finished.duration.as_secs_f64()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
