//! HubSpot-specific admin routes under `/__sandbox/hubspot/` (documented in
//! the crate README): write records with explicit timestamps, archive and
//! merge, revoke or expire tokens, set the daily usage, dump records, and
//! list duplicated tasks.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::state::{HubState, LostResponses};
use super::store::{iso_ms, Source, OBJECT_TYPES};

fn bad(message: impl Into<String>) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, json!({ "error": message.into() }))
}

fn time_ms(body: &Value, key: &str, default_ms: i64) -> Result<i64, (StatusCode, Value)> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default_ms),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| bad(format!("{key} must be an RFC 3339 time such as 2026-03-02T09:00:00Z: {e}"))),
        Some(other) => Err(bad(format!("{key} must be an RFC 3339 string, got {other}"))),
    }
}

fn string_props(body: &Value) -> Result<BTreeMap<String, Option<String>>, (StatusCode, Value)> {
    let mut out = BTreeMap::new();
    if let Some(props) = body.get("properties") {
        let props = props.as_object().ok_or_else(|| bad("properties must be an object of strings"))?;
        for (k, v) in props {
            let s = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            out.insert(k.clone(), s);
        }
    }
    Ok(out)
}

fn object_type(t: &str) -> Result<&'static str, (StatusCode, Value)> {
    OBJECT_TYPES.iter().copied().find(|x| *x == t).ok_or_else(|| {
        (StatusCode::NOT_FOUND, json!({"error": format!("unknown object type {t}; use one of {OBJECT_TYPES:?}")}))
    })
}

/// What an object dump holds besides ids and timestamps.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Only these properties (`None`: every stored one plus the defaults).
    pub properties: Option<Vec<String>>,
    /// The history of these properties.
    pub history: Vec<String>,
    /// Leave out the associations.
    pub without_associations: bool,
}

/// Every record of a type with all its properties (computed ones
/// included), or only those asked for, archived and merged-away ones too,
/// their associations, and the history of the properties asked for.
pub fn dump(st: &HubState, t: &str, opts: &DumpOptions) -> Value {
    let properties = opts.properties.as_deref();
    let history = opts.history.as_slice();
    let Ok(store) = st.store(t) else { return json!({"results": []}) };
    let records: Vec<Value> = store
        .iter()
        .map(|o| {
            let names: Vec<String> = match properties {
                Some(p) => p.to_vec(),
                None => {
                    let mut names: Vec<String> = o.properties.keys().map(str::to_string).collect();
                    names.extend(super::store::default_properties(t));
                    names
                }
            };
            let mut v = o.render(t, &names);
            if !history.is_empty() {
                v["propertiesWithHistory"] = o.render_history(t, history);
            }
            if let Some(into) = o.merged_into {
                v["mergedInto"] = json!(into.to_string());
            }
            if opts.without_associations {
                return v;
            }
            let mut assoc = Map::new();
            for to in OBJECT_TYPES {
                let ends = st.associations.of(t, o.id, to);
                if !ends.is_empty() {
                    assoc.insert(
                        to.to_string(),
                        ends.iter().map(|e| json!({"id": e.to_id.to_string(), "typeId": e.type_id})).collect(),
                    );
                }
            }
            v["associations"] = Value::Object(assoc);
            v
        })
        .collect();
    json!({ "objectType": t, "results": records })
}

/// Live tasks sharing a `handoff_key`, or sharing a subject and an
/// associated contact: what a duplicate-write bug would leave behind.
pub fn task_duplicates(st: &HubState) -> Value {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_subject: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
    if let Ok(store) = st.store("tasks") {
        for o in store.iter().filter(|o| !o.is_archived()) {
            if let Some(k) = o.properties.get("handoff_key") {
                by_key.entry(k.to_string()).or_default().push(o.id.to_string());
            }
            if let Some(subject) = o.properties.get("hs_task_subject") {
                for e in st.associations.of("tasks", o.id, "contacts") {
                    by_subject.entry((subject.to_string(), e.to_id)).or_default().push(o.id.to_string());
                }
            }
        }
    }
    let by_key: Vec<Value> = by_key
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(k, ids)| json!({"handoff_key": k, "ids": ids}))
        .collect();
    let by_subject: Vec<Value> = by_subject
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((s, c), ids)| json!({"subject": s, "contact_id": c.to_string(), "ids": ids}))
        .collect();
    json!({ "by_handoff_key": by_key, "by_subject_and_contact": by_subject })
}

/// The live tasks carrying a `handoff_key`, as [`crate::task_report`] sums
/// them up (from `createdAt` and `hs_task_completion_date`). Every task
/// change comes through the private app, so each counts as handoff's.
pub fn handoff_tasks(st: &HubState) -> Value {
    let mut rows = Vec::new();
    if let Ok(store) = st.store("tasks") {
        for o in store.iter().filter(|o| !o.is_archived()) {
            let Some(key) = o.properties.get("handoff_key") else { continue };
            let lead = st.associations.of("tasks", o.id, "contacts").first().map(|e| e.to_id.to_string());
            let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
            let done = o.properties.get("hs_task_status") == Some("COMPLETED");
            let completed_at = done.then(|| {
                o.properties
                    .get("hs_task_completion_date")
                    .and_then(super::store::parse_time_ms)
                    .map_or(at(o.updated_at_ms), at)
            });
            rows.push(crate::task_report::TaskRow {
                key: key.to_string(),
                lead: lead.unwrap_or_default(),
                created_at: at(o.created_at_ms),
                completed_at,
                changed_by_integration: true,
            });
        }
    }
    crate::task_report::report(&rows)
}

/// Dispatch one admin request (`segments` after `__sandbox/hubspot`).
pub fn dispatch(
    st: &mut HubState,
    now: DateTime<Utc>,
    method: &Method,
    segments: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
) -> (StatusCode, Value) {
    match admin(st, now, method, segments, query, body) {
        Ok(answer) | Err(answer) => answer,
    }
}

/// A comma-separated query parameter.
fn query_list(query: &BTreeMap<String, String>, key: &str) -> Option<Vec<String>> {
    query.get(key).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
}

fn flag(body: &Value, key: &str) -> Result<bool, (StatusCode, Value)> {
    body.get(key).and_then(Value::as_bool).ok_or_else(|| bad(format!("{key} (true or false) is required")))
}

fn admin(
    st: &mut HubState,
    now: DateTime<Utc>,
    method: &Method,
    segments: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
) -> Result<(StatusCode, Value), (StatusCode, Value)> {
    let now_ms = now.timestamp_millis();
    let m = method.clone();
    match segments {
        ["credentials"] if m == Method::GET => Ok((StatusCode::OK, credentials(st))),
        ["objects", t] if m == Method::GET => {
            let t = object_type(t)?;
            let opts = DumpOptions {
                properties: query_list(query, "properties"),
                history: query_list(query, "history").unwrap_or_default(),
                without_associations: query.get("associations").is_some_and(|v| v == "false"),
            };
            Ok((StatusCode::OK, dump(st, t, &opts)))
        }
        ["objects", t] if m == Method::POST => {
            let t = object_type(t)?;
            let created_ms = time_ms(body, "created_at", now_ms)?;
            let updated_ms = time_ms(body, "updated_at", created_ms)?;
            let props: BTreeMap<String, String> =
                string_props(body)?.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
            let id = st.insert(t, props, created_ms, updated_ms, Source::Import);
            if let Some(links) = body.get("associations").and_then(Value::as_array) {
                for l in links {
                    let to = l.get("to_type").and_then(Value::as_str).unwrap_or("contacts");
                    let to_id =
                        l.get("to_id").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
                    let Some(to_id) = to_id else { return Err(bad("associations[].to_id must be a record id")) };
                    st.associations.link(t, id, object_type(to)?, to_id);
                }
            }
            Ok((StatusCode::CREATED, json!({"id": id.to_string()})))
        }
        ["objects", t, id] if m == Method::PATCH => {
            let t = object_type(t)?;
            let id: u64 = id.parse().map_err(|_| bad(format!("{id} is not a record id")))?;
            let updated_ms = time_ms(body, "updated_at", now_ms)?;
            let changes = string_props(body)?;
            let store = st.stores.get_mut(t).ok_or_else(|| bad("unknown type"))?;
            // An explicit time may lie in the past: a late-indexed write,
            // dated so in the property history too. A person made it.
            store
                .update(id, |obj| {
                    for (k, v) in changes {
                        obj.set(&k, v, updated_ms, Source::CrmUi { user_id: None });
                    }
                    obj.updated_at_ms = updated_ms;
                })
                .ok_or_else(|| (StatusCode::NOT_FOUND, json!({"error": format!("no {t} with id {id}")})))?;
            Ok((StatusCode::OK, json!({"id": id.to_string(), "updatedAt": iso_ms(updated_ms)})))
        }
        ["objects", t, "bulk_update"] if m == Method::POST => {
            // One edit applied to many records at one instant, like a bulk
            // edit or an import updating existing records.
            let t = object_type(t)?;
            let updated_ms = time_ms(body, "updated_at", now_ms)?;
            let changes = string_props(body)?;
            let ids: Vec<u64> = body
                .get("ids")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("ids (an array of record ids) is required"))?
                .iter()
                .map(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| bad(format!("{v} is not a record id")))
                })
                .collect::<Result<_, _>>()?;
            let store = st.stores.get_mut(t).ok_or_else(|| bad("unknown type"))?;
            let mut missing = Vec::new();
            for id in &ids {
                let found = store.update(*id, |obj| {
                    for (k, v) in &changes {
                        obj.set(k, v.clone(), updated_ms, Source::CrmUi { user_id: None });
                    }
                    obj.updated_at_ms = updated_ms;
                });
                if found.is_none() {
                    missing.push(id.to_string());
                }
            }
            if !missing.is_empty() {
                return Err((
                    StatusCode::NOT_FOUND,
                    json!({"error": format!("no {t} with ids {missing:?}; the others were updated")}),
                ));
            }
            Ok((StatusCode::OK, json!({"updated": ids.len(), "updatedAt": iso_ms(updated_ms)})))
        }
        ["objects", t, id, "archive"] if m == Method::POST => {
            let t = object_type(t)?;
            let id: u64 = id.parse().map_err(|_| bad(format!("{id} is not a record id")))?;
            let at_ms = time_ms(body, "at", now_ms)?;
            if st.archive(t, id, at_ms) {
                Ok((StatusCode::OK, json!({"id": id.to_string(), "archivedAt": iso_ms(at_ms)})))
            } else {
                Err((StatusCode::NOT_FOUND, json!({"error": format!("no live {t} with id {id}")})))
            }
        }
        [t @ ("contacts" | "leads"), "merge"] if m == Method::POST => {
            let id = |k: &str| {
                body.get(k)
                    .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                    .ok_or_else(|| bad(format!("{k} (a record id) is required")))
            };
            let at_ms = time_ms(body, "at", now_ms)?;
            let survivor = st.merge_records(t, id("primary")?, id("merged")?, at_ms).map_err(|e| (e.status, e.body))?;
            Ok((StatusCode::OK, json!({"id": survivor.to_string()})))
        }
        ["tokens", "revoke"] if m == Method::POST => {
            if body.get("access_tokens_only").and_then(Value::as_bool) == Some(true) {
                st.tokens.revoke_access_tokens();
                return Ok((StatusCode::OK, json!({"revoked": "all OAuth access tokens"})));
            }
            st.tokens.revoke(body.get("token").and_then(Value::as_str));
            Ok((StatusCode::OK, json!({"revoked": body.get("token").cloned().unwrap_or(json!("all"))})))
        }
        ["tokens", "rotation"] if m == Method::POST => {
            st.tokens.rotate_refresh_tokens = flag(body, "enabled")?;
            Ok((StatusCode::OK, json!({"rotate_refresh_tokens": st.tokens.rotate_refresh_tokens})))
        }
        ["tokens", "refresh"] if m == Method::GET => {
            Ok((StatusCode::OK, json!({"valid": st.tokens.valid_refresh_tokens()})))
        }
        ["portal"] if m == Method::GET => Ok((StatusCode::OK, json!({"leads_object": st.leads_available}))),
        ["portal"] if m == Method::POST => {
            st.leads_available = flag(body, "leads_object")?;
            Ok((StatusCode::OK, json!({"leads_object": st.leads_available})))
        }
        ["scopes"] if m == Method::GET => Ok((StatusCode::OK, json!({"scopes": st.tokens.scopes}))),
        ["scopes"] if m == Method::POST => {
            let scopes = body
                .get("scopes")
                .and_then(Value::as_array)
                .and_then(|l| l.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad("scopes (a list of scope names) is required"))?;
            st.tokens.scopes = scopes;
            Ok((StatusCode::OK, json!({"scopes": st.tokens.scopes})))
        }
        ["properties", t, name] if m == Method::DELETE => {
            let t = object_type(t)?;
            let removed = st.properties.get_mut(t).and_then(|p| p.remove(*name));
            match removed {
                Some(_) => Ok((StatusCode::OK, json!({"deleted": name}))),
                None => Err((StatusCode::NOT_FOUND, json!({"error": format!("{t} has no property {name}")}))),
            }
        }
        ["history"] if m == Method::POST => {
            st.history_readable = flag(body, "readable")?;
            Ok((StatusCode::OK, json!({"readable": st.history_readable})))
        }
        ["faults", "lost_response"] if m == Method::POST => {
            let count = body
                .get("count")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| bad("count (a positive integer) is required"))?;
            let status = body.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok());
            let delay_ms = body.get("delay_ms").and_then(Value::as_u64);
            if status.is_some() == delay_ms.is_some() {
                return Err(bad("give exactly one of status (the error answered instead, e.g. 502) or delay_ms (how late the real answer comes)"));
            }
            if status.is_some_and(|s| !(500..600).contains(&s)) {
                return Err(bad("status must be a 5xx: a lost answer looks like a server or gateway failure"));
            }
            st.lost_responses = Some(LostResponses { count, status, delay_ms });
            Ok((
                StatusCode::CREATED,
                json!({"lost_response": {"count": count, "status": status, "delay_ms": delay_ms}}),
            ))
        }
        ["tokens", "expire"] if m == Method::POST => {
            st.tokens.expire_access_tokens(now);
            Ok((StatusCode::OK, json!({"expired": "all OAuth access tokens"})))
        }
        ["limits"] if m == Method::GET => Ok((StatusCode::OK, limits(st))),
        ["limits"] if m == Method::POST => {
            let c = &mut st.limits.config;
            let num = |k: &str| {
                body.get(k).map(|v| v.as_u64().ok_or_else(|| bad(format!("{k} must be a non-negative integer"))))
            };
            if let Some(v) = num("private_app_burst_per_10s").transpose()? {
                c.private_app_burst_per_10s =
                    u32::try_from(v).map_err(|_| bad("private_app_burst_per_10s is too large"))?;
            }
            if let Some(v) = num("oauth_burst_per_10s").transpose()? {
                c.oauth_burst_per_10s = u32::try_from(v).map_err(|_| bad("oauth_burst_per_10s is too large"))?;
            }
            if let Some(v) = num("search_per_second").transpose()? {
                c.search_per_second = u32::try_from(v).map_err(|_| bad("search_per_second is too large"))?;
            }
            if let Some(v) = num("private_app_daily").transpose()? {
                c.private_app_daily = v;
            }
            Ok((StatusCode::OK, limits(st)))
        }
        ["limits", "daily"] if m == Method::POST => {
            let used = body
                .get("used")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("used (a non-negative integer) is required"))?;
            st.limits.set_daily_used(now, used);
            Ok((StatusCode::OK, limits(st)))
        }
        ["tasks", "duplicates"] if m == Method::GET => Ok((StatusCode::OK, task_duplicates(st))),
        ["tasks", "handoff"] if m == Method::GET => Ok((StatusCode::OK, handoff_tasks(st))),
        _ => Err((
            StatusCode::NOT_FOUND,
            json!({"error": format!("no HubSpot admin route {method} /__sandbox/hubspot/{}", segments.join("/"))}),
        )),
    }
}

fn limits(st: &HubState) -> Value {
    let c = &st.limits.config;
    json!({
        "daily_used": st.limits.daily_used(),
        "private_app_daily": c.private_app_daily,
        "private_app_burst_per_10s": c.private_app_burst_per_10s,
        "oauth_burst_per_10s": c.oauth_burst_per_10s,
        "search_per_second": c.search_per_second,
    })
}

/// What a client needs to authenticate.
pub fn credentials(st: &HubState) -> Value {
    json!({
        "access_token": st.tokens.private_app_token,
        "client_id": st.tokens.client_id,
        "client_secret": st.tokens.client_secret,
        "refresh_token": st.tokens.initial_refresh_token(),
        "portal_id": st.tokens.portal_id,
    })
}
