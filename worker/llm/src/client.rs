//! [`LlmClient`]: sends one [`LlmRequest`] to the configured provider, retries what is worth
//! retrying, and turns the outcome into an [`LlmResponse`] or a classified [`LlmError`].

use crate::config::{LlmConfig, Provider};
use crate::error::{LlmError, describe_transport_error, is_retryable_status, scrub, status_hint};
use crate::retry::{self, Backoff};
use crate::types::{LlmRequest, LlmResponse};
use crate::wire;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The Anthropic API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Header naming the task a request belongs to.
pub const TASK_HEADER: &str = "x-agent-task";
/// Header naming the task phase (`plan`, `edit`, `repair`).
pub const PHASE_HEADER: &str = "x-agent-phase";

/// Longest connect phase: a server that does not accept within this is not coming back soon,
/// whatever the (long) answer timeout says.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one configured model. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
    endpoint: String,
    /// Fixed headers of every request: auth (marked sensitive, so `Debug` hides it) and the
    /// protocol version.
    fixed_headers: HeaderMap,
    backoff: Backoff,
    /// Set once the server refused `max_tokens` and asked for `max_completion_tokens`
    /// (OpenAI's reasoning models): later requests use that name from the start.
    wants_max_completion_tokens: Arc<AtomicBool>,
}

impl LlmClient {
    /// Builds the HTTP client. Fails only when the key cannot be sent as a header or the TLS
    /// backend cannot start.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let mut fixed_headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let (name, value) = match config.provider {
                Provider::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose_secret().trim().to_owned(),
                ),
                Provider::OpenAi => (
                    AUTHORIZATION,
                    format!("Bearer {}", key.expose_secret().trim()),
                ),
            };
            // The error of `from_str` does not quote the value, but the message is ours anyway.
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| LlmError::InvalidRequest {
                    reason: format!(
                        "{} contains characters an HTTP header cannot carry",
                        config.provider.api_key_variable()
                    ),
                })?;
            value.set_sensitive(true);
            fixed_headers.insert(name, value);
        }
        if config.provider == Provider::Anthropic {
            fixed_headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("agent-fleet/", env!("CARGO_PKG_VERSION")))
            // No redirects: an API endpoint has no reason to send one, and reqwest forwards
            // custom headers such as `x-api-key` to the new host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::InvalidRequest {
                reason: format!(
                    "HTTP client setup failed: {}",
                    describe_transport_error(e, None)
                ),
            })?;
        Ok(Self {
            endpoint: config.endpoint(),
            config,
            http,
            fixed_headers,
            backoff: Backoff::default(),
            wants_max_completion_tokens: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Sets the first backoff step (default 1 s, doubling per retry, plus up to 25 % jitter).
    /// Tests use a few milliseconds.
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff.base = base;
        self
    }

    /// Sets the longest computed backoff step (default 30 s).
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        self.backoff.max = max;
        self
    }

    /// Sets the longest wait honoured from a `retry-after` header (default 60 s).
    pub fn with_retry_after_cap(mut self, cap: Duration) -> Self {
        self.backoff.retry_after_cap = cap;
        self
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    pub fn provider(&self) -> Provider {
        self.config.provider
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `req`, retrying connection errors, timeouts, 408, 429, 5xx and 529 up to
    /// `max_retries` times. A returned error is final for this call: requeue the task when
    /// [`LlmError::is_transient`], otherwise report it.
    pub async fn complete(&self, req: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let headers = self.request_headers(req)?;
        let mut body = wire::request_body(
            self.config.provider,
            &self.config.model,
            self.config.max_tokens,
            req,
        );
        let mut renamed = self.wants_max_completion_tokens.load(Ordering::Relaxed);
        if renamed {
            wire::rename_max_tokens(&mut body);
        }
        let mut max_attempts = self.config.max_retries.saturating_add(1);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            tracing::debug!(
                task_id = %req.task_id,
                phase = req.phase.as_str(),
                provider = self.config.provider.as_str(),
                model = %self.config.model,
                attempt,
                "LLM request"
            );
            match self.attempt(attempt, &headers, &body).await {
                Ok(parsed) => {
                    let Some(text) = parsed.text else {
                        tracing::warn!(
                            task_id = %req.task_id,
                            phase = req.phase.as_str(),
                            attempt,
                            "LLM answer has no text"
                        );
                        return Err(LlmError::EmptyAnswer { attempts: attempt });
                    };
                    tracing::info!(
                        task_id = %req.task_id,
                        phase = req.phase.as_str(),
                        provider = self.config.provider.as_str(),
                        model = %self.config.model,
                        attempts = attempt,
                        input_tokens = parsed.usage.input_tokens,
                        output_tokens = parsed.usage.output_tokens,
                        truncated = parsed.truncated,
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "LLM answer"
                    );
                    return Ok(LlmResponse {
                        text,
                        usage: parsed.usage,
                        attempts: attempt,
                        truncated: parsed.truncated,
                    });
                }
                Err(failure) => {
                    // OpenAI's reasoning models refuse `max_tokens` with a 400 that names
                    // the field they want; OpenAI-compatible servers (vLLM, Ollama) only
                    // know `max_tokens`. Asking again under the other name costs one
                    // request and is not a retry.
                    if !renamed
                        && self.config.provider == Provider::OpenAi
                        && wire::asks_for_max_completion_tokens(&failure.error)
                    {
                        renamed = true;
                        self.wants_max_completion_tokens
                            .store(true, Ordering::Relaxed);
                        wire::rename_max_tokens(&mut body);
                        tracing::info!(
                            task_id = %req.task_id,
                            phase = req.phase.as_str(),
                            model = %self.config.model,
                            attempt,
                            "model wants max_completion_tokens instead of max_tokens; sending again"
                        );
                        attempt += 1;
                        max_attempts = max_attempts.saturating_add(1);
                        continue;
                    }
                    if !failure.error.is_transient() || attempt >= max_attempts {
                        tracing::warn!(
                            task_id = %req.task_id,
                            phase = req.phase.as_str(),
                            provider = self.config.provider.as_str(),
                            attempts = attempt,
                            kind = failure.error.kind(),
                            transient = failure.error.is_transient(),
                            error = %failure.error,
                            "LLM request failed"
                        );
                        return Err(failure.error);
                    }
                    let wait = self.backoff.delay(attempt, failure.retry_after);
                    tracing::warn!(
                        task_id = %req.task_id,
                        phase = req.phase.as_str(),
                        provider = self.config.provider.as_str(),
                        attempt,
                        kind = failure.error.kind(),
                        error = %failure.error,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "LLM request failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// The per-request headers on top of the fixed ones. Checked before anything is sent.
    fn request_headers(&self, req: &LlmRequest) -> Result<HeaderMap, LlmError> {
        if req.messages.is_empty() {
            return Err(LlmError::InvalidRequest {
                reason: "the request has no messages".to_owned(),
            });
        }
        let task = HeaderValue::from_str(&req.task_id)
            .ok()
            .filter(|_| !req.task_id.is_empty())
            .ok_or_else(|| LlmError::InvalidRequest {
                reason: format!(
                    "task id {:?} cannot be sent as {TASK_HEADER}",
                    scrub(&req.task_id, None)
                ),
            })?;
        let mut headers = self.fixed_headers.clone();
        headers.insert(HeaderName::from_static(TASK_HEADER), task);
        headers.insert(
            HeaderName::from_static(PHASE_HEADER),
            HeaderValue::from_static(req.phase.as_str()),
        );
        Ok(headers)
    }

    /// One request and its classification.
    async fn attempt(
        &self,
        attempt: u32,
        headers: &HeaderMap,
        body: &serde_json::Value,
    ) -> Result<wire::Parsed, Failure> {
        let response = self
            .http
            .post(&self.endpoint)
            .headers(headers.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_failure(attempt, e))?;
        let status = response.status();
        let retry_after = retry::retry_after(response.headers(), SystemTime::now());
        let bytes = self.read_capped(response, attempt).await?;
        if !status.is_success() {
            let code = status.as_u16();
            let mut message = scrub(&wire::error_message(&bytes), self.config.api_key.as_ref());
            if message.is_empty() {
                message = status.canonical_reason().unwrap_or("no message").to_owned();
            }
            let hint = if status.is_redirection() {
                Some("the server redirected: check LLM_BASE_URL (http or https, host)".to_owned())
            } else if is_retryable_status(code) {
                None
            } else {
                status_hint(code, self.config.provider.api_key_variable())
            };
            if let Some(hint) = hint {
                message = format!("{message} ({hint})");
            }
            return Err(Failure {
                error: LlmError::Http {
                    status: code,
                    attempts: attempt,
                    message,
                },
                retry_after,
            });
        }
        wire::parse_answer(self.config.provider, &bytes).map_err(|reason| Failure {
            error: LlmError::InvalidAnswer {
                attempts: attempt,
                expected: self.config.provider.protocol_name(),
                reason: scrub(&reason, self.config.api_key.as_ref()),
            },
            retry_after: None,
        })
    }

    /// The answer's body, read in chunks and refused past [`MAX_ANSWER_BYTES`]: an answer
    /// of `LLM_MAX_TOKENS` is a few tens of KiB, and a hostile or broken endpoint must not
    /// fill the worker's memory.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        attempt: u32,
    ) -> Result<Vec<u8>, Failure> {
        let too_large = || Failure {
            error: LlmError::InvalidAnswer {
                attempts: attempt,
                expected: self.config.provider.protocol_name(),
                reason: format!("the body is larger than {MAX_ANSWER_BYTES} bytes; not read"),
            },
            retry_after: None,
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_failure(attempt, e))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_failure(&self, attempt: u32, err: reqwest::Error) -> Failure {
        let error = if err.is_builder() {
            // Not a network problem: the URL or request itself is wrong, retrying cannot help.
            LlmError::InvalidRequest {
                reason: format!(
                    "cannot build a request for {}: {}",
                    shared::settings::redact_url_password(&self.endpoint),
                    describe_transport_error(err, self.config.api_key.as_ref())
                ),
            }
        } else if err.is_timeout() {
            LlmError::Timeout {
                attempts: attempt,
                timeout: self.config.timeout,
            }
        } else {
            LlmError::Unreachable {
                attempts: attempt,
                reason: describe_transport_error(err, self.config.api_key.as_ref()),
            }
        };
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// The largest LLM answer read (see `LlmClient::read_capped`).
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// A failed attempt, with the server's requested wait if it sent one.
struct Failure {
    error: LlmError,
    retry_after: Option<Duration>,
}
