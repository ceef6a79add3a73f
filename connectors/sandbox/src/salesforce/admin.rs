//! Salesforce admin routes under `/__sandbox/salesforce/` (documented in the
//! crate README): tests use them to shape the org and to read what the
//! client really wrote. They bypass validation, sessions and limits and are
//! not written to the request log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::schema::FieldDef;
use super::state::derive_fields;
use super::store::{fmt_datetime, normalise_id, parse_datetime, FieldRef, Record};
use super::Salesforce;

pub fn router(sf: Arc<Salesforce>) -> Router {
    Router::new()
        .route("/__sandbox/salesforce/records/{object}", get(dump).post(create))
        .route("/__sandbox/salesforce/records/{object}/{id}", patch(update).delete(delete))
        .route("/__sandbox/salesforce/merge", post(merge))
        .route("/__sandbox/salesforce/tokens/revoke", post(revoke))
        .route("/__sandbox/salesforce/tokens/expire", post(expire))
        .route("/__sandbox/salesforce/tokens/settings", post(token_settings))
        .route("/__sandbox/salesforce/tokens/issue", post(issue))
        .route("/__sandbox/salesforce/limits", get(get_limits).post(set_limits))
        .route("/__sandbox/salesforce/bulk", post(set_bulk))
        .route("/__sandbox/salesforce/duplicates/tasks", get(duplicate_tasks))
        .route("/__sandbox/salesforce/tasks/handoff", get(handoff_tasks))
        .route("/__sandbox/salesforce/fields/{object}", post(add_field))
        .route("/__sandbox/salesforce/fields/{object}/{field}", axum::routing::delete(delete_field))
        .route("/__sandbox/salesforce/jwt-public-key", post(set_public_key))
        .route("/__sandbox/salesforce/field-history", get(get_field_history).post(set_field_history))
        .with_state(sf)
}

fn bad(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message.into() }))).into_response()
}

fn not_found(message: impl Into<String>) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": message.into() }))).into_response()
}

// An axum `Response` is the error here: it is what the handler returns.
#[allow(clippy::result_large_err)]
fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes, shape: &str) -> Result<T, Response> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| bad(format!("body must be {shape}: {e}")))
}

/// `GET /records/{object}`: every row, deleted ones included, by id.
async fn dump(State(sf): State<Arc<Salesforce>>, Path(object): Path<String>) -> Response {
    let now = sf.shared.clock.now();
    let st = sf.sync(now);
    let Some(name) = st.object_name(&object) else {
        return not_found(format!(
            "no sObject named {object}; known: Lead, Task, Event, Opportunity, User, Group, BusinessHours, Holiday, LeadHistory"
        ));
    };
    let rows: Vec<Value> = st
        .table(&name)
        .map(|t| t.rows().map(|(_, r)| Value::Object(st.full_row(&name, r))).collect())
        .unwrap_or_default();
    Json(json!({ "object": name, "totalSize": rows.len(), "records": rows })).into_response()
}

/// Normalise admin-given values: datetimes to Salesforce's form, ids to 18
/// characters; unknown fields are refused.
#[allow(clippy::result_large_err)] // the error is the handler's answer
fn admin_fields(
    sf: &super::state::SfState,
    object: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, Response> {
    let Some(def) = sf.objects.get(object) else { return Err(not_found(format!("no sObject named {object}"))) };
    // A map, not a row: a null here clears the field.
    let mut out = Map::new();
    for (k, v) in body {
        let Some(f) = def.field(k) else {
            return Err(bad(format!(
                "{object} has no field {k}; add custom fields with POST /__sandbox/salesforce/fields/{object}"
            )));
        };
        let v = match (f.kind, v) {
            (super::schema::FieldType::Datetime, Value::String(s)) => match parse_datetime(s) {
                Some(dt) => json!(fmt_datetime(dt)),
                None => return Err(bad(format!("{k} must be an RFC 3339 datetime, got {s}"))),
            },
            (super::schema::FieldType::Id | super::schema::FieldType::Reference, Value::String(s)) => {
                json!(normalise_id(s))
            }
            _ => v.clone(),
        };
        out.insert(f.name.clone(), v);
    }
    Ok(out)
}

/// `POST /records/{object}`: create a row as given. `Id`, `CreatedDate` and
/// `SystemModstamp` may be set explicitly (a late-committed row older than
/// the newest one served); unique fields are not enforced, so tests can
/// build the duplicates a 300 upsert answer needs.
async fn create(State(sf): State<Arc<Salesforce>>, Path(object): Path<String>, body: Bytes) -> Response {
    let fields: Map<String, Value> = match parse_json(&body, "a JSON object of field values") {
        Ok(f) => f,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let Some(name) = st.object_name(&object) else { return not_found(format!("no sObject named {object}")) };
    if let Some(r) = refuse_history(&name) {
        return r;
    }
    let given = match admin_fields(&st, &name, &fields) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let id = match given.get("Id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => st.new_id(&name),
    };
    let mut rec = Record::new();
    if let Some(def) = st.objects.get(&name) {
        if def.soft_delete {
            rec.insert("IsDeleted", json!(false));
        }
        if def.archivable {
            rec.insert("IsArchived", json!(false));
        }
    }
    let stamp = json!(fmt_datetime(now));
    for k in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        rec.insert(k, stamp.clone());
    }
    let admin = st.app.user_id.clone();
    let by = super::materialise::automation_user_id();
    rec.insert("CreatedById", json!(by));
    rec.insert("LastModifiedById", json!(by));
    match name.as_str() {
        "Lead" => {
            rec.insert("Status", json!("Open - Not Contacted"));
            rec.insert("IsConverted", json!(false));
            rec.insert("OwnerId", json!(admin));
        }
        "Task" => {
            rec.insert("Status", json!("Not Started"));
            rec.insert("Priority", json!("Normal"));
            rec.insert("TaskSubtype", json!("Task"));
            rec.insert("OwnerId", json!(admin));
        }
        "Event" => {
            rec.insert("EventSubtype", json!("Event"));
            rec.insert("IsAllDayEvent", json!(false));
            rec.insert("OwnerId", json!(admin));
        }
        _ => {}
    }
    for (k, v) in given {
        rec.insert(&k, v);
    }
    rec.insert("Id", json!(id));
    derive_fields(&name, &mut rec, now);
    let shown = st.full_row(&name, &rec);
    st.put_raw(&name, &id, rec.clone());
    if name == "Lead" {
        let at = stamp_of(&rec, "CreatedDate").unwrap_or(now);
        st.history_on_create(&id, at, &admin);
    }
    (StatusCode::CREATED, Json(json!({ "id": id, "record": shown }))).into_response()
}

/// `PATCH /records/{object}/{id}`: change fields; `SystemModstamp` and
/// `LastModifiedDate` default to now but may be given.
async fn update(
    State(sf): State<Arc<Salesforce>>,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let fields: Map<String, Value> = match parse_json(&body, "a JSON object of field values") {
        Ok(f) => f,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let Some(name) = st.object_name(&object) else { return not_found(format!("no sObject named {object}")) };
    if let Some(r) = refuse_history(&name) {
        return r;
    }
    let given = match admin_fields(&st, &name, &fields) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let id = normalise_id(&id);
    let Some(mut rec) = st.get(&name, &id).cloned() else { return not_found(format!("no {name} {id}")) };
    let before = rec.clone();
    let stamp = json!(fmt_datetime(now));
    rec.insert("LastModifiedDate", stamp.clone());
    rec.insert("SystemModstamp", stamp);
    rec.insert("LastModifiedById", json!(super::materialise::automation_user_id()));
    for (k, v) in given {
        rec.insert(&k, v);
    }
    derive_fields(&name, &mut rec, now);
    if name == "Lead" {
        // Dated like the change itself (a late commit is dated in the past).
        let at = stamp_of(&rec, "SystemModstamp").unwrap_or(now);
        let by = super::materialise::automation_user_id();
        st.history_on_update(&id, &before, &rec, at, &by);
    }
    let shown = st.full_row(&name, &rec);
    st.put_raw(&name, &id, rec);
    Json(json!({ "id": id, "record": shown })).into_response()
}

/// History rows are written by the org itself and never change.
fn refuse_history(object: &str) -> Option<Response> {
    (object == "LeadHistory").then(|| {
        bad("LeadHistory rows are immutable: change the Lead (PATCH /__sandbox/salesforce/records/Lead/{id}) and the history follows")
    })
}

fn stamp_of(rec: &Record, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    rec.get(field).and_then(FieldRef::as_str).and_then(parse_datetime)
}

async fn delete(State(sf): State<Arc<Salesforce>>, Path((object, id)): Path<(String, String)>) -> Response {
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let Some(name) = st.object_name(&object) else { return not_found(format!("no sObject named {object}")) };
    if let Some(r) = refuse_history(&name) {
        return r;
    }
    match st.delete(&name, &id, now) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(format!("cannot delete {name} {id}: {} {}", e.status_code, e.message)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    #[serde(default = "lead")]
    object: String,
    master_id: String,
    merged_id: String,
}

fn lead() -> String {
    "Lead".to_string()
}

async fn merge(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let m: MergeBody = match parse_json(&body, r#"{"object": "Lead", "master_id": ID, "merged_id": ID}"#) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let Some(name) = st.object_name(&m.object) else { return not_found(format!("no sObject named {}", m.object)) };
    match st.merge(&name, &m.master_id, &m.merged_id, now) {
        Ok(()) => Json(json!({ "master_id": normalise_id(&m.master_id), "merged_id": normalise_id(&m.merged_id) }))
            .into_response(),
        Err(e) => bad(format!("cannot merge: {} {}", e.status_code, e.message)),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    refresh_tokens: bool,
}

/// `POST /tokens/revoke`: every access token dies (and refresh tokens too
/// with `{"refresh_tokens": true}`).
async fn revoke(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let b: RevokeBody = match parse_json(&body, r#"{"refresh_tokens": bool}"#) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    sf.sync(now).tokens.revoke_all(b.refresh_tokens);
    Json(json!({ "revoked": true, "refresh_tokens": b.refresh_tokens })).into_response()
}

/// `POST /tokens/expire`: every access token is expired as of now.
async fn expire(State(sf): State<Arc<Salesforce>>) -> Response {
    let now = sf.shared.clock.now();
    sf.sync(now).tokens.expire_all(now);
    Json(json!({ "expired_at": now })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSettings {
    session_timeout_secs: Option<i64>,
    rotate_refresh_tokens: Option<bool>,
}

async fn token_settings(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let s: TokenSettings = match parse_json(&body, r#"{"session_timeout_secs": N, "rotate_refresh_tokens": bool}"#) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    if let Some(secs) = s.session_timeout_secs {
        if secs <= 0 {
            return bad(format!("session_timeout_secs must be > 0, got {secs}"));
        }
        st.tokens.session_timeout = Duration::seconds(secs);
    }
    if let Some(r) = s.rotate_refresh_tokens {
        st.tokens.rotate_refresh_tokens = r;
    }
    Json(json!({
        "session_timeout_secs": st.tokens.session_timeout.num_seconds(),
        "rotate_refresh_tokens": st.tokens.rotate_refresh_tokens,
    }))
    .into_response()
}

/// `POST /tokens/issue`: a fresh access token and refresh token for the
/// integration user (what approving the app in a browser would give).
async fn issue(State(sf): State<Arc<Salesforce>>) -> Response {
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let app = st.app.clone();
    let access = st.tokens.issue_session(&app, &app.user_id, now);
    let refresh = st.tokens.issue_refresh_token(&app, &app.user_id);
    Json(json!({ "access_token": access, "refresh_token": refresh })).into_response()
}

fn limits_json(st: &mut super::state::SfState, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "daily_limit": st.usage.daily_limit(),
        "used": st.usage.used(now),
        "bulk_v2_query_jobs_max": st.bulk_usage.query_jobs.max(),
        "bulk_v2_query_jobs_used": st.bulk_usage.query_jobs.used(now),
        "bulk_v2_query_storage_mb_used": st.bulk_usage.query_storage_mb.used(now),
    })
}

async fn get_limits(State(sf): State<Arc<Salesforce>>) -> Response {
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    Json(limits_json(&mut st, now)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    daily_limit: Option<u64>,
    used: Option<u64>,
    bulk_v2_query_jobs_max: Option<u64>,
    bulk_v2_query_jobs_used: Option<u64>,
}

/// `POST /limits`: `{"daily_limit": N, "used": N}` (either or both).
async fn set_limits(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let shape = r#"{"daily_limit": N, "used": N, "bulk_v2_query_jobs_max": N, "bulk_v2_query_jobs_used": N}"#;
    let b: LimitsBody = match parse_json(&body, shape) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    st.usage.set(b.daily_limit, b.used, now);
    st.bulk_usage.query_jobs.set(b.bulk_v2_query_jobs_max, b.bulk_v2_query_jobs_used, now);
    Json(limits_json(&mut st, now)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    polls_in_progress: Option<u32>,
    fail_next: Option<String>,
}

/// `POST /bulk`: `{"polls_in_progress": N}` sets how many polls each new
/// query job answers `InProgress` to; `{"fail_next": "message"}` makes the
/// next job created fail with that `errorMessage`.
async fn set_bulk(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let b: BulkBody = match parse_json(&body, r#"{"polls_in_progress": N, "fail_next": "message"}"#) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    if let Some(n) = b.polls_in_progress {
        st.query_jobs.polls_in_progress = n;
    }
    if b.fail_next.is_some() {
        st.query_jobs.fail_next = b.fail_next;
    }
    Json(json!({"polls_in_progress": st.query_jobs.polls_in_progress, "jobs": st.query_jobs.len()})).into_response()
}

/// `GET /duplicates/tasks`: live Tasks sharing a `Handoff_Key__c`, and live
/// Tasks sharing Subject + WhoId — what exactly-once task creation must
/// never produce.
async fn duplicate_tasks(State(sf): State<Arc<Salesforce>>) -> Response {
    let now = sf.shared.clock.now();
    let st = sf.sync(now);
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_subject: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    if let Some(t) = st.table("Task") {
        for (id, r) in t.rows() {
            if r.get("IsDeleted") == Some(FieldRef::Bool(true)) {
                continue;
            }
            if let Some(k) = r.get("Handoff_Key__c").and_then(FieldRef::as_str) {
                by_key.entry(k.to_lowercase()).or_default().push(id.to_string());
            }
            let subject = r.get("Subject").and_then(FieldRef::as_str).unwrap_or("").to_string();
            let who = r.get("WhoId").and_then(FieldRef::as_str).unwrap_or("").to_string();
            if !subject.is_empty() && !who.is_empty() {
                by_subject.entry((subject, who)).or_default().push(id.to_string());
            }
        }
    }
    let keys: Vec<Value> = by_key
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(k, ids)| json!({"handoff_key": k, "ids": ids}))
        .collect();
    let subjects: Vec<Value> = by_subject
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((s, w), ids)| json!({"subject": s, "who_id": w, "ids": ids}))
        .collect();
    Json(json!({ "by_handoff_key": keys, "by_subject_and_who": subjects })).into_response()
}

/// `GET /tasks/handoff`: the live Tasks carrying a `Handoff_Key__c`, as
/// [`crate::task_report`] sums them up (completed ones, and the most open
/// at once per lead and clock, from `CreatedDate` and `CompletedDateTime`).
async fn handoff_tasks(State(sf): State<Arc<Salesforce>>) -> Response {
    let now = sf.shared.clock.now();
    let st = sf.sync(now);
    let integration = st.app.user_id.clone();
    let mut rows = Vec::new();
    if let Some(t) = st.table("Task") {
        for (_, r) in t.rows() {
            if r.get("IsDeleted") == Some(FieldRef::Bool(true)) {
                continue;
            }
            let text = |f: &str| r.get(f).and_then(FieldRef::as_str).filter(|s| !s.is_empty());
            let Some(key) = text("Handoff_Key__c") else { continue };
            let closed = r.get("IsClosed") == Some(FieldRef::Bool(true));
            rows.push(crate::task_report::TaskRow {
                key: key.to_string(),
                lead: text("WhoId").unwrap_or_default().to_string(),
                created_at: text("CreatedDate").and_then(parse_datetime).unwrap_or(now),
                completed_at: closed.then(|| text("CompletedDateTime").and_then(parse_datetime).unwrap_or(now)),
                changed_by_integration: text("LastModifiedById") == Some(integration.as_str()),
            });
        }
    }
    Json(crate::task_report::report(&rows)).into_response()
}

/// `POST /fields/{object}`: add a custom field, as an admin would in Setup.
/// Body: `{"name": "Foo__c", "type": "string", "externalId": false, "unique":
/// false, "picklistValues": [...]}`.
async fn add_field(State(sf): State<Arc<Salesforce>>, Path(object): Path<String>, body: Bytes) -> Response {
    let mut f: FieldDef =
        match parse_json(&body, r#"{"name": "Foo__c", "type": "string|double|boolean|date|datetime|picklist|..."}"#) {
            Ok(f) => f,
            Err(r) => return r,
        };
    if !f.name.ends_with("__c") {
        return bad(format!("custom field names end in __c, got {}", f.name));
    }
    f.custom = true;
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let Some(name) = st.object_name(&object) else { return not_found(format!("no sObject named {object}")) };
    let Some(def) = st.objects.get_mut(&name) else { return not_found(format!("no sObject named {object}")) };
    if def.field(&f.name).is_some() {
        return bad(format!("{name}.{} already exists", f.name));
    }
    // Existing rows need no change: a field a row does not store reads as null.
    def.fields.push(f.clone());
    (StatusCode::CREATED, Json(json!({ "object": name, "field": f }))).into_response()
}

/// `DELETE /fields/{object}/{field}`: delete a custom field, as Setup does
/// (it leaves describe and every row). Re-adding it with `POST /fields/{object}`
/// gives it another type or drops its External ID.
async fn delete_field(State(sf): State<Arc<Salesforce>>, Path((object, field)): Path<(String, String)>) -> Response {
    if !field.ends_with("__c") {
        return bad(format!("only custom fields (ending in __c) can be deleted, got {field}"));
    }
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    let Some(name) = st.object_name(&object) else { return not_found(format!("no sObject named {object}")) };
    let Some(def) = st.objects.get_mut(&name) else { return not_found(format!("no sObject named {object}")) };
    let Some(at) = def.fields.iter().position(|f| f.name.eq_ignore_ascii_case(&field)) else {
        return not_found(format!("{name} has no field {field}"));
    };
    let removed = def.fields.remove(at);
    let ids: Vec<String> = st.table(&name).map(|t| t.ids().map(str::to_string).collect()).unwrap_or_default();
    for id in ids {
        if let Some(mut r) = st.get(&name, &id).cloned() {
            r.remove(&removed.name);
            st.put_raw(&name, &id, r);
        }
    }
    Json(json!({ "object": name, "deleted": removed.name })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyBody {
    public_key_pem: String,
}

/// `POST /jwt-public-key`: replace the certificate key JWT assertions are
/// verified with (to test a client's own key pair).
async fn set_public_key(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let b: PublicKeyBody = match parse_json(&body, r#"{"public_key_pem": "-----BEGIN PUBLIC KEY-----..."}"#) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if jsonwebtoken::DecodingKey::from_rsa_pem(b.public_key_pem.as_bytes()).is_err() {
        return bad("public_key_pem is not an RSA public key in PEM form");
    }
    let now = sf.shared.clock.now();
    sf.sync(now).app.jwt_public_key_pem = b.public_key_pem;
    Json(json!({ "updated": true })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldHistoryBody {
    enabled: bool,
    /// The Lead fields tracked (API names: `OwnerId`, `Status`); unchanged when absent.
    #[serde(default)]
    fields: Option<Vec<String>>,
}

async fn get_field_history(State(sf): State<Arc<Salesforce>>) -> Response {
    let now = sf.shared.clock.now();
    let st = sf.sync(now);
    Json(json!({ "enabled": st.field_history(), "fields": st.tracked_fields() })).into_response()
}

/// `POST /field-history`: `{"enabled": false}` turns Lead field history
/// tracking off (no new rows; `Histories` leaves Lead's describe).
async fn set_field_history(State(sf): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let b: FieldHistoryBody = match parse_json(&body, r#"{"enabled": bool}"#) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = sf.shared.clock.now();
    let mut st = sf.sync(now);
    st.set_field_history(b.enabled);
    if let Some(fields) = b.fields {
        st.set_tracked_fields(fields.into_iter().collect());
    }
    Json(json!({ "enabled": st.field_history(), "fields": st.tracked_fields() })).into_response()
}
