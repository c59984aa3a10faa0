//! Asking the model for edits and making them stick: one LLM call with its usage and
//! metrics ([`Llm::ask`]), then apply the SEARCH/REPLACE blocks, run the syntax gate, and
//! give the model one repair round for an answer that does not apply and one for syntax
//! errors it introduced ([`edit`]); a round fed with failing checks ([`revise`]) goes on
//! from the same conversation. Applying and parsing run off the async runtime.

use super::meter::Meter;
use super::prompts;
use super::session::IssueSession;
use super::status::Step;
use super::syntax;
use super::workspace::{Workspace, blocking};
use crate::runtime::handler::TaskError;
use fleet_edits::{ChangedFile, EditError, Policy, apply, parse_blocks};
use fleet_llm::budget::{Budget, Prices, Spent};
use fleet_llm::{LlmClient, LlmRequest, Message, Phase};
use std::path::PathBuf;
use std::time::Instant;

/// The task's LLM: requests carry the task id; usage and metrics are recorded per call,
/// and the task's budget is checked before each one.
#[derive(Debug)]
pub struct Llm<'a> {
    pub client: &'a LlmClient,
    pub task_id: &'a str,
    pub meter: Meter,
    pub budget: Budget,
    pub prices: &'a Prices,
}

impl Llm<'_> {
    /// One LLM call, unless the task's budget is used up (a permanent failure that names
    /// the budget and the figures); its usage and cost are added to `spent`.
    pub async fn ask(
        &self,
        spent: &mut Spent,
        phase: Phase,
        system: &str,
        messages: Vec<Message>,
    ) -> Result<String, TaskError> {
        if let Err(stop) = self.budget.allows_another(spent) {
            tracing::warn!(
                budget = stop.budget,
                spent = stop.spent,
                limit = stop.limit,
                "LLM budget used up"
            );
            self.meter.budget_stop(stop.budget);
            return Err(TaskError::Permanent(stop.to_string()));
        }
        let started = Instant::now();
        let provider = self.client.provider().as_str();
        let request = LlmRequest {
            task_id: self.task_id.to_owned(),
            phase,
            system: system.to_owned(),
            messages,
        };
        let result = self.client.complete(&request).await;
        self.meter.phase("llm", started.elapsed().as_secs_f64());
        match result {
            Ok(response) => {
                let cost = self
                    .prices
                    .cost(&self.client.config().model, response.usage);
                self.meter
                    .llm_answered(provider, phase, response.usage, cost.unwrap_or(0.0));
                spent.add(response.usage, cost);
                tracing::info!(
                    phase = phase.as_str(),
                    input_tokens = response.usage.input_tokens,
                    output_tokens = response.usage.output_tokens,
                    "LLM answered"
                );
                Ok(response.text)
            }
            Err(error) => {
                self.meter.llm_failed(provider, phase, error.kind());
                Err(error.into())
            }
        }
    }
}

/// The edits of one answer, applied and through the syntax gate.
#[derive(Debug, Clone)]
pub struct Edited {
    pub applied: Vec<ChangedFile>,
    pub summary: String,
    /// The conversation so far, ending with the answer whose edits were applied: a later
    /// repair round (failing checks) goes on from here.
    pub conversation: Vec<Message>,
}

impl Edited {
    /// The changed paths, in order.
    pub fn paths(&self) -> Vec<String> {
        self.applied.iter().map(|f| f.path.clone()).collect()
    }
}

/// What one round of applying and gating found.
enum Round {
    /// Applied, and the syntax gate passed.
    Clean,
    /// Applied, but these syntax errors were introduced.
    Syntax(Vec<syntax::SyntaxProblem>),
    /// Not applied: the message for the repair prompt and the files it is about.
    Unapplied(String, Vec<String>),
}

/// What every round of the edit loop works with: the LLM, the checkout the edits apply
/// to, the system prompt and the edit policy.
#[derive(Debug, Clone, Copy)]
pub struct Editor<'a, 'l> {
    pub llm: &'a Llm<'l>,
    pub workspace: &'a Workspace,
    pub system: &'a str,
    pub policy: &'a Policy,
}

/// Asks for edits, applies them (one repair round for an answer that does not apply,
/// one for syntax errors it introduced), and leaves them on disk. Ticks `LLM` after the
/// first answer and `syntax` once the gate passed.
pub async fn edit(
    session: &mut IssueSession<'_>,
    editor: Editor<'_, '_>,
    prompt: String,
) -> Result<Edited, TaskError> {
    let messages = vec![Message::user(prompt)];
    let first = ask(session, editor, Phase::Edit, messages, Vec::new()).await?;
    session.reach(Step::Llm).await?;
    let edited = settle(session, editor, first).await?;
    session.reach(Step::Syntax).await?;
    Ok(edited)
}

/// A repair round for `edited` (`X-Agent-Phase: repair`) with `problem` (what the
/// repository's checks said), applied and gated like the first answer; the earlier edits
/// stay unless the new answer changes them again.
pub async fn revise(
    session: &mut IssueSession<'_>,
    editor: Editor<'_, '_>,
    edited: Edited,
    problem: String,
) -> Result<Edited, TaskError> {
    let mut messages = edited.conversation;
    messages.push(Message::user(problem));
    let next = ask(session, editor, Phase::Repair, messages, edited.applied).await?;
    let mut revised = settle(session, editor, next).await?;
    if revised.summary.is_empty() {
        revised.summary = edited.summary;
    }
    Ok(revised)
}

/// Asks the model with `messages` in `phase`: the answer, still to apply on top of
/// `changed`.
async fn ask(
    session: &mut IssueSession<'_>,
    editor: Editor<'_, '_>,
    phase: Phase,
    messages: Vec<Message>,
    changed: Vec<ChangedFile>,
) -> Result<Answered, TaskError> {
    let answer = editor
        .llm
        .ask(&mut session.spent, phase, editor.system, messages.clone())
        .await?;
    Ok(Answered {
        messages,
        answer,
        changed,
    })
}

/// An answer still to apply, the conversation that led to it and the edits before it.
struct Answered {
    messages: Vec<Message>,
    answer: String,
    changed: Vec<ChangedFile>,
}

/// Applies `answered` until it applies cleanly and passes the syntax gate, with one repair
/// round for an answer that does not apply and one for syntax errors.
async fn settle(
    session: &mut IssueSession<'_>,
    editor: Editor<'_, '_>,
    answered: Answered,
) -> Result<Edited, TaskError> {
    let Editor {
        llm,
        workspace,
        system,
        policy,
    } = editor;
    let Answered {
        mut messages,
        mut answer,
        mut changed,
    } = answered;
    let mut repaired_apply = false;
    let mut repaired_syntax = false;
    let mut summary = summary_of(&answer);
    loop {
        let round;
        (changed, round) = apply_and_gate(workspace.dir(), &answer, policy, changed).await?;
        let (message, files) = match round {
            Round::Clean => break,
            Round::Syntax(problems) => {
                if repaired_syntax {
                    let list = problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(TaskError::Permanent(format!(
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
            Round::Unapplied(message, files) => {
                if repaired_apply {
                    return Err(TaskError::Permanent(format!(
                        "the model's edits could not be applied after a repair round: {message}"
                    )));
                }
                repaired_apply = true;
                (message, files)
            }
        };
        tracing::info!(problem = %message, "asking for a repair");
        let shown = show_files(workspace, files).await?;
        let repair = prompts::render(
            prompts::REPAIR,
            &[
                ("problem", &message),
                ("files", &shown),
                ("edit_format", prompts::EDIT_FORMAT),
            ],
        );
        messages.push(Message::assistant(answer.clone()));
        messages.push(Message::user(repair));
        answer = llm
            .ask(&mut session.spent, Phase::Repair, system, messages.clone())
            .await?;
        let repaired_summary = summary_of(&answer);
        if summary.is_empty() {
            summary = repaired_summary;
        }
    }
    if changed.is_empty() {
        return Err(TaskError::Permanent("the model proposed no change".into()));
    }
    messages.push(Message::assistant(answer));
    Ok(Edited {
        applied: changed,
        summary,
        conversation: messages,
    })
}

/// Parses and applies one answer, merges its files into `changed` and runs the syntax
/// gate over them, on the blocking pool.
async fn apply_and_gate(
    repo: &std::path::Path,
    answer: &str,
    policy: &Policy,
    mut changed: Vec<ChangedFile>,
) -> Result<(Vec<ChangedFile>, Round), TaskError> {
    let repo = repo.to_path_buf();
    let answer = answer.to_owned();
    let policy = policy.clone();
    blocking("applying the edits", move || {
        let round = match apply_answer(&repo, &answer, &policy) {
            Ok(files) => {
                merge_changes(&mut changed, files);
                let problems: Vec<syntax::SyntaxProblem> = changed
                    .iter()
                    .flat_map(|f| syntax::introduced(&f.path, f.previous.as_deref(), &f.new))
                    .collect();
                if problems.is_empty() {
                    Round::Clean
                } else {
                    Round::Syntax(problems)
                }
            }
            Err((message, files)) => Round::Unapplied(message, files),
        };
        (changed, round)
    })
    .await
}

/// Parses and applies one answer; on failure, the message for the repair prompt and the
/// files it is about.
fn apply_answer(
    repo: &std::path::Path,
    answer: &str,
    policy: &Policy,
) -> Result<Vec<ChangedFile>, (String, Vec<String>)> {
    let blocks = parse_blocks(answer)
        .map_err(|e| (format!("Your answer could not be parsed: {e}"), Vec::new()))?;
    if blocks.is_empty() {
        return Err((
            "Your answer contained no SEARCH/REPLACE blocks.".into(),
            Vec::new(),
        ));
    }
    let files: Vec<String> = blocks.iter().map(|b| b.path.clone()).collect();
    apply(repo, &blocks, policy)
        .map(|applied| applied.files)
        .map_err(|e: EditError| (e.feedback(), files))
}

/// The current content of files, for a repair: read through the checkout boundary, so
/// an answer naming `docs/ref/environ` (with `docs/ref -> /proc/self`) shows nothing.
pub async fn show_files(workspace: &Workspace, files: Vec<String>) -> Result<String, TaskError> {
    /// A repair round shows whole files; bigger ones are not worth the prompt.
    const MAX_SHOWN_BYTES: u64 = 256 * 1024;
    let repo: PathBuf = workspace.dir().to_path_buf();
    blocking("reading files for a repair", move || {
        let checkout = crate::checkout::Checkout::new(&repo);
        let mut seen = Vec::new();
        let mut out = String::new();
        for path in files {
            if seen.contains(&path) {
                continue;
            }
            if let Ok(text) = checkout.read_text(&path, MAX_SHOWN_BYTES) {
                let numbered: String = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| format!("{:>5} | {l}\n", i + 1))
                    .collect();
                out.push_str(&format!("{path}\n```\n{numbered}```\n\n"));
            }
            seen.push(path);
        }
        if out.is_empty() {
            "(no existing files involved)".into()
        } else {
            out
        }
    })
    .await
}

/// Later answers (repairs) replace earlier content of the same file; the first `previous`
/// stays, so the syntax gate compares against the original file.
fn merge_changes(changed: &mut Vec<ChangedFile>, newer: Vec<ChangedFile>) {
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
