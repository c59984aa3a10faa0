//! Issue 11, the runtime's part of the trust boundary, against the real broker and real
//! worker processes: a rate-limiting GitHub does not dead-letter the task (short limits are
//! waited out in-process, long ones go through the delay queues), two tasks of one issue
//! never run at once (in one process and across workers), a delivery is taken only when a
//! permit is free, and the start-up sweep leaves a running `worker run` alone.

mod common;

use common::standins::{Answer, FakeLlm, LimitStyle, LocalGithubRepos};
use common::world::*;
use common::{Fleet, WorkerProc, close_broker_connection_of, wait_until};
use serde_json::Value;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(90);

/// The final outcome of a task (done, failed, exhausted, rejected), waiting past delays
/// and retries.
async fn settled_outcome(worker: &WorkerProc, id: &str, within: Duration) -> String {
    let mut outcome = String::new();
    wait_until(&format!("{id} settled for good"), within, || {
        outcome = worker
            .log_lines()
            .iter()
            .filter(|l| l["task_id"] == id && l["message"] == "task finished")
            .filter_map(|l| l["outcome"].as_str())
            .find(|o| matches!(*o, "done" | "failed" | "exhausted" | "rejected"))
            .unwrap_or_default()
            .to_owned();
        !outcome.is_empty()
    })
    .await;
    outcome
}

fn edit_script() -> Vec<(&'static str, Vec<Answer>)> {
    vec![("edit", vec![Answer::Text(good_answer())])]
}

/// GitHub answers `method path` with a rate limit announced by `retry-after`, for `secs`.
fn limit_with_retry_after(world: &World, method: &str, path: &str, secs: u64) {
    let window = Duration::from_secs(secs);
    world
        .github
        .rate_limit(method, path, window, LimitStyle::RetryAfter);
}

/// How a rate-limited task ends well: the limit was hit, yet the task ends in its one PR,
/// the LLM was asked once (a wait never asks it again), and nothing was dead-lettered.
async fn assert_one_pr_after_one_llm_call(world: &World) {
    assert!(world.github.rate_limited() > 0, "the limit was hit");
    assert_eq!(world.github.pulls().len(), 1, "the task ends in its PR");
    assert_eq!(world.llm.calls().len(), 1, "the LLM is asked once");
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn a_25_second_rate_limit_on_comments_and_pr_creation_ends_in_the_pr_asking_the_llm_once() {
    // The default delivery limit (5) and the default in-process wait (60 s).
    let (world, worker) = World::with_worker("rl-25s", 5, &edit_script(), &[]).await;
    let window = Duration::from_secs(25);
    world
        .github
        .rate_limit("*", "/issues/7/comments", window, LimitStyle::Reset);
    world.github.rate_limit(
        "POST",
        "/repos/acme/payments/pulls",
        window,
        LimitStyle::Reset,
    );
    let started = Instant::now();
    let task = world.task("github:rl-25s", 7, "dev1");
    world.fleet.publish(&task).await;
    let outcome = settled_outcome(&worker, &task.task_id, LONG).await;
    let took = started.elapsed();
    assert_eq!(outcome, "done", "{}", worker.log_text());
    assert_one_pr_after_one_llm_call(&world).await;
    assert!(
        took < window + Duration::from_secs(15),
        "not much longer than the limit: {took:?}"
    );
    println!("25 s rate limit: task done after {took:?}");
}

#[tokio::test]
async fn a_rate_limit_on_pr_creation_after_the_llm_answered_does_not_ask_it_again() {
    let (world, worker) = World::with_worker("rl-pr", 5, &edit_script(), &[]).await;
    // Hold the LLM's answer so that the limit starts after the edit was asked for.
    world.llm.state.lock().expect("lock").hold = true;
    let task = world.task("github:rl-pr", 8, "dev1");
    world.fleet.publish(&task).await;
    wait_until("the LLM was asked", LONG, || {
        world.llm.state.lock().expect("lock").held == 1
    })
    .await;
    limit_with_retry_after(&world, "POST", "/repos/acme/payments/pulls", 6);
    world.llm.state.lock().expect("lock").hold = false;
    assert_eq!(
        settled_outcome(&worker, &task.task_id, LONG).await,
        "done",
        "{}",
        worker.log_text()
    );
    // PR creation was rate-limited, and the answer was not asked for again.
    assert_one_pr_after_one_llm_call(&world).await;
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_in_process_wait_goes_through_the_delay_queue() {
    // A delivery limit of 1: two immediate requeues would dead-letter it.
    let (world, worker) = World::with_worker(
        "rl-long",
        1,
        &edit_script(),
        &[("GITHUB_RATE_LIMIT_MAX_WAIT_SECS", "2")],
    )
    .await;
    limit_with_retry_after(&world, "*", "/issues/9/comments", 8);
    let task = world.task("github:rl-long", 9, "dev1");
    world.fleet.publish(&task).await;
    let delay_queue = format!("{}.retry.5s", world.fleet.queue);
    let deadline = Instant::now() + LONG;
    let mut seen_in_delay_queue = false;
    loop {
        assert!(
            Instant::now() < deadline,
            "never settled: {}",
            worker.log_text()
        );
        seen_in_delay_queue |= world.fleet.ready(&delay_queue).await > 0;
        let finished = worker.log_lines().iter().any(|l| {
            l["task_id"] == task.task_id.as_str()
                && l["message"] == "task finished"
                && l["outcome"] != "delayed"
        });
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        settled_outcome(&worker, &task.task_id, LONG).await,
        "done",
        "{}",
        worker.log_text()
    );
    assert!(seen_in_delay_queue, "the task waited in {delay_queue}");
    let lines = worker.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "delayed retry published"
                && l["retry_queue"] == delay_queue.as_str()),
        "{}",
        worker.log_text()
    );
    assert_one_pr_after_one_llm_call(&world).await;
}

/// The `[start, end]` of each run of `id` that completed, from the workers' JSON logs.
fn runs(workers: &[&WorkerProc], id: &str) -> Vec<(f64, f64)> {
    let at = |l: &Value| {
        chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str().expect("timestamp"))
            .expect("rfc3339")
            .timestamp_micros() as f64
            / 1e6
    };
    let mut out = Vec::new();
    for worker in workers {
        let mut start = None;
        for line in worker.log_lines().iter().filter(|l| l["task_id"] == id) {
            match line["message"].as_str() {
                Some("task started") => start = Some(at(line)),
                Some("task finished") if line["outcome"] == "done" => {
                    out.push((start.take().expect("started before finished"), at(line)));
                }
                _ => {}
            }
        }
    }
    out
}

fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn issue_task(fleet: &Fleet, id: &str, issue: u64) -> shared::TaskMessage {
    let mut task = fleet.task(id, &["test:sleep=2000"]);
    task.issue.number = Some(issue);
    task.issue.key = format!("acme/payments#{issue}");
    task
}

#[tokio::test]
async fn two_tasks_for_one_issue_on_two_workers_never_run_at_once() {
    let fleet = Fleet::new("lock-two", 5).await;
    let first = fleet.spawn(&[]);
    let second = fleet.spawn(&[]);
    first.wait_ready().await;
    second.wait_ready().await;
    // A label and an assignment of one issue, published together: each worker takes one.
    let (label, assign) = ("github:lock-label", "github:lock-assign");
    fleet.publish(&issue_task(&fleet, label, 41)).await;
    fleet.publish(&issue_task(&fleet, assign, 41)).await;
    // The handler's record comes before the runtime's "task finished" line: wait for both.
    wait_until("both done and logged", LONG, || {
        !fleet.record(label, "done").is_empty()
            && !fleet.record(assign, "done").is_empty()
            && !runs(&[&first, &second], label).is_empty()
            && !runs(&[&first, &second], assign).is_empty()
    })
    .await;
    let (a, b) = (
        runs(&[&first, &second], label),
        runs(&[&first, &second], assign),
    );
    assert_eq!((a.len(), b.len()), (1, 1), "each ran once: {a:?} {b:?}");
    assert!(!overlap(a[0], b[0]), "runs overlapped: {a:?} {b:?}");
    let logs = format!("{}{}", first.log_text(), second.log_text());
    assert!(
        logs.contains("the issue is locked by another task"),
        "the second waited for the lock"
    );
    // Waiting is a delayed retry, not a failed delivery.
    for id in [label, assign] {
        assert_eq!(fleet.record(id, "started").len(), 1, "{id} ran once");
        assert!(
            fleet.record(id, "done")[0].contains("attempt=1"),
            "{id}: {:?}",
            fleet.record(id, "done")
        );
    }
    assert!(fleet.take_dead().await.is_empty());
}

#[tokio::test]
async fn one_issue_s_tasks_wait_for_each_other_in_one_process_but_not_other_issues() {
    let fleet = Fleet::new("lock-one", 5).await;
    let worker = fleet.ready_worker(&[("WORKER_CONCURRENCY", "3")]).await;
    let ids = ["github:lock-x1", "github:lock-x2", "github:lock-y"];
    fleet.publish(&issue_task(&fleet, ids[0], 51)).await;
    fleet.publish(&issue_task(&fleet, ids[1], 51)).await;
    fleet.publish(&issue_task(&fleet, ids[2], 52)).await;
    wait_until("all done and logged", LONG, || {
        ids.iter()
            .all(|id| !fleet.record(id, "done").is_empty() && !runs(&[&worker], id).is_empty())
    })
    .await;
    let [x1, x2, y] = ids.map(|id| runs(&[&worker], id));
    assert_eq!((x1.len(), x2.len(), y.len()), (1, 1, 1));
    assert!(
        !overlap(x1[0], x2[0]),
        "one issue's runs overlapped: {x1:?} {x2:?}"
    );
    let first_x = if x1[0].0 < x2[0].0 { x1[0] } else { x2[0] };
    assert!(
        overlap(first_x, y[0]),
        "another issue ran alongside, not after: {first_x:?} {y:?}"
    );
    assert!(fleet.take_dead().await.is_empty());
}

#[tokio::test]
async fn after_a_reconnect_a_delivery_waits_in_the_queue_until_a_permit_is_free() {
    let fleet = Fleet::new("permit", 5).await;
    let worker = fleet.ready_worker(&[("WORKER_CONCURRENCY", "1")]).await;
    let (long, next) = ("github:permit-long", "github:permit-next");
    fleet.publish_task(long, &["test:sleep=5000"]).await;
    wait_until("long task started", LONG, || {
        !fleet.record(long, "started").is_empty()
    })
    .await;
    // The broker drops the connection: the long task goes on and holds the only permit.
    close_broker_connection_of(worker.pid());
    let consuming = || {
        worker
            .log_lines()
            .iter()
            .filter(|l| l["message"] == "consuming")
            .count()
    };
    wait_until("reconnected", LONG, || consuming() >= 2).await;
    fleet.publish_task(next, &[]).await;
    // Until the long task ends, neither its redelivery nor the new task is taken: both stay
    // ready in the queue instead of waiting unacked (against consumer_timeout) for a permit.
    let mut looked = 0;
    loop {
        let ready = fleet.ready(&fleet.queue).await;
        if !fleet.record(long, "done").is_empty() {
            break;
        }
        assert_eq!(ready, 2, "a delivery was taken without a free permit");
        looked += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(looked > 10, "the window was observed ({looked} looks)");
    wait_until("next task done", LONG, || {
        !fleet.record(next, "done").is_empty()
    })
    .await;
    assert_eq!(
        fleet.record(long, "started").len(),
        1,
        "the redelivery was replayed"
    );
    wait_until("queue drained", LONG, || {
        worker
            .log_lines()
            .iter()
            .any(|l| l["task_id"] == long && l["message"] == "delivery settled")
    })
    .await;
}

/// A child process that does not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_start_up_sweep_leaves_a_running_worker_run_alone() {
    let fleet = Fleet::new("sweep-run", 5).await;
    let llm = FakeLlm::start(&edit_script()).await;
    let repos = LocalGithubRepos::new(fleet.root.path().join("git"));
    let repo = repos.create(REPO, &[("pay/refunds.py", ORIGINAL)]);
    let issue = fleet.root.path().join("issue.md");
    std::fs::write(
        &issue,
        "Refunds are not rounded\nRound them in pay/refunds.py\n",
    )
    .expect("issue file");
    // The run waits at the LLM while a worker starts on the same WORKSPACE_DIR.
    llm.state.lock().expect("lock").hold = true;
    let out = fleet.root.path().join("run.out");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["run", "--dry-run", "--repo"])
        .arg(&repo)
        .arg("--issue-file")
        .arg(&issue)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("WORKSPACE_DIR", fleet.workspace())
        .env("LLM_PROVIDER", "anthropic")
        .env("LLM_MODEL", "test-model")
        .env("LLM_BASE_URL", &llm.url)
        .env("ANTHROPIC_API_KEY", LLM_KEY)
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(fleet.root.path().join("run.err")).expect("err"))
        .spawn()
        .expect("worker run");
    let mut run = KillOnDrop(child);
    wait_until("the run asked the LLM", LONG, || {
        llm.state.lock().expect("lock").held == 1
    })
    .await;
    let task_dirs = || {
        std::fs::read_dir(fleet.workspace())
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("agent-fleet-task-")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(task_dirs(), 1, "the run's checkout");
    let worker = fleet.ready_worker(&[]).await;
    assert_eq!(
        task_dirs(),
        1,
        "the sweep left the running `worker run`'s dir"
    );
    llm.state.lock().expect("lock").hold = false;
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(status) = run.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "worker run did not end");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.success(), "worker run failed: {printed}");
    assert!(printed.contains("round(amount, 2)"), "the diff: {printed}");
    assert_eq!(task_dirs(), 0, "the run removed its own dir");
    drop(worker);
}
