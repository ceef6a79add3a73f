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
use crate::report::{Dimension, Format};
use crate::store::Store;

/// The running policy as the endpoints read it: the daemon swaps it on reload.
pub type PublishedPolicy = Arc<std::sync::RwLock<Arc<crate::policy::CompiledPolicy>>>;

#[derive(Clone)]
struct AppState {
    instance: String,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// The running policy (replaced on reload).
    policy: PublishedPolicy,
}

/// Binds `addr` (the config only allows loopback) and serves in the
/// background until `stop` turns true; the task ends once the requests in
/// progress are answered.
pub async fn serve(
    addr: SocketAddr,
    instance: String,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    policy: PublishedPolicy,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(instance, store, metrics, policy);
    let task = tokio::spawn(async move {
        // Stops accepting when `stop` turns true (or its sender is gone),
        // lets the requests being answered finish, then releases the store.
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(%local, "serving /metrics and /healthz");
    Ok((local, task))
}

pub fn router(instance: String, store: Arc<Store>, metrics: Arc<Metrics>, policy: PublishedPolicy) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/scorecard", get(scorecard))
        .with_state(AppState { instance, store, metrics, policy })
}

#[derive(serde::Deserialize)]
struct ScorecardQuery {
    weeks: Option<usize>,
    format: Option<String>,
    by: Option<String>,
    /// Present (`/scorecard?tv`): the full-screen TV view.
    tv: Option<String>,
}

/// `/scorecard?weeks=8&format=table|csv|json|html&by=grade|source|rep|team`:
/// what `handoff report` prints, from the running daemon's state, with the
/// signals the daemon judged on the latest closed week. `/scorecard?tv`:
/// the same page full-screen, in large type, refreshing every minute.
async fn scorecard(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ScorecardQuery>,
) -> Response {
    use clap::ValueEnum as _;
    let format = match q.format.as_deref().map(|f| Format::from_str(f, true)).unwrap_or(Ok(Format::Html)) {
        Ok(f) => f,
        Err(_) => return (StatusCode::BAD_REQUEST, "format is one of table, csv, json, html\n").into_response(),
    };
    let by = match q.by.as_deref().map(|b| Dimension::from_str(b, true)).transpose() {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "by is one of grade, source, rep, team\n").into_response(),
    };
    let weeks = q.weeks.unwrap_or(8).clamp(1, 52);
    let tv = q.tv.is_some();
    let now = s.metrics.last_tick().and_then(|t| t.now).unwrap_or_else(chrono::Utc::now);
    let policy = match s.policy.read() {
        Ok(p) => p.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut card = crate::report::from_store(&s.instance, &policy, &s.store, weeks, now, by)?;
        card.signals = crate::report::signals::cached_signals(&s.store)?;
        Ok::<_, crate::store::StoreError>(card)
    })
    .await;
    match result {
        Ok(Ok(card)) if tv => {
            ([(header::CONTENT_TYPE, Format::Html.content_type())], crate::report::render_tv(&card)).into_response()
        }
        Ok(Ok(card)) => {
            ([(header::CONTENT_TYPE, format.content_type())], crate::report::render(&card, format)).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the state: {e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("scorecard task failed: {e}\n")).into_response(),
    }
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
