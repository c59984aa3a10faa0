//! Property tests ("fuzzing" that runs in `cargo test`) of the task-message parser: a queue
//! message is untrusted bytes (anyone who can publish to the queue, a buggy ingest), so no
//! input may panic `TaskMessage::from_slice` or `RepoUrl::parse`, and what parses keeps its
//! invariants (a canonical repository URL whose parts are slices of it, a round trip).
//!
//! Fixed case count (`FUZZ_CASES`, default 512) so the run is bounded; a longer session:
//! `FUZZ_CASES=20000 cargo test -p shared --test fuzz_task`.

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::task::{RepoUrl, TaskMessage};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn example() -> Value {
    json!({
      "version": 1,
      "task_id": "github:7f1c2e60",
      "mode": "quickfix",
      "source": "github",
      "repo_url": "https://github.com/acme/payments",
      "base_branch": null,
      "issue": {
        "tracker": "github", "key": "acme/payments#123", "number": 123,
        "title": "t", "body": "b", "url": "https://github.com/acme/payments/issues/123",
        "labels": ["ai-help"]
      },
      "trigger_user": "dev1",
      "trigger": {"event": "issues.labeled", "delivery_id": "d", "received_at": "2026-11-21T10:40:00Z"},
      "approval": null
    })
}

/// Any JSON value, a few levels deep, with hostile strings and numbers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "\\PC{0,30}".prop_map(Value::String),
        Just(json!("https://github.com/日本/語")),
        Just(json!("https://é.com/a/b")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Paths into the example message whose value a case replaces.
const FIELDS: &[&[&str]] = &[
    &["version"],
    &["task_id"],
    &["mode"],
    &["source"],
    &["repo_url"],
    &["base_branch"],
    &["issue"],
    &["issue", "number"],
    &["issue", "title"],
    &["issue", "body"],
    &["issue", "labels"],
    &["issue", "pull_request"],
    &["trigger"],
    &["trigger", "received_at"],
    &["approval"],
    &["revision"],
];

fn set(value: &mut Value, path: &[&str], new: Value) {
    let mut at = value;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            at[*key] = new;
            return;
        }
        at = &mut at[*key];
    }
}

fn check_parsed(task: &TaskMessage) -> Result<(), TestCaseError> {
    let url = &task.repo_url;
    prop_assert_eq!(
        url.as_str(),
        format!("https://{}/{}/{}", url.host(), url.owner(), url.name())
    );
    prop_assert_eq!(url.full_name(), format!("{}/{}", url.owner(), url.name()));
    let again = TaskMessage::from_slice(&task.to_json()).expect("a parsed task re-parses");
    prop_assert_eq!(&again, task);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = TaskMessage::from_slice(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        if let Ok(task) = TaskMessage::from_slice(value.to_string().as_bytes()) {
            check_parsed(&task)?;
        }
    }

    #[test]
    fn a_mutated_task_never_panics(field in 0..FIELDS.len(), new in any_json()) {
        let mut value = example();
        set(&mut value, FIELDS[field], new);
        if let Ok(task) = TaskMessage::from_slice(value.to_string().as_bytes()) {
            check_parsed(&task)?;
        }
    }

    #[test]
    fn repository_urls_never_panic(
        scheme in prop_oneof![Just("https://"), Just("http://"), Just(""), Just("https:///")],
        rest in "\\PC{0,40}",
        tail in prop_oneof![Just(""), Just("/"), Just(".git"), Just(".git/"), Just("//")],
    ) {
        let input = format!("{scheme}{rest}{tail}");
        if let Ok(url) = RepoUrl::parse(&input) {
            prop_assert!(url.as_str().is_ascii(), "{input:?} -> {url}");
            prop_assert_eq!(RepoUrl::parse(url.as_str()).expect("canonical re-parses"), url);
        }
        let _ = RepoUrl::from_slug(&rest);
    }
}
