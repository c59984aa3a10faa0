//! Reading settings from the environment: the variables both services share, and the small
//! helpers each service uses for its own, so that every error names its variable.
//!
//! Settings are read from an [`Env`] rather than `std::env` directly, so tests build them
//! from a map without touching the process environment.

use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Where settings come from: the process environment, or a map in tests.
#[derive(Clone, Debug, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self { overrides: None }
    }

    /// Only the given variables (nothing from the process environment).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            overrides: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The variable's value; an empty or all-blank value counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, SettingsError> {
        self.get(name)
            .ok_or_else(|| SettingsError::new(name, "is required but not set"))
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    /// [`Env::parse_or`] for counts and durations where 0 means nothing: refused with
    /// "must be at least 1".
    pub fn positive_or<T>(&self, name: &'static str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr + PartialOrd + From<u8>,
        T::Err: fmt::Display,
    {
        let value = self.parse_or(name, default)?;
        if value < T::from(1) {
            return Err(SettingsError::new(name, "must be at least 1"));
        }
        Ok(value)
    }

    /// Parses the variable with `FromStr`, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| SettingsError::new(name, format!("has an invalid value: {e}"))),
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(SettingsError::new(name, "must be true or false")),
        }
    }

    /// A comma-separated list, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A comma-separated list of `key=value` pairs.
    pub fn pairs(&self, name: &'static str) -> Result<Vec<(String, String)>, SettingsError> {
        self.list(name)
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                    Ok((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => Err(SettingsError::new(
                    name,
                    format!("entry `{item}` must look like key=value"),
                )),
            })
            .collect()
    }
}

/// A setting that is missing or invalid. The message always starts with the variable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {reason}")]
pub struct SettingsError {
    pub variable: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(variable: &str, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            reason: reason.into(),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The value of `names` whose name is `text` (trimmed, case-insensitively), or an error
/// naming `what` and the expected names ("unknown mode `x` (expected quickfix, plan or
/// implement)"): the `FromStr` of the enums set by name.
///
/// ```
/// use shared::settings::one_of;
/// let names = [("a", 1), ("b", 2), ("c", 3)];
/// assert_eq!(one_of("letter", " B ", &names), Ok(2));
/// assert_eq!(
///     one_of("letter", "x", &names).unwrap_err(),
///     "unknown letter `x` (expected a, b or c)"
/// );
/// ```
pub fn one_of<T: Copy>(what: &str, text: &str, names: &[(&str, T)]) -> Result<T, String> {
    let text = text.trim().to_ascii_lowercase();
    if let Some((_, value)) = names.iter().find(|(name, _)| *name == text) {
        return Ok(*value);
    }
    let listed: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
    let expected = match listed.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(format!("unknown {what} `{text}` (expected {expected})"))
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            other => Err(format!(
                "unknown log format `{other}` (expected json or pretty)"
            )),
        }
    }
}

/// The AMQP URL: it usually carries a password, so `Debug`/`Display` mask it.
#[derive(Clone)]
pub struct AmqpUrl(SecretString);

impl AmqpUrl {
    pub fn parse(name: &'static str, raw: &str) -> Result<Self, SettingsError> {
        let raw = raw.trim();
        if !(raw.starts_with("amqp://") || raw.starts_with("amqps://")) {
            return Err(SettingsError::new(
                name,
                "must start with amqp:// or amqps://",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`, safe for logs.
    pub fn redacted(&self) -> String {
        redact_url_password(self.expose())
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!(
                "{}{}:***{}",
                &url[..authority_start],
                user,
                &url[authority_start + at..]
            )
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrl({})", self.redacted())
    }
}

impl fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_TASK_QUEUE: &str = "agent-tasks";
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

/// Settings both services read, with the same names and defaults.
#[derive(Clone, Debug)]
pub struct CommonSettings {
    pub amqp_url: AmqpUrl,
    pub task_queue: String,
    pub delivery_limit: u32,
    pub log_format: LogFormat,
    /// The agent's own GitHub login: events it sends are ignored (loop guard).
    pub agent_github_login: Option<String>,
    /// The agent's own Jira account id (loop guard, assignment trigger).
    pub agent_jira_account_id: Option<String>,
    /// `DATABASE_URL`: the task ledger in PostgreSQL; unset, nothing is recorded.
    pub database_url: Option<SecretString>,
    /// `LEDGER_BUFFER`: ledger records kept while the database is away.
    pub ledger_buffer: usize,
}

/// `LEDGER_BUFFER` when unset.
pub const DEFAULT_LEDGER_BUFFER: usize = 10_000;

impl CommonSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let amqp_url = AmqpUrl::parse("AMQP_URL", &env.string_or("AMQP_URL", DEFAULT_AMQP_URL))?;
        let task_queue = env.string_or("TASK_QUEUE", DEFAULT_TASK_QUEUE);
        if task_queue.len() > 200 || task_queue.chars().any(char::is_whitespace) {
            return Err(SettingsError::new(
                "TASK_QUEUE",
                "must be a queue name without spaces, at most 200 bytes",
            ));
        }
        let delivery_limit = env.positive_or("TASK_DELIVERY_LIMIT", DEFAULT_DELIVERY_LIMIT)?;
        let database_url = env.get("DATABASE_URL").filter(|u| !u.trim().is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(SettingsError::new(
                "DATABASE_URL",
                "must be a PostgreSQL URL: postgres://user:password@host:5432/database",
            ));
        }
        Ok(Self {
            amqp_url,
            task_queue,
            delivery_limit,
            log_format: env.parse_or("LOG_FORMAT", LogFormat::Json)?,
            agent_github_login: env.get("AGENT_GITHUB_LOGIN").map(|s| s.trim().to_owned()),
            agent_jira_account_id: env
                .get("AGENT_JIRA_ACCOUNT_ID")
                .map(|s| s.trim().to_owned()),
            database_url: database_url.map(SecretString::from),
            ledger_buffer: env.positive_or("LEDGER_BUFFER", DEFAULT_LEDGER_BUFFER)?,
        })
    }

    pub fn topology(&self) -> crate::topology::Topology {
        crate::topology::Topology::new(&self.task_queue, self.delivery_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let settings = CommonSettings::from_env(&Env::from_map([("X", "y")])).expect("defaults");
        assert_eq!(settings.task_queue, "agent-tasks");
        assert_eq!(settings.delivery_limit, 5);
        assert_eq!(settings.log_format, LogFormat::Json);
        assert!(settings.agent_github_login.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        let err = CommonSettings::from_env(&Env::from_map([("TASK_DELIVERY_LIMIT", "many")]))
            .expect_err("invalid");
        assert_eq!(err.variable, "TASK_DELIVERY_LIMIT");
        assert!(err.to_string().starts_with("TASK_DELIVERY_LIMIT "));
        let err = CommonSettings::from_env(&Env::from_map([("AMQP_URL", "http://x")]))
            .expect_err("invalid");
        assert_eq!(err.variable, "AMQP_URL");
        let err =
            CommonSettings::from_env(&Env::from_map([("LOG_FORMAT", "xml")])).expect_err("invalid");
        assert_eq!(err.variable, "LOG_FORMAT");
    }

    #[test]
    fn amqp_password_never_shows_in_debug() {
        let settings = CommonSettings::from_env(&Env::from_map([(
            "AMQP_URL",
            "amqp://fleet:s3cr3t-pw@rabbit:5672/%2f",
        )]))
        .expect("valid");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("s3cr3t-pw"), "{debug}");
        assert!(
            debug.contains("amqp://fleet:***@rabbit:5672/%2f"),
            "{debug}"
        );
    }

    #[test]
    fn pairs_and_flags_are_validated() {
        let env = Env::from_map([("P", "a=1, b = 2"), ("BAD", "a"), ("F", "maybe")]);
        assert_eq!(
            env.pairs("P").expect("pairs"),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(env.pairs("BAD").expect_err("bad").variable, "BAD");
        assert_eq!(env.flag("F", false).expect_err("bad").variable, "F");
        assert!(!env.flag("UNSET", false).expect("default"));
    }

    #[test]
    fn redaction_handles_urls_without_password() {
        assert_eq!(redact_url_password("amqp://host/%2f"), "amqp://host/%2f");
        assert_eq!(
            redact_url_password("https://u:p@h/x@y"),
            "https://u:***@h/x@y"
        );
    }
}
