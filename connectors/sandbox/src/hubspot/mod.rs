//! HubSpot CRM v3 API emulator.
//!
//! Serves `/crm/v3/objects/{contacts,calls,emails,meetings,tasks,leads,deals}` (and the
//! date-versioned `/crm/objects/{YYYY-MM}/…` twins), search, batch,
//! v4 associations, owners, properties, `/oauth/v1/token`, and admin routes
//! under `/__sandbox/hubspot/`.
//!
//! Every API request goes through the same steps: materialise the org
//! timeline up to now, authenticate, apply injected faults, admit against
//! the rate limits, dispatch, add the `X-HubSpot-RateLimit-*` headers, log.
//!
//! Layout: [`store`] (records and the modified-time index), [`search`]
//! (filter evaluation and paging), [`limits`] (rate-limit windows),
//! [`errors`] (HubSpot's error bodies), [`oauth`] (tokens),
//! [`properties`] (property definitions), [`state`] (the portal and the
//! org timeline), [`routes`] (API dispatch), [`admin`] (admin routes).

pub mod admin;
pub mod errors;
pub mod leads;
pub mod limits;
pub mod oauth;
pub mod properties;
pub mod routes;
pub mod search;
pub mod state;
pub mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::Value;

use crate::faults::Injected;
use crate::log::LoggedRequest;
use crate::server::{Emulator, SandboxError, Shared};
use errors::{rate_limited, ApiError};
use limits::RateHeaders;
use routes::{ApiRequest, Ctx};
use state::HubState;

/// The emulator: shared sandbox services plus the portal state.
pub struct HubSpot {
    shared: Arc<Shared>,
    state: Mutex<HubState>,
}

impl HubSpot {
    pub fn new(shared: Arc<Shared>) -> Self {
        HubSpot { shared, state: Mutex::new(HubState::new()) }
    }

    /// The portal state with the org timeline applied up to now.
    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        // A poisoned lock still guards consistent-enough test data.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.materialise(&self.shared.org, self.shared.clock.now());
        st
    }
}

/// Build the router and credentials (see the module docs for the paths).
pub fn build(shared: Arc<Shared>) -> Result<Emulator, SandboxError> {
    let hub = Arc::new(HubSpot::new(shared));
    let credentials = admin::credentials(&hub.lock());
    Ok(Emulator { router: router(hub), credentials })
}

/// The router alone, for tests that drive it without a listener.
pub fn router(hub: Arc<HubSpot>) -> Router {
    Router::new()
        .route("/crm/v3/objects/{*rest}", any(api))
        .route("/crm/objects/{*rest}", any(api))
        .route("/crm/v3/owners", any(api))
        .route("/crm/v3/owners/", any(api))
        .route("/crm/v3/owners/{*rest}", any(api))
        .route("/crm/v3/properties/{*rest}", any(api))
        .route("/crm/v3/pipelines/{*rest}", any(api))
        .route("/crm/v4/objects/{*rest}", any(api))
        .route("/crm/v4/associations/{*rest}", any(api))
        .route("/account-info/v3/api-usage/daily/private-apps", any(api))
        .route("/account-info/v3/details", any(api))
        .route("/oauth/v1/token", any(token))
        .route("/oauth/v2/private-apps/get/access-token-info", any(token_info))
        .route("/oauth/v1/access-tokens/{token}", any(token_info))
        .route("/__sandbox/hubspot/{*rest}", any(admin_route))
        .with_state(hub)
}

fn json_response(status: StatusCode, body: &Value, headers: &RateHeaders) -> Response {
    text_response(status, body.to_string(), headers)
}

/// An answer whose JSON is already written out.
fn text_response(status: StatusCode, body: String, headers: &RateHeaders) -> Response {
    let mut resp = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, [(axum::http::header::CONTENT_TYPE, "application/json;charset=utf-8")], body).into_response()
    };
    for (name, value) in &headers.0 {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

fn is_write(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

async fn api(State(hub): State<Arc<HubSpot>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let shared = hub.shared.clone();
    let now = shared.clock.now();
    let body_json: Option<Value> = if is_write(&method) { serde_json::from_slice(&body).ok() } else { None };
    let log = |status: StatusCode, counted: bool| {
        shared.log.push(LoggedRequest {
            at: now,
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            status: status.as_u16(),
            counted,
            body: body_json.clone(),
        });
    };
    let no_headers = RateHeaders(Vec::new());

    let auth = {
        let st = hub.lock();
        st.tokens.authenticate(headers.get("authorization").and_then(|v| v.to_str().ok()), now)
    };
    let auth = match auth {
        Ok(a) => a,
        Err(e) => {
            log(e.status, false);
            return json_response(e.status, &e.body, &no_headers);
        }
    };

    let (delay, injected) = shared.faults.on_request(now);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    shared.faults.pass_gate(uri.path()).await;
    match injected {
        Injected::None => {}
        Injected::RateLimited { retry_after } => {
            let e = rate_limited(errors::RatePolicy::TenSecondlyRolling, state::APP_ID, state::PORTAL_ID);
            let headers = RateHeaders(vec![("Retry-After", retry_after.as_secs().to_string())]);
            log(e.status, true);
            return json_response(e.status, &e.body, &headers);
        }
        Injected::ServerError { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let e = ApiError::internal(status);
            log(status, true);
            return json_response(status, &e.body, &no_headers);
        }
    }

    let req = match ApiRequest::parse(method.clone(), uri.path(), uri.query(), &body) {
        Ok(r) => r,
        Err(e) => {
            log(e.status, true);
            return json_response(e.status, &e.body, &no_headers);
        }
    };
    let is_search = req.is_search();
    let is_batch_write = req.method == Method::POST
        && req.segments.iter().any(|s| s == "batch")
        && !req.segments.iter().any(|s| s == "read");
    // A write to records (not a search, not a batch read, not a property
    // definition): what the lost-response fault applies to.
    let is_record_write = is_write(&req.method)
        && !is_search
        && req.segments.get(2).is_some_and(|s| s == "objects")
        && !req.segments.iter().any(|s| s == "read");

    // The state lock is released before any await below.
    let (status, body, rate_headers, lost) = {
        let mut st = hub.lock();
        let (verdict, rate_headers) = st.limits.admit(now, auth, is_search);
        if let Err(policy) = verdict {
            let e = rate_limited(policy, state::APP_ID, state::PORTAL_ID);
            log(e.status, true);
            return json_response(e.status, &e.body, &rate_headers);
        }
        let ctx = Ctx {
            now,
            base_url: &shared.base_url,
            org: &shared.org,
            search_lag_ms: shared.faults.search_lag().map(|d| d.num_milliseconds()),
            batch_failure_marker: if is_batch_write { shared.faults.take_batch_failure(&body) } else { None },
        };
        let (status, answer) = match routes::dispatch_text(&mut st, &ctx, &req) {
            Ok(answer) => answer,
            Err(e) => (e.status, e.body.to_string()),
        };
        let lost = if is_record_write && status.is_success() { take_lost_response(&mut st) } else { None };
        (status, answer, rate_headers, lost)
    };
    match lost {
        Some(state::LostResponses { status: Some(code), .. }) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            log(code, true);
            json_response(code, &ApiError::internal(code).body, &no_headers)
        }
        Some(state::LostResponses { delay_ms, .. }) => {
            // The write is in (and logged: a client that gives up drops
            // this handler mid-sleep); the answer comes too late.
            log(status, true);
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms.unwrap_or(0))).await;
            text_response(status, body, &rate_headers)
        }
        None => {
            log(status, true);
            text_response(status, body, &rate_headers)
        }
    }
}

/// Use up one lost response, if any is armed.
fn take_lost_response(st: &mut HubState) -> Option<state::LostResponses> {
    let armed = st.lost_responses.as_mut()?;
    if armed.count == 0 {
        st.lost_responses = None;
        return None;
    }
    armed.count -= 1;
    let taken = armed.clone();
    if armed.count == 0 {
        st.lost_responses = None;
    }
    Some(taken)
}

async fn token(State(hub): State<Arc<HubSpot>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let now = hub.shared.clock.now();
    if let Some(page) = hub.shared.faults.take_token_echo(&body) {
        return html_error_page(page);
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (status, answer) = if method == Method::POST {
        hub.lock().tokens.token_endpoint(&form, now)
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"status": "error", "message": "use POST"}))
    };
    // The token endpoint does not count against the API limits; the form
    // holds secrets, so only the grant type is logged.
    hub.shared.log.push(LoggedRequest {
        at: now,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: None,
        status: status.as_u16(),
        counted: false,
        body: Some(serde_json::json!({"grant_type": form.get("grant_type")})),
    });
    json_response(status, &answer, &RateHeaders(Vec::new()))
}

/// The token-info endpoints (private app and OAuth). Not counted against
/// the API limits; the token never reaches the request log.
async fn token_info(State(hub): State<Arc<HubSpot>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let now = hub.shared.clock.now();
    let path = uri.path();
    let (status, answer, logged_path) = if let Some(token) = path.strip_prefix("/oauth/v1/access-tokens/") {
        let answer = if method == Method::GET {
            hub.lock().tokens.access_token_info(token, now)
        } else {
            (StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"status": "error", "message": "use GET"}))
        };
        (answer.0, answer.1, "/oauth/v1/access-tokens/{token}".to_string())
    } else {
        let answer = match (method == Method::POST, serde_json::from_slice::<Value>(&body)) {
            (true, Ok(v)) => hub.lock().tokens.private_app_token_info(&v),
            (true, Err(e)) => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"status": "error", "message": format!("Invalid input JSON: {e}")}),
            ),
            (false, _) => {
                (StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"status": "error", "message": "use POST"}))
            }
        };
        (answer.0, answer.1, path.to_string())
    };
    hub.shared.log.push(LoggedRequest {
        at: now,
        method: method.to_string(),
        path: logged_path,
        query: None,
        status: status.as_u16(),
        counted: false,
        body: None,
    });
    json_response(status, &answer, &RateHeaders(Vec::new()))
}

/// A gateway's HTML error page (HTTP 502), as [`crate::Fault::TokenEchoPage`] answers.
pub(crate) fn html_error_page(page: String) -> Response {
    (StatusCode::BAD_GATEWAY, [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn admin_route(State(hub): State<Arc<HubSpot>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let now = hub.shared.clock.now();
    let body: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let err = serde_json::json!({"error": format!("the body must be JSON: {e}")});
                return json_response(StatusCode::BAD_REQUEST, &err, &RateHeaders(Vec::new()));
            }
        }
    };
    let rest = uri.path().trim_start_matches("/__sandbox/hubspot");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let query: BTreeMap<String, String> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let (status, answer) = admin::dispatch(&mut hub.lock(), now, &method, &segments, &query, &body);
    json_response(status, &answer, &RateHeaders(Vec::new()))
}
