//! Webhooks as GitHub and Jira send them: the HMAC-SHA256 signature (computed here, not with
//! the ingest's own code, so a test checks the ingest against the documented scheme), signed
//! POSTs to the ingest's routes, and the recorded payloads under `testdata/fixtures`.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::PathBuf;

/// `sha256=<hex of HMAC-SHA256(secret, body)>`: GitHub's `X-Hub-Signature-256`, and Jira's
/// `X-Hub-Signature` (the same scheme).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The repository's webhook fixtures (`testdata/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/fixtures")
}

/// A fixture's JSON, by its path under [`fixtures_dir`].
pub fn fixture(relative: &str) -> Value {
    let path = fixtures_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// GitHub's `issues.labeled` fixture with the label `label` (sender and issue as recorded).
pub fn github_labeled(label: &str) -> Value {
    let mut payload = fixture("github/issues/labeled.payload.json");
    payload["label"]["name"] = json!(label);
    payload
}

/// A signed GitHub delivery: POST `url` with the event, delivery id and signature headers.
pub async fn post_github(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> reqwest::Response {
    let headers = [
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", sign(secret, body)),
    ];
    post_json(http, url, &headers, body).await
}

/// A signed Jira delivery: POST `url` with the webhook identifier and signature headers.
pub async fn post_jira(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    identifier: &str,
    body: &[u8],
) -> reqwest::Response {
    let headers = [
        ("x-atlassian-webhook-identifier", identifier.to_owned()),
        ("x-hub-signature", sign(secret, body)),
    ];
    post_json(http, url, &headers, body).await
}

/// POST a JSON `body` to `url` with the tracker's own `headers` on top.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut request = http.post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request
        .body(body.to_vec())
        .send()
        .await
        .expect("request sent")
}
