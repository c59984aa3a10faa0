//! The SQLite ledger against real SQLite files (a temp dir each): the projection, the
//! append-only audit, the quotas asked from several connections at once, dead letters, and a
//! file opened again.
//!
//! The quota test checks that one task of a user is let in per round whichever connection
//! asks; it does not catch a lost race (it passed with the transaction removed: the window
//! is too small to hit). Atomicity rests on every admission being one `BEGIN IMMEDIATE`
//! transaction (`quota.rs`), as on PostgreSQL it rests on the advisory lock.

use super::SqliteLedger;
use crate::dead::{Claim, DeadLetter};
use crate::event::{AuditEntry, AuditKind, Event, EventKind, Outcome, Record};
use crate::query::TaskFilter;
use crate::quota::{Admission, Quota, QuotaLimits};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

fn received(task_id: &str, user: &str) -> Record {
    Record::Event(Event::now(
        task_id,
        EventKind::Received {
            tracker: "github".into(),
            issue_key: "acme/payments#7".into(),
            issue_url: "https://github.com/acme/payments/issues/7".into(),
            repo_url: "https://github.com/acme/payments".into(),
            mode: "quickfix".into(),
            trigger_user: user.into(),
            message: Some(json!({ "task_id": task_id })),
        },
    ))
}

fn event(task_id: &str, kind: EventKind) -> Record {
    Record::Event(Event::now(task_id, kind))
}

async fn open(dir: &tempfile::TempDir) -> SqliteLedger {
    SqliteLedger::open(&dir.path().join("ledger.db"))
        .await
        .expect("open")
}

#[tokio::test]
async fn a_task_life_is_projected_once_and_survives_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open(&dir).await;
    let id = "github:t1";
    let batch = vec![
        received(id, "dev1"),
        event(id, EventKind::Published),
        event(
            id,
            EventKind::Started {
                attempt: 1,
                worker: "w:1".into(),
            },
        ),
        event(
            id,
            EventKind::Phase {
                phase: "context".into(),
            },
        ),
        event(
            id,
            EventKind::LlmCall {
                phase: "edit".into(),
                input_tokens: 1200,
                output_tokens: 80,
                cost_usd: 0.0048,
            },
        ),
        event(
            id,
            EventKind::Check {
                name: "cents".into(),
                result: "passed".into(),
                duration_ms: 12,
            },
        ),
        event(
            id,
            EventKind::PullRequest {
                url: "https://github.com/acme/payments/pull/3".into(),
                number: 3,
            },
        ),
        event(
            id,
            EventKind::Finished {
                outcome: Outcome::Done,
                pr_url: None,
                error: None,
            },
        ),
    ];
    db.write(&batch).await.expect("write");
    // The same batch again (a commit whose answer was lost): nothing doubles.
    db.write(&batch).await.expect("write again");

    let task = db.task(id).await.expect("task").expect("known");
    assert_eq!(task.state, "done", "{task:?}");
    assert_eq!((task.attempts, task.llm_calls), (1, 1), "{task:?}");
    assert_eq!((task.tokens.input, task.tokens.output), (1200, 80));
    assert!((task.cost_usd - 0.0048).abs() < 1e-12, "{task:?}");
    assert_eq!(
        task.pr_url.as_deref(),
        Some("https://github.com/acme/payments/pull/3")
    );
    assert_eq!(
        task.checks,
        json!([{"name": "cents", "result": "passed", "duration_ms": 12}])
    );
    assert_eq!(
        (task.issue.key.as_str(), task.trigger_user.as_str()),
        ("acme/payments#7", "dev1")
    );
    assert_eq!(task.phase, None, "a finished task is in no phase");
    let kinds: Vec<String> = db
        .events(id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "received",
            "published",
            "started",
            "phase",
            "llm_call",
            "check",
            "pull_request",
            "finished"
        ]
    );
    assert_eq!(
        db.message(id).await.expect("message"),
        Some(json!({ "task_id": id }))
    );
    assert!(db.task("github:unknown").await.expect("task").is_none());

    drop(db);
    let again = open(&dir).await;
    let task = again
        .task(id)
        .await
        .expect("task")
        .expect("kept in the file");
    assert_eq!(task.state, "done");
    assert_eq!(again.events(id).await.expect("events").len(), 8);
}

#[tokio::test]
async fn task_lists_filter_like_postgres_and_the_audit_is_append_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open(&dir).await;
    db.write(&[
        received("github:a", "dev1"),
        received("github:b", "dev2"),
        event(
            "github:b",
            EventKind::DeadLettered {
                reason: "rejected".into(),
            },
        ),
        Record::Audit(AuditEntry::now(
            AuditKind::Trigger,
            Some("github:a"),
            Some("dev1"),
            json!({ "event": "issues.labeled" }),
        )),
    ])
    .await
    .expect("write");
    let ids = |tasks: Vec<crate::query::TaskView>| -> Vec<String> {
        tasks.into_iter().map(|t| t.task_id).collect()
    };
    let filter = |state: Option<&str>, repo: Option<&str>, user: Option<&str>| TaskFilter {
        state: state.map(str::to_owned),
        repo: repo.map(str::to_owned),
        user: user.map(str::to_owned),
        limit: 10,
    };
    let all = ids(db.tasks(&filter(None, None, None)).await.expect("all"));
    assert_eq!(all.len(), 2);
    assert_eq!(
        ids(db
            .tasks(&filter(Some("dead"), None, None))
            .await
            .expect("dead")),
        ["github:b"]
    );
    assert_eq!(
        ids(db
            .tasks(&filter(None, None, Some("dev1")))
            .await
            .expect("user")),
        ["github:a"]
    );
    for repo in ["acme/payments", "https://github.com/acme/payments"] {
        assert_eq!(
            db.tasks(&filter(None, Some(repo), None))
                .await
                .expect("repo")
                .len(),
            2
        );
    }
    for repo in ["payments/x", "me/payments"] {
        assert!(
            db.tasks(&filter(None, Some(repo), None))
                .await
                .expect("repo")
                .is_empty(),
            "{repo}"
        );
    }

    let audit = db
        .audit(DateTime::<Utc>::UNIX_EPOCH, 100)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].kind.as_str(), audit[0].actor.as_deref()),
        ("trigger", Some("dev1"))
    );
    assert_eq!(audit[0].detail["event"], "issues.labeled");
    assert!(
        db.audit(Utc::now() + chrono::Duration::hours(1), 100)
            .await
            .expect("later")
            .is_empty()
    );
    let page = db
        .audit_page(DateTime::<Utc>::UNIX_EPOCH, 0, 10)
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].1, audit[0]);
    let after = db
        .audit_page(DateTime::<Utc>::UNIX_EPOCH, page[0].0, 10)
        .await
        .expect("next page");
    assert!(after.is_empty(), "the cursor moves past what was read");
    for sql in [
        "UPDATE ledger_audit SET actor = 'x'",
        "DELETE FROM ledger_audit",
    ] {
        let refused = db.with(move |c| c.execute(sql, [])).await;
        assert!(
            refused.is_err_and(|e| e.to_string().contains("append-only")),
            "{sql}"
        );
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_task_of_a_user_is_let_in_whichever_connection_asks() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = open(&dir).await;
    let mut handles = vec![first.clone()];
    for _ in 0..5 {
        handles.push(open(&dir).await);
    }
    let limits = QuotaLimits {
        running_per_user: Some(1),
        ..QuotaLimits::default()
    };
    for round in 0..30 {
        let ids: Vec<String> = (0..handles.len())
            .map(|i| format!("r{round}-{i}"))
            .collect();
        let asked = handles
            .iter()
            .zip(&ids)
            .map(|(db, id)| db.admit(id, "dev1", "acme/payments", limits, LEASE));
        let answers = futures_util::future::join_all(asked).await;
        let admitted = answers
            .into_iter()
            .map(|a| a.expect("answered"))
            .filter(|a| *a == Admission::Admitted)
            .count();
        assert_eq!(admitted, 1, "round {round}: exactly one of them is let in");
        for id in &ids {
            first.release(id).await.expect("release");
        }
    }

    // Held, renewed, then given back.
    assert_eq!(
        first
            .admit("t1", "dev1", "r", limits, LEASE)
            .await
            .expect("admit"),
        Admission::Admitted
    );
    assert_eq!(
        first
            .admit("t1", "dev1", "r", limits, LEASE)
            .await
            .expect("redelivery"),
        Admission::Admitted,
        "a task holding its slot keeps it"
    );
    first.renew("t1", LEASE).await.expect("renew");
    assert_eq!(
        first
            .admit("t2", "dev1", "r", limits, LEASE)
            .await
            .expect("admit"),
        Admission::Wait {
            quota: Quota::RunningPerUser,
            in_use: 1,
            limit: 1
        }
    );
    first.release("t1").await.expect("release");
    assert_eq!(
        first
            .admit("t2", "dev1", "r", limits, LEASE)
            .await
            .expect("admit"),
        Admission::Admitted
    );

    // A lease that ran out (a killed process) no longer counts.
    let per_repo = QuotaLimits {
        running_per_repo: Some(1),
        ..QuotaLimits::default()
    };
    let short = Duration::from_millis(1);
    first
        .admit("r1", "u", "repo2", per_repo, short)
        .await
        .expect("admit");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        first
            .admit("r2", "v", "repo2", per_repo, LEASE)
            .await
            .expect("admit"),
        Admission::Admitted
    );

    let per_day = QuotaLimits {
        tasks_per_user_per_day: Some(2),
        ..QuotaLimits::default()
    };
    for task in ["d1", "d2"] {
        first
            .admit(task, "daily", "r", per_day, LEASE)
            .await
            .expect("admit");
        first.release(task).await.expect("release");
    }
    assert!(matches!(
        first
            .admit("d3", "daily", "r", per_day, LEASE)
            .await
            .expect("admit"),
        Admission::Wait {
            quota: Quota::TasksPerUserPerDay,
            in_use: 2,
            ..
        }
    ));
    assert_eq!(
        first
            .admit("d1", "daily", "r", per_day, LEASE)
            .await
            .expect("back"),
        Admission::Admitted,
        "a task admitted today is not counted twice"
    );
}

fn letter(history: serde_json::Value) -> DeadLetter {
    DeadLetter {
        message_id: "github:dl".into(),
        task_id: Some("github:dl".into()),
        body: br#"{"task_id":"github:dl"}"#.to_vec(),
        reason: "delivery_limit".into(),
        count: 2,
        first_death_at: DateTime::<Utc>::from_timestamp(1_764_000_000, 0),
        history,
    }
}

#[tokio::test]
async fn dead_letters_are_kept_once_claimed_once_and_reopened_by_a_new_death() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = open(&dir).await;
    let first = json!([{"reason": "delivery_limit", "time": 1}]);
    db.keep_dead(&letter(first.clone())).await.expect("keep");
    db.keep_dead(&letter(first.clone()))
        .await
        .expect("the same death again");
    let open_letters = db.list_dead(false, 10).await.expect("list");
    assert_eq!(open_letters.len(), 1);
    assert_eq!(
        open_letters[0].history, first,
        "the same death is kept once"
    );
    assert_eq!(open_letters[0].count, 2);
    assert_eq!(
        open_letters[0].first_death_at.map(|t| t.timestamp()),
        Some(1_764_000_000)
    );

    let Claim::Claimed(view, body) = db.claim_dead("github:dl", "ops").await.expect("claim") else {
        panic!("the first claim wins");
    };
    assert_eq!(view.replayed_by.as_deref(), Some("ops"));
    assert_eq!(body, br#"{"task_id":"github:dl"}"#);
    assert!(matches!(
        db.claim_dead("github:dl", "other").await.expect("claim"),
        Claim::Taken(_)
    ));
    assert!(db.list_dead(false, 10).await.expect("list").is_empty());
    assert_eq!(db.list_dead(true, 10).await.expect("all").len(), 1);
    db.unclaim_dead("github:dl", "other")
        .await
        .expect("not theirs");
    assert!(db.list_dead(false, 10).await.expect("list").is_empty());
    db.unclaim_dead("github:dl", "ops").await.expect("unclaim");
    assert_eq!(db.list_dead(false, 10).await.expect("list").len(), 1);
    assert!(matches!(
        db.claim_dead("github:dl", "ops").await.expect("claim"),
        Claim::Claimed(..)
    ));

    // The replayed letter died again: open again, both deaths in its history.
    let second = json!([{"reason": "rejected", "time": 2}]);
    db.keep_dead(&letter(second)).await.expect("keep");
    let again = db.list_dead(false, 10).await.expect("list");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].replayed_at, None);
    assert_eq!(
        again[0].history,
        json!([{"reason": "delivery_limit", "time": 1}, {"reason": "rejected", "time": 2}])
    );
    assert!(matches!(
        db.claim_dead("nothing", "ops").await.expect("claim"),
        Claim::Missing
    ));
}
