//! The fleet: the real ingest (in-process, `ingest::Application` through the test kit) and
//! three `worker` processes on the real broker, 60 signed webhooks, workers killed at random
//! while they work; at the GitHub stand-in every task's effect (one pull request, one status
//! comment per issue) appears exactly once.

mod common;

use common::standins::Answer;
use common::world::*;
use common::{BROKER, wait_until};
use serde_json::json;
use std::time::Duration;
use testkit::TestIngest;
use testkit::webhook::github_labeled;

const ISSUES: u64 = 60;
const SECRET: &str = "fleet-secret";

/// A small deterministic generator: "random" kills that replay the same way every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_webhooks_three_workers_random_kills_every_effect_exactly_once() {
    let world = World::new("fleet", 5, &[("edit", vec![Answer::Text(good_answer())])]).await;
    world.llm.state.lock().expect("lock").delay = Duration::from_millis(400);
    let ingest = TestIngest::spawn_on(
        &world.fleet.queue,
        BROKER,
        &[("GITHUB_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    ingest.wait_ready(200).await;
    let mut workers: Vec<_> = (0..3)
        .map(|_| world.worker(&[("WORKER_CONCURRENCY", "2")]))
        .collect();
    for w in &workers {
        w.wait_ready().await;
    }

    let template = github_labeled("ai-help");
    for number in 1..=ISSUES {
        let mut payload = template.clone();
        payload["sender"]["login"] = json!("dev1");
        payload["repository"]["html_url"] = json!("https://github.com/acme/payments");
        payload["repository"]["full_name"] = json!("acme/payments");
        payload["issue"]["number"] = json!(number);
        payload["issue"]["html_url"] =
            json!(format!("https://github.com/acme/payments/issues/{number}"));
        let response = ingest
            .github_signed(
                "issues",
                &format!("fleet-{number}"),
                payload.to_string().as_bytes(),
                SECRET,
            )
            .await;
        assert_eq!(response.status().as_u16(), 202);
    }

    // Kill a worker every so often while tasks are in flight, and replace it.
    let mut rng = Lcg(42);
    let mut kills = 0;
    while kills < 5 && (world.github.pulls().len() as u64) < ISSUES {
        tokio::time::sleep(Duration::from_millis(300 + rng.next(700) as u64)).await;
        let victim = rng.next(workers.len());
        workers[victim].kill9();
        kills += 1;
        workers[victim] = world.worker(&[("WORKER_CONCURRENCY", "2")]);
    }
    let done = |number: u64| {
        status_comments(&world.github, number)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("state=done"))
    };
    wait_until("every issue done", Duration::from_secs(240), || {
        (1..=ISSUES).all(done)
    })
    .await;
    assert!(kills >= 3, "the kills happened during the run ({kills})");

    let pulls = world.github.pulls();
    assert_eq!(
        pulls.len() as u64,
        ISSUES,
        "one PR per issue, none duplicated"
    );
    let mut heads: Vec<String> = pulls
        .iter()
        .map(|p| p["head"]["ref"].as_str().expect("head").to_owned())
        .collect();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len() as u64, ISSUES);
    for number in 1..=ISSUES {
        assert_eq!(
            status_comments(&world.github, number).len(),
            1,
            "issue {number}: one status comment"
        );
        world.assert_fix_on(&format!("agent/github-{number}"));
    }
    for w in &workers {
        w.signal("TERM");
    }
    for w in &mut workers {
        assert!(w.exit_status(Duration::from_secs(60)).await.success());
    }
    assert_eq!(
        world.fleet.ready(&world.fleet.queue).await,
        0,
        "nothing left behind"
    );
    assert_eq!(
        world.fleet.ready(&world.fleet.dead_queue()).await,
        0,
        "nothing dead-lettered"
    );
}
