//! The daemon's loopback HTTP endpoints: `/metrics` (Prometheus text) and
//! `/healthz` (JSON: the last tick, the store's counts).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
struct AppState {
    instance: String,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

/// Binds `addr` (the config only allows loopback) and serves in the background.
pub async fn serve(addr: SocketAddr, instance: String, store: Arc<Store>, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(instance, store, metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(%local, "serving /metrics and /healthz");
    Ok(local)
}

pub fn router(instance: String, store: Arc<Store>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(AppState { instance, store, metrics })
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let store = s.store.clone();
    let metrics = s.metrics.clone();
    let instance = s.instance.clone();
    match tokio::task::spawn_blocking(move || metrics.render(&instance, &store)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the state: {e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics task failed: {e}\n")).into_response(),
    }
}

async fn healthz(State(s): State<AppState>) -> Response {
    let tick = s.metrics.last_tick();
    let counts = s.store.counts();
    let (status, code) = match (&tick, &counts) {
        (_, Err(_)) => ("store_error", StatusCode::SERVICE_UNAVAILABLE),
        (None, _) => ("starting", StatusCode::SERVICE_UNAVAILABLE),
        (Some(t), _) if !t.errors.is_empty() => ("degraded", StatusCode::OK),
        _ => ("ok", StatusCode::OK),
    };
    let body = serde_json::json!({
        "status": status,
        "instance": s.instance,
        "last_tick": tick,
        "counts": counts.ok(),
    });
    (code, Json(body)).into_response()
}
