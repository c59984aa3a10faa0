//! Telemetry in one place: the tracing subscriber (JSON or pretty), and the Prometheus
//! text exposition plus the `/metrics`, `/healthz`, `/readyz` routes both services serve.

use crate::settings::LogFormat;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`). Safe to call twice:
/// the second call is a no-op, which keeps in-process tests simple.
///
/// JSON lines are flat: the fields of every enclosing span (`task_id`, `issue`, `repo` for a
/// task) sit at the top level of each line next to the event's own fields, so a log query
/// for one task needs no knowledge of span nesting.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// One JSON object per line: timestamp, level, target, span fields, event fields.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        let meta = event.metadata();
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_str::<serde_json::Value>(&fields.fields)
                {
                    line.extend(map);
                }
            }
        }
        event.record(&mut FieldVisitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct FieldVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// The registry's metrics in Prometheus' text format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}

/// Something that knows whether the service can do its work right now.
pub type ReadinessCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// `/metrics`, `/healthz` (the process answers) and `/readyz` (it can do its work). Each
/// scrape also records readiness as the gauge `agent_fleet_ready`.
pub fn ops_router(registry: Registry, ready: ReadinessCheck) -> Router {
    let ready_gauge = gauge(
        "agent_fleet_ready",
        "1 when the service can do its work (broker connected), else 0",
    );
    // A second router on the same registry would register it twice; the first one counts.
    let _ = registry.register(Box::new(ready_gauge.clone()));
    let scrape_ready = ready.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                ready_gauge.set(i64::from(scrape_ready()));
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        render(&registry),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move { readiness(ready()) }
            }),
        )
}

fn readiness(ready: bool) -> Response {
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "broker not connected").into_response()
    }
}

/// Duration buckets for work measured in milliseconds to seconds (HTTP, publishes).
pub const FAST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Duration buckets for work measured in seconds to tens of minutes (clones, LLM, tasks).
pub const SLOW_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];

// Metric constructors: a bad name or label set is a programming error, found by the first
// start-up (and every test), so they panic instead of returning an error to handle.

/// A counter.
pub fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

/// A gauge.
pub fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}

/// A counter family with these labels.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

/// A histogram with these buckets.
pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric")
}

/// A histogram family with these buckets and labels.
pub fn histogram_vec(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric")
}

/// Registers `metric` with `registry` and hands it back: made and registered in one
/// expression, with no list of collectors to keep in step with the fields.
pub fn registered<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric registered once");
    metric
}

/// Registers each collector once.
pub fn register_all(registry: &Registry, collectors: impl IntoIterator<Item = Box<dyn Collector>>) {
    for collector in collectors {
        registry
            .register(collector)
            .expect("each metric registered once");
    }
}
