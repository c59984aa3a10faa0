//! Fixci: a failed check suite on the agent's pull request gives one commit on top carrying
//! the fix the check output asked for and `CI-Fix-Round: 1` (the prompt holds the output and
//! the annotation, marked as CI output); after two rounds a third failure gives one comment
//! that the agent stops, no LLM call and no commit; a suite of an older commit does nothing
//! (even where `.agent-fleet.yml` limits who may ask and on which labels: a check suite has
//! neither) (real broker, spawned worker, stand-ins, local bare repository).

mod common;

use common::pulls::{AGENT, Commit};
use common::standins::Answer;
use common::world::*;
use serde_json::json;

const STOP_MARKER: &str = "<!-- agent-fleet:ci-fix-stop -->";

async fn world(name: &str) -> (World, common::WorkerProc) {
    let script = [("edit", vec![Answer::Text(good_answer())])];
    World::with_worker(name, 5, &script, &[]).await
}

/// A failing `lint` run (id 7001) with one annotation, and a cancelled `docs` run.
fn failing_checks(world: &World, sha: &str) {
    let runs = vec![
        json!({"id": 7001, "name": "lint", "status": "completed", "conclusion": "failure",
               "output": {"title": "1 error", "summary": "SUMMARY: refund() must round to cents",
                          "text": "pay/refunds.py:2: amounts are not rounded", "annotations_count": 1}}),
        json!({"id": 7002, "name": "docs", "status": "completed", "conclusion": "cancelled",
               "output": {"title": null, "summary": "CANCELLED-RUN-TEXT", "text": null}}),
        json!({"id": 7003, "name": "build", "status": "completed", "conclusion": "success",
               "output": {"title": "ok", "summary": "all good", "text": null}}),
    ];
    let annotations = vec![json!({
        "path": "pay/refunds.py", "start_line": 2, "end_line": 2,
        "annotation_level": "failure", "title": "rounding",
        "message": "ANNOTATION: return round(amount, 2)",
    })];
    world
        .github
        .set_check_runs(sha, runs, &[("7001", annotations)]);
}

#[tokio::test]
async fn a_failed_check_suite_gives_a_fix_round_on_top() {
    let (world, worker) = world("fixci-round").await;
    let before = world.agent_pull(95, 140, &[]);
    failing_checks(&world, &before);
    let task = world.fixci_task("github:suite-1", 95, 140, &before);
    world.run(&worker, &task, "done").await;

    let calls = world.llm.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].phase, "edit");
    let prompt = calls[0].body.to_string();
    assert!(
        prompt.contains("SUMMARY: refund() must round to cents"),
        "{prompt}"
    );
    assert!(
        prompt.contains("ANNOTATION: return round(amount, 2)"),
        "{prompt}"
    );
    assert!(
        prompt.contains("pay/refunds.py:2"),
        "the annotation's place: {prompt}"
    );
    assert!(
        prompt.contains("CI output"),
        "marked as CI output: {prompt}"
    );
    assert!(
        !prompt.contains("CANCELLED-RUN-TEXT"),
        "a cancelled run is no failure"
    );
    assert!(!prompt.contains("all good"), "a passing run is left out");

    let branch = "agent/github-95";
    let after = world.head_of(branch);
    assert_eq!(world.parent_of(&after), before, "one commit on top");
    world.assert_fix_on(branch);
    let message = world.commit_message(branch);
    assert!(message.contains("CI-Fix-Round: 1"), "{message}");
    assert!(message.contains("Agent-Task: github:suite-1"), "{message}");
    let said = comments_with(&world.github, 140, "fix round 1 of 2");
    assert_eq!(said.len(), 1, "one comment on the pull request");

    // The same suite reported again (its commit is not the head anymore): nothing.
    let stale = world.fixci_task("github:suite-1-again", 95, 140, &before);
    world.github.set_pull_head(140, &after);
    // The new head fails too (its own suite will say so): still nothing for the old one.
    failing_checks(&world, &after);
    world.run(&worker, &stale, "done").await;
    assert_eq!(world.llm.calls().len(), 1, "a stale suite asks no LLM");
    assert_eq!(world.head_of(branch), after);
}

#[tokio::test]
async fn a_repository_that_limits_who_asks_still_gets_its_ci_fixed() {
    let (world, worker) = world("fixci-limited").await;
    // Only `dev1` may ask, on `bug` issues: a check suite has no author and no labels.
    let limited = "triggers:\n  allowed_users: [dev1]\n  labels: [bug]\n";
    world.commit_files(&[(".agent-fleet.yml", limited)]);
    let before = world.agent_pull(98, 142, &[]);
    failing_checks(&world, &before);
    let task = world.fixci_task("github:suite-limited", 98, 142, &before);
    world.run(&worker, &task, "done").await;
    assert_eq!(world.llm.calls().len(), 1);
    world.assert_fix_on("agent/github-98");
}

#[tokio::test]
async fn after_two_rounds_a_third_failure_gets_one_comment_and_no_work() {
    let (world, worker) = world("fixci-limit").await;
    let rounds = [
        Commit {
            message: "Fix lint\n\nCI-Fix-Round: 1\nAgent-Task: github:r1",
            files: &[("pay/fees.py", "def fee(amount):\n    return 0  # one\n")],
            by: AGENT,
        },
        Commit {
            message: "Fix lint again\n\nCI-Fix-Round: 2\nAgent-Task: github:r2",
            files: &[("pay/fees.py", "def fee(amount):\n    return 0  # two\n")],
            by: AGENT,
        },
    ];
    let head = world.agent_pull(96, 141, &rounds);
    failing_checks(&world, &head);
    let third = world.fixci_task("github:suite-3", 96, 141, &head);
    world.run(&worker, &third, "done").await;
    let fourth = world.fixci_task("github:suite-4", 96, 141, &head);
    world.run(&worker, &fourth, "done").await;

    assert!(world.llm.calls().is_empty(), "no LLM call past the limit");
    assert_eq!(world.head_of("agent/github-96"), head, "no commit");
    let stops = comments_with(&world.github, 141, STOP_MARKER);
    assert_eq!(stops.len(), 1, "one comment, also after a further failure");
    let text = body_of(&stops[0]);
    assert!(text.contains("CI_FIX_ROUNDS"), "{text}");
    assert!(
        !world
            .github
            .requests()
            .iter()
            .any(|r| r.starts_with("GET permission")),
        "a check suite has no author whose permission counts"
    );
}
