//! Ingest throughput against raw lapin, in one run on the same broker.
//!
//! `cargo bench -p ingest --bench throughput -- [--n 8000] [--c 32]`
//!
//! Starts the release `ingest` binary and drives it with N signed `issues.labeled` webhooks
//! over C keep-alive connections (requests, bodies and signatures prepared before the clock
//! starts: GitHub signs on its side). In the same run, raw lapin publishes with confirms at the same concurrency to
//! the same broker, twice: the same N webhook bodies, and the N task messages the ingest
//! publishes (same bodies and properties, the tougher baseline). Prints req/s, p50/p99 and
//! the ratios, plus the CPU each process spent per request. Then the same N webhooks again
//! through a second ingest that records every task in the ledger (`DATABASE_URL`, a
//! database of its own on 127.0.0.1:5432): its rate against the ingest without it.

use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use shared::settings::Env;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::knobs::arg;

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
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    }
    fn line(&self, what: &str, unit: &str) -> String {
        format!(
            "{what:<58} {:>7.0} {unit}  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99)
        )
    }
}

/// One prepared delivery: body, signature, delivery id, and the task the ingest makes of it.
struct Prepared {
    body: Vec<u8>,
    signature: String,
    delivery: String,
    task: shared::TaskMessage,
}

fn prepare(n: usize) -> Vec<Prepared> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/fixtures/github/issues/labeled.payload.json"
    );
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let settings =
        ingest::IngestSettings::from_env(&Env::from_map([("GITHUB_WEBHOOK_SECRET", SECRET)]))
            .expect("settings");
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..n)
        .map(|i| {
            let mut value = template.clone();
            value["label"]["name"] = serde_json::json!("ai-help");
            value["issue"]["number"] = serde_json::json!(i + 1);
            let body = value.to_string().into_bytes();
            let delivery = format!("{run}-{i}");
            let parsed = ingest::github::parse_payload(&body).expect("payload");
            let meta = ingest::github::Delivery {
                event: "issues",
                delivery_id: &delivery,
                received_at: chrono::Utc::now(),
            };
            let task =
                match ingest::github::normalize(&meta, &parsed, &settings).expect("normalize") {
                    ingest::normalize::Normalized::Task(task) => *task,
                    other => panic!("not a task: {other:?}"),
                };
            Prepared {
                signature: ingest::signature::sign(SECRET, &body),
                body,
                delivery,
                task,
            }
        })
        .collect()
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
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// CPU seconds of the local RabbitMQ (its Erlang VM).
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

/// Drives the ingest over `concurrency` keep-alive HTTP/1.1 connections, each writing its
/// prepared requests and reading the answers. A minimal client on purpose: on two shared
/// cores, every microsecond the load generator spends is taken from the ingest or the broker
/// (reqwest cost 45 µs per request here, this one a few).
async fn drive_ingest(
    port: u16,
    prepared: &Arc<Vec<Prepared>>,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Figures {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        prepared[range]
            .iter()
            .map(|p| {
                let mut request = format!(
                    "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
                     X-GitHub-Event: issues\r\nX-GitHub-Delivery: {}\r\nX-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
                    p.delivery,
                    p.signature,
                    p.body.len()
                )
                .into_bytes();
                request.extend_from_slice(&p.body);
                request
            })
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (requests, next) = (requests.clone(), next.clone());
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut latencies = Vec::new();
                let mut buffer = vec![0u8; 8192];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    stream.write_all(request).await.expect("write");
                    let mut filled = 0;
                    loop {
                        let n = stream.read(&mut buffer[filled..]).await.expect("read");
                        assert!(n > 0, "ingest closed the connection");
                        filled += n;
                        let text = &buffer[..filled];
                        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = std::str::from_utf8(&text[..end]).expect("ascii head");
                            assert!(
                                head.starts_with("HTTP/1.1 202"),
                                "ingest refused a delivery: {head}"
                            );
                            let length: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if filled >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("client task"));
    }
    Figures {
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

/// Publishes `messages` with confirms, `mandatory`, at `concurrency`.
async fn drive_raw(
    queue: &str,
    messages: Arc<Vec<(Vec<u8>, BasicProperties)>>,
    concurrency: usize,
) -> Figures {
    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..messages.len())
        .map(|i| {
            let (channel, messages, queue) = (channel.clone(), messages.clone(), queue.to_owned());
            async move {
                let (body, properties) = &messages[i];
                let sent = Instant::now();
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        body,
                        properties.clone(),
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
    let n = arg("--n", 8000);
    let concurrency = arg("--c", 32);
    let warmup = 500;
    let queue = format!("bench-ingest-{}", uuid::Uuid::new_v4().simple());
    let (ingest_process, port) = spawn_ingest(&queue, &[]).await;
    let ingest_pid = ingest_process.0.id();
    let prepared = Arc::new(prepare(n + warmup));
    // Warm-up: connections, the broker's queue, allocators.
    drive_ingest(port, &prepared, n..n + warmup, concurrency).await;

    let me = std::process::id();
    let before = (process_cpu(ingest_pid), process_cpu(me), broker_cpu());
    let ingest = drive_ingest(port, &prepared, 0..n, concurrency).await;
    let after = (process_cpu(ingest_pid), process_cpu(me), broker_cpu());

    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("broker");
    let admin = connection.create_channel().await.expect("channel");
    // Each raw run starts on an empty queue, as the ingest run did.
    let purge = async || {
        admin
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .expect("purge");
    };
    purge().await;
    let webhooks: Vec<(Vec<u8>, BasicProperties)> = prepared[..n]
        .iter()
        .map(|p| {
            (
                p.body.clone(),
                BasicProperties::default().with_delivery_mode(2),
            )
        })
        .collect();
    let raw_webhooks = drive_raw(&queue, Arc::new(webhooks), concurrency).await;
    purge().await;
    let tasks: Vec<(Vec<u8>, BasicProperties)> = prepared[..n]
        .iter()
        .map(|p| {
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(p.task.task_id.as_str().into())
                .with_type(p.task.mode.as_str().into())
                .with_app_id("agent-fleet".into());
            (p.task.to_json(), properties)
        })
        .collect();
    let raw_before = (process_cpu(me), broker_cpu());
    let raw_tasks = drive_raw(&queue, Arc::new(tasks), concurrency).await;
    let raw_after = (process_cpu(me), broker_cpu());

    println!(
        "ingest benchmark: n={n} concurrency={concurrency} (webhook body {} bytes, task message {} bytes)",
        prepared[0].body.len(),
        prepared[0].task.to_json().len()
    );
    println!(
        "{}",
        ingest.line(
            "ingest (HTTP -> verify -> normalize -> publish+confirm):",
            "req/s"
        )
    );
    println!(
        "{}",
        raw_webhooks.line("raw lapin publish+confirm, the webhook bodies:", "msg/s")
    );
    println!(
        "{}",
        raw_tasks.line("raw lapin publish+confirm, the task messages:", "msg/s")
    );
    println!(
        "ratio ingest/raw throughput: {:.2} (vs the webhook bodies), {:.2} (vs the task messages)",
        ingest.rate() / raw_webhooks.rate(),
        ingest.rate() / raw_tasks.rate()
    );
    let per = |seconds: f64| seconds / n as f64 * 1e6;
    println!(
        "CPU per request (µs): ingest run: ingest {:.0}, client {:.0}, broker {:.0} | raw run (task messages): client {:.0}, broker {:.0}",
        per(after.0 - before.0),
        per(after.1 - before.1),
        per(after.2 - before.2),
        per(raw_after.0 - raw_before.0),
        per(raw_after.1 - raw_before.1),
    );

    // The same webhooks through an ingest that records each task in the ledger.
    drop(ingest_process);
    purge().await;
    let db = testkit::db::TestDb::new("bench_ingest").await;
    let (with_ledger_process, ledger_port) =
        spawn_ingest(&queue, &[("DATABASE_URL", db.url().as_str())]).await;
    drive_ingest(ledger_port, &prepared, n..n + warmup, concurrency).await;
    let ledger_pid = with_ledger_process.0.id();
    let before = process_cpu(ledger_pid);
    let with_ledger = drive_ingest(ledger_port, &prepared, 0..n, concurrency).await;
    let after = process_cpu(ledger_pid);
    println!(
        "{}",
        with_ledger.line("ingest with the ledger (DATABASE_URL):", "req/s")
    );
    println!(
        "ratio with/without the ledger: {:.2} (CPU per request in the ingest: {:.0} µs)",
        with_ledger.rate() / ingest.rate(),
        per(after - before)
    );
    drop(with_ledger_process);

    // The queue, `.dead`, the `.dlx` exchange (and any delay queue the ingest declared).
    testkit::QueueGuard::new(&queue).delete().await;
}

/// The release ingest on a free port, publishing to `queue`, with `extra` settings; ready.
async fn spawn_ingest(queue: &str, extra: &[(&str, &str)]) -> (Ingest, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ingest"));
    command
        .env("INGEST_BIND", format!("127.0.0.1:{port}"))
        .env("TASK_QUEUE", queue)
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value) in extra {
        command.env(name, value);
    }
    let process = Ingest(command.spawn().expect("spawn ingest"));
    testkit::wait::wait_http_ready(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30))
        .await;
    (process, port)
}
