//! The ingest's settings, read from the environment (the README's "Configuration" table).

use secrecy::SecretString;
use shared::Mode;
use shared::RepoUrl;
use shared::settings::{CommonSettings, Env, SettingsError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What GitHub and Jira send at most in practice: GitHub caps payloads at 25 MB, but issue
/// and comment events are a few tens of KiB; anything near 1 MiB is not a webhook we want.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1_048_576;
/// GitHub gives a delivery 10 s; a sender that has not sent its request by then never will.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// Bodies being received at once. Each holds at most `MAX_BODY_BYTES`, so this caps their
/// memory: 64 MiB by default, well inside the ingest pod's 256 Mi limit (deploy/).
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// Trigger labels and the mode each one asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerLabels(Vec<(String, Mode)>);

impl TriggerLabels {
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, SettingsError> {
        pairs
            .into_iter()
            .map(|(label, mode)| {
                let mode: Mode = mode
                    .parse()
                    .map_err(|e: String| SettingsError::new("TRIGGER_LABELS", e))?;
                if mode == Mode::Implement {
                    return Err(SettingsError::new(
                        "TRIGGER_LABELS",
                        format!("label `{label}` cannot start `implement`: only /approve does"),
                    ));
                }
                Ok((label, mode))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The mode a label asks for (labels compare case-insensitively, as GitHub shows them).
    pub fn mode_of(&self, label: &str) -> Option<Mode> {
        self.0
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(label.trim()))
            .map(|(_, mode)| *mode)
    }

    /// Whether any of the labels asks for a plan.
    pub fn any_plan<'a>(&self, labels: impl IntoIterator<Item = &'a str>) -> bool {
        labels
            .into_iter()
            .any(|l| self.mode_of(l) == Some(Mode::Plan))
    }
}

/// `JIRA_REPO_ALLOW`: the repositories a `repo:owner/name` label may name. Entries are an
/// owner (`acme`, `acme/*`: any of its repositories) or one repository (`acme/payments`);
/// they compare case-insensitively, as GitHub does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoAllowList(Vec<(String, Option<String>)>);

impl RepoAllowList {
    pub fn parse(entries: &[String]) -> Result<Self, SettingsError> {
        let valid = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        entries
            .iter()
            .map(|entry| {
                let (owner, name) = match entry.split_once('/') {
                    None => (entry.as_str(), None),
                    Some((owner, "*")) => (owner, None),
                    Some((owner, name)) => (owner, Some(name)),
                };
                if !valid(owner) || name.is_some_and(|n| !valid(n)) {
                    return Err(SettingsError::new(
                        "JIRA_REPO_ALLOW",
                        format!("`{entry}` is not `owner`, `owner/*` or `owner/name`"),
                    ));
                }
                Ok((
                    owner.to_ascii_lowercase(),
                    name.map(str::to_ascii_lowercase),
                ))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `repo` (a github.com repository) is allowed.
    pub fn allows(&self, repo: &RepoUrl) -> bool {
        let (owner, name) = (repo.owner(), repo.name());
        self.0.iter().any(|(o, n)| {
            o.eq_ignore_ascii_case(owner)
                && n.as_deref().is_none_or(|n| n.eq_ignore_ascii_case(name))
        })
    }
}

#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub common: CommonSettings,
    pub bind: SocketAddr,
    /// Every secret that verifies a GitHub delivery (several during a rotation). Empty: the
    /// GitHub route is not configured.
    pub github_secrets: Vec<SecretString>,
    pub jira_secret: Option<SecretString>,
    pub trigger_labels: TriggerLabels,
    pub default_mode: Mode,
    pub jira_projects: HashMap<String, RepoUrl>,
    pub jira_repo_from_label: bool,
    /// Required (non-empty) when `jira_repo_from_label` is on.
    pub jira_repo_allow: RepoAllowList,
    pub max_body_bytes: usize,
    /// Bounds the request headers and, separately, the body (`INGEST_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// Webhook bodies received at once (`INGEST_MAX_CONCURRENCY`).
    pub max_concurrency: usize,
    /// `API_TOKENS`: who may call the operator API and open the console.
    pub api_tokens: crate::api::tokens::ApiTokens,
}

impl IngestSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let common = CommonSettings::from_env(env)?;
        let bind = env.parse_or("INGEST_BIND", SocketAddr::from(([0, 0, 0, 0], 8080)))?;
        let github_secrets = env
            .list("GITHUB_WEBHOOK_SECRET")
            .into_iter()
            .map(SecretString::from)
            .collect();
        let labels = match env.get("TRIGGER_LABELS") {
            Some(_) => env.pairs("TRIGGER_LABELS")?,
            None => vec![
                ("ai-help".to_owned(), "quickfix".to_owned()),
                ("ai-plan".to_owned(), "plan".to_owned()),
            ],
        };
        let trigger_labels = TriggerLabels::parse(labels)?;
        let default_mode = env.parse_or("DEFAULT_MODE", Mode::Quickfix)?;
        if default_mode == Mode::Implement {
            return Err(SettingsError::new(
                "DEFAULT_MODE",
                "must be quickfix or plan",
            ));
        }
        let jira_projects = env
            .pairs("JIRA_PROJECTS")?
            .into_iter()
            .map(|(project, repo)| {
                let url = if repo.starts_with("https://") {
                    RepoUrl::parse(&repo)
                } else {
                    RepoUrl::from_slug(&repo)
                }
                .map_err(|e| SettingsError::new("JIRA_PROJECTS", e))?;
                Ok((project.to_ascii_uppercase(), url))
            })
            .collect::<Result<_, SettingsError>>()?;
        let max_body_bytes = env.positive_or("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        let timeout_secs =
            env.positive_or("INGEST_REQUEST_TIMEOUT_SECS", DEFAULT_REQUEST_TIMEOUT_SECS)?;
        let max_concurrency = env.positive_or("INGEST_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY)?;
        let jira_repo_from_label = env.flag("JIRA_REPO_FROM_LABEL", false)?;
        let jira_repo_allow = RepoAllowList::parse(&env.list("JIRA_REPO_ALLOW"))?;
        // Without a list, any Jira editor could point the agent at any repository the
        // token reaches: refuse to start rather than trust every label.
        if jira_repo_from_label && jira_repo_allow.is_empty() {
            return Err(SettingsError::new(
                "JIRA_REPO_ALLOW",
                "is required with JIRA_REPO_FROM_LABEL=true: list the owners (`acme` or \
                 `acme/*`) or repositories (`acme/payments`) a `repo:` label may name",
            ));
        }
        Ok(Self {
            common,
            bind,
            github_secrets,
            jira_secret: env.secret("JIRA_WEBHOOK_SECRET"),
            trigger_labels,
            default_mode,
            jira_projects,
            jira_repo_from_label,
            jira_repo_allow,
            max_body_bytes,
            request_timeout: Duration::from_secs(timeout_secs),
            max_concurrency,
            api_tokens: crate::api::tokens::ApiTokens::parse(&env.list("API_TOKENS"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_lists_parsed() {
        let env = Env::from_map([
            ("GITHUB_WEBHOOK_SECRET", "old-secret-1,new-secret-2"),
            ("JIRA_WEBHOOK_SECRET", "jira-secret-3"),
            (
                "JIRA_PROJECTS",
                "pay=acme/payments,OPS=https://github.com/acme/ops.git",
            ),
        ]);
        let settings = IngestSettings::from_env(&env).expect("valid");
        assert_eq!(settings.github_secrets.len(), 2);
        assert_eq!(
            settings.jira_projects["PAY"].as_str(),
            "https://github.com/acme/payments"
        );
        assert_eq!(
            settings.jira_projects["OPS"].as_str(),
            "https://github.com/acme/ops"
        );
        let debug = format!("{settings:?}");
        for secret in ["old-secret-1", "new-secret-2", "jira-secret-3"] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (var, value) in [
            ("TRIGGER_LABELS", "ai-help=fix"),
            ("TRIGGER_LABELS", "ai-help=implement"),
            ("DEFAULT_MODE", "implement"),
            ("JIRA_PROJECTS", "PAY"),
            ("JIRA_PROJECTS", "PAY=not a repo"),
            ("MAX_BODY_BYTES", "-1"),
            ("INGEST_BIND", "localhost"),
            ("JIRA_REPO_FROM_LABEL", "sometimes"),
            ("INGEST_REQUEST_TIMEOUT_SECS", "0"),
            ("INGEST_MAX_CONCURRENCY", "0"),
            ("JIRA_REPO_ALLOW", "acme/pay/ments"),
            ("JIRA_REPO_ALLOW", "*"),
        ] {
            let err = IngestSettings::from_env(&Env::from_map([(var, value)]))
                .expect_err(&format!("{var}={value} must be refused"));
            assert_eq!(err.variable, var);
        }
    }

    #[test]
    fn repo_labels_need_an_allow_list_that_matches_owners_and_repositories() {
        let err = IngestSettings::from_env(&Env::from_map([("JIRA_REPO_FROM_LABEL", "true")]))
            .expect_err("JIRA_REPO_FROM_LABEL=true without JIRA_REPO_ALLOW must be refused");
        assert_eq!(err.variable, "JIRA_REPO_ALLOW");
        let settings = IngestSettings::from_env(&Env::from_map([
            ("JIRA_REPO_FROM_LABEL", "true"),
            ("JIRA_REPO_ALLOW", "Acme, tools/*, other/Billing"),
        ]))
        .expect("valid");
        let allow = &settings.jira_repo_allow;
        let repo = |slug: &str| RepoUrl::from_slug(slug).expect("slug");
        assert!(allow.allows(&repo("acme/payments")));
        assert!(allow.allows(&repo("ACME/anything")));
        assert!(allow.allows(&repo("tools/ci")));
        assert!(allow.allows(&repo("other/billing")));
        assert!(!allow.allows(&repo("other/payments")));
        assert!(!allow.allows(&repo("acme-evil/payments")));
        assert!(!allow.allows(&repo("evil/acme")));
    }

    #[test]
    fn ingest_limits_default_to_what_webhooks_need() {
        let settings = IngestSettings::from_env(&Env::from_map([("X", "1")])).expect("defaults");
        assert_eq!(settings.max_body_bytes, 1_048_576);
        assert_eq!(settings.request_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_concurrency, 64);
    }

    #[test]
    fn trigger_labels_default_and_match_case_insensitively() {
        let settings = IngestSettings::from_env(&Env::from_map([("X", "1")])).expect("defaults");
        assert_eq!(
            settings.trigger_labels.mode_of("AI-Help"),
            Some(Mode::Quickfix)
        );
        assert_eq!(settings.trigger_labels.mode_of("ai-plan"), Some(Mode::Plan));
        assert_eq!(settings.trigger_labels.mode_of("bug"), None);
        assert!(settings.trigger_labels.any_plan(["bug", "ai-plan"]));
    }
}
