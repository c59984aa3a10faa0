//! Which provider to talk to and how: [`Provider`] and [`LlmConfig`], read from the `LLM_*`
//! settings and the provider's API key variable. `Debug` never shows the key.

use secrecy::SecretString;
use shared::settings::{Env, SettingsError, redact_url_password};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com";
pub const DEFAULT_MAX_TOKENS: u32 = 8192;
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// The wire protocol spoken to the LLM server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Anthropic Messages API (`POST {base}/v1/messages`).
    Anthropic,
    /// OpenAI Chat Completions API (`POST {base}/v1/chat/completions`): OpenAI itself and the
    /// servers that copy it (Ollama, vLLM, llama.cpp server, most gateways).
    OpenAi,
}

impl Provider {
    /// The wire protocol's name, for errors about answers that do not follow it.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Provider::Anthropic => "Anthropic Messages",
            Provider::OpenAi => "OpenAI Chat Completions",
        }
    }

    /// Stable lowercase name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }

    /// The hosted API used when `LLM_BASE_URL` is unset.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Anthropic => DEFAULT_ANTHROPIC_BASE_URL,
            Provider::OpenAi => DEFAULT_OPENAI_BASE_URL,
        }
    }

    /// The variable holding this provider's API key.
    pub fn api_key_variable(self) -> &'static str {
        match self {
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::OpenAi => "OPENAI_API_KEY",
        }
    }
}

shared::display_as_str!(Provider);

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "anthropic" | "claude" => Ok(Provider::Anthropic),
            // Local servers are listed by name so that a setting copied from their docs works.
            "openai" | "openai-compatible" | "openai_compatible" | "ollama" | "vllm"
            | "llamacpp" | "llama.cpp" | "llama-cpp" => Ok(Provider::OpenAi),
            other => Err(format!(
                "unknown provider `{other}` (expected anthropic or openai; \
                 openai-compatible, ollama, vllm and llamacpp mean openai)"
            )),
        }
    }
}

/// Everything the client needs to reach one model.
#[derive(Clone)]
pub struct LlmConfig {
    pub provider: Provider,
    pub model: String,
    /// Scheme, host and optional path prefix, without `/v1` and without a trailing slash.
    pub base_url: String,
    /// `None` sends no auth header (local servers such as Ollama need none).
    pub api_key: Option<SecretString>,
    pub max_tokens: u32,
    /// Per attempt, from connect to the last byte of the answer.
    pub timeout: Duration,
    /// Retries after the first attempt (so at most `max_retries + 1` requests).
    pub max_retries: u32,
}

impl LlmConfig {
    /// A configuration with the defaults for `provider` and no key; adjust the fields as needed.
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        Self {
            provider,
            model: model.into(),
            base_url: provider.default_base_url().to_owned(),
            api_key: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    /// Reads `LLM_PROVIDER`, `LLM_MODEL`, `LLM_BASE_URL`, `LLM_MAX_TOKENS`,
    /// `LLM_TIMEOUT_SECS`, `LLM_MAX_RETRIES` and `ANTHROPIC_API_KEY` or `OPENAI_API_KEY`.
    /// Every error names the variable to fix.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let provider: Provider = env.parse_or("LLM_PROVIDER", Provider::Anthropic)?;
        let model = env.required("LLM_MODEL")?.trim().to_owned();
        let base_url = match env.get("LLM_BASE_URL") {
            Some(raw) => normalize_base_url(&raw)
                .map_err(|reason| SettingsError::new("LLM_BASE_URL", reason))?,
            None => provider.default_base_url().to_owned(),
        };
        let max_tokens: u32 = env.positive_or("LLM_MAX_TOKENS", DEFAULT_MAX_TOKENS)?;
        let timeout_secs: u64 = env.positive_or("LLM_TIMEOUT_SECS", DEFAULT_TIMEOUT_SECS)?;
        let max_retries: u32 = env.parse_or("LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES)?;
        if max_retries > 10 {
            // Each attempt may take the whole timeout; more than this outlives any task.
            return Err(SettingsError::new("LLM_MAX_RETRIES", "must be at most 10"));
        }
        let key_variable = provider.api_key_variable();
        let api_key = env.secret(key_variable);
        if api_key.is_none() && is_hosted_api(provider, &base_url) {
            return Err(SettingsError::new(
                key_variable,
                format!(
                    "is required for {base_url} (set it, or point LLM_BASE_URL at a server \
                     that needs no key)"
                ),
            ));
        }
        Ok(Self {
            provider,
            model,
            base_url,
            api_key,
            max_tokens,
            timeout: Duration::from_secs(timeout_secs),
            max_retries,
        })
    }

    /// The full URL of the completion endpoint.
    pub fn endpoint(&self) -> String {
        let path = match self.provider {
            Provider::Anthropic => "/v1/messages",
            Provider::OpenAi => "/v1/chat/completions",
        };
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }
}

/// Checks the URL and brings it to the documented form: no trailing slash, no `/v1`.
/// A trailing `/v1` is dropped rather than refused because the OpenAI-compatible servers'
/// own docs give their base URL with it, and the request URL comes out the same.
fn normalize_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    let without_v1 = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    Ok(without_v1.trim_end_matches('/').to_owned())
}

/// Whether `base_url` is the provider's own hosted API, which always needs a key.
fn is_hosted_api(provider: Provider, base_url: &str) -> bool {
    let hosted = provider.default_base_url();
    let host_of = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    };
    host_of(base_url).is_some() && host_of(base_url) == host_of(hosted)
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &redact_url_password(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_map(vars.iter().copied())
    }

    /// The variable named when `vars` are refused (`why`: what is wrong with them).
    fn refused(vars: &[(&str, &str)], why: &str) -> String {
        LlmConfig::from_env(&env(vars)).expect_err(why).variable
    }

    #[test]
    fn anthropic_is_the_default_and_needs_its_key() {
        assert_eq!(
            refused(&[("LLM_MODEL", "claude-x")], "no key"),
            "ANTHROPIC_API_KEY"
        );

        let config = LlmConfig::from_env(&env(&[
            ("LLM_MODEL", "claude-x"),
            ("ANTHROPIC_API_KEY", "sk-ant-1"),
        ]))
        .expect("valid");
        assert_eq!(config.provider, Provider::Anthropic);
        assert_eq!(config.base_url, "https://api.anthropic.com");
        assert_eq!(config.max_tokens, 8192);
        assert_eq!(config.timeout, Duration::from_secs(300));
        assert_eq!(config.max_retries, 3);
        assert_eq!(
            config.api_key.as_ref().map(|k| k.expose_secret()),
            Some("sk-ant-1")
        );
        assert_eq!(config.endpoint(), "https://api.anthropic.com/v1/messages");
    }

    #[test]
    fn model_is_required() {
        assert_eq!(
            refused(&[("ANTHROPIC_API_KEY", "k")], "no model"),
            "LLM_MODEL"
        );
    }

    #[test]
    fn openai_hosted_needs_its_key_but_local_servers_do_not() {
        let hosted = [("LLM_PROVIDER", "openai"), ("LLM_MODEL", "m")];
        assert_eq!(refused(&hosted, "no key"), "OPENAI_API_KEY");
        // A trailing slash does not make the hosted API keyless.
        let slash = [&hosted[..], &[("LLM_BASE_URL", "https://api.openai.com/")]].concat();
        assert_eq!(refused(&slash, "no key"), "OPENAI_API_KEY");

        let config = LlmConfig::from_env(&env(&[
            ("LLM_PROVIDER", "ollama"),
            ("LLM_MODEL", "qwen2.5-coder"),
            ("LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
        ]))
        .expect("local server without key");
        assert_eq!(config.provider, Provider::OpenAi);
        assert_eq!(config.base_url, "http://127.0.0.1:11434");
        assert!(config.api_key.is_none());
        assert_eq!(
            config.endpoint(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
    }

    #[test]
    fn provider_aliases() {
        for alias in ["openai", "OpenAI-compatible", "ollama", "vllm", "llamacpp"] {
            assert_eq!(alias.parse::<Provider>(), Ok(Provider::OpenAi), "{alias}");
        }
        assert_eq!(" Anthropic ".parse::<Provider>(), Ok(Provider::Anthropic));
        assert_eq!(
            refused(&[("LLM_PROVIDER", "gemini"), ("LLM_MODEL", "m")], "unknown"),
            "LLM_PROVIDER"
        );
    }

    #[test]
    fn invalid_numbers_and_urls_name_their_variable() {
        let base = [("LLM_MODEL", "m"), ("ANTHROPIC_API_KEY", "k")];
        for (name, value) in [
            ("LLM_MAX_TOKENS", "lots"),
            ("LLM_MAX_TOKENS", "0"),
            ("LLM_TIMEOUT_SECS", "-1"),
            ("LLM_TIMEOUT_SECS", "0"),
            ("LLM_MAX_RETRIES", "99"),
            ("LLM_BASE_URL", "api.anthropic.com"),
            ("LLM_BASE_URL", "ftp://host"),
            ("LLM_BASE_URL", "http://host/?key=1"),
        ] {
            let mut vars = base.to_vec();
            vars.push((name, value));
            let err = LlmConfig::from_env(&env(&vars)).expect_err(value);
            assert_eq!(err.variable, name, "{value}: {err}");
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn debug_redacts_the_key_and_url_password() {
        let config = LlmConfig::from_env(&env(&[
            ("LLM_PROVIDER", "openai"),
            ("LLM_MODEL", "m"),
            (
                "LLM_BASE_URL",
                "https://user:url-pass-123@gateway.example/llm",
            ),
            ("OPENAI_API_KEY", "sk-secret-value-42"),
        ]))
        .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-secret-value-42"), "{debug}");
        assert!(!debug.contains("url-pass-123"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }
}
