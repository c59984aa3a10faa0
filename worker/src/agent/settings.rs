//! Settings of the coding agent (the `agent` handler): GitHub, Jira, git identity, LLM,
//! context budget, edit policy, CI fix rounds. Read only when the agent handler runs.

use crate::adapters::github::GithubAuth;
use fleet_llm::LlmConfig;
use secrecy::SecretString;
use shared::settings::{Env, SettingsError};

#[derive(Clone, Debug)]
pub struct JiraSettings {
    pub base_url: String,
    pub user_email: String,
    pub api_token: SecretString,
}

#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub github_api: String,
    /// Required to work tasks; `worker run --dry-run` does without.
    pub github_auth: Option<GithubAuth>,
    pub agent_login: Option<String>,
    pub agent_jira_account_id: Option<String>,
    pub git_name: String,
    pub git_email: String,
    pub jira: Option<JiraSettings>,
    pub jira_approvers: Vec<String>,
    pub llm: LlmConfig,
    pub context_budget: usize,
    pub allow_workflow_edits: bool,
    /// `PROTECTED_PATHS`: globs no edit may touch (not lifted by `ALLOW_WORKFLOW_EDITS`).
    pub protected_paths: Vec<String>,
    /// `ISSUE_TEXT_MAX_BYTES`: cap on each untrusted text field put into a prompt.
    pub issue_text_max_bytes: usize,
    /// What one task may spend on the LLM (`TASK_MAX_LLM_CALLS`, `TASK_MAX_TOKENS`,
    /// `TASK_MAX_COST_USD`), checked before every call.
    pub budget: fleet_llm::budget::Budget,
    /// `LLM_PRICES`: USD per million input/output tokens, per model.
    pub prices: fleet_llm::budget::Prices,
    /// The repository's checks before the pull request.
    pub checks: ChecksSettings,
    /// `CI_FIX_ROUNDS`: how many `fixci` commits one pull request may get; past them the
    /// agent comments that it stops instead of trying again.
    pub ci_fix_rounds: u32,
}

/// `CHECKS`, `CHECK_TIMEOUT_SECS`, `CHECK_OUTPUT_BYTES`, `SANDBOX`, `CHECK_ENV`.
#[derive(Clone, Debug)]
pub struct ChecksSettings {
    /// `CHECKS=auto` (the default): the repository's checks, configured or detected;
    /// `off`: none run and the PR says so.
    pub enabled: bool,
    /// A check's (and a setup step's) time unless `.agent-fleet.yml` sets `timeout_secs`.
    pub timeout: std::time::Duration,
    /// Output kept per run (its tail); the repair prompt gets at most 16 KiB of it.
    pub output_bytes: usize,
    /// `SANDBOX=bwrap|process`; `auto` (or unset): bubblewrap where it works.
    pub sandbox: Option<fleet_sandbox::Mode>,
    /// Names of further environment variables a check may see (never one holding a
    /// secret of the worker's).
    pub extra_env: Vec<String>,
}

impl ChecksSettings {
    fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let enabled = match env
            .string_or("CHECKS", "auto")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "auto" | "on" => true,
            "off" => false,
            _ => return Err(SettingsError::new("CHECKS", "must be auto or off")),
        };
        let timeout_secs: u64 = env.parse_or("CHECK_TIMEOUT_SECS", 300)?;
        if timeout_secs == 0 || timeout_secs > fleet_repo_config::MAX_CHECK_TIMEOUT_SECS {
            return Err(SettingsError::new(
                "CHECK_TIMEOUT_SECS",
                format!(
                    "must be from 1 to {} seconds",
                    fleet_repo_config::MAX_CHECK_TIMEOUT_SECS
                ),
            ));
        }
        let output_bytes: usize = env.parse_or("CHECK_OUTPUT_BYTES", 1usize << 20)?;
        if output_bytes < 1024 {
            return Err(SettingsError::new(
                "CHECK_OUTPUT_BYTES",
                "must be at least 1024 (bytes of a check's output kept)",
            ));
        }
        let sandbox = fleet_sandbox::Mode::parse(&env.get("SANDBOX").unwrap_or_default())
            .map_err(|reason| SettingsError::new("SANDBOX", reason))?;
        Ok(Self {
            enabled,
            timeout: std::time::Duration::from_secs(timeout_secs),
            output_bytes,
            sandbox,
            extra_env: env.list("CHECK_ENV"),
        })
    }
}

impl AgentSettings {
    /// Fills in the agent's own accounts that were not configured, from its credentials:
    /// `AGENT_GITHUB_LOGIN` from `GET /user` (a token) or `<slug>[bot]` from `GET /app` (a
    /// GitHub App), `AGENT_JIRA_ACCOUNT_ID` from Jira's `GET /myself` when Jira is set up.
    /// Marker comments count only when the agent wrote them, so a worker that cannot tell
    /// who it is does not start: the error names the setting to give instead.
    pub async fn resolve_identity(&mut self) -> anyhow::Result<()> {
        if self.agent_login.is_none()
            && let Some(auth) = &self.github_auth
        {
            let login = crate::adapters::github::authenticated_login(&self.github_api, auth)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the agent's GitHub login from its credentials ({e}); set AGENT_GITHUB_LOGIN"
                    )
                })?;
            tracing::info!(login, "the agent's GitHub login, read from its credentials");
            self.agent_login = Some(login);
        }
        if self.agent_jira_account_id.is_none()
            && let Some(jira) = &self.jira
        {
            let client = crate::adapters::jira::Jira::new(
                &jira.base_url,
                &jira.user_email,
                jira.api_token.clone(),
            )?;
            let account = client.myself().await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the agent's Jira account id from its credentials ({e}); set AGENT_JIRA_ACCOUNT_ID"
                )
            })?;
            tracing::info!(
                account,
                "the agent's Jira account id, read from its credentials"
            );
            self.agent_jira_account_id = Some(account);
        }
        Ok(())
    }

    /// The values of the worker's secrets (tokens, keys), to keep them out of what a
    /// check's output puts into a prompt or a comment.
    pub fn secret_values(&self) -> Vec<String> {
        use secrecy::ExposeSecret as _;
        let mut secrets = Vec::new();
        match &self.github_auth {
            Some(GithubAuth::Token(token)) => secrets.push(token.expose_secret().to_owned()),
            Some(GithubAuth::App { private_key, .. }) => {
                secrets.push(private_key.expose_secret().to_owned());
            }
            None => {}
        }
        if let Some(key) = &self.llm.api_key {
            secrets.push(key.expose_secret().to_owned());
        }
        if let Some(jira) = &self.jira {
            secrets.push(jira.api_token.expose_secret().to_owned());
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }

    /// Everything a worker needs to work tasks.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let settings = Self::without_github(env)?;
        if settings.github_auth.is_none() {
            return Err(SettingsError::new(
                "GITHUB_TOKEN",
                "is required (or GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY)",
            ));
        }
        Ok(settings)
    }

    /// The same, with GitHub credentials optional (`worker run --dry-run`).
    pub fn without_github(env: &Env) -> Result<Self, SettingsError> {
        let github_auth = match (env.secret("GITHUB_TOKEN"), env.get("GITHUB_APP_ID")) {
            (Some(token), _) => Some(GithubAuth::Token(token)),
            (None, Some(app_id)) => Some(GithubAuth::App {
                app_id,
                private_key: env.secret("GITHUB_APP_PRIVATE_KEY").ok_or_else(|| {
                    SettingsError::new("GITHUB_APP_PRIVATE_KEY", "is required with GITHUB_APP_ID")
                })?,
                workflows: env.flag("ALLOW_WORKFLOW_EDITS", false)?,
            }),
            (None, None) => None,
        };
        let jira = match env.get("JIRA_BASE_URL") {
            None => None,
            Some(base_url) => Some(JiraSettings {
                base_url,
                user_email: env.required("JIRA_USER_EMAIL")?,
                api_token: env.secret("JIRA_API_TOKEN").ok_or_else(|| {
                    SettingsError::new("JIRA_API_TOKEN", "is required with JIRA_BASE_URL")
                })?,
            }),
        };
        let context_budget = env.parse_or("CONTEXT_TOKEN_BUDGET", 16_000usize)?;
        if context_budget < 1000 {
            return Err(SettingsError::new(
                "CONTEXT_TOKEN_BUDGET",
                "must be at least 1000",
            ));
        }
        let issue_text_max_bytes =
            env.parse_or("ISSUE_TEXT_MAX_BYTES", super::untrusted::DEFAULT_MAX_BYTES)?;
        if issue_text_max_bytes < 1024 {
            return Err(SettingsError::new(
                "ISSUE_TEXT_MAX_BYTES",
                "must be at least 1024 (bytes of issue text kept per field)",
            ));
        }
        let ci_fix_rounds = ci_fix_rounds_from(env)?;
        let budget = budget_from(env)?;
        let prices = fleet_llm::budget::Prices::parse(&env.get("LLM_PRICES").unwrap_or_default())
            .map_err(|reason| SettingsError::new("LLM_PRICES", reason))?;
        Ok(Self {
            checks: ChecksSettings::from_env(env)?,
            budget,
            prices,
            github_api: env.string_or("GITHUB_API_URL", "https://api.github.com"),
            github_auth,
            agent_login: env.get("AGENT_GITHUB_LOGIN"),
            agent_jira_account_id: env.get("AGENT_JIRA_ACCOUNT_ID"),
            git_name: env.string_or("AGENT_GIT_NAME", "agent-fleet"),
            git_email: env.string_or("AGENT_GIT_EMAIL", "agent-fleet@users.noreply.github.com"),
            jira,
            jira_approvers: env.list("JIRA_APPROVERS"),
            llm: LlmConfig::from_env(env)?,
            context_budget,
            allow_workflow_edits: env.flag("ALLOW_WORKFLOW_EDITS", false)?,
            protected_paths: env.list("PROTECTED_PATHS"),
            issue_text_max_bytes,
            ci_fix_rounds,
        })
    }
}

/// More rounds than this is a loop with CI, not a fix.
const MAX_CI_FIX_ROUNDS: u32 = 10;

/// `CI_FIX_ROUNDS`: 2 unless set, from 0 (never fix CI) to [`MAX_CI_FIX_ROUNDS`].
fn ci_fix_rounds_from(env: &Env) -> Result<u32, SettingsError> {
    let rounds: u32 = env.parse_or("CI_FIX_ROUNDS", 2)?;
    if rounds > MAX_CI_FIX_ROUNDS {
        return Err(SettingsError::new(
            "CI_FIX_ROUNDS",
            format!("must be from 0 (never fix CI) to {MAX_CI_FIX_ROUNDS}"),
        ));
    }
    Ok(rounds)
}

/// `TASK_MAX_LLM_CALLS` (at least 1), `TASK_MAX_TOKENS` (at least 1), `TASK_MAX_COST_USD`
/// (unset: no cost limit; else a positive number of USD).
fn budget_from(env: &Env) -> Result<fleet_llm::budget::Budget, SettingsError> {
    let defaults = fleet_llm::budget::Budget::default();
    let max_calls: u32 = env.parse_or("TASK_MAX_LLM_CALLS", defaults.max_calls)?;
    let max_tokens: u64 = env.parse_or("TASK_MAX_TOKENS", defaults.max_tokens)?;
    if max_calls == 0 || max_tokens == 0 {
        return Err(SettingsError::new(
            if max_calls == 0 {
                "TASK_MAX_LLM_CALLS"
            } else {
                "TASK_MAX_TOKENS"
            },
            "must be at least 1",
        ));
    }
    let max_cost_usd = match env.get("TASK_MAX_COST_USD") {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<f64>()
                .ok()
                .filter(|usd| usd.is_finite() && *usd > 0.0)
                .ok_or_else(|| {
                    SettingsError::new("TASK_MAX_COST_USD", "must be a positive amount of USD")
                })?,
        ),
    };
    Ok(fleet_llm::budget::Budget {
        max_calls,
        max_tokens,
        max_cost_usd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(pairs: &[(&str, &str)]) -> Result<fleet_llm::budget::Budget, SettingsError> {
        budget_from(&Env::from_map(pairs.iter().copied()))
    }

    #[test]
    fn ci_fix_rounds_default_to_two_and_stay_bounded() {
        let rounds =
            |pairs: &[(&str, &str)]| ci_fix_rounds_from(&Env::from_map(pairs.iter().copied()));
        assert_eq!(rounds(&[]).expect("default"), 2);
        assert_eq!(rounds(&[("CI_FIX_ROUNDS", "0")]).expect("off"), 0);
        for bad in ["11", "-1", "two"] {
            let error = rounds(&[("CI_FIX_ROUNDS", bad)]).expect_err(bad);
            assert!(error.to_string().contains("CI_FIX_ROUNDS"), "{error}");
        }
    }

    #[test]
    fn budgets_default_and_refuse_what_would_stop_every_task() {
        let defaults = budget(&[]).expect("defaults");
        assert_eq!(
            (
                defaults.max_calls,
                defaults.max_tokens,
                defaults.max_cost_usd
            ),
            (8, 1_000_000, None)
        );
        let set =
            budget(&[("TASK_MAX_LLM_CALLS", "3"), ("TASK_MAX_COST_USD", "0.50")]).expect("valid");
        assert_eq!((set.max_calls, set.max_cost_usd), (3, Some(0.5)));
        for (name, value) in [
            ("TASK_MAX_LLM_CALLS", "0"),
            ("TASK_MAX_TOKENS", "0"),
            ("TASK_MAX_COST_USD", "-1"),
            ("TASK_MAX_COST_USD", "free"),
        ] {
            let error = budget(&[(name, value)]).expect_err(value);
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
