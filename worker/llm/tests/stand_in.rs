//! The client against an in-process stand-in server (axum on 127.0.0.1:0) that records every
//! request and answers from a script: request shapes and headers of both providers, usage,
//! the retry policy, error classification, and that the API key never leaks.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fleet_llm::{
    LlmClient, LlmConfig, LlmError, LlmRequest, LlmResponse, Message, Phase, Provider, Usage,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-SECRET-0123456789";

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request as the stand-in saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the request's path, each header of `headers` (its value, or `None` where it
    /// must be absent) and the JSON body.
    fn assert_request(&self, path: &str, headers: &[(&str, Option<&str>)], body: Value) {
        assert_eq!(self.path, path);
        for &(name, value) in headers {
            assert_eq!(self.header(name), value, "{name}");
        }
        assert_eq!(self.body, body);
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    /// Repeated once the script runs out.
    last: Option<Reply>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Script>>;

/// Starts a stand-in answering `replies` in order (the last one forever); returns its base URL.
async fn stand_in(replies: Vec<Reply>) -> (String, Shared) {
    let script: Shared = Arc::new(Mutex::new(Script {
        replies: replies.into(),
        ..Script::default()
    }));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), script)
}

async fn handle(
    axum::extract::State(script): axum::extract::State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut script = script.lock().expect("lock");
        script.seen.push(Seen {
            path: uri.path().to_owned(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        let next = script.replies.pop_front();
        if let Some(next) = &next {
            script.last = Some(next.clone());
        }
        next.or_else(|| script.last.clone())
            .expect("a scripted reply")
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (
        StatusCode::from_u16(reply.status).expect("status"),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

fn seen(script: &Shared) -> Vec<Seen> {
    script.lock().expect("lock").seen.clone()
}

fn config(provider: Provider, base_url: &str, key: Option<&str>) -> LlmConfig {
    LlmConfig {
        base_url: base_url.to_owned(),
        api_key: key.map(|k| SecretString::from(k.to_owned())),
        max_tokens: 256,
        timeout: Duration::from_secs(5),
        max_retries: 3,
        ..LlmConfig::new(provider, "test-model")
    }
}

fn client(config: LlmConfig) -> LlmClient {
    LlmClient::new(config)
        .expect("client")
        .with_backoff(Duration::from_millis(5))
}

fn request(phase: Phase) -> LlmRequest {
    LlmRequest {
        task_id: "task-42".into(),
        phase,
        system: "You fix bugs.".into(),
        messages: vec![Message::user("Fix the off-by-one.")],
    }
}

fn anthropic_ok(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "test-model",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 11, "output_tokens": 22}
        }),
    )
}

fn openai_ok(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        }),
    )
}

/// One request of `phase` by a `provider` client (the test key) to a stand-in answering
/// `replies`: the result, and the stand-in's script (what it saw).
async fn complete_with(
    provider: Provider,
    replies: Vec<Reply>,
    phase: Phase,
) -> (Result<LlmResponse, LlmError>, Shared) {
    let (base, script) = stand_in(replies).await;
    let result = client(config(provider, &base, Some(KEY)))
        .complete(&request(phase))
        .await;
    (result, script)
}

/// The error of an edit request by a client of `config` (`why` it must fail).
async fn edit_refused(config: LlmConfig, why: &str) -> LlmError {
    client(config)
        .complete(&request(Phase::Edit))
        .await
        .expect_err(why)
}

/// Asserts an answer's text, its usage (input and output tokens) and its attempts.
fn assert_answer(answer: &LlmResponse, text: &str, tokens: (u64, u64), attempts: u32) {
    let usage = (answer.usage.input_tokens, answer.usage.output_tokens);
    assert_eq!(
        (answer.text.as_str(), usage, answer.attempts),
        (text, tokens, attempts)
    );
}

fn assert_no_key(err: &LlmError) {
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert!(!display.contains(KEY), "{display}");
    assert!(!debug.contains(KEY), "{debug}");
}

#[tokio::test]
async fn anthropic_request_shape_headers_and_usage() {
    let (result, script) = complete_with(
        Provider::Anthropic,
        vec![anthropic_ok("the fix")],
        Phase::Edit,
    )
    .await;
    let answer = result.expect("answer");
    assert_answer(&answer, "the fix", (11, 22), 1);
    assert!(!answer.truncated);

    let seen = seen(&script);
    assert_eq!(seen.len(), 1);
    let headers = [
        ("x-api-key", Some(KEY)),
        ("anthropic-version", Some("2023-06-01")),
        ("authorization", None),
        ("x-agent-task", Some("task-42")),
        ("x-agent-phase", Some("edit")),
        ("content-type", Some("application/json")),
    ];
    let body = json!({
        "model": "test-model",
        "max_tokens": 256,
        "system": "You fix bugs.",
        "messages": [{"role": "user", "content": "Fix the off-by-one."}]
    });
    seen[0].assert_request("/v1/messages", &headers, body);
}

#[tokio::test]
async fn openai_request_shape_headers_and_usage() {
    let (result, script) =
        complete_with(Provider::OpenAi, vec![openai_ok("patched")], Phase::Repair).await;
    let answer = result.expect("answer");
    assert_answer(&answer, "patched", (5, 7), 1);

    let seen = seen(&script);
    let bearer = format!("Bearer {KEY}");
    let headers = [
        ("authorization", Some(bearer.as_str())),
        ("x-api-key", None),
        ("anthropic-version", None),
        ("x-agent-task", Some("task-42")),
        ("x-agent-phase", Some("repair")),
    ];
    let body = json!({
        "model": "test-model",
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You fix bugs."},
            {"role": "user", "content": "Fix the off-by-one."}
        ]
    });
    seen[0].assert_request("/v1/chat/completions", &headers, body);
}

#[tokio::test]
async fn reasoning_model_gets_max_completion_tokens_after_refusing_max_tokens() {
    let refusal = || {
        Reply::json(
            400,
            json!({"error": {
                "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                "type": "invalid_request_error", "param": "max_tokens",
                "code": "unsupported_parameter"
            }}),
        )
    };
    let (base, script) = stand_in(vec![refusal(), openai_ok("one"), openai_ok("two")]).await;
    let mut settings = config(Provider::OpenAi, &base, Some(KEY));
    settings.max_retries = 0;
    let client = client(settings);
    let first = client
        .complete(&request(Phase::Plan))
        .await
        .expect("answer");
    assert_eq!(first.text, "one");
    assert_eq!(first.attempts, 2);
    // The client remembers: the next call uses the new name from the start.
    let second = client
        .complete(&request(Phase::Edit))
        .await
        .expect("answer");
    assert_eq!((second.text.as_str(), second.attempts), ("two", 1));

    let sent = seen(&script);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].body["max_tokens"], 256);
    for later in &sent[1..] {
        assert_eq!(later.body["max_completion_tokens"], 256);
        assert!(later.body.get("max_tokens").is_none(), "{}", later.body);
    }

    // Anthropic's API has no such field: the same refusal there is a plain permanent 400.
    let (base, script) = stand_in(vec![refusal()]).await;
    let err = client_for(Provider::Anthropic, &base)
        .complete(&request(Phase::Edit))
        .await
        .expect_err("permanent");
    assert_eq!((err.status(), err.is_transient()), (Some(400), false));
    assert_eq!(seen(&script).len(), 1);
}

fn client_for(provider: Provider, base: &str) -> LlmClient {
    client(config(provider, base, Some(KEY)))
}

#[tokio::test]
async fn openai_compatible_server_without_key_or_usage() {
    // Ollama-like: no key configured, no usage in the answer, base URL given with /v1.
    let (base, script) = stand_in(vec![Reply::json(
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": "{\"summary\": \"x\"}"}}]}),
    )])
    .await;
    let env = shared::settings::Env::from_map([
        ("LLM_PROVIDER", "ollama"),
        ("LLM_MODEL", "qwen2.5-coder"),
        ("LLM_BASE_URL", &format!("{base}/v1")),
    ]);
    let config = LlmConfig::from_env(&env).expect("config");
    let answer = client(config)
        .complete(&request(Phase::Plan))
        .await
        .expect("answer");
    assert_eq!(answer.text, "{\"summary\": \"x\"}");
    assert_eq!(answer.usage, Usage::default());
    let seen = seen(&script);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].header("x-agent-phase"), Some("plan"));
    assert_eq!(seen[0].body["model"], "qwen2.5-coder");
}

#[tokio::test]
async fn rate_limited_then_success_honours_retry_after() {
    let (base, script) = stand_in(vec![
        Reply::json(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        )
        .header("retry-after", "1"),
        openai_ok("after the wait"),
    ])
    .await;
    // A long backoff step proves the wait came from retry-after, not from the backoff.
    let client =
        client(config(Provider::OpenAi, &base, Some(KEY))).with_backoff(Duration::from_secs(30));
    let started = Instant::now();
    let answer = client
        .complete(&request(Phase::Edit))
        .await
        .expect("answer");
    let elapsed = started.elapsed();
    assert_eq!(answer.text, "after the wait");
    assert_eq!(answer.attempts, 2);
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let seen = seen(&script);
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.header("x-agent-task"), Some("task-42"));
        assert_eq!(req.header("x-agent-phase"), Some("edit"));
    }
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn anthropic_overloaded_529_then_success() {
    let (result, script) = complete_with(Provider::Anthropic, vec![
        Reply::json(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
        .header("retry-after", "0"),
        anthropic_ok("fine now"),
    ], Phase::Edit).await;
    let answer = result.expect("answer");
    assert_eq!(answer.text, "fine now");
    assert_eq!(answer.attempts, 2);
    assert_eq!(seen(&script).len(), 2);
}

#[tokio::test]
async fn server_error_forever_is_transient_after_max_retries() {
    let (base, script) = stand_in(vec![Reply::json(
        500,
        json!({"error": {"message": "internal"}}),
    )])
    .await;
    let mut config = config(Provider::Anthropic, &base, Some(KEY));
    config.max_retries = 2;
    let err = edit_refused(config, "500 forever").await;
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.kind(), "server_error");
    assert_eq!(seen(&script).len(), 3, "first attempt plus max_retries");
    assert!(err.to_string().contains("internal"), "{err}");
}

#[tokio::test]
async fn unauthorized_is_permanent_without_retry_and_hides_the_key() {
    // A server that echoes the key it was given: the error must still not show it.
    let (result, script) = complete_with(
        Provider::OpenAi,
        vec![Reply::json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}"),
                         "type": "invalid_request_error"}}),
        )],
        Phase::Edit,
    )
    .await;
    let err = result.expect_err("401");
    assert!(!err.is_transient());
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.attempts(), 1);
    assert_eq!(seen(&script).len(), 1, "no retry");
    assert_no_key(&err);
    let display = err.to_string();
    assert!(
        display.contains("Incorrect API key provided: ***"),
        "{display}"
    );
    assert!(display.contains("OPENAI_API_KEY"), "{display}");
}

#[tokio::test]
async fn other_client_errors_are_permanent() {
    for status in [400, 403, 404, 422] {
        let (result, script) = complete_with(
            Provider::Anthropic,
            vec![Reply::json(status, json!({"error": {"message": "nope"}}))],
            Phase::Edit,
        )
        .await;
        let err = result.expect_err("client error");
        assert!(!err.is_transient(), "{status}: {err}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(seen(&script).len(), 1, "{status}: no retry");
    }
}

#[tokio::test]
async fn answers_without_text_or_json_are_permanent() {
    let (base, script) = stand_in(vec![Reply::json(
        200,
        json!({"choices": [{"message": {"content": null}, "finish_reason": "tool_calls"}]}),
    )])
    .await;
    let err = edit_refused(config(Provider::OpenAi, &base, None), "no text").await;
    assert!(
        matches!(err, LlmError::EmptyAnswer { attempts: 1 }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(seen(&script).len(), 1);

    let (result, script) = complete_with(
        Provider::Anthropic,
        vec![Reply {
            status: 200,
            headers: vec![("content-type", "text/html".into())],
            body: "<html>proxy login</html>".into(),
            delay: Duration::ZERO,
        }],
        Phase::Edit,
    )
    .await;
    let err = result.expect_err("not json");
    assert!(matches!(err, LlmError::InvalidAnswer { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(seen(&script).len(), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port that was just free: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut config = config(Provider::Anthropic, &format!("http://{addr}"), Some(KEY));
    config.max_retries = 1;
    let err = edit_refused(config, "refused").await;
    assert!(matches!(err, LlmError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.attempts(), 2);
    assert_no_key(&err);
    assert!(
        !err.to_string().contains(&addr.to_string()),
        "no URL: {err}"
    );
}

#[tokio::test]
async fn timeout_is_transient() {
    let (base, script) = stand_in(vec![
        anthropic_ok("too late").delayed(Duration::from_secs(3)),
    ])
    .await;
    let mut config = config(Provider::Anthropic, &base, Some(KEY));
    config.timeout = Duration::from_millis(200);
    config.max_retries = 1;
    let started = Instant::now();
    let err = edit_refused(config, "timeout").await;
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.attempts(), 2);
    assert_eq!(seen(&script).len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up on time"
    );
}

#[tokio::test]
async fn invalid_requests_are_refused_before_sending() {
    let (base, script) = stand_in(vec![anthropic_ok("unused")]).await;
    let client = client(config(Provider::Anthropic, &base, Some(KEY)));
    let mut no_messages = request(Phase::Edit);
    no_messages.messages.clear();
    let err = client.complete(&no_messages).await.expect_err("empty");
    assert!(matches!(err, LlmError::InvalidRequest { .. }), "{err:?}");
    let mut bad_task = request(Phase::Edit);
    bad_task.task_id = "a\nb".into();
    let err = client.complete(&bad_task).await.expect_err("bad header");
    assert!(!err.is_transient());
    assert_eq!(err.attempts(), 0);
    assert!(seen(&script).is_empty());
}

#[test]
fn client_debug_hides_the_key() {
    let client =
        LlmClient::new(config(Provider::OpenAi, "http://127.0.0.1:1", Some(KEY))).expect("client");
    let debug = format!("{client:?}");
    assert!(!debug.contains(KEY), "{debug}");
    let anthropic = LlmClient::new(config(Provider::Anthropic, "http://127.0.0.1:1", Some(KEY)))
        .expect("client");
    let debug = format!("{anthropic:?}");
    assert!(!debug.contains(KEY), "{debug}");
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_appears_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let echo = |status| {
        Reply::json(
            status,
            json!({"error": {"message": format!("bad key {KEY}")}}),
        )
        .header("retry-after", "0")
    };
    let (base, _) = stand_in(vec![
        echo(503),
        Reply::json(200, json!({"content": format!("not the shape {KEY}")})),
    ])
    .await;
    let err = edit_refused(
        config(Provider::Anthropic, &base, Some(KEY)),
        "invalid answer",
    )
    .await;
    assert_no_key(&err);
    let (base, _) = stand_in(vec![echo(401)]).await;
    let err = client(config(Provider::OpenAi, &base, Some(KEY)))
        .complete(&request(Phase::Repair))
        .await
        .expect_err("401");
    assert_no_key(&err);
    let (base, _) = stand_in(vec![openai_ok("fine")]).await;
    client(config(Provider::OpenAi, &base, Some(KEY)))
        .complete(&request(Phase::Plan))
        .await
        .expect("answer");

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logs.contains("LLM request failed, retrying"), "{logs}");
    assert!(logs.contains("LLM request failed"), "{logs}");
    assert!(logs.contains("LLM answer"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_refused_unread_and_not_retried() {
    let huge = Reply {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: "x".repeat(fleet_llm::MAX_ANSWER_BYTES + 1),
        delay: Duration::ZERO,
    };
    let (result, script) = complete_with(Provider::Anthropic, vec![huge], Phase::Edit).await;
    let err = result.expect_err("too large");
    assert!(
        matches!(&err, LlmError::InvalidAnswer { reason, .. } if reason.contains("larger than")),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(script.lock().expect("lock").seen.len(), 1, "asked once");
}
