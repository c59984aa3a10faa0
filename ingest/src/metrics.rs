//! The ingest's metrics, and the one place each webhook outcome is both logged and counted.

use prometheus::{Histogram, IntCounterVec, IntGauge, Registry};
use shared::telemetry::{FAST_BUCKETS, counter_vec, gauge, histogram, registered};

#[derive(Clone, Debug)]
pub struct IngestMetrics {
    pub registry: Registry,
    webhooks: IntCounterVec,
    ignored: IntCounterVec,
    publishes: IntCounterVec,
    publish_seconds: Histogram,
    request_seconds: Histogram,
    receiving: IntGauge,
    refused: IntCounterVec,
}

impl IngestMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let webhooks = registered(
            &registry,
            counter_vec(
                "agent_fleet_webhooks_received_total",
                "Webhook deliveries by source, event and outcome",
                &["source", "event", "outcome"],
            ),
        );
        let ignored = registered(
            &registry,
            counter_vec(
                "agent_fleet_webhooks_ignored_total",
                "Verified deliveries that asked for no task, by source and reason",
                &["source", "reason"],
            ),
        );
        let publishes = registered(
            &registry,
            counter_vec(
                "agent_fleet_publishes_total",
                "Task publishes by outcome (confirmed, nacked, returned, timeout, unavailable, error)",
                &["outcome"],
            ),
        );
        let publish_seconds = registered(
            &registry,
            histogram(
                "agent_fleet_publish_duration_seconds",
                "From publish to the broker's confirm",
                FAST_BUCKETS,
            ),
        );
        let request_seconds = registered(
            &registry,
            histogram(
                "agent_fleet_webhook_duration_seconds",
                "Time to answer a webhook delivery",
                FAST_BUCKETS,
            ),
        );
        let receiving = registered(
            &registry,
            gauge(
                "agent_fleet_ingest_bodies_receiving",
                "Webhook request bodies being received right now (bounded by INGEST_MAX_CONCURRENCY)",
            ),
        );
        let refused = registered(
            &registry,
            counter_vec(
                "agent_fleet_ingest_refused_total",
                "Webhook requests refused before a handler saw them, by reason \
                 (too_large, timeout, evicted, unreadable)",
                &["reason"],
            ),
        );
        Self {
            registry,
            webhooks,
            ignored,
            publishes,
            publish_seconds,
            request_seconds,
            receiving,
            refused,
        }
    }

    /// How many bodies are being received now.
    pub fn receiving(&self, count: usize) {
        self.receiving.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A request refused while its body was received (the reason is a fixed label).
    pub fn refused(&self, reason: &'static str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    pub fn webhook(&self, source: &str, event: &str, outcome: &str, seconds: f64) {
        self.webhooks
            .with_label_values(&[source, event, outcome])
            .inc();
        self.request_seconds.observe(seconds);
    }

    pub fn ignored(&self, source: &str, reason: &str) {
        self.ignored.with_label_values(&[source, reason]).inc();
    }

    pub fn publish(&self, outcome: &str, seconds: Option<f64>) {
        self.publishes.with_label_values(&[outcome]).inc();
        if let Some(seconds) = seconds {
            self.publish_seconds.observe(seconds);
        }
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}
