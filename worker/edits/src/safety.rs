//! Where an edit may write: the [`Policy`] and the path checks.
//!
//! Owns the rules that keep a model's answer inside the checkout: no absolute paths, no
//! `..`, nothing through a symlink that resolves elsewhere (every existing ancestor is
//! resolved and checked), nothing under `.git/`, nothing under `.github/workflows/` or
//! `.github/actions/` unless allowed (a workflow or a local action runs code with the
//! repository's secrets), nothing matching the operator's protected globs
//! (`PROTECTED_PATHS`, see [`crate::protected`]), and, in Plan mode, nothing outside the
//! plan's files. Caps on files and bytes live in [`Policy`] and are
//! enforced by `crate::apply` once every new content is known.

use std::path::{Path, PathBuf};

/// What an answer is allowed to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Allow writes under `.github/workflows/` and `.github/actions/` (setting
    /// `ALLOW_WORKFLOW_EDITS`). It does not lift `protected_paths`: those the operator
    /// listed one by one, and drops from the list to allow.
    pub allow_workflow_edits: bool,
    /// Globs no edit may touch (setting `PROTECTED_PATHS`), matched case-insensitively
    /// against the normalized path; see the `protected` module for the syntax.
    pub protected_paths: Vec<String>,
    /// Most distinct files one answer may change (created files count).
    pub max_files: usize,
    /// Most bytes one answer may change, summed over files; a file's changed bytes are the
    /// old and new lengths of the span between its common prefix and common suffix.
    pub max_bytes_changed: usize,
    /// When set (Plan mode), the only paths that may change: an entry is a file path, or a
    /// directory prefix when it ends with `/`.
    pub allowed_paths: Option<Vec<String>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_workflow_edits: false,
            protected_paths: Vec::new(),
            max_files: 20,
            max_bytes_changed: 200_000,
            allowed_paths: None,
        }
    }
}

/// Why a path was refused. `Display` completes the sentence "the path was refused: ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the path is empty")]
    Empty,
    #[error("absolute paths are not allowed; use a path relative to the repository root")]
    Absolute,
    #[error("`..` would leave the repository; use a path relative to the repository root")]
    ParentDir,
    #[error("files under `.git/` are git's own state and may not be edited")]
    GitDir,
    #[error(
        "files under `.github/workflows/` and `.github/actions/` may not be edited by the agent (they run in CI with the repository's secrets; ALLOW_WORKFLOW_EDITS is off)"
    )]
    Workflow,
    #[error(
        "the path matches the protected pattern `{pattern}` (PROTECTED_PATHS) and may not be edited by the agent; leave this file unchanged"
    )]
    Protected { pattern: String },
    #[error(
        "`{path}` is the repository's configuration of agent-fleet (which checks must pass) and may not be edited by the agent"
    )]
    AgentConfig { path: String },
    #[error("`{link}` is a symbolic link that resolves outside the repository")]
    SymlinkOutside { link: String },
    #[error("the file is a symbolic link (to `{target}`); edit the file it points to instead")]
    SymlinkFile { target: String },
    #[error("`{link}` is a symbolic link; use the real path `{real}` instead")]
    SymlinkDir { link: String, real: String },
    #[error("`{ancestor}` exists and is not a directory")]
    NotADirectory { ancestor: String },
    #[error("the path is a directory, not a file")]
    IsADirectory,
    #[error("the path is a special file (FIFO, socket or device), not a regular file")]
    NotARegularFile,
    #[error("the approved plan does not list this file (allowed: {allowed})")]
    NotInPlan { allowed: String },
}

/// A path that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct CheckedPath {
    /// Normalized relative form: `/`-separated, no `.` or empty components.
    pub rel: String,
    /// Absolute location under the repository root.
    pub abs: PathBuf,
    /// Whether a file exists there now.
    pub exists: bool,
}

/// Why a path is not a plain repository-relative path: the rules every reader and writer
/// of a checkout shares (the worker's checkout reads apply them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    Empty,
    Absolute,
    ParentDir,
    GitDir,
}

impl From<PathFault> for Refusal {
    fn from(fault: PathFault) -> Self {
        match fault {
            PathFault::Empty => Refusal::Empty,
            PathFault::Absolute => Refusal::Absolute,
            PathFault::ParentDir => Refusal::ParentDir,
            PathFault::GitDir => Refusal::GitDir,
        }
    }
}

/// A model-written path in its normal relative form (`a/b/c`: `/`-separated, no `.` or
/// empty components), or why it is not one: empty, absolute, leaving the repository or
/// under `.git/`.
pub fn relative_path(path: &str) -> Result<String, PathFault> {
    // Models on Windows-flavoured prompts write `src\a.py`; repositories practically never
    // have a backslash in a file name, so it is read as a separator.
    let p = path.trim().replace('\\', "/");
    let bytes = p.as_bytes();
    if p.starts_with('/')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
    {
        return Err(PathFault::Absolute);
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathFault::ParentDir),
            // Case-insensitively: on case-insensitive file systems `.GIT` is `.git`.
            c if c.eq_ignore_ascii_case(".git") => return Err(PathFault::GitDir),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(PathFault::Empty);
    }
    Ok(parts.join("/"))
}

/// The repository's agent-fleet configuration (`.agent-fleet.yml` at the root or under
/// `.github/`): never written by the agent.
pub const AGENT_CONFIG_FILES: [&str; 2] = [".agent-fleet.yml", ".github/agent-fleet.yml"];

/// Normalizes a model-written path to `a/b/c` form, refusing what may not be written.
pub(crate) fn normalize(path: &str, policy: &Policy) -> Result<String, Refusal> {
    let rel = relative_path(path)?;
    let parts: Vec<&str> = rel.split('/').collect();
    // Case-insensitively, like `.git`: `.GitHub/Actions` is the same directory on macOS
    // and Windows checkouts, and `./.github//actions` was already folded into `parts`.
    if !policy.allow_workflow_edits
        && parts.len() >= 2
        && parts[0].eq_ignore_ascii_case(".github")
        && (parts[1].eq_ignore_ascii_case("workflows") || parts[1].eq_ignore_ascii_case("actions"))
    {
        return Err(Refusal::Workflow);
    }
    // What counts as passing is the repository's to say, never the model's: always, and
    // not lifted by ALLOW_WORKFLOW_EDITS.
    if AGENT_CONFIG_FILES
        .iter()
        .any(|config| rel.eq_ignore_ascii_case(config))
    {
        return Err(Refusal::AgentConfig { path: rel });
    }
    if let Some(pattern) = crate::protected::first_match(&policy.protected_paths, &parts) {
        return Err(Refusal::Protected {
            pattern: pattern.to_string(),
        });
    }
    if let Some(allowed) = &policy.allowed_paths {
        let ok = allowed.iter().any(|a| {
            let a = a.trim().replace('\\', "/");
            let a = a.trim_start_matches("./");
            if a.ends_with('/') {
                rel.starts_with(a)
            } else {
                rel == a
            }
        });
        if !ok {
            return Err(Refusal::NotInPlan {
                allowed: allowed.join(", "),
            });
        }
    }
    Ok(rel)
}

/// Checks a normalized path against the file system: every existing ancestor is resolved
/// and must stay inside `root` (which must already be canonical), the file itself must not
/// be a symlink or a directory.
pub(crate) fn check_fs(root: &Path, rel: &str) -> Result<CheckedPath, Refusal> {
    let mut cur = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        cur.push(part);
        let last = i + 1 == parts.len();
        let shown = parts[..=i].join("/");
        let meta = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            // Missing from here on: the rest will be created under a checked directory.
            Err(_) => {
                return Ok(CheckedPath {
                    rel: rel.to_string(),
                    abs: root.join(rel),
                    exists: false,
                });
            }
        };
        if meta.file_type().is_symlink() {
            let resolved = std::fs::canonicalize(&cur);
            let inside = matches!(&resolved, Ok(r) if r.starts_with(root));
            if !inside {
                return Err(Refusal::SymlinkOutside { link: shown });
            }
            if last {
                let target = resolved
                    .ok()
                    .and_then(|r| r.strip_prefix(root).ok().map(|t| t.display().to_string()))
                    .unwrap_or_default();
                return Err(Refusal::SymlinkFile { target });
            }
            // A directory symlink that stays inside is still refused: the written path
            // would differ from the reported one (diff, syntax gate, PR body), and its
            // target could be `.git`. The message names the real path to use.
            let mut real = resolved
                .ok()
                .and_then(|r| r.strip_prefix(root).ok().map(Path::to_path_buf))
                .unwrap_or_default();
            real.extend(&parts[i + 1..]);
            return Err(Refusal::SymlinkDir {
                link: shown,
                real: real.to_string_lossy().replace('\\', "/"),
            });
        }
        if last {
            if meta.is_dir() {
                return Err(Refusal::IsADirectory);
            }
            // FIFOs and devices: reading one could block the worker or read a device.
            if !meta.is_file() {
                return Err(Refusal::NotARegularFile);
            }
            return Ok(CheckedPath {
                rel: rel.to_string(),
                abs: cur,
                exists: true,
            });
        }
        if !meta.is_dir() {
            return Err(Refusal::NotADirectory { ancestor: shown });
        }
    }
    unreachable!("a normalized path has at least one component")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default policy with edits of workflows and local actions allowed.
    fn workflows_allowed() -> Policy {
        Policy {
            allow_workflow_edits: true,
            ..Policy::default()
        }
    }

    /// Asserts that `policy` refuses every one of `paths`, each for a reason `why` accepts.
    fn assert_refused(policy: &Policy, paths: &[&str], why: impl Fn(&Refusal) -> bool) {
        for path in paths {
            let refusal = normalize(path, policy).expect_err(path);
            assert!(why(&refusal), "{path}: {refusal:?}");
        }
    }

    #[test]
    fn normalize_rules() {
        let p = Policy::default();
        assert_eq!(normalize("./src//a.py", &p).unwrap(), "src/a.py");
        assert_eq!(normalize("src\\a.py", &p).unwrap(), "src/a.py");
        assert_eq!(normalize("", &p), Err(Refusal::Empty));
        assert_eq!(normalize("./", &p), Err(Refusal::Empty));
        assert_eq!(normalize("/etc/passwd", &p), Err(Refusal::Absolute));
        assert_eq!(normalize("C:\\x", &p), Err(Refusal::Absolute));
        assert_eq!(normalize("../../outside.txt", &p), Err(Refusal::ParentDir));
        assert_eq!(normalize("a/../../b", &p), Err(Refusal::ParentDir));
        assert_eq!(normalize(".git/config", &p), Err(Refusal::GitDir));
        assert_eq!(normalize("sub/.GIT/hooks/x", &p), Err(Refusal::GitDir));
        assert_eq!(normalize(".gitignore", &p).unwrap(), ".gitignore");
        assert_eq!(
            normalize(".github/workflows/ci.yml", &p),
            Err(Refusal::Workflow)
        );
        assert_eq!(
            normalize(".github/CODEOWNERS", &p).unwrap(),
            ".github/CODEOWNERS"
        );
        let allow = workflows_allowed();
        assert!(normalize(".github/workflows/ci.yml", &allow).is_ok());
        assert!(normalize(".github/actions/setup/action.yml", &allow).is_ok());
    }

    #[test]
    fn the_agents_own_configuration_is_never_writable() {
        let allow = workflows_allowed();
        assert_refused(
            &allow,
            &[
                ".agent-fleet.yml",
                "./.github/agent-fleet.yml",
                ".GitHub/Agent-Fleet.yml",
            ],
            |r| matches!(r, Refusal::AgentConfig { .. }),
        );
        assert!(normalize("docs/agent-fleet.yml", &allow).is_ok());
    }

    #[test]
    fn local_actions_are_protected_like_workflows() {
        let p = Policy::default();
        assert_refused(
            &p,
            &[
                ".github/actions/setup/action.yml",
                "./.github//actions/setup/action.yml",
                ".GitHub/Actions/setup/action.yaml",
                ".github\\actions\\x.yml",
                ".github/./actions/x.yml",
                ".github/WORKFLOWS/ci.yml",
            ],
            |r| *r == Refusal::Workflow,
        );
        assert!(normalize(".github/actionsx/a.yml", &p).is_ok());
        assert!(normalize("docs/.github/actions/a.yml", &p).is_ok());
    }

    #[test]
    fn protected_globs_are_refused_even_with_workflow_edits_allowed() {
        let p = Policy {
            allow_workflow_edits: true,
            protected_paths: vec!["deploy/**".into(), "*.pem".into()],
            ..Policy::default()
        };
        assert_refused(
            &p,
            &[
                "deploy/k8s/a.yaml",
                "./Deploy//x",
                "certs/server.PEM",
                "key.pem",
            ],
            |r| matches!(r, Refusal::Protected { .. }),
        );
        let e = normalize("deploy/a", &p).unwrap_err().to_string();
        assert!(
            e.contains("`deploy/**`") && e.contains("PROTECTED_PATHS"),
            "{e}"
        );
        assert!(normalize("src/deploy.rs", &p).is_ok());
        assert!(normalize("docs/pem.md", &p).is_ok());
    }

    #[test]
    fn allowed_paths() {
        let p = Policy {
            allowed_paths: Some(vec!["src/a.py".into(), "./docs/".into()]),
            ..Policy::default()
        };
        assert!(normalize("src/a.py", &p).is_ok());
        assert!(normalize("./src/a.py", &p).is_ok());
        assert!(normalize("docs/x/y.md", &p).is_ok());
        assert_refused(&p, &["src/b.py", "docsx/y.md"], |r| {
            matches!(r, Refusal::NotInPlan { .. })
        });
    }
}
