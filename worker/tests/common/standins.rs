//! Local stand-ins for GitHub's REST API (stateful, recording every request) and for an
//! LLM provider speaking both the Anthropic and the OpenAI-compatible API, answering from a
//! script chosen by `X-Agent-Phase`; plus local bare git repositories for clone and push.
#![allow(dead_code)]

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

#[derive(Debug, Clone, Default)]
pub struct GithubState {
    pub permissions: HashMap<String, String>,
    pub comments: Vec<Value>,
    pub pulls: Vec<Value>,
    pub requests: Vec<String>,
    pub review_requests: Vec<(u64, Vec<String>)>,
    pub ready_for_review: Vec<String>,
    /// Issues served by `GET /repos/{o}/{r}/issues/{n}` (number -> issue JSON).
    pub issues: HashMap<u64, Value>,
    /// The login `GET /user` answers (the token's account); empty: `fleet-agent[bot]`.
    pub user_login: String,
    /// Bodies of App installation token requests (`POST /app/installations/{id}/access_tokens`).
    pub token_requests: Vec<Value>,
    /// Routes answered with a rate limit for a while (see [`FakeGithub::rate_limit`]).
    pub rate_limits: Vec<RateLimit>,
    /// Requests answered with a rate limit.
    pub rate_limited: u32,
    /// The `size` (KiB) `GET /repos/{o}/{r}` reports; `None`: the field is absent.
    pub repo_size_kib: Option<u64>,
    /// Every request body received, as text (what the worker sent to GitHub).
    pub bodies: Vec<String>,
    /// Reviews, PR commits, check runs (the follow-up modes; see [`OnPullState`]).
    pub on_pull: OnPullState,
    next_id: u64,
}

/// Records each request's body (see [`GithubState::bodies`]), then passes it on.
async fn gh_record_body(
    State(state): Gh,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if !bytes.is_empty() {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        state.lock().expect("lock").bodies.push(text);
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// `GET /repos/{o}/{r}`: the repository, with its `size` when one is set.
async fn gh_repo(State(state): Gh, Path((o, r)): Path<(String, String)>) -> Response {
    let s = log(&state, format!("GET repo {o}/{r}"));
    let mut repo = json!({"full_name": format!("{o}/{r}"), "default_branch": "main"});
    if let Some(kib) = s.repo_size_kib {
        repo["size"] = json!(kib);
    }
    axum::Json(repo).into_response()
}

/// How a rate-limited route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStyle {
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (GitHub's primary limit).
    Reset,
    /// 429 with `retry-after` in seconds.
    RetryAfter,
}

/// `method` (`*`: any) requests whose path ends with `path_suffix` are rate-limited until
/// `until`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub method: String,
    pub path_suffix: String,
    pub until: std::time::Instant,
    pub style: LimitStyle,
}

async fn gh_rate_limit(
    State(state): Gh,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let now = std::time::Instant::now();
    let hit = {
        let mut s = state.lock().expect("lock");
        let hit = s
            .rate_limits
            .iter()
            .find(|l| {
                l.until > now
                    && (l.method == "*" || l.method == method)
                    && path.ends_with(&l.path_suffix)
            })
            .map(|l| (l.until, l.style));
        if hit.is_some() {
            s.rate_limited += 1;
            s.requests.push(format!("RATE-LIMITED {method} {path}"));
        }
        hit
    };
    let Some((until, style)) = hit else {
        return next.run(request).await;
    };
    let left = until - now;
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut response = match style {
        LimitStyle::Reset => status_json(
            StatusCode::FORBIDDEN,
            json!({"message": "API rate limit exceeded for installation."}),
        ),
        LimitStyle::RetryAfter => status_json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "You have exceeded a secondary rate limit."}),
        ),
    };
    let headers = response.headers_mut();
    match style {
        LimitStyle::Reset => {
            let reset = std::time::SystemTime::now() + left;
            let epoch = reset.duration_since(std::time::UNIX_EPOCH).expect("epoch");
            let epoch = epoch.as_secs() + u64::from(epoch.subsec_nanos() > 0);
            headers.insert("x-ratelimit-remaining", "0".parse().expect("header"));
            headers.insert(
                "x-ratelimit-reset",
                epoch.to_string().parse().expect("header"),
            );
        }
        LimitStyle::RetryAfter => {
            headers.insert("retry-after", secs.to_string().parse().expect("header"));
        }
    }
    response
}

#[derive(Clone, Default)]
pub struct FakeGithub {
    pub state: Arc<Mutex<GithubState>>,
    pub url: String,
}

type Gh = State<Arc<Mutex<GithubState>>>;

/// The next comment id and its timestamp: a fixed day at `12:MM:SS` taken from the id, then
/// `zone` as the tracker writes it.
fn next_comment(next_id: &mut u64, zone: &str) -> (u64, String) {
    *next_id += 1;
    let id = *next_id;
    (
        id,
        format!("2026-11-21T12:{:02}:{:02}{zone}", (id / 60) % 60, id % 60),
    )
}

impl GithubState {
    /// Adds a comment by `user` on issue `number` and returns it as the API shows it.
    fn push_comment(&mut self, number: u64, body: Value, user: &str) -> Value {
        let (id, created) = next_comment(&mut self.next_id, "Z");
        let comment = json!({
            "id": id, "issue": number, "body": body, "user": {"login": user},
            "created_at": created, "updated_at": created,
        });
        self.comments.push(comment.clone());
        comment
    }
}

impl JiraState {
    /// Adds a comment (ADF `body`) by `account` on issue `key` and returns it.
    fn push_comment(&mut self, key: &str, account: &str, body: Value) -> Value {
        let (id, created) = next_comment(&mut self.next_id, ".000+0000");
        let comment = json!({
            "id": id.to_string(), "author": {"accountId": account}, "body": body,
            "created": created, "updated": created,
        });
        self.comments
            .entry(key.to_owned())
            .or_default()
            .push(comment.clone());
        comment
    }
}

/// A stand-in's state that records the requests it answered (one line each).
trait RequestLog {
    fn requests(&mut self) -> &mut Vec<String>;
}

impl RequestLog for GithubState {
    fn requests(&mut self) -> &mut Vec<String> {
        &mut self.requests
    }
}

impl RequestLog for JiraState {
    fn requests(&mut self) -> &mut Vec<String> {
        &mut self.requests
    }
}

/// Locks a stand-in's state and records `line` as the request being answered.
fn log<S: RequestLog>(state: &Arc<Mutex<S>>, line: String) -> std::sync::MutexGuard<'_, S> {
    let mut s = state.lock().expect("lock");
    s.requests().push(line);
    s
}

/// A JSON error (or any JSON) answer with `status`.
fn status_json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// GitHub's 404 for a resource the stand-in does not hold.
fn not_found() -> Response {
    status_json(StatusCode::NOT_FOUND, json!({"message": "Not Found"}))
}

/// A PATCH: sets the `keys` that `body` carries (not null) on the resource found, and
/// answers it; a bare 404 when there is none.
fn patch_found(found: Option<&mut Value>, body: &Value, keys: &[&str]) -> Response {
    let Some(item) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    for key in keys {
        if !body[*key].is_null() {
            item[*key] = body[*key].clone();
        }
    }
    axum::Json(item.clone()).into_response()
}

/// The resource as JSON, or GitHub's 404.
fn json_or_404(found: Option<Value>) -> Response {
    found.map_or_else(not_found, |v| axum::Json(v).into_response())
}

impl FakeGithub {
    pub async fn start(permissions: &[(&str, &str)]) -> Self {
        let state = Arc::new(Mutex::new(GithubState {
            permissions: permissions
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            next_id: 1000,
            ..GithubState::default()
        }));
        let router = Router::new()
            .route(
                "/repos/{o}/{r}/collaborators/{u}/permission",
                get(permission),
            )
            .route(
                "/repos/{o}/{r}/issues/{n}/comments",
                get(list_comments).post(create_comment),
            )
            .route(
                "/repos/{o}/{r}/issues/comments/{id}",
                patch(edit_comment).get(get_comment),
            )
            .route("/repos/{o}/{r}/issues/comments/{id}/reactions", post(react))
            .route(
                "/repos/{o}/{r}/issues/{n}/labels/{l}",
                axum::routing::delete(ok_empty),
            )
            .route("/repos/{o}/{r}/pulls", get(list_pulls).post(create_pull))
            .route("/repos/{o}/{r}/pulls/{n}", get(get_pull).patch(update_pull))
            .route(
                "/repos/{o}/{r}/pulls/{n}/requested_reviewers",
                post(request_reviewers),
            )
            .route("/graphql", post(graphql))
            .route("/user", get(gh_user))
            .route("/app", get(gh_app))
            .route("/repos/{o}/{r}/installation", get(gh_installation))
            .route(
                "/app/installations/{id}/access_tokens",
                post(gh_access_token),
            )
            .route("/repos/{o}/{r}/issues/{n}", get(gh_issue))
            .route("/repos/{o}/{r}", get(gh_repo))
            .merge(on_pull_routes())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                gh_record_body,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                gh_rate_limit,
            ))
            .with_state(state.clone());
        let url = serve(router).await;
        Self { state, url }
    }

    pub fn comments_on(&self, number: u64) -> Vec<Value> {
        let s = self.state.lock().expect("lock");
        s.comments
            .iter()
            .filter(|c| c["issue"] == number)
            .cloned()
            .collect()
    }

    pub fn pulls(&self) -> Vec<Value> {
        self.state.lock().expect("lock").pulls.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// Adds a comment as a user would (e.g. `/approve`).
    pub fn add_comment(&self, number: u64, user: &str, body: &str) -> String {
        let mut s = self.state.lock().expect("lock");
        s.push_comment(number, json!(body), user)["id"].to_string()
    }

    /// Edits a comment as a person would (GitHub moves `updated_at`).
    pub fn edit_comment_by_hand(&self, id: &str, body: &str) {
        let id: u64 = id.parse().expect("a comment id");
        let mut s = self.state.lock().expect("lock");
        let comment = s
            .comments
            .iter_mut()
            .find(|c| c["id"] == id)
            .expect("comment to edit");
        comment["body"] = json!(body);
        comment["updated_at"] = json!("2026-11-21T23:59:59Z");
    }

    /// Deletes a comment (as its author or a maintainer would).
    pub fn delete_comment(&self, id: &str) {
        let id: u64 = id.parse().expect("a comment id");
        let mut s = self.state.lock().expect("lock");
        s.comments.retain(|c| c["id"] != id);
    }

    /// Registers an issue for `GET /repos/{o}/{r}/issues/{n}`.
    pub fn set_issue(&self, number: u64, title: &str, body: &str) {
        let mut s = self.state.lock().expect("lock");
        s.issues.insert(
            number,
            json!({"number": number, "title": title, "body": body, "state": "open",
                   "labels": [], "user": {"login": "dev1"}}),
        );
    }

    /// Registers an issue unless one is registered already (what `World::task` describes).
    pub fn issue_if_unknown(&self, number: u64, title: &str, body: &str) {
        if !self
            .state
            .lock()
            .expect("lock")
            .issues
            .contains_key(&number)
        {
            self.set_issue(number, title, body);
        }
    }

    /// Answers `method` (`*`: any) requests whose path ends with `path_suffix` with a rate
    /// limit for the next `window`.
    pub fn rate_limit(
        &self,
        method: &str,
        path_suffix: &str,
        window: std::time::Duration,
        style: LimitStyle,
    ) {
        self.state
            .lock()
            .expect("lock")
            .rate_limits
            .push(RateLimit {
                method: method.to_owned(),
                path_suffix: path_suffix.to_owned(),
                until: std::time::Instant::now() + window,
                style,
            });
    }

    /// Requests answered with a rate limit so far.
    pub fn rate_limited(&self) -> u32 {
        self.state.lock().expect("lock").rate_limited
    }

    /// The bodies of App installation token requests.
    pub fn token_requests(&self) -> Vec<Value> {
        self.state.lock().expect("lock").token_requests.clone()
    }
}

async fn gh_user(State(state): Gh) -> Response {
    let s = log(&state, "GET user".into());
    let login = if s.user_login.is_empty() {
        "fleet-agent[bot]".to_owned()
    } else {
        s.user_login.clone()
    };
    axum::Json(json!({"login": login, "id": 4242, "type": "Bot"})).into_response()
}

async fn gh_app(State(state): Gh) -> Response {
    let _s = log(&state, "GET app".into());
    axum::Json(json!({"id": 12345, "slug": "fleet-agent", "name": "Fleet Agent"})).into_response()
}

async fn gh_installation(State(state): Gh, Path((o, r)): Path<(String, String)>) -> Response {
    let _s = log(&state, format!("GET installation {o}/{r}"));
    axum::Json(json!({"id": 77, "account": {"login": o}})).into_response()
}

async fn gh_access_token(
    State(state): Gh,
    Path(id): Path<String>,
    body: Option<axum::Json<Value>>,
) -> Response {
    let mut s = log(&state, format!("POST access_tokens {id}"));
    s.token_requests
        .push(body.map(|axum::Json(b)| b).unwrap_or(Value::Null));
    status_json(
        StatusCode::CREATED,
        json!({"token": "ghs_INSTALLATION_never_logged_77", "expires_at": "2099-01-01T00:00:00Z"}),
    )
}

async fn gh_issue(State(state): Gh, Path((_o, _r, n)): Path<(String, String, u64)>) -> Response {
    let s = log(&state, format!("GET issue {n}"));
    json_or_404(s.issues.get(&n).cloned())
}

async fn permission(
    State(state): Gh,
    Path((_o, _r, user)): Path<(String, String, String)>,
) -> Response {
    let s = log(&state, format!("GET permission {user}"));
    match s.permissions.get(&user) {
        Some(p) => axum::Json(json!({"permission": p, "role_name": p, "user": {"login": user}}))
            .into_response(),
        None => not_found(),
    }
}

async fn list_comments(
    State(state): Gh,
    Path((_o, _r, n)): Path<(String, String, u64)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = log(&state, format!("GET comments {n}"));
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let all: Vec<Value> = s
        .comments
        .iter()
        .filter(|c| c["issue"] == n)
        .cloned()
        .collect();
    let slice: Vec<Value> = all.into_iter().skip((page - 1) * 100).take(100).collect();
    axum::Json(Value::Array(slice)).into_response()
}

async fn create_comment(
    State(state): Gh,
    Path((_o, _r, n)): Path<(String, String, u64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("POST comment {n}"));
    let comment = s.push_comment(n, body["body"].clone(), "fleet-agent[bot]");
    status_json(StatusCode::CREATED, comment)
}

async fn edit_comment(
    State(state): Gh,
    Path((_o, _r, id)): Path<(String, String, u64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("PATCH comment {id}"));
    let found = s.comments.iter_mut().find(|c| c["id"] == id);
    patch_found(found, &body, &["body"])
}

async fn get_comment(
    State(state): Gh,
    Path((_o, _r, id)): Path<(String, String, u64)>,
) -> Response {
    let s = log(&state, format!("GET comment {id}"));
    json_or_404(s.comments.iter().find(|c| c["id"] == id).cloned())
}

/// Records `POST reaction <comment id> <content>`.
async fn react(
    State(state): Gh,
    Path((_o, _r, id)): Path<(String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let content = body["content"].as_str().unwrap_or("").to_owned();
    drop(log(&state, format!("POST reaction {id} {content}")));
    (StatusCode::CREATED, axum::Json(json!({"content": content}))).into_response()
}

async fn ok_created() -> Response {
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}

async fn ok_empty() -> Response {
    axum::Json(json!([])).into_response()
}

async fn list_pulls(State(state): Gh, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = log(&state, "GET pulls".into());
    let head = q.get("head").cloned().unwrap_or_default();
    let branch = head.split(':').nth(1).unwrap_or(&head).to_owned();
    let open: Vec<Value> = s
        .pulls
        .iter()
        .filter(|p| {
            p["state"] == "open" && (branch.is_empty() || p["head"]["ref"] == branch.as_str())
        })
        .cloned()
        .collect();
    axum::Json(Value::Array(open)).into_response()
}

async fn create_pull(
    State(state): Gh,
    Path((o, r)): Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, "POST pull".into());
    let head = body["head"].as_str().unwrap_or("").to_owned();
    if s.pulls
        .iter()
        .any(|p| p["state"] == "open" && p["head"]["ref"] == head.as_str())
    {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]}))).into_response();
    }
    let number = s.pulls.len() as u64 + 100;
    let pull = json!({
        "number": number, "state": "open", "title": body["title"], "body": body["body"],
        "draft": body["draft"].as_bool().unwrap_or(false), "node_id": format!("PR_{number}"),
        "html_url": format!("https://github.com/{o}/{r}/pull/{number}"),
        "user": {"login": "fleet-agent[bot]"},
        "head": {"ref": head}, "base": {"ref": body["base"]},
    });
    s.pulls.push(pull.clone());
    (StatusCode::CREATED, axum::Json(pull)).into_response()
}

async fn get_pull(State(state): Gh, Path((_o, _r, n)): Path<(String, String, u64)>) -> Response {
    let s = log(&state, format!("GET pull {n}"));
    json_or_404(s.pulls.iter().find(|p| p["number"] == n).cloned())
}

async fn update_pull(
    State(state): Gh,
    Path((_o, _r, n)): Path<(String, String, u64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("PATCH pull {n}"));
    let found = s.pulls.iter_mut().find(|p| p["number"] == n);
    patch_found(found, &body, &["title", "body"])
}

async fn request_reviewers(
    State(state): Gh,
    Path((_o, _r, n)): Path<(String, String, u64)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("POST reviewers {n}"));
    let reviewers = body["reviewers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    s.review_requests.push((n, reviewers));
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}

async fn graphql(State(state): Gh, axum::Json(body): axum::Json<Value>) -> Response {
    let mut s = log(&state, "POST graphql".into());
    let id = body["variables"]["id"].as_str().unwrap_or("").to_owned();
    let to_draft = body["query"]
        .as_str()
        .is_some_and(|q| q.contains("convertPullRequestToDraft"));
    if let Some(p) = s.pulls.iter_mut().find(|p| p["node_id"] == id.as_str()) {
        p["draft"] = json!(to_draft);
    }
    let mutation = if to_draft {
        "convertPullRequestToDraft"
    } else {
        s.ready_for_review.push(id);
        "markPullRequestReadyForReview"
    };
    axum::Json(json!({"data": {mutation: {"pullRequest": {"isDraft": to_draft}}}})).into_response()
}

/// One scripted LLM answer.
#[derive(Debug, Clone)]
pub enum Answer {
    Text(String),
    Status(u16, Option<u64>),
}

#[derive(Debug, Clone)]
pub struct LlmCall {
    pub path: String,
    pub task: String,
    pub phase: String,
    pub auth: String,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct LlmState {
    pub script: HashMap<String, VecDeque<Answer>>,
    pub calls: Vec<LlmCall>,
    /// How long each answer takes (models are slow; the fleet test needs tasks in flight).
    pub delay: std::time::Duration,
    /// While set, requests wait before they are answered (and recorded); `held` counts them.
    pub hold: bool,
    pub held: u32,
}

#[derive(Clone, Default)]
pub struct FakeLlm {
    pub state: Arc<Mutex<LlmState>>,
    pub url: String,
}

impl FakeLlm {
    /// `script`: per phase (`edit`, `repair`, `plan`), the answers in order; the last one
    /// repeats.
    pub async fn start(script: &[(&str, Vec<Answer>)]) -> Self {
        let state = Arc::new(Mutex::new(LlmState {
            script: script
                .iter()
                .map(|(p, a)| (p.to_string(), a.iter().cloned().collect()))
                .collect(),
            calls: Vec::new(),
            delay: std::time::Duration::ZERO,
            ..LlmState::default()
        }));
        let router = Router::new()
            .route("/v1/messages", post(llm_answer))
            .route("/v1/chat/completions", post(llm_answer))
            .with_state(state.clone());
        let url = serve(router).await;
        Self { state, url }
    }

    pub fn calls(&self) -> Vec<LlmCall> {
        self.state.lock().expect("lock").calls.clone()
    }

    pub fn phases(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.phase).collect()
    }
}

async fn llm_answer(
    State(state): State<Arc<Mutex<LlmState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let phase = header("x-agent-phase");
    let mut counted = false;
    loop {
        {
            let mut s = state.lock().expect("lock");
            if !s.hold {
                break;
            }
            if !counted {
                s.held += 1;
                counted = true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut s = state.lock().expect("lock");
    s.calls.push(LlmCall {
        path: uri.path().to_owned(),
        task: header("x-agent-task"),
        phase: phase.clone(),
        auth: format!("{}{}", header("x-api-key"), header("authorization")),
        body: body.clone(),
    });
    let answer = match s.script.get_mut(&phase) {
        Some(queue) if queue.len() > 1 => queue.pop_front(),
        Some(queue) => queue.front().cloned(),
        None => None,
    };
    match answer {
        Some(Answer::Text(text)) => {
            if uri.path() == "/v1/messages" {
                axum::Json(json!({
                    "id": "msg_1", "type": "message", "role": "assistant",
                    "content": [{"type": "text", "text": text}],
                    "usage": {"input_tokens": 1200, "output_tokens": 80}
                }))
                .into_response()
            } else {
                axum::Json(json!({
                    "choices": [{"message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1200, "completion_tokens": 80}
                }))
                .into_response()
            }
        }
        Some(Answer::Status(code, retry_after)) => {
            let mut response = (
                StatusCode::from_u16(code).expect("status"),
                axum::Json(json!({"error": {"message": "scripted"}})),
            )
                .into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().expect("header"));
            }
            response
        }
        None => status_json(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": format!("no script for phase {phase}")}}),
        ),
    }
}

/// `git` in `cwd` as a test's own user (`Dev`; a `-c` in `args` overrides it), file URLs
/// allowed; fails the test when git does. Returns stdout.
pub fn git(cwd: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.com",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `git clone --bare <work> <bare>`, run in `cwd`.
pub fn clone_bare(cwd: &std::path::Path, work: &std::path::Path, bare: &std::path::Path) {
    git(
        cwd,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().expect("utf8"),
            bare.to_str().expect("utf8"),
        ],
    );
}

/// Bare repositories under `<root>/github/<owner>/<name>.git`, reached by the worker through
/// `url.<root>/github/.insteadOf=https://github.com/` (git configuration by environment).
pub struct LocalGithubRepos {
    pub root: PathBuf,
}

impl LocalGithubRepos {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Creates `owner/name` with `files` committed on `main`.
    pub fn create(&self, slug: &str, files: &[(&str, &str)]) -> PathBuf {
        let work = self.root.join("seed").join(slug);
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "main"]);
        for (path, content) in files {
            let full = work.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, content).expect("write");
        }
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "initial"]);
        let bare = self.root.join("github").join(format!("{slug}.git"));
        std::fs::create_dir_all(bare.parent().expect("parent")).expect("mkdir");
        clone_bare(&self.root, &work, &bare);
        bare
    }

    /// Environment entries that make the worker's git see these repositories.
    pub fn git_env(&self) -> Vec<(String, String)> {
        vec![
            ("GIT_CONFIG_COUNT".into(), "1".into()),
            (
                "GIT_CONFIG_KEY_0".into(),
                format!("url.file://{}/github/.insteadOf", self.root.display()),
            ),
            ("GIT_CONFIG_VALUE_0".into(), "https://github.com/".into()),
        ]
    }

    /// `git` in a bare repository.
    pub fn git_in(&self, slug: &str, args: &[&str]) -> String {
        git(&self.root.join("github").join(format!("{slug}.git")), args)
    }

    /// A file's content on a branch, or None.
    pub fn file_on(&self, slug: &str, branch: &str, path: &str) -> Option<String> {
        let bare = self.root.join("github").join(format!("{slug}.git"));
        let output = Command::new("git")
            .args(["show", &format!("{branch}:{path}")])
            .current_dir(&bare)
            .output()
            .expect("git");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A Jira Cloud stand-in (REST v3 comments with ADF bodies, issue, permission check).
#[derive(Debug, Clone, Default)]
pub struct JiraState {
    /// issue key -> comments (`id`, `author.accountId`, `body` ADF, `created`)
    pub comments: HashMap<String, Vec<Value>>,
    /// account ids with EDIT_ISSUES
    pub editors: Vec<String>,
    /// issue key -> `fields` (summary, description ADF, labels) for `GET /issue/{key}`
    pub issues: HashMap<String, Value>,
    pub requests: Vec<String>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct FakeJira {
    pub state: Arc<Mutex<JiraState>>,
    pub url: String,
}

pub const JIRA_AGENT: &str = "712020:2f3e0c4a-agent";

impl FakeJira {
    pub async fn start(editors: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(JiraState {
            editors: editors.iter().map(|s| s.to_string()).collect(),
            next_id: 10600,
            ..JiraState::default()
        }));
        let router = Router::new()
            .route(
                "/rest/api/3/issue/{key}/comment",
                get(jira_comments).post(jira_add_comment),
            )
            .route(
                "/rest/api/3/issue/{key}/comment/{id}",
                axum::routing::put(jira_edit_comment),
            )
            .route("/rest/api/3/issue/{key}", get(jira_issue))
            .route("/rest/api/3/permissions/check", post(jira_permissions))
            .route("/rest/api/3/myself", get(jira_myself))
            .route(
                "/rest/api/3/user/permission/search",
                get(jira_permission_search),
            )
            .with_state(state.clone());
        let url = serve(router).await;
        Self { state, url }
    }

    /// Comments of an issue, their ADF flattened to text.
    pub fn texts(&self, key: &str) -> Vec<String> {
        let s = self.state.lock().expect("lock");
        s.comments
            .get(key)
            .into_iter()
            .flatten()
            .map(|c| shared::adf::body_text(&c["body"]))
            .collect()
    }

    /// A human comment in the shape of the fixtures (ADF body).
    pub fn add_comment(&self, key: &str, account: &str, text: &str) -> String {
        let mut s = self.state.lock().expect("lock");
        let comment = s.push_comment(key, account, shared::adf::document(text, None));
        comment["id"].as_str().expect("id").to_owned()
    }

    /// Registers an issue's fields for `GET /rest/api/3/issue/{key}`.
    pub fn set_issue(&self, key: &str, summary: &str, description: &str, labels: &[&str]) {
        let mut s = self.state.lock().expect("lock");
        s.issues.insert(
            key.to_owned(),
            json!({"summary": summary, "description": shared::adf::document(description, None),
                   "labels": labels}),
        );
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("lock").requests.clone()
    }
}

async fn jira_myself(State(state): State<Arc<Mutex<JiraState>>>) -> Response {
    let _s = log(&state, "GET myself".into());
    axum::Json(json!({"accountId": JIRA_AGENT, "accountType": "atlassian", "active": true}))
        .into_response()
}

/// `GET /user/permission/search`: the users (matching `accountId`) who hold every permission
/// in `permissions` on `issueKey` - callable without "Administer Jira".
async fn jira_permission_search(
    State(state): State<Arc<Mutex<JiraState>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().expect("lock");
    let account = q.get("accountId").cloned().unwrap_or_default();
    s.requests.push(format!(
        "GET permission/search {account} {} {}",
        q.get("permissions").cloned().unwrap_or_default(),
        q.get("issueKey").cloned().unwrap_or_default()
    ));
    if q.get("permissions").is_none_or(|p| p.is_empty()) {
        return status_json(
            StatusCode::BAD_REQUEST,
            json!({"errorMessages": ["permissions is required"]}),
        );
    }
    let users: Vec<Value> = s
        .editors
        .iter()
        .filter(|e| **e == account)
        .map(|e| json!({"accountId": e, "active": true}))
        .collect();
    axum::Json(Value::Array(users)).into_response()
}

async fn jira_comments(
    State(state): State<Arc<Mutex<JiraState>>>,
    Path(key): Path<String>,
) -> Response {
    let s = log(&state, format!("GET comments {key}"));
    let comments = s.comments.get(&key).cloned().unwrap_or_default();
    axum::Json(
        json!({"startAt": 0, "maxResults": 100, "total": comments.len(), "comments": comments}),
    )
    .into_response()
}

async fn jira_add_comment(
    State(state): State<Arc<Mutex<JiraState>>>,
    Path(key): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("POST comment {key}"));
    if body["body"]["type"] != "doc" {
        return status_json(
            StatusCode::BAD_REQUEST,
            json!({"errorMessages": ["v3 takes ADF bodies only"]}),
        );
    }
    let comment = s.push_comment(&key, JIRA_AGENT, body["body"].clone());
    status_json(StatusCode::CREATED, comment)
}

async fn jira_edit_comment(
    State(state): State<Arc<Mutex<JiraState>>>,
    Path((key, id)): Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("PUT comment {key} {id}"));
    let Some(comment) = s
        .comments
        .get_mut(&key)
        .and_then(|list| list.iter_mut().find(|c| c["id"] == id.as_str()))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    comment["body"] = body["body"].clone();
    axum::Json(comment.clone()).into_response()
}

async fn jira_issue(
    State(state): State<Arc<Mutex<JiraState>>>,
    Path(key): Path<String>,
) -> Response {
    let id = 10000
        + key
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    let s = log(&state, format!("GET issue {key}"));
    let fields = s
        .issues
        .get(&key)
        .cloned()
        .unwrap_or_else(|| json!({"summary": "x"}));
    axum::Json(json!({"id": id.to_string(), "key": key, "fields": fields})).into_response()
}

/// `POST /permissions/check` for another account needs "Administer Jira", which the agent's
/// account does not have: like Jira Cloud, it is refused.
async fn jira_permissions(
    State(state): State<Arc<Mutex<JiraState>>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let s = log(&state, "POST permissions/check".into());
    if !body["accountId"].is_null() {
        return status_json(
            StatusCode::FORBIDDEN,
            json!({"errorMessages": ["You must have the Administer Jira global permission to check other users' permissions."]}),
        );
    }
    let account = body["accountId"].as_str().unwrap_or("");
    let issues = body["projectPermissions"][0]["issues"].clone();
    let granted = if s.editors.iter().any(|e| e == account) {
        issues
    } else {
        json!([])
    };
    axum::Json(json!({"projectPermissions": [{"permission": "EDIT_ISSUES", "issues": granted, "projects": []}]})).into_response()
}

// ---------------------------------------------------------------------------------------
// The agent's pull request: reviews and their threads, its commits, check runs (followup,
// fixci).

/// What the follow-up endpoints serve and record.
#[derive(Debug, Clone, Default)]
pub struct OnPullState {
    /// `(pull, review id)` -> the review's line comments as the API shows them.
    pub review_comments: HashMap<(u64, String), Vec<Value>>,
    /// Replies posted in review threads: `(pull, comment id, body)`.
    pub replies: Vec<(u64, String, String)>,
    /// Commit sha -> its check runs.
    pub check_runs: HashMap<String, Vec<Value>>,
    /// Check run id -> its annotations.
    pub annotations: HashMap<String, Vec<Value>>,
    /// The bare repository and base branch a pull's commits are read from (its head ref's
    /// commits the base lacks, oldest first, as GitHub lists them).
    pub commits_from: Option<(PathBuf, String)>,
}

fn on_pull_routes() -> Router<Arc<Mutex<GithubState>>> {
    Router::new()
        .route(
            "/repos/{o}/{r}/pulls/{n}/reviews/{id}/comments",
            get(review_comments),
        )
        .route(
            "/repos/{o}/{r}/pulls/{n}/comments/{id}/replies",
            post(reply_in_thread),
        )
        .route("/repos/{o}/{r}/pulls/{n}/commits", get(pull_commits))
        .route("/repos/{o}/{r}/commits/{sha}/check-runs", get(check_runs))
        .route(
            "/repos/{o}/{r}/check-runs/{id}/annotations",
            get(check_annotations),
        )
}

impl FakeGithub {
    /// Opens pull request `number` with head `branch` (at `sha`) in `head_repo`, based on
    /// `main` of `base_repo`, as the API shows it.
    pub fn add_pull(&self, number: u64, branch: &str, sha: &str, head_repo: &str, base_repo: &str) {
        let pull = json!({
            "number": number, "state": "open", "title": "Agent PR", "body": "",
            "draft": false, "node_id": format!("PR_{number}"),
            "html_url": format!("https://github.com/{base_repo}/pull/{number}"),
            "user": {"login": "fleet-agent[bot]"},
            "head": {"ref": branch, "sha": sha, "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "repo": {"full_name": base_repo}},
        });
        self.state.lock().expect("lock").pulls.push(pull);
    }

    /// Pull request `number` as opened by `login` (not the agent).
    pub fn set_pull_author(&self, number: u64, login: &str) {
        let mut s = self.state.lock().expect("lock");
        if let Some(p) = s.pulls.iter_mut().find(|p| p["number"] == number) {
            p["user"]["login"] = json!(login);
        }
    }

    /// Moves pull request `number`'s head commit (a push to its branch).
    pub fn set_pull_head(&self, number: u64, sha: &str) {
        let mut s = self.state.lock().expect("lock");
        if let Some(p) = s.pulls.iter_mut().find(|p| p["number"] == number) {
            p["head"]["sha"] = json!(sha);
        }
    }

    /// Review `review_id` on `pull` with line comments `(path, line, diff hunk, body, author)`;
    /// returns their ids.
    pub fn add_review(
        &self,
        pull: u64,
        review_id: &str,
        comments: &[(&str, u64, &str, &str, &str)],
    ) -> Vec<String> {
        let mut s = self.state.lock().expect("lock");
        let mut ids = Vec::new();
        let mut items = Vec::new();
        for (path, line, hunk, body, user) in comments {
            s.next_id += 1;
            let id = s.next_id;
            ids.push(id.to_string());
            items.push(json!({
                "id": id, "pull_request_review_id": review_id.parse::<u64>().unwrap_or(0),
                "path": path, "line": line, "original_line": line, "diff_hunk": hunk,
                "body": body, "user": {"login": user},
            }));
        }
        s.on_pull
            .review_comments
            .insert((pull, review_id.to_owned()), items);
        ids
    }

    /// Makes every line comment of review `review_id` an answer in an existing thread (as
    /// GitHub files a reply: a review of its own whose comment has `in_reply_to_id`).
    pub fn make_replies(&self, pull: u64, review_id: &str, in_reply_to: u64) {
        let mut s = self.state.lock().expect("lock");
        if let Some(items) = s
            .on_pull
            .review_comments
            .get_mut(&(pull, review_id.to_owned()))
        {
            for item in items {
                item["in_reply_to_id"] = json!(in_reply_to);
            }
        }
    }

    /// The replies posted in review threads: `(pull, comment id, body)`.
    pub fn replies(&self) -> Vec<(u64, String, String)> {
        self.state.lock().expect("lock").on_pull.replies.clone()
    }

    /// The check runs of commit `sha`, and each run's annotations (`id` -> list).
    pub fn set_check_runs(&self, sha: &str, runs: Vec<Value>, annotations: &[(&str, Vec<Value>)]) {
        let mut s = self.state.lock().expect("lock");
        s.on_pull.check_runs.insert(sha.to_owned(), runs);
        for (id, list) in annotations {
            s.on_pull.annotations.insert((*id).to_owned(), list.clone());
        }
    }

    /// Serves `GET .../pulls/{n}/commits` from the bare repository `bare`: the commits of
    /// the pull's head branch that `base` lacks.
    pub fn commits_from(&self, bare: PathBuf, base: &str) {
        self.state.lock().expect("lock").on_pull.commits_from = Some((bare, base.to_owned()));
    }
}

async fn review_comments(
    State(state): Gh,
    Path((_o, _r, n, id)): Path<(String, String, u64, String)>,
) -> Response {
    let s = log(&state, format!("GET review comments {n} {id}"));
    match s.on_pull.review_comments.get(&(n, id)) {
        Some(items) => axum::Json(Value::Array(items.clone())).into_response(),
        None => not_found(),
    }
}

/// Records `POST reply <pull> <comment id>` and the reply.
async fn reply_in_thread(
    State(state): Gh,
    Path((_o, _r, n, id)): Path<(String, String, u64, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut s = log(&state, format!("POST reply {n} {id}"));
    let text = body["body"].as_str().unwrap_or("").to_owned();
    s.on_pull.replies.push((n, id.clone(), text.clone()));
    status_json(
        StatusCode::CREATED,
        json!({"id": 1, "in_reply_to_id": id, "body": text}),
    )
}

async fn pull_commits(
    State(state): Gh,
    Path((_o, _r, n)): Path<(String, String, u64)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = log(&state, format!("GET pull commits {n}"));
    let Some(pull) = s.pulls.iter().find(|p| p["number"] == n) else {
        return not_found();
    };
    let branch = pull["head"]["ref"].as_str().unwrap_or("").to_owned();
    let Some((bare, base)) = s.on_pull.commits_from.clone() else {
        return axum::Json(json!([])).into_response();
    };
    drop(s);
    if q.get("page").is_some_and(|p| p != "1") {
        return axum::Json(json!([])).into_response();
    }
    let range = format!("refs/heads/{base}..refs/heads/{branch}");
    let out = Command::new("git")
        .args(["log", "--reverse", "--format=%H%x1f%ce%x1f%B%x1e", &range])
        .current_dir(&bare)
        .output()
        .expect("git");
    let commits: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .split('\x1e')
        .filter_map(|entry| {
            let (sha, rest) = entry.trim_start().split_once('\x1f')?;
            let (email, message) = rest.split_once('\x1f')?;
            Some(json!({"sha": sha, "commit": {"message": message.trim_end(),
                                               "committer": {"email": email}}}))
        })
        .collect();
    axum::Json(Value::Array(commits)).into_response()
}

async fn check_runs(
    State(state): Gh,
    Path((_o, _r, sha)): Path<(String, String, String)>,
) -> Response {
    let s = log(&state, format!("GET check runs {sha}"));
    let runs = s.on_pull.check_runs.get(&sha).cloned().unwrap_or_default();
    axum::Json(json!({"total_count": runs.len(), "check_runs": runs})).into_response()
}

async fn check_annotations(
    State(state): Gh,
    Path((_o, _r, id)): Path<(String, String, String)>,
) -> Response {
    let s = log(&state, format!("GET annotations {id}"));
    let list = s.on_pull.annotations.get(&id).cloned().unwrap_or_default();
    axum::Json(Value::Array(list)).into_response()
}
