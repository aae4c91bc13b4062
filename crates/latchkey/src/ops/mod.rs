//! Operations endpoints: `/healthz`, `/readyz`, `/metrics`, and the per-route request metrics;
//! [`health`] checks one app for the admin API.

pub mod health;

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// The process-wide Prometheus recorder. The `metrics` facade has one global recorder, so this
/// is the one global in the program; every server in the process shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready (200) while the control-plane store answers. The JSON body also names the apps in use
/// on this replica whose identity store cannot be reached (SPEC §12): they answer their end
/// users with a 503 page, while every other app keeps serving.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let control = match tokio::time::timeout(health::PING_WAIT, state.control.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check failed");
            Some(crate::store::describe(&err))
        }
        Err(_) => Some("timed out".to_string()),
    };
    let unreachable: Vec<serde_json::Value> = state
        .readiness
        .unreachable(&state.issuers)
        .into_iter()
        .map(|slug| serde_json::json!({ "slug": slug }))
        .collect();
    let body = serde_json::json!({
        "status": if control.is_none() { "ready" } else { "unavailable" },
        "control_plane": control.as_deref().unwrap_or("ok"),
        "unreachable_apps": unreachable,
    });
    let status = if control.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
        .into_response()
}

/// Counts requests and records latency per route template (never the raw path, which would
/// carry slugs and ids into label values without bound).
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("latchkey_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("latchkey_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}
