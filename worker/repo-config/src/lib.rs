//! A repository's own configuration of the agent: `.agent-fleet.yml` at the root of the
//! base branch, or `.github/agent-fleet.yml`.
//!
//! Parsed strictly (every value has its type; a wrong one is an error that names the file,
//! the line and what is wrong, reported on the issue before any LLM call) and leniently
//! about keys (an unknown key is a warning shown in the status comment, so a typo is seen
//! but a newer config does not stop an older worker). Absent, the defaults hold: enabled,
//! any trigger, checks detected ([`detect`]).
//!
//! # Layout
//! - `lib.rs`: the types and [`parse`].
//! - `validate.rs`: the rules serde cannot express (names, limits, ref names).
//! - `detect.rs`: checks guessed from the build files when the config names none.

mod detect;
mod validate;

pub use detect::detect;

use serde::Deserialize;
use std::fmt;

/// Where the config is looked for, in order; the first found is used.
pub const CONFIG_PATHS: [&str; 2] = [".agent-fleet.yml", ".github/agent-fleet.yml"];

/// A config file larger than this is refused (a real one is a few hundred bytes).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// Longest `timeout_secs` a check may ask for.
pub const MAX_CHECK_TIMEOUT_SECS: u64 = 3600;

/// Most repair rounds a config may ask for.
pub const MAX_REPAIR_ROUNDS: u32 = 5;

/// `.agent-fleet.yml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepoConfig {
    /// `false`: every task is refused with a comment.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub triggers: Triggers,
    /// The branch work is based on; the repository's default branch when absent.
    #[serde(default)]
    pub base_branch: Option<String>,
    /// Run once before the first check, in order.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Absent: detected from the build files. Empty: no checks.
    #[serde(default)]
    pub checks: Option<Vec<CheckConfig>>,
    /// Rounds fed with failing checks (0 = report only).
    #[serde(default = "two")]
    pub repair_rounds: u32,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// `true`: setup and checks may use the network.
    #[serde(default)]
    pub network: bool,
}

/// Who and what may start a task, on top of write permission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Triggers {
    /// Logins allowed besides write permission; empty = anyone with write.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// GitHub teams as `org/slug`.
    #[serde(default)]
    pub allowed_teams: Vec<String>,
    /// The issue must carry one of these; empty = any.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// One check: a shell command line run from the checkout's root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckConfig {
    pub name: String,
    pub run: String,
    /// `CHECK_TIMEOUT_SECS` when absent.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// What happens when checks still fail after the repair rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// A draft PR that shows the failures.
    #[default]
    Draft,
    /// No PR.
    None,
}

fn yes() -> bool {
    true
}

fn two() -> u32 {
    2
}

impl Default for RepoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            triggers: Triggers::default(),
            base_branch: None,
            setup: Vec::new(),
            checks: None,
            repair_rounds: 2,
            on_failure: OnFailure::Draft,
            network: false,
        }
    }
}

/// A parsed config and what was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub config: RepoConfig,
    /// One line per unknown key, e.g. "unknown key `checks.0.timeout` (ignored)".
    pub warnings: Vec<String>,
}

/// Why a config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as found in the repository (`.agent-fleet.yml`).
    pub file: String,
    /// 1-based, where it is known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Parses the text of `file`. Never panics, whatever the text.
pub fn parse(file: &str, text: &str) -> Result<Parsed, ConfigError> {
    let error = |line: Option<usize>, message: String| ConfigError {
        file: file.to_owned(),
        line,
        message,
    };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(error(
            None,
            format!(
                "the file is {} bytes; at most {MAX_CONFIG_BYTES} are read",
                text.len()
            ),
        ));
    }
    if is_blank(text) {
        return Ok(Parsed {
            config: RepoConfig::default(),
            warnings: Vec::new(),
        });
    }
    let mut warnings = Vec::new();
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let config: RepoConfig = serde_ignored::deserialize(deserializer, |path| {
        warnings.push(format!("unknown key `{}` (ignored)", dotted(&path)));
    })
    .map_err(|e| {
        let line = e.location().map(|l| l.line());
        error(line, yaml_message(&e))
    })?;
    validate::check(&config, text).map_err(|(line, message)| error(line, message))?;
    Ok(Parsed { config, warnings })
}

/// Only comments and white space (an empty YAML document is not a mapping).
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---")
}

/// `serde_ignored`'s path as `a.b.0.c`.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    // Options show as `?` segments (`checks.?.0.x`): not part of what the user wrote.
    path.to_string()
        .split('.')
        .filter(|segment| *segment != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// serde_yaml's message without its own "at line N column M" (we print the line).
fn yaml_message(error: &serde_yaml_ng::Error) -> String {
    let message = error.to_string();
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message,
    }
}

#[cfg(test)]
mod tests;
