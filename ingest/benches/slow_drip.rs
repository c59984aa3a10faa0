//! Latency of signed deliveries while a flood of slow-drip unsigned requests holds the
//! ingest (issue 11's acceptance figure).
//!
//! `cargo bench -p ingest --bench slow_drip -- [--drips 200] [--n 50]`
//!
//! Runs the ingest in-process with its default limits against the broker on
//! 127.0.0.1:5672, then sends N signed `issues.labeled` deliveries one after the other,
//! each on a new connection as GitHub does: first on a quiet ingest, then while `--drips`
//! raw sockets (half dripping their headers, half their bodies, three bytes a second; each
//! reconnects 100 ms after it is refused) keep slow unsigned requests open. Prints p50,
//! p99 and max for both runs, and how the flood was answered.

#[path = "../tests/common/raw.rs"]
#[allow(dead_code)]
mod raw;

use futures_util::FutureExt;
use ingest::{Application, IngestSettings};
use shared::settings::Env;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use testkit::knobs::arg;

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const SECRET: &str = "bench-secret";

fn body(issue: usize) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/fixtures/github/issues/labeled.payload.json"
    );
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    value["label"]["name"] = serde_json::json!("ai-help");
    value["issue"]["number"] = serde_json::json!(issue);
    value.to_string().into_bytes()
}

/// N signed deliveries, one at a time, each on a new connection; their latencies.
async fn deliveries(addr: SocketAddr, run: &str, n: usize) -> Vec<Duration> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let payload = body(i + 1);
        let signature = ingest::signature::sign(SECRET, &payload);
        let started = Instant::now();
        let response = client
            .post(format!("http://{addr}/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", format!("{run}-{i}"))
            .header("x-hub-signature-256", signature)
            .body(payload)
            .send()
            .await
            .expect("delivery sent");
        let status = response.status().as_u16();
        latencies.push(started.elapsed());
        assert_eq!(status, 202, "delivery {i} of {run}");
    }
    latencies
}

fn line(what: &str, latencies: &[Duration]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at =
        |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    format!(
        "{what:<44} n {:>4}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main]
async fn main() {
    let drips = arg("--drips", 200);
    let n = arg("--n", 50);
    let queue = format!("bench-drip-{}", uuid::Uuid::new_v4().simple());
    let settings = IngestSettings::from_env(&Env::from_map([
        ("AMQP_URL", BROKER),
        ("TASK_QUEUE", queue.as_str()),
        ("INGEST_BIND", "127.0.0.1:0"),
        ("GITHUB_WEBHOOK_SECRET", SECRET),
    ]))
    .expect("settings");
    let (timeout, limit) = (settings.request_timeout, settings.max_concurrency);
    let app = Application::build(settings).await.expect("ingest");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(stopped.map(|_| ())));
    testkit::wait::wait_http_ready(&format!("http://{addr}"), Duration::from_secs(20)).await;
    println!(
        "ingest defaults: INGEST_REQUEST_TIMEOUT_SECS {}, INGEST_MAX_CONCURRENCY {limit}",
        timeout.as_secs()
    );

    let quiet = deliveries(addr, "quiet", n).await;
    let flood = raw::Flood::start(addr, drips / 2, drips - drips / 2, Duration::from_secs(120));
    flood.wait_open(drips).await;
    let flooded = deliveries(addr, "flooded", n).await;
    let stats = flood.stop().await;

    println!("{}", line("signed deliveries, quiet ingest", &quiet));
    println!(
        "{}",
        line(&format!("signed deliveries, {drips} slow drips"), &flooded)
    );
    println!(
        "flood: ends by status {:?} (None: closed for slow headers), 503s with Retry-After {}",
        stats.ends.lock().expect("lock"),
        stats.retry_after.load(Ordering::SeqCst)
    );

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    // The queue, `.dead`, the `.dlx` exchange (and any delay queue the ingest declared).
    testkit::QueueGuard::new(&queue).delete().await;
}
