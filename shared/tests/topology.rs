//! The topology's arguments, verified through the real broker: messages really are
//! dead-lettered after the delivery limit, a mismatch names the queue and argument, and the
//! delay queues are declared idempotently and send their messages back to the task queue.

use lapin::options::{BasicGetOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use shared::amqp::Publisher;
use shared::topology::{Topology, TopologyError};
use std::time::{Duration, Instant};
use testkit::QueueGuard;

async fn connect() -> Connection {
    Connection::connect(testkit::BROKER, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672")
}

/// A new queue name, and the guard that deletes its topology when the test ends.
fn unique(prefix: &str) -> (String, QueueGuard) {
    let name = testkit::unique_queue(prefix);
    let guard = QueueGuard::new(&name);
    (name, guard)
}

#[tokio::test]
async fn a_message_is_dead_lettered_after_the_delivery_limit() {
    let (name, _queues) = unique("limit");
    let connection = connect().await;
    let topology = Topology::new(&name, 2);
    let publisher = Publisher::open(&connection, &topology, Duration::from_secs(5))
        .await
        .expect("declare and confirm");
    publisher
        .publish_bytes(b"{\"poison\": true}", BasicProperties::default())
        .await
        .expect("confirmed");
    let channel = connection.create_channel().await.expect("channel");
    let mut deliveries = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Keep failing the message (nack + requeue) until the broker stops handing it out.
    loop {
        assert!(Instant::now() < deadline, "never dead-lettered");
        match channel
            .basic_get(topology.queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("get")
        {
            Some(message) => {
                deliveries += 1;
                message
                    .delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
                    .expect("nack");
            }
            None if deliveries > 0 => {
                let dead = channel
                    .basic_get(
                        topology.dead_letter_queue.as_str().into(),
                        BasicGetOptions { no_ack: true },
                    )
                    .await
                    .expect("get dead");
                if let Some(dead) = dead {
                    assert_eq!(dead.delivery.data, b"{\"poison\": true}", "body kept");
                    let headers = dead.delivery.properties.headers().clone().expect("headers");
                    assert!(
                        matches!(
                            headers.inner().get("x-death"),
                            Some(AMQPValue::FieldArray(_))
                        ),
                        "x-death headers: {headers:?}"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // A limit of 2 allows the first delivery and two redeliveries, then dead-letters.
    assert_eq!(deliveries, 3, "delivered {deliveries} times");
}

#[tokio::test]
async fn a_mismatching_queue_names_the_queue_and_the_argument() {
    let (name, _queues) = unique("mismatch");
    let connection = connect().await;
    let original = Topology::new(&name, 5);
    let channel = connection.create_channel().await.expect("channel");
    original.declare(&channel).await.expect("first declare");
    original
        .declare(&channel)
        .await
        .expect("declaring again is idempotent");

    let changed = Topology::new(&name, 3);
    let channel = connection.create_channel().await.expect("channel");
    let error = changed.declare(&channel).await.expect_err("mismatch");
    assert!(error.is_permanent());
    match &error {
        TopologyError::Mismatch {
            queue, argument, ..
        } => {
            assert_eq!(queue, &name);
            assert_eq!(argument, "x-delivery-limit");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&name) && message.contains("x-delivery-limit"),
        "{message}"
    );
}

/// Whether `queue` exists (a passive declare), on a throwaway channel.
async fn exists(connection: &Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn the_delay_queues_are_declared_idempotently_and_lead_back_to_the_queue() {
    let (name, _queues) = unique("retry");
    let ingest = connect().await;
    let worker = connect().await;
    let topology = Topology::new(&name, 5);
    // Both services declare it, each on its own connection, in either order, repeatedly.
    let publisher = Publisher::open(&ingest, &topology, Duration::from_secs(5))
        .await
        .expect("the ingest's declare");
    for _ in 0..2 {
        let channel = worker.create_channel().await.expect("channel");
        topology
            .declare(&channel)
            .await
            .expect("the worker's declare, identical arguments");
    }
    for retry in topology.retry_queues() {
        assert!(
            exists(&worker, &retry.name).await,
            "{} declared",
            retry.name
        );
    }
    // A different TTL under the same name is refused, naming the queue and the argument.
    let retry_5s = topology.retry_queues()[0].name.clone();
    let channel = worker.create_channel().await.expect("channel");
    let error = channel
        .queue_declare(
            retry_5s.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            topology.retry_queue_arguments(Duration::from_secs(6)),
        )
        .await
        .expect_err("another TTL");
    assert!(error.to_string().contains("x-message-ttl"), "{error}");

    // A message in the 5 s delay queue comes back to the task queue after its TTL.
    let published = Instant::now();
    let channel = worker.create_channel().await.expect("channel");
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    channel
        .basic_publish(
            "".into(),
            retry_5s.as_str().into(),
            lapin::options::BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"later",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirmed");
    let deadline = Instant::now() + Duration::from_secs(30);
    let back = loop {
        assert!(Instant::now() < deadline, "never came back from {retry_5s}");
        if let Some(message) = channel
            .basic_get(
                topology.queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get")
        {
            break message;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let waited = published.elapsed();
    assert!(
        waited >= Duration::from_millis(4900),
        "came back after {waited:?}"
    );
    assert_eq!(back.delivery.data, b"later");
    let headers = back.delivery.properties.headers().clone().expect("headers");
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death: {headers:?}")
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("no x-death entry: {deaths:?}")
    };
    let text = |key: &str| match death.inner().get(key) {
        Some(AMQPValue::LongString(v)) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(text("queue"), retry_5s, "x-death names the delay queue");
    assert_eq!(text("reason"), "expired");
    drop(publisher);
}
