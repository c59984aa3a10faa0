//! The console at `/console`: the fleet at a glance for the people who run it, as
//! server-rendered HTML (maud templates in `pages.rs`) that refreshes itself
//! (`<meta http-equiv="refresh">`) with no JavaScript at all.
//!
//! The same tokens as the API (`API_TOKENS`): `?token=<token>` on every request (links
//! carry it on), or the login form, which sets an `HttpOnly`, `SameSite=Strict` cookie.
//! Writes (a dead letter's replay) are POST forms and need an operator's token; with the
//! cookie, `SameSite=Strict` keeps other sites from posting them.

mod pages;

use crate::api::tokens::{Caller, Role};
use crate::api::{ApiError, ApiState, caller_of};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use fleet_ledger::query::TaskFilter;

/// The login form's one field.
struct Login {
    token: String,
}

/// The cookie the login form sets.
const COOKIE: &str = "agent_fleet_token";

/// The console's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/console", get(overview))
        .route("/console/login", post(login))
        .route("/console/tasks/{task_id}", get(timeline))
        .route("/console/dead-letters", get(dead_letters))
        .route("/console/dead-letters/{message_id}/replay", post(replay))
        .with_state(state)
}

/// Who looks, and how their links carry the token on.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub caller: Caller,
    /// `?token=...` when the token came in the query (it is repeated in every link).
    pub query: String,
}

impl Visitor {
    /// `path` with the visitor's token query.
    pub fn link(&self, path: &str) -> String {
        format!("{path}{}", self.query)
    }
}

/// A page, or the login form when the visitor has no valid token.
enum Visit {
    Known(Visitor),
    Login(Option<String>),
}

impl FromRequestParts<ApiState> for Visit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        if let Ok(caller) = caller_of(parts, &state.tokens) {
            let from_query = !parts.headers.contains_key(header::AUTHORIZATION)
                && parts.uri.query().is_some_and(|q| q.contains("token="));
            let query = match (from_query, query_token(parts)) {
                (true, Some(token)) => format!("?token={}", form_encode(&token)),
                _ => String::new(),
            };
            return Ok(Visit::Known(Visitor { caller, query }));
        }
        let Some(token) = cookie_token(&parts.headers) else {
            return Ok(Visit::Login(None));
        };
        Ok(match state.tokens.caller(&token) {
            Some(caller) => Visit::Known(Visitor {
                caller,
                query: String::new(),
            }),
            None => Visit::Login(Some("That token is not valid.".into())),
        })
    }
}

fn query_token(parts: &Parts) -> Option<String> {
    parts.uri.query()?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("token=")?;
        Some(form_decode(value))
    })
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

/// Percent-encodes everything but unreserved characters (a token in a link).
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, other) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    let headers = response.headers_mut();
    // Nothing of the console is cached, embedded elsewhere or sniffed.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        // Links out (a pull request) carry no console URL, whose query may hold a token.
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn failed(error: &ApiError) -> Response {
    page(error.status(), pages::error(&format!("{error:?}")))
}

/// `GET /console`: running, queued and recent tasks.
async fn overview(State(state): State<ApiState>, visit: Visit) -> Response {
    let visitor = match visit {
        Visit::Known(visitor) => visitor,
        Visit::Login(note) => return page(StatusCode::OK, pages::login(note.as_deref())),
    };
    let store = match state.store() {
        Ok(store) => store,
        Err(error) => return failed(&error),
    };
    let of = |states: &'static [&'static str]| async move {
        let mut all = Vec::new();
        for state in states {
            let filter = TaskFilter {
                state: Some((*state).to_owned()),
                limit: 50,
                ..TaskFilter::default()
            };
            all.extend(store.tasks(&filter).await?);
        }
        all.sort_by_key(|t| std::cmp::Reverse(t.updated_at));
        Ok::<_, fleet_ledger::StoreError>(all)
    };
    let lists = async {
        Ok::<_, fleet_ledger::StoreError>((
            of(&["running", "waiting"]).await?,
            of(&["queued"]).await?,
            of(&["done", "failed", "cancelled", "dead"]).await?,
        ))
    };
    match lists.await {
        Ok((running, queued, recent)) => page(
            StatusCode::OK,
            pages::overview(&visitor, &running, &queued, &recent),
        ),
        Err(error) => failed(&error.into()),
    }
}

/// `GET /console/tasks/{id}`: one task and its timeline.
async fn timeline(
    State(state): State<ApiState>,
    visit: Visit,
    Path(task_id): Path<String>,
) -> Response {
    let Visit::Known(visitor) = visit else {
        return page(StatusCode::OK, pages::login(None));
    };
    let store = match state.store() {
        Ok(store) => store,
        Err(error) => return failed(&error),
    };
    let found = async {
        let task = store.task(&task_id).await?;
        let events = store.events(&task_id).await?;
        Ok::<_, fleet_ledger::StoreError>((task, events))
    };
    match found.await {
        Ok((Some(task), events)) => page(StatusCode::OK, pages::timeline(&visitor, &task, &events)),
        Ok((None, _)) => failed(&ApiError::not_found("task", &task_id)),
        Err(error) => failed(&error.into()),
    }
}

/// `GET /console/dead-letters`.
async fn dead_letters(State(state): State<ApiState>, visit: Visit) -> Response {
    let Visit::Known(visitor) = visit else {
        return page(StatusCode::OK, pages::login(None));
    };
    match crate::api::dead_letters::open_letters(&state).await {
        Ok(letters) => page(StatusCode::OK, pages::dead_letters(&visitor, &letters)),
        Err(error) => failed(&error),
    }
}

/// Whether a POST comes from the console's own pages: a browser says where a request
/// comes from (`Sec-Fetch-Site`, `Origin`); one from another site (a sibling subdomain
/// counts as the same site for `SameSite`, not as the same origin) is refused. A client
/// that sends neither (curl with a token) is not a browser riding on a cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    // A browser's own word first (every current one sends it); `Origin` for older ones.
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (Some("null"), _) => false,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) == Some(host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn cross_site() -> Response {
    failed(&ApiError::new(
        StatusCode::FORBIDDEN,
        "the console only takes forms posted from its own pages",
    ))
}

/// `POST /console/dead-letters/{id}/replay` (the replay button), then back to the list.
async fn replay(
    State(state): State<ApiState>,
    headers: HeaderMap,
    visit: Visit,
    Path(message_id): Path<String>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let Visit::Known(visitor) = visit else {
        return page(StatusCode::UNAUTHORIZED, pages::login(None));
    };
    if visitor.caller.role < Role::Operator {
        return failed(&ApiError::new(
            StatusCode::FORBIDDEN,
            "a viewer's token cannot replay: an operator's can",
        ));
    }
    match crate::api::dead_letters::replay_letter(&state, &message_id, &visitor.caller).await {
        Ok(_) => Redirect::to(&visitor.link("/console/dead-letters")).into_response(),
        Err(error) => failed(&error),
    }
}

/// `POST /console/login` (a form: `token=...`): a valid token becomes the cookie.
async fn login(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let token = String::from_utf8_lossy(&body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("token=").map(form_decode))
        .unwrap_or_default();
    let form = Login { token };
    if state.tokens.caller(form.token.trim()).is_none() {
        return page(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That token is not valid.")),
        );
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200",
        form_encode(form.token.trim())
    );
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_survive_links_and_cookies() {
        for token in ["plain-token-0123456789", "a b&c=d%e/f", "ünïcode-token"] {
            assert_eq!(form_decode(&form_encode(token)), token);
        }
        assert_eq!(
            form_decode("%zz%4"),
            "%zz%4",
            "broken escapes stay as they are"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; agent_fleet_token=xyz"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("xyz"));
    }
}
