//! The rules of `.agent-fleet.yml` that types alone do not hold: names present and unique,
//! commands not empty, limits within bounds, a base branch that is a plain ref name (it is
//! given to git), teams as `org/slug`. Each error comes with the line of the offending
//! value when the text shows it.

use crate::{MAX_CHECK_TIMEOUT_SECS, MAX_REPAIR_ROUNDS, RepoConfig};

type Refusal = (Option<usize>, String);

pub fn check(config: &RepoConfig, text: &str) -> Result<(), Refusal> {
    if let Some(branch) = &config.base_branch
        && !plain_ref_name(branch)
    {
        return Err((
            line_of(text, "base_branch"),
            format!("`base_branch: {branch}` is not a branch name git accepts"),
        ));
    }
    if config.repair_rounds > MAX_REPAIR_ROUNDS {
        return Err((
            line_of(text, "repair_rounds"),
            format!(
                "`repair_rounds: {}` is more than the {MAX_REPAIR_ROUNDS} allowed",
                config.repair_rounds
            ),
        ));
    }
    for team in &config.triggers.allowed_teams {
        let parts: Vec<&str> = team.split('/').collect();
        // Each part goes into an API path (`/orgs/{org}/teams/{slug}/...`): plain names only.
        let plain = |p: &&str| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() != 2 || !parts.iter().all(plain) {
            return Err((
                line_of(text, team),
                format!("team `{team}` must be written as `org/slug`"),
            ));
        }
    }
    for (index, step) in config.setup.iter().enumerate() {
        if step.trim().is_empty() {
            return Err((
                line_of(text, "setup"),
                format!("setup step {} is empty", index + 1),
            ));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for (index, check) in config.checks.iter().flatten().enumerate() {
        let at = || line_of(text, &check.name).or_else(|| line_of(text, "checks"));
        let name = check.name.trim();
        if name.is_empty() {
            return Err((at(), format!("check {} has an empty `name`", index + 1)));
        }
        // Names go into the status comment and the PR body: plain words only, so a
        // repository cannot write markup (a fake verdict, a mention) into the agent's text.
        let plain = name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " -_.:/".contains(c));
        if !plain || name.eq_ignore_ascii_case("setup") {
            return Err((
                at(),
                format!(
                    "check name `{}` must be at most 64 letters, digits, spaces and `-_.:/` (and not `setup`, which names the setup steps)",
                    name.escape_debug()
                ),
            ));
        }
        if names.contains(&name) {
            return Err((at(), format!("two checks are named `{name}`")));
        }
        names.push(name);
        if check.run.trim().is_empty() {
            return Err((at(), format!("check `{name}` has an empty `run`")));
        }
        match check.timeout_secs {
            Some(0) => {
                return Err((
                    at(),
                    format!("check `{name}`: `timeout_secs` must be at least 1"),
                ));
            }
            Some(secs) if secs > MAX_CHECK_TIMEOUT_SECS => {
                return Err((
                    at(),
                    format!(
                        "check `{name}`: `timeout_secs: {secs}` is more than the {MAX_CHECK_TIMEOUT_SECS} allowed"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A branch name as `git check-ref-format --branch` would take it, and never one that a
/// command line could read as an option.
fn plain_ref_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        })
}

/// The 1-based line of the first line that holds `needle` outside a comment.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.lines()
        .position(|line| {
            let code = line.split(" #").next().unwrap_or(line);
            !code.trim_start().starts_with('#') && code.contains(needle)
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_git_and_option_parsers_would_misread_are_refused() {
        for good in ["main", "release/2.x", "feature-1"] {
            assert!(plain_ref_name(good), "{good}");
        }
        for bad in [
            "-upload-pack=x",
            "a..b",
            "a b",
            "x.lock",
            "a:b",
            "",
            "/x",
            "a@{1}",
        ] {
            assert!(!plain_ref_name(bad), "{bad}");
        }
    }
}
