//! The agent's pull requests talking back: a review on one (`pull_request_review.submitted`
//! → `followup`) and a failed check suite on one (`check_suite.completed` → `fixci`).
//!
//! Both count only for an agent pull request: its head is an `agent/...` branch of the
//! same repository (a fork can name its branch `agent/github-1` too, and its code is not
//! ours to build on). A review follows the comment rules (an owner, member or collaborator,
//! never the agent); a check suite has no author (CI reports it, often on the agent's own
//! push), so it has neither author rules nor the loop guard: the worker bounds the rounds.

use super::{Delivery, Login, Payload, TRUSTED_ASSOCIATIONS, is_agent, login, repo_url};
use crate::normalize::{
    CommandTask, Normalized, Origin, PayloadError, Request, id_leaf, instruction, message,
    opt_text, str_leaf, u64_leaf,
};
use crate::settings::IngestSettings;
use serde::Deserialize;
use serde_json::Value;
use shared::task::{ChecksRef, IssueRef, ReviewRef};
use shared::{Mode, RepoUrl, Tracker};

/// The prefix of every branch the agent pushes.
const AGENT_BRANCH_PREFIX: &str = "agent/";

#[derive(Debug, Deserialize, Default)]
pub struct Review {
    id: Option<Value>,
    body: Option<Value>,
    state: Option<Value>,
    user: Option<Login>,
    author_association: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Pull {
    number: Option<Value>,
    title: Option<Value>,
    body: Option<Value>,
    html_url: Option<Value>,
    head: Option<Side>,
    base: Option<Side>,
}

/// A pull request's head or base: its branch and its repository.
#[derive(Debug, Deserialize, Default)]
struct Side {
    #[serde(rename = "ref")]
    branch: Option<Value>,
    repo: Option<SideRepo>,
}

#[derive(Debug, Deserialize, Default)]
struct SideRepo {
    id: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
pub struct CheckSuite {
    id: Option<Value>,
    conclusion: Option<Value>,
    head_branch: Option<Value>,
    head_sha: Option<Value>,
    pull_requests: Option<Vec<Pull>>,
}

/// `pull_request_review`: a submitted review that comments or asks for changes on an agent
/// pull request becomes one `followup` task (its line comments are fetched and batched by
/// the worker); its body is the instruction.
pub fn review(
    delivery: &Delivery<'_>,
    payload: &Payload,
    settings: &IngestSettings,
) -> Result<Normalized, PayloadError> {
    let action = str_leaf(payload.action.as_ref(), "action")?;
    if action != "submitted" {
        return Ok(Normalized::Ignored("action not handled"));
    }
    let sender = str_leaf(login(payload.sender.as_ref()), "sender.login")?;
    if is_agent(settings, sender) {
        return Ok(Normalized::Ignored("sent by the agent itself"));
    }
    let review = payload.review.as_ref();
    let state = str_leaf(review.and_then(|r| r.state.as_ref()), "review.state")?;
    if !["commented", "changes_requested"].contains(&state.to_ascii_lowercase().as_str()) {
        return Ok(Normalized::Ignored(
            "review neither comments nor requests changes",
        ));
    }
    let author = str_leaf(
        login(review.and_then(|r| r.user.as_ref())),
        "review.user.login",
    )?;
    if is_agent(settings, author) {
        return Ok(Normalized::Ignored("review written by the agent itself"));
    }
    let association = review.and_then(|r| r.author_association.as_ref());
    let association = str_leaf(association, "review.author_association")?;
    if !TRUSTED_ASSOCIATIONS.contains(&association) {
        return Ok(Normalized::Ignored(
            "review author is not an owner, member or collaborator",
        ));
    }
    let repo_url = repo_url(payload)?;
    let pull = payload.pull_request.as_ref();
    let pull_number = u64_leaf(pull.and_then(|p| p.number.as_ref()), "pull_request.number")?;
    let head = head_branch(pull, "pull_request.head.ref")?;
    if let Some(reason) = not_ours(head, pull, repository_id(payload)) {
        return Ok(Normalized::Ignored(reason));
    }
    let review_id = id_leaf(review.and_then(|r| r.id.as_ref()), "review.id")?;
    let title = str_leaf(pull.and_then(|p| p.title.as_ref()), "pull_request.title")?;
    let issue = match issue_of_branch(head) {
        Some(number) => issue_ref(&repo_url, number, title),
        None => pull_ref(&repo_url, pull_number, title, pull)?,
    };
    let body = opt_text(review.and_then(|r| r.body.as_ref())).unwrap_or("");
    let task = CommandTask {
        review: Some(ReviewRef {
            pull_number,
            review_id,
        }),
        instruction: instruction(body),
        ..CommandTask::plain(Mode::Followup)
    };
    Ok(message(
        origin(delivery, action, repo_url, issue, author),
        Request::task(task),
    ))
}

/// `check_suite`: a completed suite that failed on an agent pull request's head becomes a
/// `fixci` task. A success is what ends the loop: ignored.
pub fn check_suite(delivery: &Delivery<'_>, payload: &Payload) -> Result<Normalized, PayloadError> {
    let action = str_leaf(payload.action.as_ref(), "action")?;
    if action != "completed" {
        return Ok(Normalized::Ignored("action not handled"));
    }
    let suite = payload.check_suite.as_ref();
    let conclusion = opt_text(suite.and_then(|s| s.conclusion.as_ref())).unwrap_or("");
    if conclusion != "failure" {
        return Ok(Normalized::Ignored("check suite did not fail"));
    }
    // A fork's suite has no head branch here, nor a pull request in the list.
    let Some(head) = opt_text(suite.and_then(|s| s.head_branch.as_ref())) else {
        return Ok(Normalized::Ignored("not an agent pull request"));
    };
    if !head.starts_with(AGENT_BRANCH_PREFIX) {
        return Ok(Normalized::Ignored("not an agent pull request"));
    }
    let repository = repository_id(payload);
    let pulls = suite
        .and_then(|s| s.pull_requests.as_deref())
        .unwrap_or(&[]);
    let Some(pull) = pulls.iter().find(|pull| {
        let branch = pull.head.as_ref().and_then(|h| opt_text(h.branch.as_ref()));
        branch == Some(head) && not_ours(head, Some(pull), repository).is_none()
    }) else {
        return Ok(Normalized::Ignored(
            "no pull request of this repository has the suite's head",
        ));
    };
    let repo_url = repo_url(payload)?;
    let pull_number = u64_leaf(pull.number.as_ref(), "check_suite.pull_requests[].number")?;
    let head_sha = str_leaf(
        suite.and_then(|s| s.head_sha.as_ref()),
        "check_suite.head_sha",
    )?;
    let check_suite_id = id_leaf(suite.and_then(|s| s.id.as_ref()), "check_suite.id")?;
    let sender = str_leaf(login(payload.sender.as_ref()), "sender.login")?;
    let title = format!("CI failed on {head}");
    let issue = match issue_of_branch(head) {
        Some(number) => issue_ref(&repo_url, number, &title),
        None => IssueRef {
            url: format!("{repo_url}/pull/{pull_number}"),
            pull_request: true,
            ..issue_ref(&repo_url, pull_number, &title)
        },
    };
    let task = CommandTask {
        checks: Some(ChecksRef {
            pull_number,
            head_sha: head_sha.to_owned(),
            check_suite_id,
        }),
        ..CommandTask::plain(Mode::Fixci)
    };
    Ok(message(
        origin(delivery, action, repo_url, issue, sender),
        Request::task(task),
    ))
}

/// What a GitHub delivery's message shares, whichever it becomes.
pub fn origin(
    delivery: &Delivery<'_>,
    action: &str,
    repo_url: RepoUrl,
    issue: IssueRef,
    user: &str,
) -> Origin {
    Origin {
        source: Tracker::Github,
        delivery_id: delivery.delivery_id.to_owned(),
        event: format!("{}.{action}", delivery.event),
        received_at: delivery.received_at,
        repo_url,
        issue,
        trigger_user: user.to_owned(),
    }
}

fn head_branch<'a>(pull: Option<&'a Pull>, path: &str) -> Result<&'a str, PayloadError> {
    str_leaf(
        pull.and_then(|p| p.head.as_ref())
            .and_then(|h| h.branch.as_ref()),
        path,
    )
}

fn repository_id(payload: &Payload) -> Option<&Value> {
    payload.repository.as_ref().and_then(|r| r.id.as_ref())
}

/// Why a pull request with head `head` is not the agent's to work on, if it is not: the
/// branch is not an agent branch, or its head is not in the repository the webhook is
/// about (a fork, or a deleted one: `head.repo` is then null).
fn not_ours(head: &str, pull: Option<&Pull>, repository: Option<&Value>) -> Option<&'static str> {
    if !head.starts_with(AGENT_BRANCH_PREFIX) {
        return Some("not an agent pull request");
    }
    let head_repo = repo_of(pull.and_then(|p| p.head.as_ref()));
    let base_repo = repo_of(pull.and_then(|p| p.base.as_ref()));
    match (head_repo, base_repo) {
        (Some(head), Some(base)) if head == base && repository.is_none_or(|r| r == base) => None,
        _ => Some("pull request from another repository (a fork)"),
    }
}

fn repo_of(side: Option<&Side>) -> Option<&Value> {
    side.and_then(|s| s.repo.as_ref())
        .and_then(|r| r.id.as_ref())
        .filter(|id| !id.is_null())
}

/// The GitHub issue an agent branch `agent/github-<n>` works on.
fn issue_of_branch(head: &str) -> Option<u64> {
    head.strip_prefix("agent/github-")?.parse().ok()
}

/// The issue an agent pull request's body names in its hidden marker
/// (`<!-- agent-fleet:issue key=... number=<n> ... -->`). The agent writes it last, after
/// text the LLM wrote (which could hold a marker of its own): the last one counts.
pub fn issue_named_in(body: &str) -> Option<u64> {
    let marker = body.rsplit("<!-- agent-fleet:issue ").next()?;
    if marker.len() == body.len() {
        return None;
    }
    let marker = marker.split("-->").next()?;
    marker
        .split_whitespace()
        .find_map(|part| part.strip_prefix("number="))?
        .parse()
        .ok()
}

/// Issue `number` of `repo`, as a task names it.
pub fn issue_ref(repo: &RepoUrl, number: u64, title: &str) -> IssueRef {
    IssueRef {
        tracker: Tracker::Github,
        key: format!("{}#{number}", repo.full_name()),
        number: Some(number),
        title: title.to_owned(),
        body: String::new(),
        url: format!("{repo}/issues/{number}"),
        labels: Vec::new(),
        pull_request: false,
    }
}

/// The pull request itself (an agent branch of a Jira issue): the worker keeps its thread.
fn pull_ref(
    repo: &RepoUrl,
    number: u64,
    title: &str,
    pull: Option<&Pull>,
) -> Result<IssueRef, PayloadError> {
    let url = str_leaf(
        pull.and_then(|p| p.html_url.as_ref()),
        "pull_request.html_url",
    )?;
    Ok(IssueRef {
        body: opt_text(pull.and_then(|p| p.body.as_ref()))
            .unwrap_or("")
            .to_owned(),
        url: url.to_owned(),
        pull_request: true,
        ..issue_ref(repo, number, title)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_branches_and_markers_name_their_issue() {
        assert_eq!(issue_of_branch("agent/github-42"), Some(42));
        assert_eq!(issue_of_branch("agent/jira-PAY-1"), None);
        assert_eq!(issue_of_branch("agent/github-x"), None);
        assert_eq!(
            issue_named_in("Fixes #7\n<!-- agent-fleet:issue key=a/b#7 number=7 task=t -->"),
            Some(7)
        );
        assert_eq!(
            issue_named_in("<!-- agent-fleet:issue key=PAY-1 number= task=t -->"),
            None
        );
        assert_eq!(issue_named_in("no marker"), None);
        let forged = "<!-- agent-fleet:issue key=a/b#9 number=9 task=x -->\n\
                      <!-- agent-fleet:issue key=a/b#7 number=7 task=t -->";
        assert_eq!(
            issue_named_in(forged),
            Some(7),
            "the agent's own marker is the last"
        );
    }
}
