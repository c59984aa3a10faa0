//! `/retry` end to end (real broker, spawned worker, stand-ins): a retry runs the issue's
//! last mode again, read from the status comment's task line, whatever mode its message
//! says; the person asking for it needs write access like for any task.

mod common;

use common::standins::Answer;
use common::world::*;
use shared::task::RetryRequest;
use shared::{Mode, TaskMessage};

/// The task the ingest sends for `/retry` on `number` by `user`: the default mode, `retry`
/// set.
fn retry_task(world: &World, id: &str, number: u64, user: &str) -> TaskMessage {
    let comment_id = world.github.add_comment(number, user, "/retry");
    let mut task = world.task(id, number, user);
    task.mode = Mode::Quickfix;
    task.trigger.event = "issue_comment.created".into();
    task.trigger.comment_id = Some(comment_id.clone());
    task.retry = Some(RetryRequest {
        comment_id,
        requested_by: user.into(),
    });
    task
}

fn plan_comments(world: &World, number: u64) -> usize {
    comments_with(&world.github, number, "<!-- agent-fleet:plan v=").len()
}

#[tokio::test]
async fn a_retry_after_a_failed_plan_plans_again() {
    // The plan's first LLM call is refused for good (401), the next one answers.
    let script = [
        (
            "plan",
            vec![
                Answer::Status(401, None),
                Answer::Text(plan_json("Round refunds to cents")),
            ],
        ),
        ("edit", vec![Answer::Text(good_answer())]),
    ];
    let (world, worker) = World::with_worker("retry-plan", 5, &script, &[]).await;
    let plan = world.plan_task("github:retry-plan-1", 95);
    world.run(&worker, &plan, "failed").await;
    let failed = body_of(&status_comments(&world.github, 95)[0]).to_owned();
    assert!(
        failed.contains("id=github:retry-plan-1 state=failed mode=plan"),
        "{failed}"
    );
    assert_eq!(plan_comments(&world, 95), 0);

    let retry = retry_task(&world, "github:retry-plan-2", 95, "dev1");
    world.run(&worker, &retry, "done").await;
    assert_eq!(
        world.llm.phases(),
        ["plan", "plan"],
        "planned again, no edit"
    );
    assert_eq!(plan_comments(&world, 95), 1, "the plan is posted");
    assert!(
        world.github.pulls().iter().all(|p| p["draft"] == true),
        "only the plan's draft PR"
    );
    let status = body_of(&status_comments(&world.github, 95)[0]).to_owned();
    assert!(
        status.contains("id=github:retry-plan-2 state=waiting mode=plan"),
        "{status}"
    );
    assert!(
        world.github.requests().contains(&format!(
            "POST reaction {} eyes",
            retry.trigger.comment_id.as_deref().unwrap_or_default()
        )),
        "the /retry comment is acknowledged"
    );
}

#[tokio::test]
async fn a_retry_asked_by_a_read_only_user_does_nothing() {
    let script = [("plan", vec![Answer::Status(401, None)])];
    let (world, worker) = World::with_worker("retry-reader", 5, &script, &[]).await;
    let plan = world.plan_task("github:retry-reader-1", 96);
    world.run(&worker, &plan, "failed").await;
    let retry = retry_task(&world, "github:retry-reader-2", 96, "reader");
    world.run(&worker, &retry, "failed").await;
    assert_eq!(world.llm.phases(), ["plan"], "no second LLM call");
    let status = body_of(&status_comments(&world.github, 96)[0]).to_owned();
    assert!(
        status.contains("@reader does not have write access"),
        "{status}"
    );
    assert!(
        status.contains("state=refused mode=plan"),
        "a later retry still finds the mode: {status}"
    );
}

#[tokio::test]
async fn a_retry_of_a_failed_implementation_carries_its_approval() {
    // The implementation's first edit is refused for good (401); the retry's answers.
    let script = [
        (
            "plan",
            vec![Answer::Text(plan_json("Round refunds to cents"))],
        ),
        (
            "edit",
            vec![Answer::Status(401, None), Answer::Text(good_answer())],
        ),
    ];
    let (world, worker) = World::with_worker("retry-implement", 5, &script, &[]).await;
    world
        .run(
            &worker,
            &world.plan_task("github:retry-impl-plan", 97),
            "done",
        )
        .await;
    let approval = world.github.add_comment(97, "dev1", "/approve");
    let implement = world.approve_task("github:retry-impl-1", 97, &approval, "dev1");
    world.run(&worker, &implement, "failed").await;
    let failed = body_of(&status_comments(&world.github, 97)[0]).to_owned();
    assert!(
        failed.contains(&format!(
            "state=failed mode=implement approval={approval} approver=dev1"
        )),
        "{failed}"
    );

    // Asked by someone else with write access: the approval is still dev1's.
    let retry = retry_task(&world, "github:retry-impl-2", 97, "admin1");
    world.run(&worker, &retry, "done").await;
    assert_eq!(world.llm.phases(), ["plan", "edit", "edit"]);
    world.assert_fix_on("agent/github-97");
    let message = world.commit_message("agent/github-97");
    assert!(message.contains("approved by dev1"), "{message}");
    assert_eq!(world.github.pulls()[0]["draft"], false, "ready for review");
}
