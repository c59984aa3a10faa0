//! Plan mode end to end: plan, /approve (on the issue or the PR), /revise, implement, on
//! GitHub and on Jira, with the real broker, a spawned worker and the stand-ins.

mod common;

use common::standins::{Answer, JIRA_AGENT};
use common::world::*;
use shared::task::Approval;
use shared::{Mode, Tracker};

/// An edit to a file the plan does not name: refused and fed back once.
fn off_plan_answer() -> String {
    "Also fix the README.\n\nREADME.md\n```\n<<<<<<< SEARCH\n# payments\n=======\n# payments (rounded)\n>>>>>>> REPLACE\n```\n".into()
}

fn plan_comments(world: &World, number: u64) -> Vec<String> {
    world
        .github
        .comments_on(number)
        .iter()
        .filter_map(|c| c["body"].as_str().map(str::to_owned))
        .filter(|b| b.contains("<!-- agent-fleet:plan v="))
        .collect()
}

fn commits_on(world: &World, branch: &str) -> usize {
    world
        .repos
        .git_in(REPO, &["rev-list", "--count", branch])
        .trim()
        .parse()
        .expect("count")
}

#[tokio::test]
async fn plan_then_approve_implements_it_once() {
    let (world, worker) = World::with_worker(
        "plan-gh",
        5,
        &[
            (
                "plan",
                vec![Answer::Text(plan_json("Round refunds to cents"))],
            ),
            ("edit", vec![Answer::Text(off_plan_answer())]),
            ("repair", vec![Answer::Text(good_answer())]),
        ],
        &[],
    )
    .await;
    let plan = world.plan_task("github:plan-1", 21);
    world.run(&worker, &plan, "done").await;

    // The branch: one empty commit on top of main.
    assert_eq!(
        world
            .repos
            .git_in(REPO, &["log", "-1", "--format=%s", "agent/github-21"])
            .trim(),
        "agent-fleet: plan for acme/payments#21"
    );
    assert_eq!(
        commits_on(&world, "agent/github-21"),
        commits_on(&world, "main") + 1
    );
    assert_eq!(
        world
            .repos
            .git_in(REPO, &["rev-parse", "agent/github-21^{tree}"]),
        world.repos.git_in(REPO, &["rev-parse", "main^{tree}"])
    );
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["draft"], true);
    assert!(body_of(&pulls[0]).contains("Fixes #21"));
    let plans = plan_comments(&world, 21);
    assert_eq!(plans.len(), 1);
    assert!(
        plans[0].contains("<!-- agent-fleet:plan-json")
            && plans[0].contains("/approve")
            && plans[0].contains("/revise")
    );
    let hash = hash_in(&plans[0]);
    let status = status_comments(&world.github, 21);
    assert_eq!(status.len(), 1);
    assert!(body_of(&status[0]).contains("waiting for approval"));

    let comment_id = world.github.add_comment(21, "dev1", "/approve");
    let approve = world.approve_task("github:approve-1", 21, &comment_id, "dev1");
    world.run(&worker, &approve, "done").await;
    let message = world.commit_message("agent/github-21");
    assert!(message.contains(&format!("Plan-Hash: {hash}")), "{message}");
    world.assert_fix_on("agent/github-21");
    assert_eq!(
        world.file_on("agent/github-21", "README.md").as_deref(),
        Some("# payments\n"),
        "off-plan edit refused"
    );
    assert_eq!(world.llm.phases(), vec!["plan", "edit", "repair"]);
    let repair = world.llm.calls()[2].body.to_string();
    assert!(repair.contains("README.md"), "the refusal was fed back");
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["draft"], false, "marked ready for review");
    assert!(
        world
            .github
            .state
            .lock()
            .expect("lock")
            .review_requests
            .iter()
            .any(|(n, r)| *n == 100 && r == &vec!["dev1".to_string()])
    );
    let status = status_comments(&world.github, 21);
    assert_eq!(status.len(), 1);
    assert!(body_of(&status[0]).contains("/pull/100"));

    // A second /approve of the same version does nothing new.
    let commits = commits_on(&world, "agent/github-21");
    let again_id = world.github.add_comment(21, "admin1", "/approve");
    let again = world.approve_task("github:approve-2", 21, &again_id, "admin1");
    world.run(&worker, &again, "done").await;
    assert_eq!(
        commits_on(&world, "agent/github-21"),
        commits,
        "one implementation commit"
    );
    assert_eq!(world.llm.calls().len(), 3, "no new LLM call");
}

#[tokio::test]
async fn approve_from_the_pr_conversation_and_refuse_a_reader() {
    let (world, worker) = World::planning("plan-pr", &["Round refunds"]).await;
    let plan = world.plan_task("github:plan-pr", 22);
    world.run(&worker, &plan, "done").await;
    let pr_number = world.github.pulls()[0]["number"].as_u64().expect("number");

    // A reader's /approve on the PR: refused, nothing pushed.
    let commits = commits_on(&world, "agent/github-22");
    let reader_comment = world.github.add_comment(pr_number, "reader", "/approve");
    let mut refused = world.approve_task(
        "github:approve-reader",
        pr_number,
        &reader_comment,
        "reader",
    );
    refused.issue.pull_request = true;
    world.run(&worker, &refused, "failed").await;
    assert_eq!(commits_on(&world, "agent/github-22"), commits);
    let status = status_comments(&world.github, 22);
    assert!(
        body_of(&status[0]).contains("does not have write access"),
        "{status:?}"
    );

    let comment = world.github.add_comment(pr_number, "dev1", "/approve");
    let mut approve = world.approve_task("github:approve-pr", pr_number, &comment, "dev1");
    approve.issue.pull_request = true;
    world.run(&worker, &approve, "done").await;
    assert_eq!(commits_on(&world, "agent/github-22"), commits + 1);
    world.assert_fix_on("agent/github-22");
    assert_eq!(
        status_comments(&world.github, 22).len(),
        1,
        "status stays on the issue"
    );
    assert!(status_comments(&world.github, pr_number).is_empty());
}

#[tokio::test]
async fn revise_posts_v2_and_approve_binds_to_it() {
    let (world, worker) = World::planning(
        "plan-revise",
        &["First idea", "Second idea, with the feedback"],
    )
    .await;
    // /approve before any plan: a helpful comment, nothing else.
    let early = world.github.add_comment(23, "dev1", "/approve");
    let premature = world.approve_task("github:approve-early", 23, &early, "dev1");
    world.run(&worker, &premature, "failed").await;
    assert!(body_of(&status_comments(&world.github, 23)[0]).contains("no plan to approve yet"));

    let plan = world.plan_task("github:plan-v1", 23);
    world.run(&worker, &plan, "done").await;
    let revise = world.revise_task("github:plan-v2", 23, "keep the public API");
    world.run(&worker, &revise, "done").await;
    let plans = plan_comments(&world, 23);
    assert_eq!(plans.len(), 2);
    assert!(plans[1].contains("<!-- agent-fleet:plan v=2 "));
    let second_prompt = world.llm.calls()[1].body.to_string();
    assert!(second_prompt.contains("keep the public API") && second_prompt.contains("First idea"));
    assert_eq!(world.github.pulls().len(), 1, "the draft PR is reused");

    let comment = world.github.add_comment(23, "dev1", "/approve");
    let approve = world.approve_task("github:approve-v2", 23, &comment, "dev1");
    world.run(&worker, &approve, "done").await;
    let message = world.commit_message("agent/github-23");
    assert!(
        message.contains(&format!("Plan-Hash: {}", hash_in(&plans[1]))),
        "binds to v2: {message}"
    );
}

#[tokio::test]
async fn the_jira_round_trip() {
    let (world, worker) = World::planning("plan-jira", &["Add rounding"]).await;
    // In the shape the ingest produces from testdata/fixtures/jira/issue_labeled.json.
    let mut plan = world.fleet.task("jira:plan-1", &["ai-plan", "backend"]);
    plan.mode = Mode::Plan;
    plan.source = Tracker::Jira;
    plan.issue.tracker = Tracker::Jira;
    plan.issue.key = "PAY-43".into();
    plan.issue.number = None;
    plan.issue.title = "Add an idempotency key to the payout client".into();
    plan.issue.body = "Round refunds in pay/refunds.py.".into();
    plan.issue.url = "https://acme.atlassian.net/browse/PAY-43".into();
    plan.trigger_user = "5b10ac8d82e05b22cc7d4ef5".into();
    plan.trigger.event = "jira:issue_updated".into();
    world.run(&worker, &plan, "done").await;

    let texts = world.jira.texts("PAY-43");
    let plan_text = texts
        .iter()
        .find(|t| t.contains("agent-fleet:plan v=1 hash="))
        .expect("plan comment on Jira");
    assert!(
        plan_text.contains("\"summary\":\"Add rounding\""),
        "JSON in a code block: {plan_text}"
    );
    assert!(texts.iter().any(
        |t| t.trim_end().ends_with("agent-fleet:status") && t.contains("waiting for approval")
    ));
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["head"]["ref"], "agent/jira-PAY-43");
    assert!(body_of(&pulls[0]).contains("https://acme.atlassian.net/browse/PAY-43"));

    let comment = world
        .jira
        .add_comment("PAY-43", "5b10ac8d82e05b22cc7d4ef5", "/approve");
    let mut approve = plan.clone();
    approve.task_id = "jira:approve-1".into();
    approve.mode = Mode::Implement;
    approve.trigger.event = "comment_created".into();
    approve.approval = Some(Approval {
        comment_id: comment,
        approver: "5b10ac8d82e05b22cc7d4ef5".into(),
    });
    world.run(&worker, &approve, "done").await;
    world.assert_fix_on("agent/jira-PAY-43");
    assert_eq!(world.github.pulls()[0]["draft"], false);
    let texts = world.jira.texts("PAY-43");
    let status: Vec<&String> = texts
        .iter()
        .filter(|t| t.trim_end().ends_with("agent-fleet:status"))
        .collect();
    assert_eq!(status.len(), 1, "one status comment, edited in place");
    assert!(
        status[0].contains("/pull/100"),
        "PR link goes back to Jira: {}",
        status[0]
    );
    // Every comment the agent wrote on Jira is ADF (the stand-in refuses anything else).
    let agent_comments = world.jira.state.lock().expect("lock").comments["PAY-43"]
        .iter()
        .filter(|c| c["author"]["accountId"] == JIRA_AGENT)
        .count();
    assert_eq!(agent_comments, 2, "a plan comment and a status comment");
}
