//! Telemetry in one place: the tracing subscriber (JSON or pretty), and the Prometheus
//! text exposition plus the `/metrics`, `/healthz`, `/readyz` routes both services serve.

use crate::settings::LogFormat;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`). Safe to call twice:
/// the second call is a no-op, which keeps in-process tests simple.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
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
    let ready_gauge = prometheus::IntGauge::new(
        "agent_fleet_ready",
        "1 when the service can do its work (broker connected), else 0",
    )
    .expect("valid metric name");
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
