//! The ledger against the real PostgreSQL on 127.0.0.1:5432, a database per test: events
//! projected into the task row once each, the audit trail append-only, an outage survived
//! with nothing lost, quotas that hold under concurrent admissions.

use fleet_ledger::quota::{self, Admission, Quota, QuotaLimits};
use fleet_ledger::{
    AuditEntry, AuditKind, Event, EventKind, Ledger, LedgerMetrics, Outcome, query,
};
use std::sync::Arc;
use std::time::Duration;
use testkit::db::TestDb;

/// The test's database, migrated.
async fn migrated(db: &TestDb) -> deadpool_postgres::Pool {
    let pool = fleet_ledger::pool(&db.url(), 4).expect("pool");
    fleet_ledger::store::migrate(&pool).await.expect("migrate");
    pool
}

fn received(task: &str, user: &str) -> Event {
    Event::now(
        task,
        EventKind::Received {
            tracker: "github".into(),
            issue_key: "acme/payments#7".into(),
            issue_url: "https://github.com/acme/payments/issues/7".into(),
            repo_url: "https://github.com/acme/payments".into(),
            mode: "quickfix".into(),
            trigger_user: user.into(),
            message: None,
        },
    )
}

fn llm_call(task: &str, input: u64, output: u64, cost: f64) -> Event {
    Event::now(
        task,
        EventKind::LlmCall {
            phase: "edit".into(),
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
        },
    )
}

fn started_ledger(pool: deadpool_postgres::Pool) -> (Ledger, LedgerMetrics) {
    let metrics = LedgerMetrics::new(&prometheus::Registry::new());
    (Ledger::start(pool, 10_000, metrics.clone()), metrics)
}

#[tokio::test]
async fn events_are_projected_once_each_into_the_task_row() {
    let db = TestDb::new("ledger_test").await;
    let pool = migrated(&db).await;
    // Migrations twice (two services starting) change nothing.
    fleet_ledger::store::migrate(&pool)
        .await
        .expect("idempotent");
    let (ledger, _) = started_ledger(pool.clone());
    let mut events = vec![
        received("t-1", "octocat"),
        Event::now("t-1", EventKind::Published),
        Event::now(
            "t-1",
            EventKind::Started {
                attempt: 1,
                worker: "w1".into(),
            },
        ),
        Event::now(
            "t-1",
            EventKind::Phase {
                phase: "edit".into(),
            },
        ),
        llm_call("t-1", 1200, 300, 0.0081),
        llm_call("t-1", 800, 200, 0.0054),
        Event::now(
            "t-1",
            EventKind::Check {
                name: "tests".into(),
                result: "passed".into(),
                duration_ms: 1500,
            },
        ),
        Event::now(
            "t-1",
            EventKind::Finished {
                outcome: Outcome::Done,
                pr_url: Some("https://github.com/acme/payments/pull/8".into()),
                error: None,
            },
        ),
    ];
    // The same event again (a retried write): counted once.
    events.insert(5, events[4].clone());
    for event in events {
        ledger.record(event);
    }
    assert!(ledger.flush(Duration::from_secs(10)).await, "written");
    let task = query::task(&pool, "t-1")
        .await
        .expect("query")
        .expect("task row");
    assert_eq!(task.state, "done");
    assert_eq!(task.trigger_user, "octocat");
    assert_eq!(task.issue.key, "acme/payments#7");
    assert_eq!(
        (task.llm_calls, task.tokens.input, task.tokens.output),
        (2, 2000, 500)
    );
    assert!((task.cost_usd - 0.0135).abs() < 1e-9, "{}", task.cost_usd);
    assert_eq!(task.attempts, 1);
    assert_eq!(
        task.pr_url.as_deref(),
        Some("https://github.com/acme/payments/pull/8")
    );
    assert_eq!(task.checks[0]["name"], "tests");
    let kinds: Vec<String> = query::events(&pool, "t-1")
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
            "llm_call",
            "check",
            "finished"
        ]
    );
}

#[tokio::test]
async fn the_audit_trail_is_append_only() {
    let db = TestDb::new("ledger_test").await;
    let pool = migrated(&db).await;
    let (ledger, _) = started_ledger(pool.clone());
    ledger.audit(AuditEntry::now(
        AuditKind::Approval,
        Some("t-2"),
        Some("reviewer"),
        serde_json::json!({"plan_hash": "0123456789abcdef"}),
    ));
    assert!(ledger.flush(Duration::from_secs(10)).await);
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let audit = query::audit(&pool, since, 100).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].kind.as_str(), audit[0].actor.as_deref()),
        ("approval", Some("reviewer"))
    );
    let client = pool.get().await.expect("client");
    for sql in [
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
    ] {
        let error = client.execute(sql, &[]).await.expect_err(sql);
        assert!(
            error.to_string().contains("append-only")
                || format!("{error:?}").contains("append-only"),
            "{sql}: {error:?}"
        );
    }
}

#[tokio::test]
async fn an_outage_loses_nothing_and_the_ledger_catches_up() {
    let db = TestDb::new("ledger_test").await;
    migrated(&db).await; // migrated directly
    let proxy = testkit::CutProxy::start("127.0.0.1:5432", true).await;
    let pool = fleet_ledger::pool(&db.url_via(proxy.port), 2).expect("pool");
    let (ledger, metrics) = started_ledger(pool.clone());
    ledger.record(received("t-3", "octocat"));
    assert!(ledger.flush(Duration::from_secs(10)).await);

    proxy.set_enabled(false);
    for i in 0..50 {
        ledger.record(llm_call("t-3", 10, 1, 0.0));
        if i == 0 {
            // The first write during the outage fails before the rest are recorded.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while metrics.errors.get() == 0 && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(metrics.errors.get() > 0, "the outage was counted");
    assert!(
        !ledger.flush(Duration::from_millis(300)).await,
        "nothing written while down"
    );
    proxy.set_enabled(true);
    assert!(ledger.flush(Duration::from_secs(30)).await, "caught up");
    let direct = migrated(&db).await;
    let task = query::task(&direct, "t-3")
        .await
        .expect("query")
        .expect("row");
    assert_eq!(
        (task.llm_calls, task.tokens.input),
        (50, 500),
        "nothing lost, nothing doubled"
    );
    assert_eq!(metrics.dropped.get(), 0);
    assert_eq!(metrics.buffered.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_never_exceed_a_users_quota() {
    let db = TestDb::new("ledger_test").await;
    migrated(&db).await;
    // A connection per admission, opened beforehand, so the twelve transactions really
    // run at once (a race the advisory locks must win).
    let pool = fleet_ledger::pool(&db.url_via(5432), 12).expect("pool");
    let warm: Vec<_> = futures_util::future::join_all((0..12).map(|_| pool.get())).await;
    drop(warm);
    let limits = QuotaLimits {
        running_per_user: Some(2),
        running_per_repo: Some(3),
        tasks_per_user_per_day: Some(5),
    };
    let lease = Duration::from_secs(60);
    let start = Arc::new(tokio::sync::Barrier::new(12));
    let admissions: Vec<Admission> = futures_util::future::join_all((0..12).map(|i| {
        let (pool, start) = (pool.clone(), Arc::clone(&start));
        tokio::spawn(async move {
            start.wait().await;
            let task = format!("u{i}");
            quota::admit(&pool, &task, "octocat", "acme/payments", limits, lease).await
        })
    }))
    .await
    .into_iter()
    .map(|joined| joined.expect("join").expect("admit"))
    .collect();
    let admitted = admissions
        .iter()
        .filter(|a| **a == Admission::Admitted)
        .count();
    assert_eq!(admitted, 2, "{admissions:?}");
    assert!(admissions.iter().all(|a| a == &Admission::Admitted
        || matches!(
            a,
            Admission::Wait {
                quota: Quota::RunningPerUser,
                in_use: 2,
                limit: 2
            }
        )));

    // A redelivered admitted task keeps its slot; another user is limited by the repo.
    let running: Vec<String> = (0..12)
        .filter(|i| admissions[*i] == Admission::Admitted)
        .map(|i| format!("u{i}"))
        .collect();
    let admit = async |task: &str, user: &str| {
        quota::admit(&pool, task, user, "acme/payments", limits, lease)
            .await
            .expect("admit")
    };
    let redelivered = admit(&running[0], "octocat").await;
    assert_eq!(redelivered, Admission::Admitted);
    assert_eq!(admit("h1", "hubot").await, Admission::Admitted);
    assert!(matches!(
        admit("h2", "hubot").await,
        Admission::Wait {
            quota: Quota::RunningPerRepo,
            ..
        }
    ));

    // Released slots let the next in; an expired lease (a killed worker) does not count.
    let running: Vec<String> = (0..12)
        .map(|i| format!("u{i}"))
        .filter(|id| admissions[id[1..].parse::<usize>().unwrap()] == Admission::Admitted)
        .collect();
    quota::release(&pool, &running[0]).await.expect("release");
    assert_eq!(admit("u20", "octocat").await, Admission::Admitted);
    quota::renew(&pool, &running[1], Duration::ZERO)
        .await
        .expect("expire");
    assert_eq!(admit("u21", "octocat").await, Admission::Admitted);

    // The daily cap: five admissions of octocat today (two, u20, u21 = four; one more).
    quota::release(&pool, "u20").await.expect("release");
    quota::release(&pool, "h1").await.expect("release");
    assert_eq!(admit("u22", "octocat").await, Admission::Admitted);
    quota::release(&pool, "u22").await.expect("release");
    quota::release(&pool, "u21").await.expect("release");
    assert!(matches!(
        admit("u23", "octocat").await,
        Admission::Wait {
            quota: Quota::TasksPerUserPerDay,
            in_use: 5,
            limit: 5
        }
    ));
}

#[tokio::test]
async fn an_admission_waits_for_another_holding_the_users_lock_and_counts_its_slots() {
    let db = TestDb::new("ledger_test").await;
    let pool = migrated(&db).await;
    let limits = QuotaLimits {
        running_per_user: Some(2),
        ..QuotaLimits::default()
    };
    // Another admission of octocat mid-way: its lock held, two slots inserted, not yet
    // committed. A read-then-write admission would count zero now and let a third in.
    let mut client = pool.get().await.expect("client");
    let other = client.transaction().await.expect("tx");
    other
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&quota::lock_key("user", "octocat")],
        )
        .await
        .expect("lock");
    other
        .batch_execute(
            "INSERT INTO running (task_id, trigger_user, repo, lease_until) VALUES
             ('x1', 'octocat', 'acme/a', now() + interval '1 minute'),
             ('x2', 'octocat', 'acme/b', now() + interval '1 minute')",
        )
        .await
        .expect("slots");
    let pending = {
        let pool = pool.clone();
        tokio::spawn(async move {
            quota::admit(
                &pool,
                "u1",
                "octocat",
                "acme/payments",
                limits,
                Duration::from_secs(60),
            )
            .await
        })
    };
    // Time for an admission that does not wait to get it wrong; one that waits cannot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "the admission waits for the user's lock"
    );
    other.commit().await.expect("commit");
    assert_eq!(
        pending.await.expect("join").expect("admit"),
        Admission::Wait {
            quota: Quota::RunningPerUser,
            in_use: 2,
            limit: 2
        }
    );
}
