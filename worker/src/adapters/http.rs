//! Sending a REST request to GitHub or Jira and classifying the answer, so that an error
//! says what a caller can do: rate limits, 5xx and network trouble are transient (the task
//! is requeued, or retried later for a long rate limit); anything else is permanent.
//! Answers are read into serde types: a missing required field is an [`ApiError::Invalid`]
//! that names it, never a silent default.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{service} is unavailable or rate-limited: {detail}")]
    Transient {
        service: &'static str,
        detail: String,
    },
    #[error("{service} answered {status}: {detail}")]
    Status {
        service: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{service} request failed: {detail}")]
    Invalid {
        service: &'static str,
        detail: String,
    },
    /// A rate limit (primary, secondary or 429) that lasts `retry_after` more: longer than
    /// this attempt may wait in-process, so the task is retried later (a delayed retry).
    #[error("{service} rate-limited the agent for {} s more: {detail}", retry_after.as_secs())]
    RateLimited {
        service: &'static str,
        retry_after: Duration,
        detail: String,
    },
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Transient { .. } | ApiError::RateLimited { .. }
        )
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a 404 means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotFound {
    /// An error like any other refusal.
    Refused,
    /// The thing is not there: `Ok(None)`.
    Absent,
}

/// Sends a request and classifies the answer (an empty 2xx body is `Value::Null`). A rate
/// limit is waited out in-process when the task's wait budget allows (then the request is
/// sent again), else it is an [`ApiError::RateLimited`] (see `runtime::wait`).
pub async fn send_json(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Value, ApiError> {
    Ok(send(service, request, NotFound::Refused)
        .await?
        .unwrap_or(Value::Null))
}

/// [`send_json`], where a 404 is `Ok(None)` (a comment someone deleted, a missing PR).
pub async fn send_json_if_found(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Option<Value>, ApiError> {
    send(service, request, NotFound::Absent).await
}

/// [`send_json`], read as `T`.
pub async fn fetch<T: DeserializeOwned>(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<T, ApiError> {
    decode(service, send_json(service, request).await?)
}

/// [`send_json_if_found`], read as `T`.
pub async fn fetch_if_found<T: DeserializeOwned>(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Option<T>, ApiError> {
    send_json_if_found(service, request)
        .await?
        .map(|value| decode(service, value))
        .transpose()
}

/// Reads an answer as `T`; serde's message names the missing or mistyped field.
pub fn decode<T: DeserializeOwned>(service: &'static str, value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Invalid {
        service,
        detail: format!("unexpected answer: {e}"),
    })
}

/// An id sent as a number (GitHub's REST ids) or a string (Jira's): kept as a string, as
/// the task message carries comment ids.
pub(crate) fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Id::Number(n) => n.to_string(),
        Id::Text(s) => s,
    })
}

async fn send(
    service: &'static str,
    request: reqwest::RequestBuilder,
    not_found: NotFound,
) -> Result<Option<Value>, ApiError> {
    let mut request = request;
    loop {
        let again = request.try_clone();
        match send_once(service, request, not_found).await {
            Err(ApiError::RateLimited { retry_after, .. })
                if again.is_some() && crate::runtime::wait::wait_out(retry_after).await =>
            {
                request = again.expect("checked");
            }
            other => return other,
        }
    }
}

/// The HTTP client of a tracker: bounded requests, our user agent.
pub fn client(service: &'static str) -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent("agent-fleet")
        .build()
        .map_err(|e| ApiError::Invalid {
            service,
            detail: e.to_string(),
        })
}

/// GitHub's advice when a secondary rate limit names no time: wait at least a minute.
const RATE_LIMIT_DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// How long a rate-limited answer asks the client to stay away, or `None` when the answer
/// is not a rate limit: 429, or 403 with `retry-after`, `x-ratelimit-remaining: 0` or
/// GitHub's "secondary rate limit" message. `retry-after` (seconds or an HTTP date) wins,
/// then `x-ratelimit-reset` (epoch seconds, plus a second of margin), else a minute.
fn rate_limit_wait(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    message: &str,
    now: std::time::SystemTime,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let said_so = message.to_ascii_lowercase().contains("rate limit");
    let retry_after = header("retry-after").and_then(|v| {
        v.parse::<u64>().map(Duration::from_secs).ok().or_else(|| {
            httpdate::parse_http_date(v)
                .ok()
                .map(|at| at.duration_since(now).unwrap_or_default())
        })
    });
    if !(status == 429 || (status == 403 && (retry_after.is_some() || exhausted || said_so))) {
        return None;
    }
    let reset = header("x-ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|_| exhausted)
        .map(|epoch| {
            let at = std::time::UNIX_EPOCH + Duration::from_secs(epoch);
            at.duration_since(now).unwrap_or_default() + Duration::from_secs(1)
        });
    let wait = retry_after.or(reset).unwrap_or(RATE_LIMIT_DEFAULT_WAIT);
    // At least a second (no hot loop on a reset that just passed), at most a day.
    Some(wait.clamp(Duration::from_secs(1), Duration::from_secs(86_400)))
}

/// The largest answer read from GitHub or Jira: a page of 100 comments of GitHub's largest
/// size is under 7 MB. A larger body (a hostile or broken endpoint) is refused unread
/// rather than held in memory.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

enum Unread {
    TooLarge,
    Cut(reqwest::Error),
}

/// The body as text, read in chunks and refused once it passes `cap`.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<String, Unread> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Unread::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Unread::Cut)? {
        if body.len() + chunk.len() > cap {
            return Err(Unread::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn send_once(
    service: &'static str,
    request: reqwest::RequestBuilder,
    not_found: NotFound,
) -> Result<Option<Value>, ApiError> {
    let response = request.send().await.map_err(|e| ApiError::Transient {
        service,
        detail: without_url(&e),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    // A body cut short on a 2xx is not an empty success (an empty list of comments would
    // post a second status comment, an empty permission would refuse): retry the task.
    let text = match read_capped(response, MAX_ANSWER_BYTES).await {
        Ok(text) => text,
        Err(Unread::TooLarge) => {
            return Err(ApiError::Invalid {
                service,
                detail: format!(
                    "{status} with a body larger than {MAX_ANSWER_BYTES} bytes; not read"
                ),
            });
        }
        Err(Unread::Cut(e)) if status.is_success() => {
            return Err(ApiError::Transient {
                service,
                detail: format!(
                    "{status} with a body that could not be read: {}",
                    without_url(&e)
                ),
            });
        }
        Err(Unread::Cut(_)) => String::new(),
    };
    if status.is_success() {
        if text.trim().is_empty() {
            return Ok(Some(Value::Null));
        }
        return serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ApiError::Invalid {
                service,
                detail: format!("unreadable JSON: {e}"),
            });
    }
    if status.as_u16() == 404 && not_found == NotFound::Absent {
        return Ok(None);
    }
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("errorMessages"))
                .map(|m| m.to_string())
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    if let Some(retry_after) = rate_limit_wait(
        status.as_u16(),
        &headers,
        &message,
        std::time::SystemTime::now(),
    ) {
        return Err(ApiError::RateLimited {
            service,
            retry_after,
            detail: format!("{status}: {message}"),
        });
    }
    if status.is_server_error() {
        return Err(ApiError::Transient {
            service,
            detail: format!("{status}: {message}"),
        });
    }
    Err(ApiError::Status {
        service,
        status: status.as_u16(),
        detail: message,
    })
}

/// reqwest errors can carry the URL; ours never holds a secret, but keep messages short.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// A local server whose every answer is `size` bytes of JSON-ish text (no length
    /// header when `chunked`).
    async fn serving(size: usize, chunked: bool) -> String {
        let app = axum::Router::new().route(
            "/big",
            axum::routing::get(move || async move {
                let body = format!("[{}]", "1,".repeat(size / 2) + "1");
                if chunked {
                    let stream = futures_util::stream::iter(
                        body.into_bytes()
                            .chunks(64 * 1024)
                            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                            .collect::<Vec<_>>(),
                    );
                    axum::body::Body::from_stream(stream)
                } else {
                    axum::body::Body::from(body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/big", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_unread_with_or_without_a_length() {
        let client = reqwest::Client::new();
        for chunked in [false, true] {
            let url = serving(MAX_ANSWER_BYTES + 1024, chunked).await;
            let error = send_json("GitHub", client.get(&url))
                .await
                .expect_err("too large");
            assert!(
                matches!(&error, ApiError::Invalid { detail, .. } if detail.contains("larger than")),
                "chunked={chunked}: {error}"
            );
            assert!(!error.is_transient(), "retrying would fetch it again");
        }
        let small = serving(1000, true).await;
        let value = send_json("GitHub", client.get(&small))
            .await
            .expect("small is read");
        assert!(value.as_array().is_some_and(|a| !a.is_empty()));
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use std::time::{SystemTime, UNIX_EPOCH};
    use testkit::http::headers;

    #[test]
    fn rate_limits_are_recognised_with_their_wait() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let reset = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1800000025"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &reset, "API rate limit exceeded", now),
            Some(Duration::from_secs(26))
        );
        assert_eq!(
            rate_limit_wait(429, &headers(&[("retry-after", "7")]), "", now),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            rate_limit_wait(403, &headers(&[("retry-after", &date)]), "", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            rate_limit_wait(
                403,
                &HeaderMap::new(),
                "You have exceeded a secondary rate limit",
                now
            ),
            Some(Duration::from_secs(60)),
            "a secondary limit without a time: a minute"
        );
        assert_eq!(
            rate_limit_wait(403, &HeaderMap::new(), "Resource not accessible", now),
            None,
            "a plain 403 is a refusal"
        );
        assert_eq!(rate_limit_wait(500, &reset, "", now), None);
        let past = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]);
        assert_eq!(
            rate_limit_wait(403, &past, "", SystemTime::now()),
            Some(Duration::from_secs(1)),
            "a reset in the past waits a second"
        );
    }
}
