//! The real Salesforce paths: `/services/oauth2/token`, `/services/oauth2/revoke`
//! and everything under `/services/data/`.
//!
//! One handler parses every `/services/data/…` path itself, so trailing
//! slashes (simple-salesforce asks for `…/limits/` and `…/query/?q=`) and
//! unknown versions behave as on the real service. Order of checks per
//! request: session (401 `INVALID_SESSION_ID`), daily allocation (403
//! `REQUEST_LIMIT_EXCEEDED`), injected faults, then the resource. Every
//! response but the versions list carries `Sforce-Limit-Info`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::errors::{failed_save_result, ApiError, RecordError};
use super::oauth::TokenForm;
use super::state::{SfState, Undo, WriteKind, DEFAULT_BATCH_SIZE, MAX_COLLECTION_RECORDS, MIN_BATCH_SIZE};
use super::{bulk, composite, Salesforce};
use crate::faults::Injected;
use crate::log::LoggedRequest;

/// Oldest and newest API versions served (`v20.0` is Winter '11).
pub const MIN_VERSION: u32 = 20;
pub const MAX_VERSION: u32 = 62;

pub fn router(sf: Arc<Salesforce>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(revoke))
        .route("/services/data", any(data))
        .route("/services/data/", any(data))
        .route("/services/data/{*rest}", any(data))
        .with_state(sf)
}

fn form_of(body: &Bytes, uri: &Uri) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    if let Some(q) = uri.query() {
        pairs.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    pairs
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn log(
    sf: &Salesforce,
    at: DateTime<Utc>,
    method: &Method,
    uri: &Uri,
    status: StatusCode,
    counted: bool,
    body: Option<Value>,
) {
    sf.shared.log.push(LoggedRequest {
        at,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        status: status.as_u16(),
        counted,
        body,
    });
}

async fn token(
    State(sf): State<Arc<Salesforce>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = sf.shared.clock.now();
    if let Some(page) = sf.shared.faults.take_token_echo(&body) {
        return crate::hubspot::html_error_page(page);
    }
    let pairs = form_of(&body, &uri);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let form = TokenForm {
        grant_type: get("grant_type"),
        assertion: get("assertion"),
        refresh_token: get("refresh_token"),
        client_id: get("client_id"),
        client_secret: get("client_secret"),
    };
    let result = {
        let mut st = sf.sync(now);
        let app = st.app.clone();
        st.tokens.token(&app, &form, basic_auth(&headers), now)
    };
    // Token requests are not counted against the API allocation; the form
    // carries secrets, so only the grant type is logged.
    let logged = Some(json!({ "grant_type": form.grant_type }));
    let resp = match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => e.into_response(),
    };
    log(&sf, now, &method, &uri, resp.status(), false, logged);
    resp
}

async fn revoke(State(sf): State<Arc<Salesforce>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let now = sf.shared.clock.now();
    let pairs = form_of(&body, &uri);
    let token = pairs.iter().find(|(n, _)| n == "token").map(|(_, v)| v.clone()).unwrap_or_default();
    let revoked = sf.sync(now).tokens.revoke(&token);
    let resp = if revoked {
        StatusCode::OK.into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_token_type", "error_description": "this token type is not supported"})),
        )
            .into_response()
    };
    log(&sf, now, &method, &uri, resp.status(), false, None);
    resp
}

/// `/services/data/` — the versions list: no session needed, not counted,
/// no `Sforce-Limit-Info`.
fn versions() -> Value {
    let list: Vec<Value> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| {
            let k = v - MIN_VERSION;
            let season = ["Winter", "Spring", "Summer"][(k % 3) as usize];
            let year = 11 + k / 3;
            json!({"label": format!("{season} '{year:02}"), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")})
        })
        .collect();
    Value::Array(list)
}

/// `v62.0` → the version string, if served.
pub(super) fn parse_version(seg: &str) -> Option<String> {
    let n = seg.strip_prefix('v')?.strip_suffix(".0")?.parse::<u32>().ok()?;
    (MIN_VERSION..=MAX_VERSION).contains(&n).then(|| seg.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("OAuth "))?;
    Some(t.trim().to_string())
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|p| {
                let (k, n) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("batchSize")).then(|| n.trim().parse::<usize>().ok()).flatten()
            })
        })
        .map_or(DEFAULT_BATCH_SIZE, |n| n.clamp(MIN_BATCH_SIZE, DEFAULT_BATCH_SIZE))
}

fn with_limit_header(mut resp: Response, header: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(header) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
    resp
}

/// What one API request sees: who is calling and when.
pub struct Ctx<'a> {
    pub user_id: String,
    pub now: DateTime<Utc>,
    pub version: &'a str,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub fail_marker: Option<String>,
}

impl Ctx<'_> {
    fn param(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

async fn data(
    State(sf): State<Arc<Salesforce>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = sf.shared.clock.now();
    // Path segments are percent-decoded ('+' stays '+', unlike forms).
    let segs: Vec<String> = uri
        .path()
        .trim_start_matches("/services/data")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let logged_body = if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
        serde_json::from_slice::<Value>(&body).ok()
    } else {
        None
    };

    if segs.is_empty() {
        let resp = Json(versions()).into_response();
        log(&sf, now, &method, &uri, resp.status(), false, None);
        return resp;
    }
    let Some(version) = parse_version(&segs[0]) else {
        let resp = ApiError::not_found().into_response();
        log(&sf, now, &method, &uri, resp.status(), false, None);
        return resp;
    };

    // Session, then allocation.
    let (user, limit_refused, header) = {
        let mut st = sf.sync(now);
        let user = bearer(&headers).and_then(|t| st.tokens.session_user(&t, now).map(str::to_string));
        let refused = user.is_some() && st.usage.exhausted(now);
        let header = st.usage.header_value(now);
        (user, refused, header)
    };
    let Some(user_id) = user else {
        let resp = with_limit_header(ApiError::invalid_session().into_response(), &header);
        log(&sf, now, &method, &uri, resp.status(), false, logged_body);
        return resp;
    };
    if limit_refused {
        let resp = with_limit_header(ApiError::request_limit_exceeded().into_response(), &header);
        log(&sf, now, &method, &uri, resp.status(), false, logged_body);
        return resp;
    }

    let (delay, injected) = sf.shared.faults.on_request(now);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    sf.shared.faults.pass_gate(uri.path()).await;
    let (resp, header) = {
        let mut st = sf.sync(now);
        st.usage.record(now);
        let header = st.usage.header_value(now);
        let resp = match injected {
            // Salesforce has no 429: an over-eager client meets the
            // allocation error.
            Injected::RateLimited { .. } => ApiError::request_limit_exceeded().into_response(),
            Injected::ServerError { status } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
                    ("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later.")
                } else {
                    ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)")
                };
                (status, Json(json!([{"message": message, "errorCode": code}]))).into_response()
            }
            Injected::None => {
                let fail_marker = if matches!(method, Method::POST | Method::PATCH | Method::DELETE) {
                    sf.shared.faults.take_batch_failure(&body)
                } else {
                    None
                };
                let ctx = Ctx {
                    user_id,
                    now,
                    version: &version,
                    query: uri
                        .query()
                        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                        .unwrap_or_default(),
                    headers: &headers,
                    fail_marker,
                };
                match dispatch(&mut st, &ctx, &method, &segs[1..], &body) {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                }
            }
        };
        (resp, header)
    };
    let resp = with_limit_header(resp, &header);
    log(&sf, now, &method, &uri, resp.status(), true, logged_body);
    resp
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::json_parser(format!("Unexpected character: {e}")))
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

/// The one Tooling API query the emulator answers:
/// `SELECT … FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = 'X'`
/// (every field of X with `QualifiedApiName`, `DataType` and
/// `IsFieldHistoryTracked`, whatever the SELECT list names).
fn tooling_field_definitions(st: &SfState, q: &str) -> Result<Value, ApiError> {
    let lower = q.to_ascii_lowercase();
    let object = lower
        .contains(" from fielddefinition ")
        .then(|| q.split_once('\'').and_then(|(_, rest)| rest.split_once('\'')).map(|(name, _)| name))
        .flatten()
        .filter(|_| lower.contains("entitydefinition.qualifiedapiname"));
    let Some(object) = object else {
        return Err(ApiError::malformed_query(format!(
            "the sandbox's Tooling API answers only SELECT … FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = 'Object', not: {q}"
        )));
    };
    let name = st
        .object_name(object)
        .ok_or_else(|| ApiError::invalid_type(format!("sObject type '{object}' is not supported.")))?;
    let rows = st.field_definitions(&name).unwrap_or_default();
    Ok(
        json!({"size": rows.len(), "totalSize": rows.len(), "done": true, "entityTypeName": "FieldDefinition", "records": rows}),
    )
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD"),
    )
}

pub(super) fn dispatch(
    st: &mut SfState,
    ctx: &Ctx<'_>,
    method: &Method,
    segs: &[String],
    body: &Bytes,
) -> Result<Response, ApiError> {
    let v = ctx.version;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method, s.as_slice()) {
        (&Method::GET, []) => Ok(ok(json!({
            "limits": format!("/services/data/{v}/limits"),
            "sobjects": format!("/services/data/{v}/sobjects"),
            "query": format!("/services/data/{v}/query"),
            "queryAll": format!("/services/data/{v}/queryAll"),
            "composite": format!("/services/data/{v}/composite"),
        }))),
        (&Method::GET, ["limits"]) => Ok(ok(limits_body(st, ctx.now))),
        (&Method::GET, [kind @ ("query" | "queryAll")]) => {
            let q = ctx.param("q").ok_or_else(|| ApiError::malformed_query("A query string has to be specified"))?;
            Ok(ok(st.run_query(q, *kind == "queryAll", batch_size(ctx.headers), v, ctx.now)?.body))
        }
        (&Method::GET, ["query" | "queryAll", locator]) => Ok(ok(st.query_more(locator, v)?.body)),
        (&Method::GET, ["tooling", "query"]) => {
            let q = ctx.param("q").ok_or_else(|| ApiError::malformed_query("A query string has to be specified"))?;
            Ok(ok(tooling_field_definitions(st, q)?))
        }
        (&Method::GET, ["sobjects"]) => {
            let list: Vec<Value> = st.objects.values().map(|o| o.summary(v)).collect();
            Ok(ok(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list})))
        }
        (_, ["sobjects", object, rest @ ..]) => {
            let object = st.object_name(object).ok_or_else(ApiError::not_found)?;
            sobject(st, ctx, method, &object, rest, body)
        }
        (_, ["composite", "sobjects", rest @ ..]) => collections(st, ctx, method, rest, body),
        (&Method::POST, ["composite"]) => composite::run(st, ctx, body),
        (&Method::POST, ["jobs", "query"]) => bulk::create(st, &json_body(body)?, &ctx.user_id, v, ctx.now),
        (&Method::GET, ["jobs", "query"]) => Ok(bulk::list(st, ctx.now)),
        (&Method::GET, ["jobs", "query", id]) => bulk::poll(st, id, ctx.now),
        (&Method::PATCH, ["jobs", "query", id]) => bulk::abort(st, id, &json_body(body)?, ctx.now),
        (&Method::DELETE, ["jobs", "query", id]) => bulk::delete(st, id, ctx.now),
        (&Method::GET, ["jobs", "query", id, "results"]) => {
            bulk::results(st, id, ctx.param("locator"), ctx.param("maxRecords"), v, ctx.now)
        }
        (&Method::GET, _) => Err(ApiError::not_found()),
        _ => Err(ApiError::not_found()),
    }
}

fn limits_body(st: &mut SfState, now: DateTime<Utc>) -> Value {
    let max = st.usage.daily_limit();
    let used = st.usage.used(now);
    let mut body = json!({
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "ConcurrentSyncReportRuns": {"Max": 20, "Remaining": 20},
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkApiBatches": st.bulk_usage.batches.to_json(now),
        "DailyBulkApiRequests": {"Max": 5000, "Remaining": 5000},
        "DailyBulkV2QueryFileStorageMB": st.bulk_usage.query_storage_mb.to_json(now),
        "DailyBulkV2QueryJobs": st.bulk_usage.query_jobs.to_json(now),
        "DailyDurableGenericStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
        "DailyDurableStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
        "DailyGenericStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
        "DailyStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
        "DailyWorkflowEmails": {"Max": 390, "Remaining": 390},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
        "HourlyAsyncReportRuns": {"Max": 1200, "Remaining": 1200},
        "HourlyDashboardRefreshes": {"Max": 200, "Remaining": 200},
        "HourlyDashboardResults": {"Max": 5000, "Remaining": 5000},
        "HourlyDashboardStatuses": {"Max": 999999999, "Remaining": 999999999},
        "HourlySyncReportRuns": {"Max": 500, "Remaining": 500},
        "MassEmail": {"Max": 10, "Remaining": 10},
        "SingleEmail": {"Max": 15, "Remaining": 15}
    });
    if let Some(obj) = body.as_object_mut() {
        let sorted: Map<String, Value> = std::mem::take(obj).into_iter().collect();
        *obj = sorted;
    }
    body
}

fn save_ok(id: &str) -> Value {
    json!({"id": id, "success": true, "errors": []})
}

/// A single-record failure answered as the REST error array.
fn record_error_response(errors: Vec<RecordError>) -> ApiError {
    let first = errors.into_iter().next().unwrap_or_else(|| RecordError::new("UNKNOWN_EXCEPTION", "unknown", vec![]));
    let code: &'static str = match first.status_code.as_str() {
        "REQUIRED_FIELD_MISSING" => "REQUIRED_FIELD_MISSING",
        "INVALID_FIELD" => "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE" => "INVALID_FIELD_FOR_INSERT_UPDATE",
        "JSON_PARSER_ERROR" => "JSON_PARSER_ERROR",
        "MALFORMED_ID" => "MALFORMED_ID",
        "INVALID_CROSS_REFERENCE_KEY" => "INVALID_CROSS_REFERENCE_KEY",
        "DUPLICATE_VALUE" => "DUPLICATE_VALUE",
        "ENTITY_IS_DELETED" => "ENTITY_IS_DELETED",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "INSUFFICIENT_ACCESS_OR_READONLY" => "INSUFFICIENT_ACCESS_OR_READONLY",
        "INVALID_TYPE" => "INVALID_TYPE",
        _ => "UNKNOWN_EXCEPTION",
    };
    let status = if code == "ENTITY_IS_DELETED" { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
    ApiError::new(status, code, first.message).with_fields(first.fields)
}

fn as_object(v: Value) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::json_parser("Cannot deserialize instance of SObject from START_ARRAY value")),
    }
}

fn sobject(
    st: &mut SfState,
    ctx: &Ctx<'_>,
    method: &Method,
    object: &str,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response, ApiError> {
    let v = ctx.version;
    let fail = ctx.fail_marker.as_deref();
    match (method, rest) {
        (&Method::GET, []) => {
            let def = st.objects.get(object).ok_or_else(ApiError::not_found)?;
            Ok(ok(json!({"objectDescribe": def.summary(v), "recentItems": []})))
        }
        (&Method::POST, []) => {
            let fields = as_object(json_body(body)?)?;
            let mut undo = Vec::new();
            let id = st
                .write(object, WriteKind::Create, None, &fields, &ctx.user_id, ctx.now, fail, &mut undo)
                .map_err(record_error_response)?;
            Ok((StatusCode::CREATED, Json(save_ok(&id))).into_response())
        }
        (&Method::GET, ["describe"]) => {
            let def = st.objects.get(object).ok_or_else(ApiError::not_found)?;
            Ok(ok(def.describe(v)))
        }
        (&Method::GET, [kind @ ("updated" | "deleted")]) => {
            Ok(ok(st.replication(object, *kind == "deleted", ctx.param("start"), ctx.param("end"), ctx.now)?))
        }
        (_, [id]) => {
            if !st.id_matches_object(object, id) {
                return Err(ApiError::not_found());
            }
            match *method {
                Method::GET => {
                    let row = st.render_row(object, id, ctx.param("fields"), v).ok_or_else(ApiError::not_found)?;
                    if row.get("IsDeleted") == Some(&json!(true)) {
                        return Err(ApiError::new(StatusCode::NOT_FOUND, "ENTITY_IS_DELETED", "entity is deleted")
                            .with_fields(vec![]));
                    }
                    Ok(ok(row))
                }
                Method::PATCH => {
                    if st.get(object, id).is_none() {
                        return Err(ApiError::not_found());
                    }
                    let fields = as_object(json_body(body)?)?;
                    let mut undo = Vec::new();
                    st.write(object, WriteKind::Update, Some(id), &fields, &ctx.user_id, ctx.now, fail, &mut undo)
                        .map_err(record_error_response)?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                Method::DELETE => {
                    if st.get(object, id).is_none() {
                        return Err(ApiError::not_found());
                    }
                    st.delete(object, id, ctx.now).map_err(|e| record_error_response(vec![e]))?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(method_not_allowed(method)),
            }
        }
        (_, [field, value]) => {
            let def = st.objects.get(object).cloned().ok_or_else(ApiError::not_found)?;
            let ext = def.field(field).filter(|f| f.external_id || f.name == "Id").map(|f| f.name.clone()).ok_or_else(
                || {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        format!("Provided external ID field does not exist or is not accessible: {field}"),
                    )
                },
            )?;
            let matches = if ext == "Id" {
                st.get(object, value).map(|_| vec![super::store::normalise_id(value)]).unwrap_or_default()
            } else {
                st.find_by_field(object, &ext, value)
            };
            if matches.len() > 1 {
                let urls: Vec<String> =
                    matches.iter().map(|id| format!("/services/data/{v}/sobjects/{object}/{id}")).collect();
                return Ok((StatusCode::MULTIPLE_CHOICES, Json(json!(urls))).into_response());
            }
            match *method {
                Method::GET => {
                    let id = matches.first().ok_or_else(ApiError::not_found)?;
                    Ok(ok(st.render_row(object, id, ctx.param("fields"), v).ok_or_else(ApiError::not_found)?))
                }
                Method::PATCH => {
                    let mut fields = as_object(json_body(body)?)?;
                    if fields.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
                        return Err(ApiError::invalid_field(
                            "The Id field should not be specified in the sobject data.",
                        ));
                    }
                    let mut undo = Vec::new();
                    match matches.first() {
                        Some(id) => {
                            fields.retain(|k, _| !k.eq_ignore_ascii_case(&ext));
                            st.write(
                                object,
                                WriteKind::Update,
                                Some(id),
                                &fields,
                                &ctx.user_id,
                                ctx.now,
                                fail,
                                &mut undo,
                            )
                            .map_err(record_error_response)?;
                            Ok((
                                StatusCode::OK,
                                Json(json!({"id": id, "success": true, "errors": [], "created": false})),
                            )
                                .into_response())
                        }
                        None if ctx.param("updateOnly") == Some("true") || ext == "Id" => Err(ApiError::not_found()),
                        None => {
                            fields.insert(ext.clone(), json!(value));
                            let id = st
                                .write(object, WriteKind::Create, None, &fields, &ctx.user_id, ctx.now, fail, &mut undo)
                                .map_err(record_error_response)?;
                            Ok((
                                StatusCode::CREATED,
                                Json(json!({"id": id, "success": true, "errors": [], "created": true})),
                            )
                                .into_response())
                        }
                    }
                }
                _ => Err(method_not_allowed(method)),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// The body of a collections write: `allOrNone` and `records`.
fn collection_body(body: &Bytes) -> Result<(bool, Vec<Value>), ApiError> {
    let v = json_body(body)?;
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let records = v.get("records").and_then(Value::as_array).cloned().unwrap_or_default();
    if records.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "REQUIRED_FIELD_MISSING", "At least 1 record is required"));
    }
    if records.len() > MAX_COLLECTION_RECORDS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok((all_or_none, records))
}

fn record_type(rec: &Value) -> Option<&str> {
    rec.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str)
}

/// One record's outcome in a collection: its result, or its id (when it had
/// one) and why it failed.
type RecordOutcome = Result<Value, (Option<String>, Vec<RecordError>)>;

/// Apply per-record outcomes: with `allOrNone` and any failure, undo every
/// write and answer rolled-back errors for the records that had succeeded.
fn finish(st: &mut SfState, all_or_none: bool, outcomes: Vec<RecordOutcome>, undo: Vec<Undo>) -> Response {
    let failed = outcomes.iter().any(Result::is_err);
    let results: Vec<Value> = if all_or_none && failed {
        st.rollback(undo);
        outcomes
            .into_iter()
            .map(|o| match o {
                Ok(_) => failed_save_result(None, &[RecordError::rolled_back()]),
                Err((_, errs)) => failed_save_result(None, &errs),
            })
            .collect()
    } else {
        outcomes
            .into_iter()
            .map(|o| match o {
                Ok(v) => v,
                Err((id, errs)) => failed_save_result(id.as_deref(), &errs),
            })
            .collect()
    };
    ok(Value::Array(results))
}

fn collections(
    st: &mut SfState,
    ctx: &Ctx<'_>,
    method: &Method,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response, ApiError> {
    let fail = ctx.fail_marker.as_deref();
    match (method, rest) {
        (&Method::POST, []) => {
            let (all_or_none, records) = collection_body(body)?;
            let mut undo = Vec::new();
            let mut outcomes = Vec::new();
            for rec in &records {
                let Some(ty) = record_type(rec).and_then(|t| st.object_name(t)) else {
                    return Err(ApiError::invalid_type("No SObject Type defined in the record"));
                };
                let fields = rec.as_object().cloned().unwrap_or_default();
                if all_or_none && outcomes.iter().any(Result::is_err) {
                    // After the first failure nothing else is attempted.
                    outcomes.push(Ok(Value::Null));
                    continue;
                }
                outcomes.push(
                    st.write(&ty, WriteKind::Create, None, &fields, &ctx.user_id, ctx.now, fail, &mut undo)
                        .map(|id| save_ok(&id))
                        .map_err(|e| (None, e)),
                );
            }
            Ok(finish(st, all_or_none, outcomes, undo))
        }
        (&Method::PATCH, []) => {
            let (all_or_none, records) = collection_body(body)?;
            let mut undo = Vec::new();
            let mut outcomes = Vec::new();
            for rec in &records {
                let Some(ty) = record_type(rec).and_then(|t| st.object_name(t)) else {
                    return Err(ApiError::invalid_type("No SObject Type defined in the record"));
                };
                let fields = rec.as_object().cloned().unwrap_or_default();
                let id = fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_string);
                let outcome = match &id {
                    None => Err((
                        None,
                        vec![RecordError::new("MISSING_ARGUMENT", "Id not specified in an update call", vec![])],
                    )),
                    Some(id) if !st.id_matches_object(&ty, id) => Err((
                        Some(id.clone()),
                        vec![RecordError::new("MALFORMED_ID", format!("malformed id {id}"), vec![])],
                    )),
                    Some(id) => st
                        .write(&ty, WriteKind::Update, Some(id), &fields, &ctx.user_id, ctx.now, fail, &mut undo)
                        .map(|id| save_ok(&id))
                        .map_err(|e| (Some(id.clone()), e)),
                };
                outcomes.push(outcome);
            }
            Ok(finish(st, all_or_none, outcomes, undo))
        }
        (&Method::DELETE, []) => {
            let ids: Vec<String> = ctx
                .param("ids")
                .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            if ids.is_empty() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_FIELD_MISSING",
                    "At least 1 Id is required.",
                ));
            }
            if ids.len() > MAX_COLLECTION_RECORDS {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call",
                ));
            }
            let results: Vec<Value> = ids
                .iter()
                .map(|id| {
                    let object = st.objects.values().find(|d| id.starts_with(d.key_prefix)).map(|d| d.name.to_string());
                    let r = match object {
                        Some(o) => st.delete(&o, id, ctx.now),
                        None => Err(RecordError::new("MALFORMED_ID", format!("malformed id {id}"), vec![])),
                    };
                    match r {
                        Ok(()) => save_ok(id),
                        Err(e) => failed_save_result(Some(id), &[e]),
                    }
                })
                .collect();
            Ok(ok(Value::Array(results)))
        }
        (&Method::PATCH, [object, field]) => {
            let object = st.object_name(object).ok_or_else(ApiError::not_found)?;
            let def = st.objects.get(&object).cloned().ok_or_else(ApiError::not_found)?;
            let ext = def.field(field).filter(|f| f.external_id).map(|f| f.name.clone()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    format!("Provided external ID field does not exist or is not accessible: {field}"),
                )
            })?;
            let (all_or_none, records) = collection_body(body)?;
            let mut undo = Vec::new();
            let mut outcomes = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for rec in &records {
                if record_type(rec).is_some_and(|t| !t.eq_ignore_ascii_case(&object)) {
                    return Err(ApiError::invalid_type("All records must be of the type given in the URL"));
                }
                let fields = rec.as_object().cloned().unwrap_or_default();
                let key = fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&ext))
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_string);
                let outcome = match key {
                    None => {
                        Err((None, vec![RecordError::new("MISSING_ARGUMENT", format!("{ext} not specified"), vec![])]))
                    }
                    Some(k) if seen.contains(&k.to_lowercase()) => Err((
                        None,
                        vec![RecordError::new(
                            "DUPLICATE_EXTERNAL_ID",
                            format!("Duplicate external id specified: {k}"),
                            vec![ext.clone()],
                        )],
                    )),
                    Some(k) => {
                        seen.push(k.to_lowercase());
                        let found = st.find_by_field(&object, &ext, &k);
                        match found.as_slice() {
                            [] => st
                                .write(
                                    &object,
                                    WriteKind::Create,
                                    None,
                                    &fields,
                                    &ctx.user_id,
                                    ctx.now,
                                    fail,
                                    &mut undo,
                                )
                                .map(|id| json!({"id": id, "success": true, "errors": [], "created": true}))
                                .map_err(|e| (None, e)),
                            [id] => {
                                let mut f = fields.clone();
                                f.retain(|name, _| !name.eq_ignore_ascii_case(&ext));
                                st.write(
                                    &object,
                                    WriteKind::Update,
                                    Some(id),
                                    &f,
                                    &ctx.user_id,
                                    ctx.now,
                                    fail,
                                    &mut undo,
                                )
                                .map(|id| json!({"id": id, "success": true, "errors": [], "created": false}))
                                .map_err(|e| (Some(id.clone()), e))
                            }
                            _ => Err((
                                None,
                                vec![RecordError::new(
                                    "DUPLICATE_EXTERNAL_ID",
                                    format!("{ext}: more than one record found for external id field: {found:?}"),
                                    vec![ext.clone()],
                                )],
                            )),
                        }
                    }
                };
                outcomes.push(outcome);
            }
            Ok(finish(st, all_or_none, outcomes, undo))
        }
        _ => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_list_names_releases() {
        let v = versions();
        let last = v.as_array().unwrap().last().unwrap();
        assert_eq!(last, &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}));
        assert!(v
            .as_array()
            .unwrap()
            .contains(&json!({"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"})));
        assert_eq!(parse_version("v62.0").as_deref(), Some("v62.0"));
        assert_eq!(parse_version("v63.0"), None);
    }

    #[test]
    fn batch_size_is_clamped() {
        let mut h = HeaderMap::new();
        assert_eq!(batch_size(&h), 2000);
        h.insert("sforce-query-options", HeaderValue::from_static("batchSize=100"));
        assert_eq!(batch_size(&h), 200);
        h.insert("sforce-query-options", HeaderValue::from_static("batchSize=500"));
        assert_eq!(batch_size(&h), 500);
        h.insert("sforce-query-options", HeaderValue::from_static("batchSize=5000"));
        assert_eq!(batch_size(&h), 2000);
    }
}
