//! At-least-once consumption proven with real worker processes and the real broker: nothing
//! lost, nothing done twice, poison dead-lettered, graceful and hard stops.

mod common;

use common::{Fleet, close_broker_connection_of, pid_of, wait_until, workdir_of};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Publishes task `id` with `labels` and waits until it started: its `started` records.
async fn started(fleet: &Fleet, id: &str, labels: &[&str]) -> Vec<String> {
    fleet.publish_task(id, labels).await;
    fleet.wait_record(id, "started").await
}

/// Asserts how many records of each kind task `id` left: `(kind, count)` each (`started`
/// once and `done` once is "handled exactly once").
fn assert_records(fleet: &Fleet, id: &str, counts: &[(&str, usize)]) {
    for &(kind, count) in counts {
        assert_eq!(fleet.record(id, kind).len(), count, "{id}: {kind} records");
    }
}

#[tokio::test]
async fn three_workers_thirty_tasks_each_handled_exactly_once() {
    let fleet = Fleet::new("three", 5).await;
    // All three share one WORKSPACE_DIR: their start-up sweeps must not touch live dirs.
    let workers: Vec<_> = (0..3).map(|_| fleet.spawn(&[])).collect();
    for w in &workers {
        w.wait_ready().await;
    }
    let ids: Vec<String> = (0..30).map(|i| format!("github:three-{i}")).collect();
    for id in &ids {
        fleet.publish_task(id, &["test:sleep=50"]).await;
    }
    wait_until("30 tasks done", LONG, || {
        ids.iter().all(|id| !fleet.record(id, "done").is_empty())
    })
    .await;
    for w in &workers {
        w.signal("TERM");
    }
    let mut handled_by = std::collections::HashSet::new();
    for mut w in workers {
        assert!(w.exit_status(LONG).await.success());
    }
    for id in &ids {
        assert_records(&fleet, id, &[("started", 1), ("done", 1)]);
        let done = fleet.record(id, "done");
        handled_by.insert(pid_of(&done[0]));
        assert!(!workdir_of(&done[0]).exists(), "{id}'s dir was left behind");
    }
    assert!(handled_by.len() >= 2, "work was not spread: {handled_by:?}");
    // Nothing was left unacked (it would be back in the queue after the workers stopped).
    assert_eq!(fleet.ready(&fleet.queue).await, 0);
    assert_eq!(fleet.ready(&fleet.dead_queue()).await, 0);
}

#[tokio::test]
async fn a_killed_worker_s_task_is_redelivered_and_its_dir_swept() {
    let fleet = Fleet::new("kill9", 5).await;
    let mut first = fleet.ready_worker(&[]).await;
    let orphan = workdir_of(&started(&fleet, "github:kill9", &["test:sleep=4000"]).await[0]);
    first.kill9();
    assert!(orphan.exists(), "a killed worker leaves its dir behind");

    let second = fleet.ready_worker(&[]).await;
    assert!(
        !orphan.exists(),
        "the next start sweeps the killed worker's dir"
    );
    let done = fleet.wait_record("github:kill9", "done").await;
    assert_eq!(done.len(), 1);
    assert_eq!(pid_of(&done[0]), second.pid());
    assert!(done[0].contains("attempt=2"), "{}", done[0]);
    assert!(
        second
            .metrics()
            .await
            .contains("agent_fleet_redeliveries_total 1")
    );
}

#[tokio::test]
async fn sigterm_finishes_the_task_acks_it_and_takes_nothing_new() {
    let fleet = Fleet::new("term", 5).await;
    let mut worker = fleet.ready_worker(&[]).await;
    fleet
        .publish_task("github:term-a", &["test:sleep=2000"])
        .await;
    fleet.publish_task("github:term-b", &[]).await;
    fleet.wait_record("github:term-a", "started").await;
    worker.signal("TERM");
    let status = worker.exit_status(LONG).await;
    assert!(status.success(), "exit status {status:?}");
    // The in-flight task finished; nothing was taken after SIGTERM.
    assert_records(&fleet, "github:term-a", &[("done", 1)]);
    assert_records(&fleet, "github:term-b", &[("started", 0)]);
    // The finished task was acked (not back in the queue); the untouched one waits.
    assert_eq!(fleet.ready(&fleet.queue).await, 1, "{}", worker.log_text());
    let log = worker.log_text();
    assert!(log.contains("consumer cancelled"), "{log}");
}

#[tokio::test]
async fn sigterm_past_the_grace_requeues_the_task() {
    let fleet = Fleet::new("grace", 5).await;
    let mut worker = fleet.ready_worker(&[("SHUTDOWN_GRACE_SECS", "1")]).await;
    let workdir = workdir_of(&started(&fleet, "github:grace", &["test:sleep=30000"]).await[0]);
    worker.signal("TERM");
    assert!(worker.exit_status(LONG).await.success());
    assert!(fleet.record("github:grace", "done").is_empty());
    assert!(!workdir.exists(), "cleaned up before the requeue");
    // The broker returns the unacked delivery once it has seen the connection close: that
    // may be a moment after the worker's exit.
    testkit::wait::poll_until(
        "requeued for another worker",
        std::time::Duration::from_secs(10),
        || fleet.ready(&fleet.queue),
        |ready| *ready == 1,
    )
    .await;
}

#[tokio::test]
async fn an_always_transient_task_is_dead_lettered_after_the_limit_and_reported() {
    let fleet = Fleet::new("transient", 2).await;
    let _worker = fleet.ready_worker(&[]).await;
    fleet
        .publish_task("github:always-fails", &["test:fail=transient"])
        .await;
    fleet.wait_record("github:always-fails", "exhausted").await;
    let mut dead = Vec::new();
    for _ in 0..200 {
        dead = fleet.take_dead().await;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(common::death_reason(&dead[0]), "delivery_limit");
    // A delivery limit of 2: the first delivery and two redeliveries.
    assert_records(&fleet, "github:always-fails", &[("started", 3)]);
    assert_eq!(
        fleet.record("github:always-fails", "exhausted"),
        vec!["asked to fail"]
    );
    // A task that fails once and then works is retried, not dead-lettered.
    fleet
        .publish_task("github:flaky", &["test:fail-first=1"])
        .await;
    fleet.wait_record("github:flaky", "done").await;
    assert_records(&fleet, "github:flaky", &[("started", 2)]);
    assert!(fleet.take_dead().await.is_empty());
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_at_once_and_the_worker_keeps_serving() {
    let fleet = Fleet::new("poison", 5).await;
    let worker = fleet.ready_worker(&[]).await;
    let valid = serde_json::to_value(fleet.task("github:after-poison", &[])).expect("json");
    let mut no_version = valid.clone();
    no_version
        .as_object_mut()
        .expect("object")
        .remove("version");
    let mut version_two = valid.clone();
    version_two["version"] = serde_json::json!(2);
    fleet.publish_raw(b"{this is not json").await;
    fleet.publish_raw(no_version.to_string().as_bytes()).await;
    fleet.publish_raw(version_two.to_string().as_bytes()).await;
    fleet.publish_task("github:after-poison", &[]).await;
    fleet.wait_record("github:after-poison", "done").await;
    let mut dead = Vec::new();
    for _ in 0..200 {
        dead.extend(fleet.take_dead().await);
        if dead.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead.len(), 3);
    for message in &dead {
        assert_eq!(
            common::death_reason(message),
            "rejected",
            "dead-lettered at once, not by the limit"
        );
    }
    let bodies: Vec<&[u8]> = dead.iter().map(|m| m.data.as_slice()).collect();
    assert!(
        bodies.contains(&b"{this is not json".as_slice()),
        "bodies kept"
    );
    assert!(
        worker
            .metrics()
            .await
            .contains(r#"agent_fleet_tasks_total{mode="unknown",outcome="rejected"} 3"#)
    );
}

#[tokio::test]
async fn a_closed_broker_connection_is_survived_idle_and_mid_task() {
    let fleet = Fleet::new("reconnect", 5).await;
    let worker = fleet.ready_worker(&[]).await;
    // Idle.
    close_broker_connection_of(worker.pid());
    fleet.publish_task("github:after-idle-close", &[]).await;
    fleet.wait_record("github:after-idle-close", "done").await;

    // Mid-task: the task finishes, its ack dies with the channel, the broker redelivers, and
    // the redelivery is settled with the first run's outcome instead of running again.
    started(&fleet, "github:mid-task", &["test:sleep=2500"]).await;
    close_broker_connection_of(worker.pid());
    fleet.wait_record("github:mid-task", "done").await;
    // The redelivery is settled (acked) without a second run, whether it arrived while the
    // first run was still going or after it ended.
    let redelivery_acked = || {
        worker.log_lines().iter().any(|l| {
            l["task_id"] == "github:mid-task"
                && l["message"] == "delivery settled"
                && l["settle"] == "ack"
        })
    };
    wait_until(
        "redelivery acked",
        Duration::from_secs(20),
        redelivery_acked,
    )
    .await;
    // Ran once, completed once.
    assert_records(&fleet, "github:mid-task", &[("started", 1), ("done", 1)]);
    assert_eq!(fleet.ready(&fleet.queue).await, 0);
    assert_eq!(fleet.ready(&fleet.dead_queue()).await, 0);
}

#[tokio::test]
async fn the_task_dir_is_gone_before_the_settle_in_every_outcome() {
    let fleet = Fleet::new("cleanup", 1).await;
    let worker = fleet.ready_worker(&[("TASK_TIMEOUT_SECS", "1")]).await;
    let cases = [
        ("github:c-done", vec![]),
        ("github:c-permanent", vec!["test:fail=permanent"]),
        ("github:c-transient", vec!["test:fail=transient"]),
        ("github:c-unsupported", vec!["test:fail=unsupported"]),
        ("github:c-panic", vec!["test:fail=panic"]),
        ("github:c-timeout", vec!["test:sleep=20000"]),
    ];
    for (id, labels) in &cases {
        fleet.publish_task(id, labels).await;
    }
    // Every case ends settled for good: acked, rejected, or dead-lettered after 2 attempts.
    let settled_for_good = |id: &str| {
        worker.log_lines().iter().any(|l| {
            l["task_id"] == id
                && l["message"] == "task finished"
                && matches!(
                    l["outcome"].as_str(),
                    Some("done" | "failed" | "rejected" | "exhausted")
                )
        })
    };
    wait_until("all cases settled", LONG, || {
        cases.iter().all(|(id, _)| settled_for_good(id))
    })
    .await;
    let lines = worker.log_lines();
    for (id, _) in &cases {
        let started = fleet.record(id, "started");
        assert!(!started.is_empty(), "{id} never started");
        for line in &started {
            assert!(!workdir_of(line).exists(), "{id}: dir left behind");
        }
        let of_task: Vec<(usize, &serde_json::Value)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l["task_id"] == *id)
            .collect();
        let removed: Vec<usize> = of_task
            .iter()
            .filter(|(_, l)| l["message"] == "task dir removed")
            .map(|(i, _)| *i)
            .collect();
        let settled: Vec<usize> = of_task
            .iter()
            .filter(|(_, l)| l["message"] == "delivery settled")
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(
            removed.len(),
            started.len(),
            "{id}: one removal per attempt"
        );
        assert_eq!(settled.len(), started.len(), "{id}: one settle per attempt");
        for (r, s) in removed.iter().zip(&settled) {
            assert!(r < s, "{id}: settled before its dir was removed");
        }
        for (_, line) in &of_task {
            assert!(
                line["issue"].is_string() && line["repo"].is_string(),
                "{id}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn once_takes_one_task_and_exits_and_exits_when_idle() {
    let fleet = Fleet::new("once", 5).await;
    fleet
        .publish_task("github:once-a", &["test:sleep=200"])
        .await;
    fleet.publish_task("github:once-b", &[]).await;
    let mut worker = fleet.spawn_args(&["--once"], &[("ONCE_IDLE_SECS", "5")]);
    assert!(worker.exit_status(LONG).await.success());
    let a = fleet.record("github:once-a", "done").len();
    let b = fleet.record("github:once-b", "done").len();
    assert_eq!(a + b, 1, "exactly one task taken");
    assert_eq!(
        fleet.ready(&fleet.queue).await,
        1,
        "the other one is still queued"
    );

    fleet.take_dead().await;
    let empty = Fleet::new("once-idle", 5).await;
    let mut idle = empty.spawn_args(&["--once"], &[("ONCE_IDLE_SECS", "1")]);
    assert!(idle.exit_status(Duration::from_secs(20)).await.success());
}
