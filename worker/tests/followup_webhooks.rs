//! Follow-ups end to end: GitHub's own documented payloads (`pull_request_review.submitted`,
//! `check_suite.completed`), re-pointed at the agent's pull request and signed, go through
//! the real ingest onto the real broker, and a spawned worker answers them against the
//! stand-ins: the review with one commit on top and a reply per line comment, the same
//! delivery twice with one commit, the failed suite with a `CI-Fix-Round: 1` commit; a
//! review from a fork is answered 202 "ignored" and nothing happens.

mod common;

use common::BROKER;
use common::standins::Answer;
use common::world::*;
use serde_json::{Value, json};
use testkit::TestIngest;
use testkit::webhook::fixture;

const SECRET: &str = "followup-secret";
const REPO_ID: u64 = 4242;

/// A payload of GitHub's about `acme/payments` and its pull `pull`, headed `agent/github-<issue>`.
fn on_agent_pull(mut payload: Value, issue: u64, pull: u64) -> Value {
    payload["repository"]["html_url"] = json!("https://github.com/acme/payments");
    payload["repository"]["full_name"] = json!("acme/payments");
    payload["repository"]["id"] = json!(REPO_ID);
    payload["sender"]["login"] = json!("dev1");
    let branch = format!("agent/github-{issue}");
    if payload.get("review").is_some() {
        payload["review"]["user"]["login"] = json!("dev1");
    }
    if payload.get("pull_request").is_some() {
        let pr = &mut payload["pull_request"];
        pr["number"] = json!(pull);
        pr["head"]["ref"] = json!(branch);
        pr["head"]["repo"]["id"] = json!(REPO_ID);
        pr["base"]["repo"]["id"] = json!(REPO_ID);
        pr["html_url"] = json!(format!("https://github.com/acme/payments/pull/{pull}"));
    }
    if payload.get("check_suite").is_some() {
        let suite = &mut payload["check_suite"];
        suite["conclusion"] = json!("failure");
        suite["head_branch"] = json!(branch);
        let pr = &mut suite["pull_requests"][0];
        pr["number"] = json!(pull);
        pr["head"]["ref"] = json!(branch);
        pr["head"]["repo"]["id"] = json!(REPO_ID);
        pr["base"]["repo"]["id"] = json!(REPO_ID);
    }
    payload
}

async fn send(ingest: &TestIngest, event: &str, delivery: &str, payload: &Value) -> Value {
    let body = payload.to_string();
    let response = ingest
        .github_signed(event, delivery, body.as_bytes(), SECRET)
        .await;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("JSON");
    assert!(status == 202 || status == 200, "{status}: {answer}");
    answer
}

#[tokio::test]
async fn a_signed_review_and_a_failed_suite_reach_the_worker_as_followup_and_fixci() {
    let fee_fix = "Fees in cents.\n\npay/fees.py\n```python\n<<<<<<< SEARCH\n    return 0\n=======\n    return 0.0\n>>>>>>> REPLACE\n```\n";
    let script = [(
        "edit",
        vec![Answer::Text(good_answer()), Answer::Text(fee_fix.into())],
    )];
    let (world, worker) = World::with_worker("followup-hooks", 5, &script, &[]).await;
    let ingest = TestIngest::spawn_on(
        &world.fleet.queue,
        BROKER,
        &[("GITHUB_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    ingest.wait_ready(200).await;

    // The review: two line comments on pull 150 of issue 97.
    let before = world.agent_pull(97, 150, &[]);
    world.github.add_review(
        150,
        "237895671",
        &[
            (
                "pay/refunds.py",
                2,
                "@@ -1 +1 @@",
                "REVIEW-ONE: round to cents",
                "dev1",
            ),
            (
                "pay/fees.py",
                1,
                "@@ -1 +1 @@",
                "REVIEW-TWO: keep fees",
                "dev1",
            ),
        ],
    );
    let review = on_agent_pull(
        fixture("github/pull_request_review/submitted.payload.json"),
        97,
        150,
    );
    let answer = send(&ingest, "pull_request_review", "review-delivery-1", &review).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    let task_id = answer["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(finished(&worker, &task_id).await, "done");
    let calls = world.llm.calls();
    assert_eq!(calls.len(), 1);
    let prompt = calls[0].body.to_string();
    assert!(
        prompt.contains("REVIEW-ONE") && prompt.contains("REVIEW-TWO"),
        "{prompt}"
    );
    let branch = "agent/github-97";
    let head = world.head_of(branch);
    assert_eq!(world.parent_of(&head), before, "one commit on top");
    assert_eq!(world.github.replies().len(), 2, "a reply per line comment");

    // GitHub redelivers the same delivery: the ingest says so, nothing more happens.
    let again = send(&ingest, "pull_request_review", "review-delivery-1", &review).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    // A new delivery of the same review (an operator's "redeliver" gets a new id on some
    // setups): a task, but no second commit.
    let other = send(&ingest, "pull_request_review", "review-delivery-2", &review).await;
    let other_id = other["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(finished(&worker, &other_id).await, "done");
    assert_eq!(
        world.head_of(branch),
        head,
        "still one commit for the review"
    );
    assert_eq!(world.llm.calls().len(), 1);

    // A review of a fork's pull request: ignored at the door.
    let mut fork = review.clone();
    fork["pull_request"]["head"]["repo"]["id"] = json!(999);
    let ignored = send(&ingest, "pull_request_review", "review-fork", &fork).await;
    assert_eq!(ignored["status"], "ignored", "{ignored}");

    // The failed suite on the new head: a fix round on top.
    world.github.set_pull_head(150, &head);
    world.github.set_check_runs(
        &head,
        vec![json!({"id": 8001, "name": "lint", "status": "completed", "conclusion": "failure",
                    "output": {"title": "1 error", "summary": "SUITE-SUMMARY: round refunds", "text": null}})],
        &[],
    );
    let mut suite = on_agent_pull(
        fixture("github/check_suite/completed.payload.json"),
        97,
        150,
    );
    suite["check_suite"]["head_sha"] = json!(head);
    suite["sender"]["login"] = json!("github-actions[bot]");
    let answer = send(&ingest, "check_suite", "suite-delivery-1", &suite).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    let suite_task = answer["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(finished(&worker, &suite_task).await, "done");
    let calls = world.llm.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].body.to_string().contains("SUITE-SUMMARY"));
    let fixed = world.head_of(branch);
    assert_eq!(world.parent_of(&fixed), head);
    assert!(world.commit_message(branch).contains("CI-Fix-Round: 1"));
    ingest.shutdown().await;
}
