//! The agent's open pull request for the follow-up tests (followup, fixci): its branch in the
//! world's repository (the agent's commit, then whatever people or earlier fix rounds pushed),
//! the pull request as GitHub's API shows it, and the tasks a review or a failed check suite
//! starts, shaped as the ingest sends them.
#![allow(dead_code)]

use super::standins::git;
use super::world::{REPO, World};
use shared::task::{ChecksRef, ReviewRef};
use shared::{Mode, TaskMessage};

/// The worker's git identity in [`World::worker`]: its commits are the agent's.
pub const AGENT: (&str, &str) = ("Fleet Agent", "fleet@example.com");
/// A person pushing to the branch.
pub const HUMAN: (&str, &str) = ("Dana Dev", "dana@example.com");

/// One commit to push: its message, files and who commits it.
pub struct Commit<'a> {
    pub message: &'a str,
    pub files: &'a [(&'a str, &'a str)],
    pub by: (&'a str, &'a str),
}

impl World {
    /// The world's bare repository.
    pub fn bare(&self) -> std::path::PathBuf {
        self.repos.root.join("github").join(format!("{REPO}.git"))
    }

    /// Pushes `commits` onto `branch` (created from `main` when new); returns its head.
    pub fn push_commits(&self, branch: &str, commits: &[Commit<'_>]) -> String {
        let work = self
            .repos
            .root
            .join("scratch")
            .join(branch.replace('/', "_"));
        if !work.exists() {
            let bare = self.bare();
            git(
                &self.repos.root,
                &[
                    "clone",
                    "-q",
                    bare.to_str().expect("utf8"),
                    work.to_str().expect("utf8"),
                ],
            );
            git(&work, &["checkout", "-q", "-B", branch]);
        }
        git(&work, &["fetch", "-q", "origin"]);
        let remote = format!("origin/{branch}");
        if git(&work, &["branch", "-r", "--list", &remote]).trim() == remote {
            git(&work, &["reset", "-q", "--hard", &remote]);
        }
        for commit in commits {
            for (path, content) in commit.files {
                let full = work.join(path);
                std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
                std::fs::write(full, content).expect("write");
            }
            let (name, email) = commit.by;
            let (name, email) = (format!("user.name={name}"), format!("user.email={email}"));
            git(&work, &["add", "."]);
            git(
                &work,
                &["-c", &name, "-c", &email, "commit", "-qm", commit.message],
            );
        }
        git(
            &work,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        self.head_of(branch)
    }

    /// The commit `branch` points at in the world's repository.
    pub fn head_of(&self, branch: &str) -> String {
        self.repos
            .git_in(REPO, &["rev-parse", &format!("refs/heads/{branch}")])
            .trim()
            .to_owned()
    }

    /// The parent of `sha` in the world's repository.
    pub fn parent_of(&self, sha: &str) -> String {
        self.repos
            .git_in(REPO, &["rev-parse", &format!("{sha}^")])
            .trim()
            .to_owned()
    }

    /// Commits on `branch` beyond `main`.
    pub fn commits_beyond_main(&self, branch: &str) -> usize {
        let range = format!("main..refs/heads/{branch}");
        self.repos
            .git_in(REPO, &["rev-list", "--count", &range])
            .trim()
            .parse()
            .expect("a count")
    }

    /// The agent's branch for issue `issue` with its first commit (and `more` on top), and
    /// its open pull request `pull` in the same repository; returns the branch head. The
    /// API lists the pull's commits from the repository itself.
    pub fn agent_pull(&self, issue: u64, pull: u64, more: &[Commit<'_>]) -> String {
        let branch = format!("agent/github-{issue}");
        let first = Commit {
            message: "Add fees\n\nAgent-Task: github:first",
            files: &[("pay/fees.py", "def fee(amount):\n    return 0\n")],
            by: AGENT,
        };
        self.push_commits(&branch, &[first]);
        let head = self.push_commits(&branch, more);
        self.github.add_pull(pull, &branch, &head, REPO, REPO);
        self.github.commits_from(self.bare(), "main");
        head
    }

    /// The followup task a review `review_id` by `dev1` on pull `pull` of issue `issue` starts.
    pub fn review_task(&self, id: &str, issue: u64, pull: u64, review_id: &str) -> TaskMessage {
        let mut task = self.task(id, issue, "dev1");
        task.mode = Mode::Followup;
        task.issue.labels.clear();
        task.trigger.event = "pull_request_review.submitted".into();
        task.review = Some(ReviewRef {
            pull_number: pull,
            review_id: review_id.into(),
        });
        task
    }

    /// The fixci task a failed check suite on `head_sha` of pull `pull` starts (its sender
    /// is a CI app without write access).
    pub fn fixci_task(&self, id: &str, issue: u64, pull: u64, head_sha: &str) -> TaskMessage {
        let mut task = self.task(id, issue, "github-actions[bot]");
        task.mode = Mode::Fixci;
        task.issue.labels.clear();
        task.issue.title = format!("CI failed on agent/github-{issue}");
        task.trigger.event = "check_suite.completed".into();
        task.checks = Some(ChecksRef {
            pull_number: pull,
            head_sha: head_sha.into(),
            check_suite_id: "5001".into(),
        });
        task
    }
}
