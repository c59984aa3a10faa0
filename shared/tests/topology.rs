//! The topology's arguments, verified through the real broker: messages really are
//! dead-lettered after the delivery limit, and a mismatch names the queue and argument.

use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeleteOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use shared::amqp::Publisher;
use shared::topology::{Topology, TopologyError};
use std::time::{Duration, Instant};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn connect() -> Connection {
    Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672")
}

async fn cleanup(connection: &Connection, topology: &Topology) {
    let channel = connection.create_channel().await.expect("channel");
    for queue in [&topology.queue, &topology.dead_letter_queue] {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(
            topology.dead_letter_exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
}

fn unique(prefix: &str) -> String {
    format!("test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_message_is_dead_lettered_after_the_delivery_limit() {
    let connection = connect().await;
    let topology = Topology::new(&unique("limit"), 2);
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
    cleanup(&connection, &topology).await;
}

#[tokio::test]
async fn a_mismatching_queue_names_the_queue_and_the_argument() {
    let connection = connect().await;
    let name = unique("mismatch");
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
    cleanup(&connection, &original).await;
}
