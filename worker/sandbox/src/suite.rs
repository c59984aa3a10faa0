//! A repository's checks as one suite: the setup steps once, then every check in order,
//! each in the sandbox; what failed is then tried on the base commit (once per task,
//! cached) so that only new failures count; the evidence for the PR body and the feedback
//! for a repair round.

use crate::{Exit, Finished, Spec};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One check to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub run: String,
    pub timeout: Duration,
    /// Guessed from the build files, not named in `.agent-fleet.yml`.
    pub detected: bool,
}

/// The name a failed setup step is reported under.
pub const SETUP: &str = "setup";

impl Check {
    /// A setup step reported as a check (it failed, so no check ran).
    pub fn is_setup(&self) -> bool {
        self.name == SETUP
    }
}

/// How a check ended, as the PR body says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    TimedOut,
    /// Failed, and fails on the base commit too: not the change's doing, does not block.
    FailingBefore,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::TimedOut => "timed out",
            Verdict::FailingBefore => "failing before the change",
        }
    }

    /// Whether the change is to blame (a repair round, or no ready PR).
    pub fn blocks(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::TimedOut)
    }
}

/// One check's run.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub check: Check,
    pub verdict: Verdict,
    pub finished: Finished,
}

/// A setup step that did not succeed: no check can run.
#[derive(Debug, Clone)]
pub struct SetupFailed {
    pub step: String,
    pub finished: Finished,
}

/// Runs commands like `template` (mode, network, environment, limits, hidden folders,
/// output cap), in a given folder and with each one's own command line and timeout.
#[derive(Debug, Clone)]
pub struct Runner {
    pub template: Spec,
    pub cancel: CancellationToken,
}

impl Runner {
    async fn run(&self, dir: &Path, command: &str, timeout: Duration) -> Finished {
        let mut spec = self.template.clone();
        spec.checkout = dir.to_path_buf();
        spec.command = command.to_owned();
        spec.timeout = timeout;
        match crate::run(&spec, &self.cancel).await {
            Ok(finished) => finished,
            // The sandbox itself would not start: shown as a failure of the command, with
            // the reason as its output, so the report says what to install.
            Err(error) => Finished {
                exit: Exit::Code(127),
                output: crate::Output {
                    kept: error.to_string().into_bytes(),
                    total_bytes: error.to_string().len() as u64,
                },
                duration: Duration::ZERO,
            },
        }
    }

    /// The setup steps in order, each with `timeout`; the first that fails stops them.
    pub async fn setup(
        &self,
        dir: &Path,
        steps: &[String],
        timeout: Duration,
    ) -> Result<(), SetupFailed> {
        for step in steps {
            let finished = self.run(dir, step, timeout).await;
            if !finished.exit.passed() {
                return Err(SetupFailed {
                    step: step.clone(),
                    finished,
                });
            }
        }
        Ok(())
    }

    /// Every check in order (a failure does not stop the others: the report shows all).
    pub async fn checks(&self, dir: &Path, checks: &[Check]) -> Vec<CheckRun> {
        let mut runs = Vec::with_capacity(checks.len());
        for check in checks {
            let finished = self.run(dir, &check.run, check.timeout).await;
            let verdict = match finished.exit {
                Exit::Code(0) => Verdict::Passed,
                Exit::TimedOut => Verdict::TimedOut,
                _ => Verdict::Failed,
            };
            runs.push(CheckRun {
                check: check.clone(),
                verdict,
                finished,
            });
        }
        runs
    }

    /// Marks the failures that fail on the base commit (checked out in `base_dir`) too as
    /// [`Verdict::FailingBefore`]. The base gets the `setup` steps first (once); a base
    /// that cannot be set up fails every check. Each check runs on the base at most once
    /// per task: the answers are kept in `cache`.
    pub async fn compare_with_base(
        &self,
        runs: &mut [CheckRun],
        base: &Base<'_>,
        cache: &mut BaseResults,
    ) {
        // A setup step that failed is never "failing before": nothing was checked.
        for run in runs
            .iter_mut()
            .filter(|r| r.verdict == Verdict::Failed && !r.check.is_setup())
        {
            let failed_before = match cache.checks.get(&run.check.name) {
                Some(failed_before) => *failed_before,
                None => {
                    let set_up = match cache.setup {
                        Some(done) => done,
                        None => {
                            let done = self
                                .setup(base.dir, base.setup, base.setup_timeout)
                                .await
                                .is_ok();
                            cache.setup = Some(done);
                            done
                        }
                    };
                    // Only a base that ran the check to a real failing exit counts: a base
                    // that cannot be set up, or a command that is not there (126, 127, the
                    // sandbox refusing to start), proves nothing, so the failure blocks.
                    let failed_before = set_up
                        && matches!(
                            self.run(base.dir, &run.check.run, run.check.timeout).await.exit,
                            Exit::Code(code) if code != 0 && code != 126 && code != 127
                        );
                    cache.checks.insert(run.check.name.clone(), failed_before);
                    failed_before
                }
            };
            if failed_before {
                run.verdict = Verdict::FailingBefore;
            }
        }
    }
}

/// The code before the change, for [`Runner::compare_with_base`].
#[derive(Debug, Clone, Copy)]
pub struct Base<'a> {
    /// Its checkout (a second working tree of the task's clone).
    pub dir: &'a Path,
    pub setup: &'a [String],
    pub setup_timeout: Duration,
}

/// The checks' results on the base commit, by name (run once per task), and whether its
/// setup succeeded.
#[derive(Debug, Clone, Default)]
pub struct BaseResults {
    checks: HashMap<String, bool>,
    setup: Option<bool>,
}

impl BaseResults {
    /// Whether check `name` was found failing on the base (`None`: not asked).
    pub fn known(&self, name: &str) -> Option<bool> {
        self.checks.get(name).copied()
    }
}

/// The PR body's `### Checks` section: a line per check with its name, command, result and
/// duration (detected checks say so).
pub fn checks_section(runs: &[CheckRun], sandbox: &str) -> String {
    let mut out = String::from("### Checks\n\n");
    if runs.is_empty() {
        out.push_str("No checks are configured or detected for this repository.\n");
        return out;
    }
    out.push_str("| check | command | result | duration |\n|---|---|---|---|\n");
    for run in runs {
        let detected = if run.check.detected {
            " (detected)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {}{detected} | `{}` | {} | {:.1} s |",
            cell(&run.check.name),
            cell(&run.check.run).replace('`', "'"),
            run.verdict.as_str(),
            run.finished.duration.as_secs_f64()
        );
    }
    let _ = writeln!(
        out,
        "\nRun by agent-fleet in the `{sandbox}` sandbox, without secrets."
    );
    out
}

/// A table cell: no line breaks or pipes from the repository's names.
fn cell(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// What a repair round tells the model about the blocking failures: each check's name,
/// command, exit and the end of its output (ANSI codes and `secrets` removed), at most
/// `max_output_bytes` of output per check.
pub fn repair_feedback(runs: &[CheckRun], secrets: &[&str], max_output_bytes: usize) -> String {
    let mut out = String::new();
    for run in runs.iter().filter(|r| r.verdict.blocks()) {
        let exit = match run.finished.exit {
            Exit::Code(code) => format!("exit code {code}"),
            Exit::Signal(signal) => format!("killed by signal {signal}"),
            Exit::TimedOut => format!("timed out after {} s", run.check.timeout.as_secs()),
            Exit::Cancelled => "cancelled".into(),
        };
        let tail = run.finished.output.tail_text(max_output_bytes, secrets);
        let fence = fence_for(&tail);
        let _ = write!(
            out,
            "The check `{}` (`{}`) failed: {exit}. The end of its output:\n\n{fence}text\n{}\n{fence}\n\n",
            run.check.name,
            run.check.run,
            tail.trim_end()
        );
    }
    crate::output::redact(&out, secrets)
}

/// A code fence longer than any run of backticks in `text`, so the output cannot close it.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}
