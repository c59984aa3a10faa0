//! Reading git's stderr into a [`GitError`]: not found, no access, a refused push, or a
//! plain failure (transient).

use super::GitError;

pub(super) fn classify(op: &'static str, stderr: &str) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    let detail = stderr.lines().last().unwrap_or(stderr).to_owned();
    if lower.contains("repository not found")
        || lower.contains("does not appear to be a git repository")
        || lower.contains("could not find remote branch")
        || (lower.contains("remote branch") && lower.contains("not found"))
        || lower.contains("not found in upstream")
    {
        GitError::NotFound(detail)
    } else if denied(&lower) {
        GitError::Denied(detail)
    } else {
        GitError::Failed { op, detail }
    }
}

/// git's own words for "no access" (curl's HTTP status line, GitHub's `remote:` line, ssh),
/// not a `403` that happens to be in a URL, a path or a commit id.
fn denied(lower: &str) -> bool {
    lower.contains("authentication failed")
        || lower.contains("the requested url returned error: 401")
        || lower.contains("the requested url returned error: 403")
        || lower.contains("could not read username")
        || lower.contains("permission denied")
        || (lower.contains("remote: permission to") && lower.contains("denied"))
        || lower.contains("write access to repository not granted")
}

/// A failed push: refused by the remote (hook, branch protection, a lease that no longer
/// holds) is [`GitError::Rejected`]; the rest as for any command.
pub(super) fn classify_push(stderr: &str) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    if denied(&lower) {
        return classify("push", stderr);
    }
    if lower.contains("[rejected]")
        || lower.contains("[remote rejected]")
        || lower.contains("stale info")
        || lower.contains("pre-receive hook declined")
        || lower.contains("protected branch")
    {
        // The line that says why, not git's closing "failed to push some refs".
        let reason = stderr
            .lines()
            .find(|l| l.contains("rejected") || l.contains("stale info"))
            .unwrap_or(stderr)
            .trim()
            .to_owned();
        return GitError::Rejected(reason);
    }
    classify("push", stderr)
}
