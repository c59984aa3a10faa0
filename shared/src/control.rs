//! Control messages: what the ingest tells every worker at once, on the fanout exchange
//! `<queue>.control` (docs/contracts.md, "Control messages"). Today one kind, `cancel`:
//! the worker running a task of that issue stops it; one worker (the one that takes it
//! from the durable `<queue>.cancels`) writes the cancel onto the issue's status comment,
//! so that a task of the issue still queued is skipped when it starts.
//!
//! Like task messages, parsing ignores unknown fields and is strict about what it reads:
//! a message a worker cannot read is dropped with a log line (nothing is lost by it: a
//! cancel is a request, and the person can send it again).

use crate::task::{IssueRef, RepoUrl, Tracker};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a control message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlKind {
    Cancel,
}

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlMessage {
    #[serde(rename = "type")]
    pub kind: ControlKind,
    /// The issue whose task stops: `owner/name#123` or `PAY-42` (as in the task message).
    pub issue_key: String,
    /// Who asked (a GitHub login or a Jira account id).
    pub requested_by: String,
    /// `github:<X-GitHub-Delivery>` or `jira:<webhook id>`: the same cancel redelivered
    /// is recognised on the status comment.
    pub cancel_id: String,
    /// When the ingest took the cancel: a task of the issue received before it is skipped.
    pub requested_at: DateTime<Utc>,
    pub source: Tracker,
    pub repo_url: RepoUrl,
    /// The issue as the webhook described it (for the status comment).
    pub issue: IssueRef,
    /// The `/cancel` comment (for the acknowledgement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<String>,
}

/// Why bytes on the control exchange are not a control message.
#[derive(Debug, thiserror::Error)]
#[error("not a control message: {0}")]
pub struct ControlParseError(String);

impl ControlMessage {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ControlParseError> {
        serde_json::from_slice(bytes).map_err(|e| ControlParseError(e.to_string()))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a control message always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_shape_round_trips_and_garbage_is_an_error() {
        let value = serde_json::json!({
            "type": "cancel",
            "issue_key": "acme/payments#123",
            "requested_by": "dev1",
            "cancel_id": "github:abc",
            "requested_at": "2026-12-03T10:00:00Z",
            "source": "github",
            "repo_url": "https://github.com/acme/payments",
            "issue": {"tracker": "github", "key": "acme/payments#123", "number": 123,
                      "title": "t", "body": "", "url": "https://github.com/acme/payments/issues/123",
                      "labels": []},
            "future": 1
        });
        let message = ControlMessage::from_slice(value.to_string().as_bytes()).expect("parses");
        assert_eq!(message.kind, ControlKind::Cancel);
        assert_eq!(message.issue_key, "acme/payments#123");
        let back = ControlMessage::from_slice(&message.to_json()).expect("round trip");
        assert_eq!(back, message);
        for bad in [&b"{}"[..], b"[1]", b"\xff", br#"{"type":"explode"}"#] {
            assert!(ControlMessage::from_slice(bad).is_err());
        }
    }
}
