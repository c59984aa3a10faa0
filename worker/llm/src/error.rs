//! [`LlmError`]: why a completion failed, and whether the caller should requeue the task
//! ([`LlmError::is_transient`]) or report the failure on the issue. Also the scrubbing that
//! keeps the API key out of every message built from a server's answer or a transport error.

use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// A failed completion. Transient errors are reported only after the client's own retries
/// are spent, so the caller's next step is to requeue the task (the LLM may be back later);
/// permanent errors will fail the same way again, so the caller reports them and stops.
///
/// No message contains the API key: text that comes from the server or the transport is
/// scrubbed of it before it is stored here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// Connection refused or reset, DNS failure, TLS failure: transient.
    #[error("LLM server unreachable after {attempts} attempt(s): {reason}")]
    Unreachable { attempts: u32, reason: String },

    /// No complete answer within the per-attempt timeout: transient.
    #[error("LLM request timed out after {} s per attempt ({attempts} attempt(s))", timeout.as_secs_f32())]
    Timeout { attempts: u32, timeout: Duration },

    /// A non-success HTTP status. 408, 429, 5xx and 529 (Anthropic: overloaded) are
    /// transient; any other status (400, 401, 403, 404, 413, 422, ...) is permanent.
    #[error("LLM server answered HTTP {status} after {attempts} attempt(s): {message}")]
    Http {
        status: u16,
        attempts: u32,
        /// The provider's error message (scrubbed, shortened) and what to check.
        message: String,
    },

    /// A 2xx answer that holds no text (only tool calls, a refusal, an empty string):
    /// permanent, since asking again with the same prompt is unlikely to help.
    #[error("LLM answer has no text (attempt {attempts})")]
    EmptyAnswer { attempts: u32 },

    /// A 2xx answer that is not the JSON the protocol promises (wrong `LLM_PROVIDER` or
    /// `LLM_BASE_URL`, or a proxy's HTML page): permanent.
    #[error("LLM answer is not valid {expected} JSON (attempt {attempts}): {reason}")]
    InvalidAnswer {
        attempts: u32,
        expected: &'static str,
        reason: String,
    },

    /// The request could not be built (no messages, a task id that is not a valid header
    /// value, an API key with characters a header cannot carry): permanent, nothing was sent.
    #[error("LLM request not sent: {reason}")]
    InvalidRequest { reason: String },
}

impl LlmError {
    /// `true`: requeue the task and try later. `false`: report the failure; retrying the
    /// same request will not help.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Unreachable { .. } | LlmError::Timeout { .. } => true,
            LlmError::Http { status, .. } => is_retryable_status(*status),
            LlmError::EmptyAnswer { .. }
            | LlmError::InvalidAnswer { .. }
            | LlmError::InvalidRequest { .. } => false,
        }
    }

    /// Requests sent before giving up (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        match self {
            LlmError::Unreachable { attempts, .. }
            | LlmError::Timeout { attempts, .. }
            | LlmError::Http { attempts, .. }
            | LlmError::EmptyAnswer { attempts }
            | LlmError::InvalidAnswer { attempts, .. } => *attempts,
            LlmError::InvalidRequest { .. } => 0,
        }
    }

    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short stable name, for the `outcome` metric label and structured logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Unreachable { .. } => "unreachable",
            LlmError::Timeout { .. } => "timeout",
            LlmError::Http { status: 429, .. } => "rate_limited",
            LlmError::Http { status, .. } if is_retryable_status(*status) => "server_error",
            LlmError::Http { .. } => "rejected",
            LlmError::EmptyAnswer { .. } => "empty_answer",
            LlmError::InvalidAnswer { .. } => "invalid_answer",
            LlmError::InvalidRequest { .. } => "invalid_request",
        }
    }
}

/// Statuses worth another attempt: the server is busy, overloaded or briefly broken.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// What a person should check for a permanent status; appended to the provider's message.
pub(crate) fn status_hint(status: u16, key_variable: &str) -> Option<String> {
    match status {
        401 | 403 => Some(format!("check {key_variable} and its permissions")),
        404 => Some("check LLM_MODEL and LLM_BASE_URL (without /v1)".to_owned()),
        413 => Some("the prompt is too large for this model".to_owned()),
        400 | 422 => Some(
            "the request was refused: prompt too long for the model, or LLM_MAX_TOKENS above its limit"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Longest text from a server or transport kept in an error message.
const MAX_MESSAGE_CHARS: usize = 400;

/// Makes outside text safe for an error message or a log line: the API key (should a server
/// echo it) is replaced by `***`, whitespace is collapsed and the length is capped.
pub(crate) fn scrub(text: &str, secret: Option<&SecretString>) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(secret) = secret {
        let key = secret.expose_secret();
        // A very short key would blank out ordinary words; such a key is not a real one.
        if key.len() >= 4 {
            text = text.replace(key, "***");
        }
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    text
}

/// A transport error as text: the whole cause chain (the top level alone says only
/// "error sending request"), without the URL, scrubbed.
pub(crate) fn describe_transport_error(
    err: reqwest::Error,
    secret: Option<&SecretString>,
) -> String {
    let err = err.without_url();
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    scrub(&parts.join(": "), secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_permanent() {
        for status in [408, 429, 500, 502, 503, 504, 529] {
            let err = LlmError::Http {
                status,
                attempts: 4,
                message: String::new(),
            };
            assert!(err.is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            let err = LlmError::Http {
                status,
                attempts: 1,
                message: String::new(),
            };
            assert!(!err.is_transient(), "{status}");
            assert_eq!(err.kind(), "rejected");
        }
        assert!(
            LlmError::Timeout {
                attempts: 1,
                timeout: Duration::from_secs(1)
            }
            .is_transient()
        );
        assert!(!LlmError::EmptyAnswer { attempts: 1 }.is_transient());
    }

    #[test]
    fn scrub_removes_the_key_and_caps_length() {
        let key = SecretString::from("sk-live-abcdef");
        let scrubbed = scrub("bad key sk-live-abcdef\n given", Some(&key));
        assert_eq!(scrubbed, "bad key *** given");
        let long = "x".repeat(1000);
        assert!(scrub(&long, None).chars().count() <= MAX_MESSAGE_CHARS + 1);
    }
}
