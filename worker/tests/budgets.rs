//! Per-task LLM budgets, end to end (real broker, the spawned worker, the stand-ins): a
//! task that would need more calls or more money than allowed is stopped before the call,
//! reported with the budget's name and figures, and acked (never retried, never
//! dead-lettered); a priced task shows its cost on the status comment and the PR.

mod common;

use common::standins::Answer;
use common::world::*;

/// The stand-in LLM counts 1200 input and 80 output tokens per answer: at 3/15 USD per
/// million, one call costs 0.0036 + 0.0012 = 0.0048 USD.
const PRICES: &str = "test-model=3/15";

/// A first answer that does not parse, so the task needs a repair round: a second call.
fn needs_a_repair() -> Vec<(&'static str, Vec<Answer>)> {
    vec![
        ("edit", vec![Answer::Text(broken_answer())]),
        ("repair", vec![Answer::Text(good_answer())]),
    ]
}

async fn stopped_before_the_second_call(
    name: &str,
    number: u64,
    budget: &[(&str, &str)],
    says: &[&str],
) {
    let (world, worker) = World::with_worker(name, 5, &needs_a_repair(), budget).await;
    let task = world.task(&format!("github:{name}"), number, "dev1");
    world.fleet.publish(&task).await;
    worker.assert_outcome(&task.task_id, "failed").await;
    assert_eq!(
        world.llm.phases(),
        vec!["edit"],
        "the repair call was never sent"
    );
    assert!(world.github.pulls().is_empty(), "nothing published");
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "a budget stop is not dead-lettered"
    );
    let statuses = status_comments(&world.github, number);
    assert_eq!(statuses.len(), 1);
    let status = statuses[0]["body"].as_str().expect("body");
    for expected in says {
        assert!(
            status.contains(expected),
            "status lacks {expected}: {status}"
        );
    }
    let metrics = worker.metrics().await;
    let stop = format!("agent_fleet_budget_stops_total{{budget=\"{}\"}} 1", says[0]);
    assert!(metrics.contains(&stop), "{stop} in\n{metrics}");
}

#[tokio::test]
async fn a_task_over_its_call_budget_stops_before_the_call_and_says_which_budget() {
    stopped_before_the_second_call(
        "budget-calls",
        41,
        &[("TASK_MAX_LLM_CALLS", "1")],
        &[
            "TASK_MAX_LLM_CALLS",
            "1 calls of 1 calls",
            "Token usage: 1200 input, 80 output",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_task_over_its_cost_budget_stops_before_the_call_and_says_the_figures() {
    stopped_before_the_second_call(
        "budget-cost",
        42,
        &[("LLM_PRICES", PRICES), ("TASK_MAX_COST_USD", "0.004")],
        &["TASK_MAX_COST_USD", "$0.0048 of $0.0040", "(about $0.0048)"],
    )
    .await;
}

#[tokio::test]
async fn a_priced_task_shows_its_cost_on_the_status_and_the_pull_request() {
    let (world, worker) = World::with_worker(
        "budget-priced",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
        &[("LLM_PRICES", PRICES)],
    )
    .await;
    let task = world.task("github:budget-priced", 43, "dev1");
    world.fleet.publish(&task).await;
    worker.assert_outcome(&task.task_id, "done").await;
    let pulls = world.github.pulls();
    let body = pulls[0]["body"].as_str().expect("body");
    assert!(
        body.contains("1200 input, 80 output tokens in 1 LLM call(s). About $0.0048."),
        "{body}"
    );
    let status = status_comments(&world.github, 43)[0]["body"]
        .as_str()
        .expect("body")
        .to_owned();
    assert!(status.contains("(about $0.0048)"), "{status}");
    let metrics = worker.metrics().await;
    assert!(
        metrics.contains("agent_fleet_task_cost_usd_sum 0.0048"),
        "the task's cost observed: {metrics}"
    );
    assert!(
        metrics.contains("agent_fleet_task_cost_usd_count 1"),
        "{metrics}"
    );
}
