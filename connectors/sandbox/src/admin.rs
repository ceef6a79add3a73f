//! The generic admin API under `/__sandbox/` (documented in the crate's
//! README): the clock, faults, the request log and the org's ground truth.
//! Emulators add their own CRM-specific admin routes beside these.
//!
//! Admin requests are not written to the request log: tests count the API
//! calls a client made, not their own setup.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::faults::Fault;
use crate::server::Shared;

/// The generic admin routes, ready to merge with an emulator's router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__sandbox/clock", get(get_clock).post(post_clock))
        .route("/__sandbox/faults", get(get_faults).post(post_fault).delete(delete_faults))
        .route("/__sandbox/requests", get(get_requests).delete(delete_requests))
        .route("/__sandbox/org", get(get_org))
        .with_state(shared)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn clock_body(shared: &Shared) -> serde_json::Value {
    json!({
        "now": shared.clock.now(),
        "timeline_start_at": shared.org.config.start_at,
        "timeline_end_at": shared.org.config.end_at(),
    })
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> Response {
    Json(clock_body(&shared)).into_response()
}

/// Body of `POST /__sandbox/clock`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockMove {
    advance_secs: Option<i64>,
    to: Option<DateTime<Utc>>,
}

async fn post_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mv: ClockMove = match serde_json::from_slice(&body) {
        Ok(mv) => mv,
        Err(e) => {
            return bad_request(format!("clock body must be {{\"advance_secs\": N}} or {{\"to\": \"RFC3339\"}}: {e}"))
        }
    };
    match (mv.advance_secs, mv.to) {
        (Some(secs), None) if secs >= 0 => shared.clock.advance(Duration::seconds(secs)),
        (Some(secs), None) => {
            return bad_request(format!("advance_secs must be >= 0 (the clock never goes back), got {secs}"))
        }
        (None, Some(to)) => {
            let now = shared.clock.now();
            if to < now {
                return bad_request(format!("cannot move the clock back from {now} to {to}"));
            }
            shared.clock.advance_to(to);
        }
        _ => return bad_request("give exactly one of advance_secs or to".to_string()),
    }
    Json(clock_body(&shared)).into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.list()).into_response()
}

async fn post_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            shared.faults.arm(fault);
            (StatusCode::CREATED, Json(shared.faults.list())).into_response()
        }
        Err(e) => bad_request(format!(
            "a fault is {{\"kind\": \"rate_limit_storm\"|\"server_errors\"|\"latency\"|\"partial_batch_failure\"|\"search_lag\", ...}} (see the sandbox README): {e}"
        )),
    }
}

async fn delete_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct Since {
    since: Option<usize>,
}

/// The log from index `since` on (0 when absent), oldest first.
async fn get_requests(State(shared): State<Arc<Shared>>, Query(q): Query<Since>) -> Response {
    let log = shared.log.snapshot();
    let from = q.since.unwrap_or(0).min(log.len());
    Json(&log[from..]).into_response()
}

async fn delete_requests(State(shared): State<Arc<Shared>>) -> Response {
    shared.log.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_org(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.org.as_ref()).into_response()
}
