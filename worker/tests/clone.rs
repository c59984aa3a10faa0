//! Shallow clones through the git CLI from local bare repositories standing in for GitHub.

mod common;

use common::standins::{clone_bare, git};

use common::internals::{Cloned, Git, GitError};
use shared::RepoUrl;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `<root>/github/acme/payments.git` with two commits on `main` and a `feature` branch.
fn bare_repo(root: &Path) -> std::path::PathBuf {
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("a.py"), "print(1)\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "one"]);
    std::fs::write(work.join("b.py"), "print(2)\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "two"]);
    git(&work, &["branch", "feature"]);
    let bare = root.join("github/acme/payments.git");
    std::fs::create_dir_all(bare.parent().expect("parent")).expect("mkdir");
    clone_bare(root, &work, &bare);
    bare
}

fn local_github(root: &Path) -> Git {
    Git::new(
        Some("ghs_token_never_printed".to_owned().into()),
        "https://github.com",
    )
    .with_config(
        &format!("url.file://{}/github/.insteadOf", root.display()),
        "https://github.com/",
    )
}

/// A temp dir holding [`bare_repo`], and a [`local_github`] that finds it.
fn local_world() -> (tempfile::TempDir, std::path::PathBuf, Git) {
    let root = tempfile::tempdir().expect("tmp");
    let bare = bare_repo(root.path());
    let git = local_github(root.path());
    (root, bare, git)
}

/// `acme/<name>` on GitHub.
fn repo(name: &str) -> RepoUrl {
    RepoUrl::parse(&format!("https://github.com/acme/{name}")).expect("url")
}

/// A shallow clone with the test's 30 s timeout, never cancelled.
async fn clone(
    git: &Git,
    repo: &RepoUrl,
    branch: Option<&str>,
    dest: &Path,
    max_bytes: u64,
) -> Result<Cloned, GitError> {
    let cancel = CancellationToken::new();
    git.shallow_clone_url(
        repo.as_str(),
        branch,
        dest,
        Duration::from_secs(30),
        max_bytes,
        &cancel,
    )
    .await
}

#[tokio::test]
async fn a_shallow_clone_of_the_default_and_of_a_named_branch() {
    let (root, _bare, git) = local_world();
    let repo = repo("payments");
    let dest = root.path().join("clone");
    let cloned = clone(&git, &repo, None, &dest, 1 << 30)
        .await
        .expect("clone");
    assert!(dest.join("b.py").exists());
    assert!(cloned.bytes > 0);
    let depth = Command::new("git")
        .args(["rev-list", "--count", "HEAD"])
        .current_dir(&dest)
        .output()
        .expect("git");
    assert_eq!(
        String::from_utf8_lossy(&depth.stdout).trim(),
        "1",
        "shallow"
    );
    let tags = Command::new("git")
        .args(["tag"])
        .current_dir(&dest)
        .output()
        .expect("git");
    assert!(tags.stdout.is_empty());

    let dest = root.path().join("clone-feature");
    clone(&git, &repo, Some("feature"), &dest, 1 << 30)
        .await
        .expect("clone branch");
    assert!(dest.join("a.py").exists());
}

#[tokio::test]
async fn missing_repository_or_branch_is_permanent_and_too_large_is_refused() {
    let (root, _bare, git) = local_world();
    let missing = repo("nothing-here");
    let error = clone(&git, &missing, None, &root.path().join("x"), 1 << 30)
        .await
        .expect_err("missing repo");
    assert!(!error.is_transient(), "{error}");
    assert!(!error.to_string().contains("ghs_token_never_printed"));

    let repo = repo("payments");
    let error = clone(
        &git,
        &repo,
        Some("no-such-branch"),
        &root.path().join("y"),
        1 << 30,
    )
    .await
    .expect_err("missing branch");
    assert!(matches!(error, GitError::NotFound(_)), "{error}");

    let error = clone(&git, &repo, None, &root.path().join("z"), 10)
        .await
        .expect_err("too large");
    assert!(matches!(error, GitError::TooLarge { .. }), "{error}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn an_unreachable_host_is_transient() {
    let root = tempfile::tempdir().expect("tmp");
    // Nothing listens on this port: a network failure, not a missing repository.
    let git = Git::new(None, "https://github.com")
        .with_config("url.http://127.0.0.1:9/.insteadOf", "https://github.com/");
    let repo = repo("payments");
    let error = clone(&git, &repo, None, &root.path().join("x"), 1 << 30)
        .await
        .expect_err("unreachable");
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_mirror_named_without_dot_git_is_found_too() {
    let (root, bare, git) = local_world();
    std::fs::rename(&bare, root.path().join("github/acme/plain")).expect("rename");
    let repo = repo("plain");
    let dest = root.path().join("clone");
    clone(&git, &repo, None, &dest, 1 << 30)
        .await
        .expect("clone of <name> without .git");
    assert!(dest.join("a.py").exists());
}
