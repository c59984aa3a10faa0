//! The two wire formats: request bodies and answer parsing for the Anthropic Messages API
//! and the OpenAI-compatible Chat Completions API. Nothing here does I/O, so every shape is
//! checked by plain unit tests.
//!
//! Parsing is lenient about what it does not need (unknown fields, missing usage, `null`s)
//! because the OpenAI-compatible servers differ in the details; it is strict only about the
//! text, which is the point of the call.

use crate::config::Provider;
use crate::types::{LlmRequest, Message, Role, Usage};
use serde::{Deserialize, Serialize};

/// What a successful answer carried.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// `None` when the answer held no text at all.
    pub text: Option<String>,
    pub usage: Usage,
    pub truncated: bool,
}

/// The JSON body to send.
pub(crate) fn request_body(
    provider: Provider,
    model: &str,
    max_tokens: u32,
    req: &LlmRequest,
) -> serde_json::Value {
    let value = match provider {
        Provider::Anthropic => serde_json::to_value(AnthropicRequest {
            model,
            max_tokens,
            system: (!req.system.is_empty()).then_some(req.system.as_str()),
            messages: &req.messages,
        }),
        Provider::OpenAi => {
            // OpenAI has no separate system field: the system prompt is the first message.
            let system = (!req.system.is_empty()).then(|| ChatMessage {
                role: "system",
                content: &req.system,
            });
            let messages = system
                .into_iter()
                .chain(req.messages.iter().map(|m| ChatMessage {
                    role: match m.role {
                        Role::User => "user",
                        Role::Assistant => "assistant",
                    },
                    content: &m.content,
                }))
                .collect();
            serde_json::to_value(OpenAiRequest {
                model,
                max_tokens,
                messages,
            })
        }
    };
    value.expect("request bodies are plain strings and numbers")
}

/// Reads a 2xx answer. `Err` holds why the body is not the protocol's JSON.
pub(crate) fn parse_answer(provider: Provider, body: &[u8]) -> Result<Parsed, String> {
    match provider {
        Provider::Anthropic => {
            let answer: AnthropicAnswer =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let texts: Vec<&str> = answer
                .content
                .iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text.as_deref())
                .collect();
            let usage = answer.usage.unwrap_or_default();
            Ok(Parsed {
                text: non_blank(texts.concat()),
                usage: Usage {
                    input_tokens: usage.input_tokens.unwrap_or(0),
                    output_tokens: usage.output_tokens.unwrap_or(0),
                },
                truncated: answer.stop_reason.as_deref() == Some("max_tokens"),
            })
        }
        Provider::OpenAi => {
            let answer: OpenAiAnswer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let choice = answer.choices.into_iter().next();
            let usage = answer.usage.unwrap_or_default();
            Ok(Parsed {
                truncated: choice
                    .as_ref()
                    .is_some_and(|c| c.finish_reason.as_deref() == Some("length")),
                text: choice
                    .and_then(|c| c.message)
                    .and_then(|m| m.content)
                    .and_then(non_blank),
                usage: Usage {
                    input_tokens: usage.prompt_tokens.unwrap_or(0),
                    output_tokens: usage.completion_tokens.unwrap_or(0),
                },
            })
        }
    }
}

/// Whether a refusal says the model takes `max_completion_tokens` rather than `max_tokens`
/// (OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. Use
/// 'max_completion_tokens' instead.").
pub(crate) fn asks_for_max_completion_tokens(error: &crate::LlmError) -> bool {
    match error {
        crate::LlmError::Http {
            status: 400,
            message,
            ..
        } => message.contains("max_completion_tokens") && message.contains("max_tokens"),
        _ => false,
    }
}

/// Sends the output limit of an OpenAI request body under the name reasoning models take.
pub(crate) fn rename_max_tokens(body: &mut serde_json::Value) {
    if let Some(fields) = body.as_object_mut()
        && let Some(limit) = fields.remove("max_tokens")
    {
        fields.insert("max_completion_tokens".to_owned(), limit);
    }
}

/// The error message in a non-2xx body. Both APIs (and Ollama, llama.cpp, vLLM) use
/// `{"error": {"message": ...}}` or `{"error": "..."}`; anything else is returned raw.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: ErrorField,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Text(String),
        Object {
            message: Option<String>,
            #[serde(rename = "type")]
            kind: Option<String>,
        },
    }
    match serde_json::from_slice::<Envelope>(body).map(|e| e.error) {
        Ok(ErrorField::Text(message)) => message,
        Ok(ErrorField::Object { message, kind }) => match (kind, message) {
            (Some(kind), Some(message)) => format!("{kind}: {message}"),
            (None, Some(message)) => message,
            (Some(kind), None) => kind,
            (None, None) => String::from_utf8_lossy(body).into_owned(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn non_blank(text: String) -> Option<String> {
    (!text.trim().is_empty()).then_some(text)
}

#[derive(Serialize)]
struct AnthropicRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: &'a [Message],
}

#[derive(Serialize)]
struct OpenAiRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<ChatMessage<'a>>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct AnthropicAnswer {
    content: Vec<AnthropicBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    choices: Vec<OpenAiChoice>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    #[serde(default)]
    message: Option<OpenAiMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Phase;
    use serde_json::json;

    fn request(system: &str) -> LlmRequest {
        LlmRequest {
            task_id: "t-1".into(),
            phase: Phase::Edit,
            system: system.into(),
            messages: vec![
                Message::user("fix it"),
                Message::assistant("which file?"),
                Message::user("src/lib.rs"),
            ],
        }
    }

    #[test]
    fn anthropic_body_keeps_system_apart() {
        let body = request_body(Provider::Anthropic, "claude-x", 100, &request("be brief"));
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "max_tokens": 100,
                "system": "be brief",
                "messages": [
                    {"role": "user", "content": "fix it"},
                    {"role": "assistant", "content": "which file?"},
                    {"role": "user", "content": "src/lib.rs"},
                ]
            })
        );
        let body = request_body(Provider::Anthropic, "claude-x", 100, &request(""));
        assert!(body.get("system").is_none());
    }

    #[test]
    fn openai_body_puts_system_first() {
        let body = request_body(Provider::OpenAi, "gpt-x", 7, &request("be brief"));
        assert_eq!(
            body,
            json!({
                "model": "gpt-x",
                "max_tokens": 7,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "fix it"},
                    {"role": "assistant", "content": "which file?"},
                    {"role": "user", "content": "src/lib.rs"},
                ]
            })
        );
        let body = request_body(Provider::OpenAi, "gpt-x", 7, &request(""));
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn anthropic_answer_joins_text_blocks_only() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Hello, "},
                {"type": "tool_use", "id": "x", "name": "y", "input": {}},
                {"type": "text", "text": "world"}
            ],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 12, "output_tokens": 34, "cache_read_input_tokens": 0}
        });
        let parsed = parse_answer(Provider::Anthropic, body.to_string().as_bytes()).expect("ok");
        assert_eq!(
            parsed,
            Parsed {
                text: Some("Hello, world".into()),
                usage: Usage {
                    input_tokens: 12,
                    output_tokens: 34
                },
                truncated: true,
            }
        );
    }

    #[test]
    fn openai_answer_without_usage_counts_zero() {
        let body = json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}]
        });
        let parsed = parse_answer(Provider::OpenAi, body.to_string().as_bytes()).expect("ok");
        assert_eq!(parsed.text.as_deref(), Some("hi"));
        assert_eq!(parsed.usage, Usage::default());
        assert!(!parsed.truncated);
    }

    #[test]
    fn answers_without_text() {
        let cases = [
            (Provider::OpenAi, json!({"choices": []})),
            (
                Provider::OpenAi,
                json!({"choices": [{"message": {"content": null}, "finish_reason": "tool_calls"}]}),
            ),
            (Provider::Anthropic, json!({"content": []})),
            (
                Provider::Anthropic,
                json!({"content": [{"type": "text", "text": "  \n"}]}),
            ),
        ];
        for (provider, body) in cases {
            let parsed = parse_answer(provider, body.to_string().as_bytes()).expect("json");
            assert_eq!(parsed.text, None, "{body}");
        }
    }

    #[test]
    fn unparseable_answers() {
        assert!(parse_answer(Provider::OpenAi, b"<html>gateway</html>").is_err());
        assert!(parse_answer(Provider::Anthropic, b"{\"choices\": []}").is_err());
    }

    #[test]
    fn error_messages_of_both_shapes() {
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_message(anthropic), "overloaded_error: Overloaded");
        let openai = br#"{"error":{"message":"Rate limit reached","type":null,"code":"x"}}"#;
        assert_eq!(error_message(openai), "Rate limit reached");
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message(b"Bad Gateway"), "Bad Gateway");
    }
}
