//! Admission of webhook requests: every webhook body is received here, before a handler
//! sees it and before its signature can be checked, under three bounds:
//!
//! - `MAX_BODY_BYTES`: a declared `Content-Length` over it is refused at once, a chunked
//!   body as soon as it passes it (413);
//! - `INGEST_REQUEST_TIMEOUT_SECS`: the whole body must arrive within it (408), so a sender
//!   dripping a few bytes a second cannot hold a request open;
//! - `INGEST_MAX_CONCURRENCY`: bodies being received at once (each at most
//!   `MAX_BODY_BYTES`, so this caps the memory they hold). When all slots are taken, the
//!   oldest reception is shed to make room: it is answered 503 + `Retry-After` at once and
//!   the newcomer is let in.
//!
//! Why the oldest and not the newcomer: GitHub and Jira send their few KiB in one go, so a
//! real delivery is received within milliseconds of its headers, while a flood of slow
//! unsigned requests holds its slots for as long as it can. Refusing newcomers would let
//! such a flood lock every delivery out; evicting the oldest means a flood must push a
//! real delivery out during the milliseconds its body takes, i.e. open more than
//! `INGEST_MAX_CONCURRENCY` connections in those milliseconds.
//!
//! Once its body is in, a request is cheap (an HMAC and a parse) and leaves the gate, so
//! publishing to the broker never holds a slot.

use crate::app::RETRY_AFTER_SECS;
use crate::metrics::IngestMetrics;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bounds, and the receptions under way.
#[derive(Debug)]
pub struct Admission {
    max_body: usize,
    timeout: Duration,
    limit: usize,
    metrics: IngestMetrics,
    open: Mutex<Receptions>,
}

/// Receptions by id; ids grow with time, so the first entry is the oldest.
#[derive(Debug, Default)]
struct Receptions {
    next_id: u64,
    by_id: BTreeMap<u64, CancellationToken>,
}

/// A slot in the gate; dropping it frees the slot.
struct Ticket<'a> {
    admission: &'a Admission,
    id: u64,
    evicted: CancellationToken,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        open.by_id.remove(&self.id);
        self.admission.metrics.receiving(open.by_id.len());
    }
}

/// Why a request did not get past admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooLarge,
    Timeout,
    Evicted,
    Unreadable,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Timeout => "timeout",
            Refusal::Evicted => "evicted",
            Refusal::Unreadable => "unreadable",
        }
    }

    fn response(self, admission: &Admission) -> Response {
        let (status, message) = match self {
            Refusal::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", admission.max_body),
            ),
            Refusal::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    admission.timeout.as_secs()
                ),
            ),
            Refusal::Evicted => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests are being received and this one was the slowest; retry later"
                    .to_owned(),
            ),
            Refusal::Unreadable => (
                StatusCode::BAD_REQUEST,
                "the body could not be read".to_owned(),
            ),
        };
        let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
        let headers = response.headers_mut();
        // The body was not read to its end: the connection cannot carry another request.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl Admission {
    pub fn new(max_body: usize, timeout: Duration, limit: usize, metrics: IngestMetrics) -> Self {
        Self {
            max_body,
            timeout,
            limit,
            metrics,
            open: Mutex::new(Receptions::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Receptions> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot, made by evicting the oldest receptions when the gate is full.
    fn admit(&self) -> Ticket<'_> {
        let mut open = self.lock();
        while open.by_id.len() >= self.limit {
            let Some((_, evicted)) = open.by_id.pop_first() else {
                break;
            };
            evicted.cancel();
        }
        let id = open.next_id;
        open.next_id += 1;
        let evicted = CancellationToken::new();
        open.by_id.insert(id, evicted.clone());
        self.metrics.receiving(open.by_id.len());
        Ticket {
            admission: self,
            id,
            evicted,
        }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        self.metrics.refused(refusal.label());
        tracing::debug!(reason = refusal.label(), "webhook request refused");
        refusal.response(self)
    }

    /// Receives the body within the bounds, then hands the request, its body in memory, to
    /// the handler.
    async fn receive(&self, request: Request, next: Next) -> Response {
        let deadline = Instant::now() + self.timeout;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return self.refuse(Refusal::TooLarge);
        }
        let ticket = self.admit();
        let (parts, body) = request.into_parts();
        let read = Limited::new(body, self.max_body).collect();
        let received = tokio::select! {
            () = ticket.evicted.cancelled() => Err(Refusal::Evicted),
            read = tokio::time::timeout_at(deadline, read) => match read {
                Err(_elapsed) => Err(Refusal::Timeout),
                Ok(Ok(collected)) => Ok(collected.to_bytes()),
                Ok(Err(error)) if error.is::<LengthLimitError>() => Err(Refusal::TooLarge),
                Ok(Err(_)) => Err(Refusal::Unreadable),
            },
        };
        drop(ticket);
        match received {
            Ok(bytes) => {
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
            Err(refusal) => self.refuse(refusal),
        }
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(admission, admission::receive)`.
pub async fn receive(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    admission.receive(request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gate_sheds_its_oldest_reception_to_let_the_newcomer_in() {
        let admission = Admission::new(1024, Duration::from_secs(10), 2, IngestMetrics::new());
        let first = admission.admit();
        let second = admission.admit();
        assert!(!first.evicted.is_cancelled());
        let third = admission.admit();
        assert!(first.evicted.is_cancelled(), "the oldest makes room");
        assert!(!second.evicted.is_cancelled());
        assert!(!third.evicted.is_cancelled());
        drop(first);
        assert_eq!(admission.lock().by_id.len(), 2);
        let fourth = admission.admit();
        assert!(second.evicted.is_cancelled());
        drop((second, third, fourth));
        assert!(admission.lock().by_id.is_empty());
    }
}
