//! The ingest's settings, read from the environment (DESIGN.md, "Settings").

use secrecy::SecretString;
use shared::Mode;
use shared::RepoUrl;
use shared::settings::{CommonSettings, Env, SettingsError};
use std::collections::HashMap;
use std::net::SocketAddr;

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
    pub max_body_bytes: usize,
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
        let max_body_bytes = env.parse_or("MAX_BODY_BYTES", 26_214_400usize)?;
        if max_body_bytes == 0 {
            return Err(SettingsError::new("MAX_BODY_BYTES", "must be at least 1"));
        }
        Ok(Self {
            common,
            bind,
            github_secrets,
            jira_secret: env.secret("JIRA_WEBHOOK_SECRET"),
            trigger_labels,
            default_mode,
            jira_projects,
            jira_repo_from_label: env.flag("JIRA_REPO_FROM_LABEL", false)?,
            max_body_bytes,
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
        ] {
            let err = IngestSettings::from_env(&Env::from_map([(var, value)]))
                .expect_err(&format!("{var}={value} must be refused"));
            assert_eq!(err.variable, var);
        }
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
