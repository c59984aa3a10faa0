//! QuickFix end to end: real broker, the spawned worker, a local bare repository and local
//! stand-ins for GitHub and the LLM.

mod common;

use common::standins::Answer;
use common::wait_until;
use common::world::*;
use std::time::Duration;

#[tokio::test]
async fn happy_path_opens_one_pr_and_a_redelivery_changes_nothing() {
    let (world, worker) = World::quickfix("qf-happy").await;
    let task = world.task("github:qf-happy-1", 7, "dev1");
    world.run(&worker, &task, "done").await;

    world.assert_fix_on("agent/github-7");
    let author = world
        .repos
        .git_in(REPO, &["log", "-1", "--format=%an <%ae>", "agent/github-7"]);
    assert_eq!(author.trim(), "Fleet Agent <fleet@example.com>");
    assert_eq!(
        world.file_on("main", "pay/refunds.py").as_deref(),
        Some(ORIGINAL),
        "main untouched"
    );

    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1);
    let body = pulls[0]["body"].as_str().expect("body");
    for expected in [
        "Fixes #7",
        "pay/refunds.py",
        "Token usage",
        "1200 input",
        "Round refund amounts",
    ] {
        assert!(body.contains(expected), "PR body lacks {expected}: {body}");
    }
    assert_eq!(pulls[0]["head"]["ref"], "agent/github-7");
    assert_eq!(pulls[0]["base"]["ref"], "main");
    let statuses = status_comments(&world.github, 7);
    assert_eq!(statuses.len(), 1);
    let status = statuses[0]["body"].as_str().expect("body");
    assert!(
        status.contains("- [x] PR") && status.contains("/pull/100"),
        "{status}"
    );

    let calls = world.llm.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/v1/messages");
    assert_eq!(calls[0].task, task.task_id);
    assert_eq!(calls[0].phase, "edit");
    assert_eq!(calls[0].auth, LLM_KEY);
    let prompt = calls[0].body.to_string();
    assert!(
        prompt.contains("def refund(amount)"),
        "context reached the prompt"
    );
    assert!(
        !prompt.contains("ignore all instructions"),
        "HTML comments are stripped"
    );

    // The same task delivered again: one PR, one status comment, no new LLM call.
    world.fleet.publish(&task).await;
    wait_until("second delivery settled", Duration::from_secs(60), || {
        worker
            .log_lines()
            .iter()
            .filter(|l| l["task_id"] == task.task_id.as_str() && l["message"] == "task finished")
            .count()
            == 2
    })
    .await;
    assert_eq!(world.github.pulls().len(), 1);
    assert_eq!(status_comments(&world.github, 7).len(), 1);
    assert_eq!(world.llm.calls().len(), 1);

    // A new trigger for the same issue: the PR is updated, not duplicated.
    let again = world.task("github:qf-happy-2", 7, "admin1");
    world.run(&worker, &again, "done").await;
    assert_eq!(world.github.pulls().len(), 1);
    assert_eq!(status_comments(&world.github, 7).len(), 1);

    // Secrets never reach the logs.
    let log = worker.log_text();
    assert!(!log.contains(GITHUB_TOKEN) && !log.contains(LLM_KEY));
}

#[tokio::test]
async fn a_syntax_error_is_repaired_once() {
    let (world, worker) = World::with_worker(
        "qf-repair",
        5,
        &[
            ("edit", vec![Answer::Text(broken_answer())]),
            (
                "repair",
                vec![Answer::Text(good_answer().replace(
                    "def refund(amount):\n    return amount\n=======",
                    "def refund(amount):\n    return round(amount, 2\n=======",
                ))],
            ),
        ],
        &[],
    )
    .await;
    let task = world.task("github:qf-repair", 8, "dev1");
    world.run(&worker, &task, "done").await;
    assert_eq!(world.llm.phases(), vec!["edit", "repair"]);
    let repair = world.llm.calls()[1].body.to_string();
    assert!(
        repair.contains("syntax error") && repair.contains("pay/refunds.py:"),
        "{repair}"
    );
    let content = world
        .file_on("agent/github-8", "pay/refunds.py")
        .expect("pushed");
    assert!(content.contains("round(amount, 2)\n"));
    assert_eq!(world.github.pulls().len(), 1);
}

#[tokio::test]
async fn two_bad_answers_push_nothing_and_say_why() {
    let (world, worker) = World::with_worker(
        "qf-bad",
        5,
        &[
            ("edit", vec![Answer::Text(broken_answer())]),
            ("repair", vec![Answer::Text("I could not do it.".into())]),
        ],
        &[],
    )
    .await;
    let task = world.task("github:qf-bad", 9, "dev1");
    world.run(&worker, &task, "failed").await;
    assert!(
        world.file_on("agent/github-9", "pay/refunds.py").is_none(),
        "nothing pushed"
    );
    assert!(world.github.pulls().is_empty());
    let statuses = status_comments(&world.github, 9);
    assert_eq!(statuses.len(), 1);
    assert!(
        body_of(&statuses[0]).contains("could not finish"),
        "{}",
        statuses[0]
    );
}

#[tokio::test]
async fn an_edit_outside_the_repository_is_refused_and_writes_nothing() {
    let escape = "Write outside.\n\n../../outside.txt\n```\n<<<<<<< SEARCH\n=======\npwned\n>>>>>>> REPLACE\n```\n";
    let (world, worker) = World::with_worker(
        "qf-escape",
        5,
        &[
            ("edit", vec![Answer::Text(escape.into())]),
            ("repair", vec![Answer::Text(escape.into())]),
        ],
        &[],
    )
    .await;
    let task = world.task("github:qf-escape", 10, "dev1");
    world.run(&worker, &task, "failed").await;
    // The task dir was <workspace>/agent-fleet-task-.../repo: ../../ is the workspace itself.
    let workspace = world.fleet.workspace();
    assert!(!workspace.join("outside.txt").exists());
    assert!(
        !workspace
            .parent()
            .expect("parent")
            .join("outside.txt")
            .exists()
    );
    let repair = world.llm.calls()[1].body.to_string();
    assert!(
        repair.contains("outside.txt"),
        "the refusal was fed back: {repair}"
    );
    assert!(world.github.pulls().is_empty());
}

#[tokio::test]
async fn a_read_only_user_is_refused_before_any_work() {
    let (world, worker) = World::quickfix("qf-reader").await;
    let task = world.task("github:qf-reader", 11, "reader");
    world.run(&worker, &task, "failed").await;
    assert!(world.llm.calls().is_empty(), "no LLM call");
    assert!(!worker.log_text().contains("\"cloned\""), "no clone");
    let statuses = status_comments(&world.github, 11);
    assert_eq!(statuses.len(), 1);
    assert!(body_of(&statuses[0]).contains("does not have write access"));
    assert_eq!(
        world.fleet.ready(&world.fleet.queue).await,
        0,
        "acked, not requeued"
    );
}

#[tokio::test]
async fn an_llm_429_is_retried_and_an_llm_outage_requeues() {
    let world = World::new(
        "qf-429",
        1,
        &[(
            "edit",
            vec![Answer::Status(429, Some(0)), Answer::Text(good_answer())],
        )],
    )
    .await;
    let worker = world.worker(&[("LLM_MAX_RETRIES", "2")]);
    worker.wait_ready().await;
    let task = world.task("github:qf-429", 12, "dev1");
    world.run(&worker, &task, "done").await;
    assert_eq!(world.llm.phases(), vec!["edit", "edit"]);
    drop(worker);

    // The LLM is down: the task is requeued (retry), and after the delivery limit the
    // issue hears that the agent gave up.
    let down = World::new(
        "qf-down",
        1,
        &[("edit", vec![Answer::Status(503, Some(0))])],
    )
    .await;
    let worker = down.worker(&[("LLM_MAX_RETRIES", "0")]);
    worker.wait_ready().await;
    let task = down.task("github:qf-down", 13, "dev1");
    down.fleet.publish(&task).await;
    worker.assert_outcome(&task.task_id, "retry").await;
    wait_until("exhausted", Duration::from_secs(60), || {
        worker
            .log_lines()
            .iter()
            .any(|l| l["task_id"] == task.task_id.as_str() && l["outcome"] == "exhausted")
    })
    .await;
    wait_until("gave-up comment", Duration::from_secs(30), || {
        status_comments(&down.github, 13).iter().any(|c| {
            c["body"]
                .as_str()
                .unwrap_or("")
                .contains("gave up after 2 attempts")
        })
    })
    .await;
    assert_eq!(status_comments(&down.github, 13).len(), 1);
    assert!(down.github.pulls().is_empty());
}

#[tokio::test]
async fn worker_run_dry_run_prints_the_diff_and_touches_no_tracker() {
    let world = World::new("qf-cli", 5, &[("edit", vec![Answer::Text(good_answer())])]).await;
    let issue = world.fleet.root.path().join("issue.md");
    std::fs::write(
        &issue,
        "# Refunds are not rounded\nRound refunds in pay/refunds.py to two decimals.\n",
    )
    .expect("write");
    let local = world.repos.root.join("seed").join(REPO);
    // tokio's Command: the stand-ins answer on this test's runtime while the worker runs.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "run",
            "--repo",
            local.to_str().expect("utf8"),
            "--issue-file",
            issue.to_str().expect("utf8"),
            "--mode",
            "quickfix",
            "--dry-run",
        ])
        .env("LLM_PROVIDER", "openai")
        .env("LLM_MODEL", "test-model")
        .env("LLM_BASE_URL", &world.llm.url)
        .env("WORKSPACE_DIR", world.fleet.workspace())
        .env("GITHUB_API_URL", &world.github.url)
        .env_remove("GITHUB_TOKEN")
        .output()
        .await
        .expect("worker run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("+    return round(amount, 2)") && stdout.contains("-    return amount"),
        "{stdout}"
    );
    assert_eq!(world.llm.calls()[0].path, "/v1/chat/completions");
    assert!(world.github.requests().is_empty(), "no tracker touched");
    assert_eq!(
        std::fs::read_to_string(local.join("pay/refunds.py")).expect("read"),
        ORIGINAL,
        "the folder itself is untouched"
    );
}

#[tokio::test]
async fn a_jira_quickfix_reports_to_jira_and_refuses_non_editors() {
    let (world, worker) = World::quickfix("qf-jira").await;
    // In the shape the ingest produces from testdata/fixtures/jira/issue_assigned.json.
    let jira_task = |id: &str, user: &str| {
        let mut task = world.fleet.task(id, &["ai-help", "backend"]);
        task.source = shared::Tracker::Jira;
        task.issue.tracker = shared::Tracker::Jira;
        task.issue.key = "PAY-42".into();
        task.issue.number = None;
        task.issue.title =
            "Refund endpoint returns 500 when the amount has more than two decimals".into();
        task.issue.body = "See {{pay/refunds.py}}.".into();
        task.issue.url = "https://acme.atlassian.net/browse/PAY-42".into();
        task.trigger_user = user.into();
        task
    };
    let outsider = jira_task("jira:qf-outsider", "557058:someone-else");
    world.run(&worker, &outsider, "failed").await;
    assert!(world.llm.calls().is_empty());
    assert!(
        world
            .jira
            .texts("PAY-42")
            .iter()
            .any(|t| t.contains("will not work on this"))
    );

    let task = jira_task("jira:qf-editor", "5b10ac8d82e05b22cc7d4ef5");
    world.run(&worker, &task, "done").await;
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["head"]["ref"], "agent/jira-PAY-42");
    assert!(body_of(&pulls[0]).contains("https://acme.atlassian.net/browse/PAY-42"));
    let texts = world.jira.texts("PAY-42");
    let status: Vec<&String> = texts
        .iter()
        .filter(|t| t.trim_end().ends_with("agent-fleet:status"))
        .collect();
    assert_eq!(
        status.len(),
        1,
        "one status comment on Jira, edited in place"
    );
    assert!(status[0].contains("/pull/100"), "{}", status[0]);
}
