//! Property tests ("fuzzing" that runs in `cargo test`) of the trigger tables: a webhook body
//! is attacker-shaped JSON once its signature checks out (anyone with write access writes
//! the comments and reviews in it), so no payload may panic `github::normalize` or
//! `jira::normalize`, whatever leaf of a real payload is replaced by whatever value, and
//! what they accept keeps the contract's invariants (an instruction within its cap, the
//! follow-up fields on the modes that need them).
//!
//! `FUZZ_CASES` cases each (default 512): `FUZZ_CASES=20000 cargo test -p ingest --test fuzz_webhooks`.

use chrono::Utc;
use ingest::IngestSettings;
use ingest::github::{self, Delivery};
use ingest::jira;
use ingest::normalize::Normalized;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::Mode;
use shared::task::MAX_INSTRUCTION_BYTES;
use testkit::fuzz::{config, piece};
use testkit::ingest::test_env;
use testkit::webhook::{fixture, github_labeled};

/// The real payloads the tables read, with the GitHub event each one is delivered as
/// (`None`: Jira), re-pointed where needed so that unmutated they are triggers.
fn payloads() -> Vec<(Option<&'static str>, Value)> {
    let mut comment = fixture("github/issue_comment/created.payload.json");
    comment["comment"]["body"] = json!("@fleet-agent /code fix it");
    let mut review = fixture("github/pull_request_review/submitted.payload.json");
    review["pull_request"]["head"]["ref"] = json!("agent/github-7");
    let mut suite = fixture("github/check_suite/completed.payload.json");
    suite["check_suite"]["conclusion"] = json!("failure");
    suite["check_suite"]["head_branch"] = json!("agent/github-7");
    suite["check_suite"]["pull_requests"][0]["head"]["ref"] = json!("agent/github-7");
    vec![
        (Some("issue_comment"), comment),
        (Some("pull_request_review"), review),
        (Some("check_suite"), suite),
        (Some("issues"), github_labeled("ai-help")),
        (None, fixture("jira/comment_created_adf.json")),
        (None, fixture("jira/issue_labeled.json")),
    ]
}

/// Every JSON pointer of `value` (objects and arrays included), so a case can replace any
/// leaf or subtree.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let next = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(next.clone());
                pointers(child, next, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let next = format!("{at}/{i}");
                out.push(next.clone());
                pointers(child, next, out);
            }
        }
        _ => {}
    }
}

/// Values a case writes: hostile JSON, or text in the commands' own grammar.
fn any_value() -> impl Strategy<Value = Value> {
    let words = piece(
        &[
            "/approve",
            "/revise",
            "/code",
            "/plan",
            "/retry",
            "/cancel",
            "@fleet-agent",
            "agent/github-7",
            "agent/",
            "failure",
            "commented",
            "changes_requested",
            "OWNER",
            "NONE",
            "fleet-agent[bot]",
            "```",
            "`",
        ],
        4,
        &["\\PC{0,40}", "[ \\n\\t]{0,4}"],
    );
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        prop::collection::vec(words, 1..4).prop_map(|w| Value::String(w.join(" "))),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn settings() -> IngestSettings {
    let env = test_env("fuzz", "amqp://127.0.0.1:5672/%2f", &[]);
    IngestSettings::from_env(&env).expect("test settings")
}

fn normalize(event: Option<&str>, body: &[u8], settings: &IngestSettings) -> Option<Normalized> {
    match event {
        Some(event) => {
            let payload = github::parse_payload(body).ok()?;
            let delivery = Delivery {
                event,
                delivery_id: "fuzz",
                received_at: Utc::now(),
            };
            github::normalize(&delivery, &payload, settings).ok()
        }
        None => {
            let payload = jira::parse_payload(body).ok()?;
            jira::normalize("fuzz", Utc::now(), &payload, settings).ok()
        }
    }
}

/// What an accepted delivery must look like, whatever it was made of.
fn check(normalized: &Normalized) -> Result<(), TestCaseError> {
    if let Normalized::Task(task) = normalized {
        let capped = task
            .instruction
            .as_ref()
            .is_none_or(|i| i.len() <= MAX_INSTRUCTION_BYTES && !i.trim().is_empty());
        prop_assert!(capped, "instruction {:?}", task.instruction);
        match task.mode {
            Mode::Fixci => prop_assert!(task.checks.is_some()),
            Mode::Implement => prop_assert!(task.approval.is_some()),
            _ => {}
        }
        let again = shared::TaskMessage::from_slice(&task.to_json()).expect("re-parses");
        prop_assert_eq!(&again, task.as_ref());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_mutated_real_payload_never_panics(which in 0usize..6, at in any::<prop::sample::Index>(), new in any_value()) {
        let settings = settings();
        let (event, mut payload) = payloads().swap_remove(which);
        let mut all = Vec::new();
        pointers(&payload, String::new(), &mut all);
        let pointer = at.get(&all).clone();
        if let Some(slot) = payload.pointer_mut(&pointer) {
            *slot = new;
        }
        if let Some(normalized) = normalize(event, payload.to_string().as_bytes(), &settings) {
            check(&normalized)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(which in 0usize..6, bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let settings = settings();
        let (event, _) = payloads().swap_remove(which);
        let _ = normalize(event, &bytes, &settings);
    }
}

#[test]
fn every_unmutated_payload_is_a_trigger() {
    let settings = settings();
    for (event, payload) in payloads() {
        let normalized = normalize(event, payload.to_string().as_bytes(), &settings);
        assert!(
            matches!(normalized, Some(Normalized::Task(_))),
            "{event:?}: {normalized:?}"
        );
    }
}
