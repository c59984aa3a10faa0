//! The worker's LLM client: one call, [`LlmClient::complete`], that sends a prompt to the
//! configured model and returns its text and token usage, or an error that says whether to
//! requeue the task or report the failure.
//!
//! Two wire protocols cover the providers: the Anthropic Messages API and the
//! OpenAI-compatible Chat Completions API (OpenAI, Ollama, vLLM, llama.cpp server, most
//! gateways), chosen by `LLM_PROVIDER` with the base URL overridable. Every request carries
//! `X-Agent-Task` and `X-Agent-Phase` for cost attribution and test stand-ins.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fleet_llm::{LlmClient, LlmConfig, LlmRequest, Message, Phase};
//! let config = LlmConfig::from_env(&shared::settings::Env::process())?;
//! let client = LlmClient::new(config)?;
//! let answer = client
//!     .complete(&LlmRequest {
//!         task_id: "7f1c2d9e".into(),
//!         phase: Phase::Edit,
//!         system: "You edit code.".into(),
//!         messages: vec![Message::user("Fix the off-by-one in src/lib.rs")],
//!     })
//!     .await?;
//! println!("{} ({} tokens out)", answer.text, answer.usage.output_tokens);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`Provider`], [`LlmConfig`] and reading the `LLM_*` settings.
//! - `types`: the provider-neutral [`LlmRequest`], [`Message`], [`Phase`], [`LlmResponse`],
//!   [`Usage`].
//! - `wire`: request bodies and answer parsing of both protocols (no I/O).
//! - `retry`: backoff with jitter and `retry-after` parsing.
//! - `error`: [`LlmError`], transient versus permanent, and scrubbing of the API key.
//! - `client`: [`LlmClient`], the HTTP round trip and the retry loop.
//! - `budget`: a task's LLM budget (calls, tokens, cost from `LLM_PRICES`), checked
//!   before every call.
//!
//! Tests against an in-process stand-in server are in `tests/stand_in.rs`.

pub mod budget;
mod client;
mod config;
mod error;
mod retry;
mod types;
mod wire;

pub use client::{ANTHROPIC_VERSION, LlmClient, MAX_ANSWER_BYTES, PHASE_HEADER, TASK_HEADER};
pub use config::{
    DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_MAX_TOKENS, DEFAULT_OPENAI_BASE_URL,
    DEFAULT_TIMEOUT_SECS, LlmConfig, Provider,
};
pub use error::LlmError;
pub use retry::{DEFAULT_BASE_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_RETRY_AFTER_CAP};
pub use types::{LlmRequest, LlmResponse, Message, Phase, Role, Usage};
