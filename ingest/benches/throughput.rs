//! Ingest throughput against raw lapin, in one run on the same broker.
//!
//! `cargo bench -p ingest --bench throughput -- [--n 4000] [--c 32]`
//!
//! Starts the release `ingest` binary, drives it with N signed `issues.labeled` webhooks at
//! concurrency C, then publishes the same task bodies with raw lapin + confirms at the same
//! concurrency. Prints req/s, p50/p99 and the ingest/raw throughput ratio.

use futures_util::StreamExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const SECRET: &str = "bench-secret";

struct Figures {
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

fn payload(i: usize) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/github/issues/labeled.payload.json"
    );
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    value["label"]["name"] = serde_json::json!("ai-help");
    value["issue"]["number"] = serde_json::json!(i + 1);
    value.to_string().into_bytes()
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// CPU seconds of the local RabbitMQ (its Erlang VM), when it runs here.
fn broker_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "beam.smp")
        })
        .map(process_cpu)
        .sum()
}

struct Ingest(Child);
impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn drive_ingest(url: &str, bodies: Arc<Vec<Vec<u8>>>, concurrency: usize) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let run = format!("{}", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..bodies.len())
        .map(|i| {
            let (client, bodies, url, run) =
                (client.clone(), bodies.clone(), url.to_owned(), run.clone());
            async move {
                let body = &bodies[i];
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", format!("{run}-{i}"))
                    .header("x-hub-signature-256", ingest::signature::sign(SECRET, body))
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status().as_u16(), 202, "ingest refused a delivery");
                sent.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Figures {
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

async fn drive_raw(queue: &str, bodies: Arc<Vec<Vec<u8>>>, concurrency: usize) -> Figures {
    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..bodies.len())
        .map(|i| {
            let (channel, bodies) = (channel.clone(), bodies.clone());
            let queue = queue.to_owned();
            async move {
                let sent = Instant::now();
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &bodies[i],
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .expect("publish")
                    .await
                    .expect("confirm");
                assert!(
                    matches!(confirm, lapin::Confirmation::Ack(None)),
                    "raw publish not confirmed"
                );
                sent.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Figures {
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let n = arg("--n", 4000);
    let concurrency = arg("--c", 32);
    let queue = format!("bench-ingest-{}", uuid::Uuid::new_v4().simple());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let ingest_process = Ingest(
        Command::new(env!("CARGO_BIN_EXE_ingest"))
            .env("INGEST_BIND", format!("127.0.0.1:{port}"))
            .env("TASK_QUEUE", &queue)
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn ingest"),
    );
    let ingest_pid = ingest_process.0.id();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "ingest never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let bodies = Arc::new((0..n).map(payload).collect::<Vec<_>>());
    // Task bodies the ingest would publish: same size class as the webhooks' tasks.
    let tasks = Arc::new(
        bodies
            .iter()
            .map(|b| b[..b.len().min(2000)].to_vec())
            .collect::<Vec<_>>(),
    );
    let url = format!("http://127.0.0.1:{port}/webhooks/github");
    // Warm-up: connections, broker queue, allocator.
    let _ = drive_ingest(&url, Arc::new(bodies[..200.min(n)].to_vec()), concurrency).await;

    let cpu_before = (
        process_cpu(ingest_pid),
        process_cpu(std::process::id()),
        broker_cpu(),
    );
    let ingest = drive_ingest(&url, bodies.clone(), concurrency).await;
    let cpu_after = (
        process_cpu(ingest_pid),
        process_cpu(std::process::id()),
        broker_cpu(),
    );
    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("broker");
    let admin = connection.create_channel().await.expect("channel");
    admin
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    let raw_before = (process_cpu(std::process::id()), broker_cpu());
    let raw = drive_raw(&queue, tasks, concurrency).await;
    let raw_after = (process_cpu(std::process::id()), broker_cpu());

    println!("ingest benchmark: n={n} concurrency={concurrency}");
    println!(
        "ingest (HTTP -> verify -> normalize -> publish+confirm): {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        ingest.rate(),
        ingest.percentile(0.50),
        ingest.percentile(0.99)
    );
    println!(
        "raw lapin (publish+confirm):                             {:>8.0} msg/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        raw.rate(),
        raw.percentile(0.50),
        raw.percentile(0.99)
    );
    println!(
        "ratio ingest/raw throughput: {:.2}",
        ingest.rate() / raw.rate()
    );
    let per = |seconds: f64| seconds / n as f64 * 1e6;
    println!(
        "CPU per request (µs): ingest run: ingest {:.0}, client {:.0}, broker {:.0} | raw run: client {:.0}, broker {:.0}",
        per(cpu_after.0 - cpu_before.0),
        per(cpu_after.1 - cpu_before.1),
        per(cpu_after.2 - cpu_before.2),
        per(raw_after.0 - raw_before.0),
        per(raw_after.1 - raw_before.1),
    );

    for q in [queue.clone(), format!("{queue}.dead")] {
        let _ = admin
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = admin
        .exchange_delete(
            format!("{queue}.dlx").as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
}
