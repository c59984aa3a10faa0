//! Worker runtime overhead and throughput against raw lapin, in one run on the same broker.
//!
//! `cargo bench -p worker --bench runtime -- [--n 2000]`
//!
//! For prefetch 1 and 10: fills a queue with N tasks, drains it with raw lapin
//! (consume + ack), fills it again and drains it with the worker runtime and a no-op
//! handler (parse, task dir, handler, dir removal, ack). Prints throughput of both and their
//! ratio, the pickup overhead (delivery -> handler start, exact samples) and the settle
//! overhead (handler end -> settled, from the runtime's histogram: an upper bound per
//! bucket). Then the prefetch-10 run again with the task ledger on (`DATABASE_URL`, a
//! database of its own on 127.0.0.1:5432: each task's `started` and `finished` rows), against
//! the run without it. Then starts the real `worker` binary and reads its idle RSS.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use shared::amqp::Publisher;
use shared::settings::Env;
use shared::task::{IssueRef, TriggerInfo};
use shared::topology::Topology;
use shared::{Mode, RepoUrl, TaskMessage, Tracker};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::knobs::arg;
use worker::runtime::handler::{TaskContext, TaskError, TaskHandler};
use worker::runtime::{self, RunMode, metrics::WorkerMetrics};
use worker::settings::WorkerSettings;

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Default)]
struct Samples {
    pickups: Vec<Duration>,
    first: Option<Instant>,
    last: Option<Instant>,
}

#[derive(Clone, Default)]
struct Noop(Arc<Mutex<Samples>>);

impl TaskHandler for Noop {
    async fn handle(&self, _task: &TaskMessage, ctx: &TaskContext) -> Result<(), TaskError> {
        let mut s = self.0.lock().expect("lock");
        s.pickups.push(ctx.received_at.elapsed());
        s.first.get_or_insert(ctx.received_at);
        s.last = Some(Instant::now());
        Ok(())
    }
    async fn report_exhausted(&self, _task: &TaskMessage, _reason: &str) {}
}

fn task(i: usize) -> TaskMessage {
    TaskMessage {
        version: 1,
        task_id: format!("bench:{i}"),
        mode: Mode::Quickfix,
        source: Tracker::Github,
        repo_url: RepoUrl::parse("https://github.com/acme/payments").expect("url"),
        base_branch: None,
        issue: IssueRef {
            tracker: Tracker::Github,
            key: format!("acme/payments#{i}"),
            number: Some(i as u64),
            title: "Refund endpoint returns 500".into(),
            body: "x".repeat(1500),
            url: format!("https://github.com/acme/payments/issues/{i}"),
            labels: vec!["ai-help".into()],
            pull_request: false,
        },
        trigger_user: "dev1".into(),
        trigger: TriggerInfo {
            event: "issues.labeled".into(),
            delivery_id: i.to_string(),
            received_at: chrono::Utc::now(),
            comment_id: None,
        },
        approval: None,
        revision: None,
        instruction: None,
        review: None,
        checks: None,
        retry: None,
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// The smallest bucket bound below which a fraction `p` of the observations fall.
fn histogram_bound(h: &prometheus::Histogram, p: f64) -> f64 {
    use prometheus::core::Collector;
    let family = h.collect();
    let hist = family[0].get_metric()[0].get_histogram();
    let total = hist.get_sample_count() as f64;
    for bucket in hist.get_bucket() {
        if bucket.cumulative_count() as f64 >= total * p {
            return bucket.upper_bound() * 1000.0;
        }
    }
    f64::INFINITY
}

async fn fill(connection: &Connection, topology: &Topology, n: usize) {
    let publisher = Publisher::open(connection, topology, Duration::from_secs(10))
        .await
        .expect("topology");
    let bodies: Vec<TaskMessage> = (0..n).map(task).collect();
    futures_util::stream::iter(bodies.iter())
        .map(|t| publisher.publish(t))
        .buffer_unordered(64)
        .for_each(|r| async move { r.expect("confirmed") })
        .await;
}

async fn raw_drain(connection: &Connection, queue: &str, n: usize, prefetch: u16) -> f64 {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut first = None;
    for _ in 0..n {
        let delivery = consumer.next().await.expect("delivery").expect("ok");
        first.get_or_insert_with(Instant::now);
        // Parse as the worker would, so the comparison is about the runtime, not serde.
        let _ = TaskMessage::from_slice(&delivery.data).expect("task");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let seconds = first.expect("first").elapsed().as_secs_f64();
    let _ = channel.close(200, "done".into()).await;
    n as f64 / seconds
}

async fn runtime_drain(
    queue: &str,
    n: usize,
    prefetch: u16,
    workspace: &std::path::Path,
    database_url: Option<&str>,
) -> (f64, Vec<Duration>, f64, f64) {
    let mut vars = vec![
        ("TASK_QUEUE", queue.to_owned()),
        ("WORKER_CONCURRENCY", prefetch.to_string()),
        ("METRICS_BIND", "127.0.0.1:0".to_owned()),
        ("WORKSPACE_DIR", workspace.display().to_string()),
    ];
    if let Some(url) = database_url {
        vars.push(("DATABASE_URL", url.to_owned()));
    }
    let env = Env::from_map(vars);
    let settings = WorkerSettings::from_env(&env).expect("settings");
    let handler = Noop::default();
    let samples = handler.0.clone();
    let metrics = WorkerMetrics::new();
    let settle = metrics.settle_seconds.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(runtime::run(
        settings,
        handler,
        RunMode::Forever,
        metrics,
        async move {
            let _ = stopped.await;
        },
    ));
    while settle.get_sample_count() < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    run.await.expect("join").expect("runtime");
    let s = samples.lock().expect("lock");
    let rate = n as f64 / (s.last.expect("last") - s.first.expect("first")).as_secs_f64();
    (
        rate,
        s.pickups.clone(),
        histogram_bound(&settle, 0.5),
        histogram_bound(&settle, 0.99),
    )
}

fn idle_rss_kib() -> u64 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let records = tempfile::tempdir().expect("tmp");
    let queue = format!("bench-idle-{}", uuid::Uuid::new_v4().simple());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("TASK_QUEUE", &queue)
        .env("WORKER_HANDLER", "test")
        .env("TEST_HANDLER_DIR", records.path())
        .env("METRICS_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn worker");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ready || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it settle into its idle state (connected, consuming, nothing to do).
    std::thread::sleep(Duration::from_secs(2));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::process::Command::new("rabbitmqctl")
        .args(["delete_queue", &queue, "-q"])
        .output();
    let _ = std::process::Command::new("rabbitmqctl")
        .args(["delete_queue", &format!("{queue}.dead"), "-q"])
        .output();
    rss
}

#[tokio::main]
async fn main() {
    let n = arg("--n", 2000);
    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("broker");
    let workspace = tempfile::tempdir().expect("tmp");
    println!("worker runtime benchmark: n={n} tasks per run, no-op handler");
    let db = testkit::db::TestDb::new("bench_worker").await;
    let mut without_ledger = 0.0;
    for (prefetch, ledger) in [(1u16, None), (10, None), (10, Some(db.url()))] {
        let queue = format!("bench-worker-{}", uuid::Uuid::new_v4().simple());
        let topology = Topology::new(&queue, 5);
        fill(&connection, &topology, n).await;
        let raw = raw_drain(&connection, &queue, n, prefetch).await;
        fill(&connection, &topology, n).await;
        let (rate, mut pickups, settle50, settle99) =
            runtime_drain(&queue, n, prefetch, workspace.path(), ledger.as_deref()).await;
        if ledger.is_some() {
            println!(
                "prefetch 10 with the ledger (started + finished rows per task): {rate:>7.0} tasks/s | ratio {:.2} against without | pickup p50 {:.3} ms | settle p50 <= {settle50} ms p99 <= {settle99} ms",
                rate / without_ledger,
                percentile(&mut pickups, 0.5),
            );
        } else {
            without_ledger = rate;
        }
        println!(
            "prefetch {prefetch:>2}{}: raw lapin {raw:>7.0} msg/s | worker runtime {rate:>7.0} tasks/s | ratio {:.2} | pickup p50 {:.3} ms p99 {:.3} ms | settle p50 <= {settle50} ms p99 <= {settle99} ms",
            if ledger.is_some() { " (ledger on)" } else { "" },
            rate / raw,
            percentile(&mut pickups, 0.5),
            percentile(&mut pickups, 0.99),
        );
        let channel = connection.create_channel().await.expect("channel");
        for q in [queue.clone(), format!("{queue}.dead")] {
            let _ = channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    let rss = tokio::task::spawn_blocking(idle_rss_kib)
        .await
        .expect("rss");
    println!(
        "idle RSS of the worker binary: {:.1} MiB",
        rss as f64 / 1024.0
    );
}
