//! Request dispatch for the CRM API paths, independent of axum: a parsed
//! request in, a status and JSON body out. The HTTP glue (auth, limits,
//! faults, logging) lives in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::properties::{self, PropertyCreate};
use super::search::{self, SearchRequest};
use super::state::{singular, HubState};
use super::store::{
    created_property, default_properties, iso_ms, modified_property, object_type_id, Object, OBJECT_TYPES,
};
use crate::org::SyntheticOrg;

/// Most inputs one batch call takes.
pub const MAX_BATCH_INPUTS: usize = 100;
/// Association batch reads take more: 1,000 ids per request body (HubSpot
/// changelog "Bug Fix: Batch Read Limit for HubSpot Associations API", 2025).
pub const MAX_ASSOCIATION_READ_INPUTS: usize = 1_000;
/// Inputs of a batch read that asks for `propertiesWithHistory` (HubSpot
/// answers more with a 400; message recorded in activepieces PR #9359).
pub const MAX_HISTORY_BATCH_INPUTS: usize = 50;
const LIST_DEFAULT_LIMIT: usize = 10;
const LIST_MAX_LIMIT: usize = 100;
/// Page size of a list that asks for `propertiesWithHistory`.
pub const LIST_MAX_LIMIT_WITH_HISTORY: usize = 50;
const OWNERS_DEFAULT_LIMIT: usize = 100;

/// A parsed API request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path segments, with date-versioned `/crm/objects/2026-03/…` paths
    /// already rewritten to `/crm/v3/objects/…`.
    pub segments: Vec<String>,
    pub query: BTreeMap<String, Vec<String>>,
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn parse(method: Method, path: &str, query: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        let mut segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
        // `/crm/objects/{YYYY-MM}/…` is the date-versioned twin of `/crm/v3/objects/…`.
        if segments.len() >= 3
            && segments[0] == "crm"
            && segments[1] == "objects"
            && segments[2].len() >= 7
            && segments[2].as_bytes()[4] == b'-'
        {
            segments[1] = "v3".to_string();
            segments[2] = "objects".to_string();
        }
        let mut q: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(query) = query {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                q.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        let body = if body.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(body).map_err(|e| {
                ApiError::validation(format!("Invalid input JSON on line {}, column {}: {e}", e.line(), e.column()))
            })?)
        };
        Ok(ApiRequest { method, segments, query: q, body })
    }

    pub fn is_search(&self) -> bool {
        self.method == Method::POST && self.segments.last().map(String::as_str) == Some("search")
    }

    fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// A list parameter sent either repeated or comma-separated.
    fn q_list(&self, name: &str) -> Vec<String> {
        self.query
            .get(name)
            .map(|vs| {
                vs.iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn q_bool(&self, name: &str) -> bool {
        self.q(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn body_obj(&self) -> Result<&Map<String, Value>, ApiError> {
        self.body
            .as_ref()
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::validation("Invalid input JSON: expected an object body"))
    }
}

/// What a handler may read besides the state.
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub base_url: &'a str,
    pub org: &'a SyntheticOrg,
    /// Search-index lag in milliseconds (fault).
    pub search_lag_ms: Option<i64>,
    /// Records whose input contains this marker fail inside a batch (fault).
    pub batch_failure_marker: Option<String>,
}

pub type Answer = Result<(StatusCode, Value), ApiError>;

fn parse_id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(format!("Object not found.  objectId are usually numeric. {s}")))
}

/// The object type a path names, by name or by object type id (`0-136`).
fn check_type(t: &str) -> Result<&'static str, ApiError> {
    OBJECT_TYPES
        .iter()
        .copied()
        .find(|x| *x == t || object_type_id(x) == t)
        .ok_or_else(|| ApiError::unknown_object_type(t))
}

fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "VALIDATION_ERROR", "HTTP method not allowed on this path")
}

fn no_route(req: &ApiRequest) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", format!("No route for /{}", req.segments.join("/")))
}

/// An answer already written as JSON text.
pub type TextAnswer = Result<(StatusCode, String), ApiError>;

/// Dispatch one authenticated, admitted API request, answering JSON text.
/// Searches and batch reads, the big answers, are written straight to text;
/// the rest are built as values.
pub fn dispatch_text(st: &mut HubState, ctx: &Ctx<'_>, req: &ApiRequest) -> TextAnswer {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    check_leads_access(st, req)?;
    match segs.as_slice() {
        ["crm", "v3", "objects", t, "search"] if req.method == Method::POST => do_search(st, ctx, check_type(t)?, req),
        ["crm", "v3", "objects", t, "batch", "read"] if req.method == Method::POST => {
            batch_read(st, ctx, check_type(t)?, req)
        }
        _ => dispatch(st, ctx, req)
            .map(|(status, body)| (status, if body.is_null() { String::new() } else { body.to_string() })),
    }
}

/// A text answer as a value (for callers that inspect it).
fn parsed(answer: TextAnswer) -> Answer {
    let (status, text) = answer?;
    let body = serde_json::from_str(&text).map_err(|e| {
        ApiError::internal(StatusCode::INTERNAL_SERVER_ERROR).with_context(json!({"render": [e.to_string()]}))
    })?;
    Ok((status, body))
}

/// A portal without the Leads object refuses every call naming it (as a
/// path's object type, association target or pipeline object).
fn check_leads_access(st: &HubState, req: &ApiRequest) -> Result<(), ApiError> {
    if st.leads_available || !req.segments.iter().any(|s| s == "leads" || s == "0-136") {
        return Ok(());
    }
    let read = req.method == Method::GET || req.is_search() || req.segments.last().is_some_and(|s| s == "read");
    Err(super::leads::unavailable(!read))
}

/// Dispatch one authenticated, admitted API request.
pub fn dispatch(st: &mut HubState, ctx: &Ctx<'_>, req: &ApiRequest) -> Answer {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let m = &req.method;
    check_leads_access(st, req)?;
    match segs.as_slice() {
        ["crm", "v3", "objects", "contacts", "merge"] if *m == Method::POST => merge(st, ctx, req),
        ["crm", "v3", "objects", t] => match *m {
            Method::GET => list(st, ctx, check_type(t)?, req),
            Method::POST => create(st, ctx, check_type(t)?, req),
            _ => Err(method_not_allowed()),
        },
        ["crm", "v3", "objects", t, "search"] if *m == Method::POST => parsed(do_search(st, ctx, check_type(t)?, req)),
        ["crm", "v3", "objects", t, "batch", "read"] if *m == Method::POST => {
            parsed(batch_read(st, ctx, check_type(t)?, req))
        }
        ["crm", "v3", "objects", t, "batch", op] if *m == Method::POST => {
            batch_write(st, ctx, check_type(t)?, op, req, ctx.now.timestamp_millis())
        }
        ["crm", "v3", "objects", t, id] => {
            let t = check_type(t)?;
            match *m {
                Method::GET => get_one(st, t, id, req),
                Method::PATCH => {
                    let id = lookup_id(st, t, id, req.q("idProperty"))?;
                    let props =
                        req.body_obj()?.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                    let id = st.update(t, id, &props, ctx.now.timestamp_millis())?;
                    Ok((StatusCode::OK, render(st, t, id, &props.keys().cloned().collect::<Vec<_>>(), &[])?))
                }
                Method::DELETE => {
                    let id = parse_id(id)?;
                    st.archive(t, id, ctx.now.timestamp_millis());
                    Ok((StatusCode::NO_CONTENT, Value::Null))
                }
                _ => Err(method_not_allowed()),
            }
        }
        ["crm", "v3", "owners"] if *m == Method::GET => list_owners(ctx, req),
        ["crm", "v3", "owners", id] if *m == Method::GET => {
            let owners = super::state::owners(ctx.org);
            let by_user_id = req.q("idProperty") == Some("userId");
            owners
                .into_iter()
                .find(|o| {
                    if by_user_id {
                        o["userId"].as_u64().is_some_and(|u| id.parse() == Ok(u))
                    } else {
                        o["id"] == *id
                    }
                })
                .map(|o| (StatusCode::OK, o))
                .ok_or_else(|| ApiError::not_found(format!("No owner found for id {id}")))
        }
        ["crm", "v3", "properties", t] => {
            let t = check_type(t)?;
            match *m {
                Method::GET => {
                    let results: Vec<Value> =
                        st.properties.get(t).map(|p| p.values().map(|d| d.render()).collect()).unwrap_or_default();
                    Ok((StatusCode::OK, json!({ "results": results })))
                }
                Method::POST => {
                    let body: PropertyCreate = serde_json::from_value(req.body.clone().unwrap_or(Value::Null))
                        .map_err(|e| ApiError::validation(format!("Invalid input JSON: {e}")))?;
                    let def = properties::from_create(body, ctx.now.timestamp_millis())?;
                    let defs = st.properties.entry(t.to_string()).or_default();
                    if defs.contains_key(&def.name) {
                        return Err(ApiError::new(
                            StatusCode::CONFLICT,
                            "OBJECT_ALREADY_EXISTS",
                            format!("Property named '{}' already exists.", def.name),
                        ));
                    }
                    let rendered = def.render();
                    if def.has_unique_value {
                        if let Some(store) = st.stores.get_mut(t) {
                            store.index_property(&def.name);
                        }
                    }
                    let defs = st.properties.entry(t.to_string()).or_default();
                    defs.insert(def.name.clone(), def);
                    Ok((StatusCode::CREATED, rendered))
                }
                _ => Err(method_not_allowed()),
            }
        }
        ["crm", "v3", "properties", t, name] if *m == Method::GET => {
            let t = check_type(t)?;
            st.properties.get(t).and_then(|p| p.get(*name)).map(|d| (StatusCode::OK, d.render())).ok_or_else(|| {
                ApiError::not_found(format!("Unable to find property {name} for object type {}", object_type_id(t)))
            })
        }
        ["crm", "v4", "objects", t, id, "associations", to] if *m == Method::GET => {
            let (t, to) = (check_type(t)?, check_type(to)?);
            let id = st.resolve(t, parse_id(id)?);
            Ok((StatusCode::OK, json!({ "results": v4_ends(st, t, id, to) })))
        }
        ["crm", "v4", "objects", t, id, "associations", "default", to, to_id] if *m == Method::PUT => {
            let (t, to) = (check_type(t)?, check_type(to)?);
            let (id, to_id) = associate(st, t, parse_id(id)?, to, parse_id(to_id)?, &[None])?;
            let (type_id, _) = super::store::association_type_ids(t, to).unwrap_or_default();
            let now = iso_ms(ctx.now.timestamp_millis());
            // `BatchResponsePublicDefaultAssociation`.
            Ok((
                StatusCode::OK,
                json!({"status": "COMPLETE", "results": [{"from": {"id": id.to_string()}, "to": {"id": to_id.to_string()}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}}], "startedAt": now, "completedAt": now}),
            ))
        }
        ["crm", "v4", "objects", t, id, "associations", to, to_id] if *m == Method::PUT => {
            let (t, to) = (check_type(t)?, check_type(to)?);
            // The body: `[{"associationCategory", "associationTypeId"}]`.
            let specs = req.body.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
            let mut types = Vec::new();
            for spec in &specs {
                let category = spec.get("associationCategory").and_then(Value::as_str).unwrap_or("");
                let type_id = spec.get("associationTypeId").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
                match (category, type_id) {
                    ("HUBSPOT_DEFINED", Some(type_id)) => types.push(Some(type_id)),
                    _ => {
                        return Err(ApiError::validation(format!(
                            "{category} {} is not a valid association type between {t} and {to}",
                            type_id.unwrap_or(0)
                        )))
                    }
                }
            }
            if types.is_empty() {
                return Err(ApiError::validation("Invalid input JSON: at least one association type is required"));
            }
            let (id, to_id) = associate(st, t, parse_id(id)?, to, parse_id(to_id)?, &types)?;
            let labels: Vec<&str> =
                types.iter().flatten().filter_map(|tid| super::store::association_label(*tid)).collect();
            // `LabelsBetweenObjectPair`, 201.
            Ok((
                StatusCode::CREATED,
                json!({"fromObjectTypeId": object_type_id(t), "fromObjectId": id, "toObjectTypeId": object_type_id(to), "toObjectId": to_id, "labels": labels}),
            ))
        }
        ["crm", "v4", "associations", from, to, "batch", "read"] if *m == Method::POST => {
            let (from, to) = (check_type(from)?, check_type(to)?);
            v4_batch_read(st, ctx, from, to, req)
        }
        ["account-info", "v3", "details"] if *m == Method::GET => Ok((
            StatusCode::OK,
            json!({
                "portalId": st.tokens.portal_id,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18_000_000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }),
        )),
        ["crm", "v3", "pipelines", t] if *m == Method::GET => {
            pipeline_type(t)?;
            Ok((StatusCode::OK, json!({"results": [super::leads::pipeline()]})))
        }
        ["crm", "v3", "pipelines", t, pipeline_id] if *m == Method::GET => {
            pipeline_type(t)?;
            known_pipeline(pipeline_id)?;
            Ok((StatusCode::OK, super::leads::pipeline()))
        }
        ["crm", "v3", "pipelines", t, pipeline_id, "stages"] if *m == Method::GET => {
            pipeline_type(t)?;
            known_pipeline(pipeline_id)?;
            Ok((StatusCode::OK, json!({"results": super::leads::stages()})))
        }
        ["crm", "v3", "pipelines", t, pipeline_id, "stages", stage_id] if *m == Method::GET => {
            pipeline_type(t)?;
            known_pipeline(pipeline_id)?;
            super::leads::render_stage_by_id(stage_id).map(|v| (StatusCode::OK, v)).ok_or_else(|| {
                ApiError::not_found(format!("Unable to find stage {stage_id} in pipeline {pipeline_id}"))
            })
        }
        ["crm", "v4", "associations", from, to, "labels"] if *m == Method::GET => {
            let (from, to) = (check_type(from)?, check_type(to)?);
            let results: Vec<Value> = super::store::association_types(from, to)
                .into_iter()
                .map(|(id, label)| json!({"category": "HUBSPOT_DEFINED", "typeId": id, "label": label}))
                .collect();
            Ok((StatusCode::OK, json!({ "results": results })))
        }
        ["account-info", "v3", "api-usage", "daily", "private-apps"] if *m == Method::GET => Ok((
            StatusCode::OK,
            json!({"results": [{
                "name": "private-apps-api-calls-daily",
                "usageLimit": st.limits.config.private_app_daily,
                "currentUsage": st.limits.daily_used(),
                "collectedAt": iso_ms(ctx.now.timestamp_millis()),
                "fetchStatus": "SUCCESS",
                "resetsAt": iso_ms((ctx.now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp_millis()).unwrap_or(0)),
            }]}),
        )),
        _ => Err(no_route(req)),
    }
}

/// Pipelines are served for the Leads object (the deal and ticket pipelines
/// are outside this sandbox).
fn pipeline_type(t: &str) -> Result<(), ApiError> {
    match check_type(t)? {
        "leads" => Ok(()),
        other => Err(ApiError::validation(format!("Pipelines are not served for {other} in this sandbox"))),
    }
}

fn known_pipeline(id: &str) -> Result<(), ApiError> {
    if id == super::leads::PIPELINE_ID {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("Unable to find pipeline {id}")))
    }
}

/// The id a path segment names, by `idProperty` (a unique property) when given.
fn lookup_id(st: &HubState, t: &str, raw: &str, id_property: Option<&str>) -> Result<u64, ApiError> {
    match id_property {
        None | Some("hs_object_id") => parse_id(raw),
        Some(prop) => {
            let store = st.store(t)?;
            let exact = |o: &&Object| o.is_searchable() && o.properties.get(prop).is_some_and(|v| v == raw);
            let found = match store.find_indexed(prop, raw) {
                Some(hits) => hits.into_iter().find(exact),
                None => store.iter().find(exact),
            };
            found.map(|o| o.id).ok_or_else(|| ApiError::not_found(format!("Object not found. {prop}={raw}")))
        }
    }
}

/// The properties an answer carries: the type's defaults when none are
/// named, else the named ones plus `hs_object_id` and the creation and
/// modification times, which live HubSpot always adds (recorded answers
/// show them next to the properties asked for).
fn requested_properties(t: &str, names: Vec<String>) -> Vec<String> {
    if names.is_empty() {
        return default_properties(t);
    }
    let mut out = names;
    for always in [created_property(t), "hs_object_id", modified_property(t)] {
        if !out.iter().any(|n| n == always) {
            out.push(always.to_string());
        }
    }
    out
}

fn render(st: &HubState, t: &str, id: u64, props: &[String], assoc: &[String]) -> Result<Value, ApiError> {
    let obj =
        st.store(t)?.get(id).ok_or_else(|| ApiError::not_found("Object not found.  objectId are usually numeric."))?;
    Ok(render_obj(st, t, obj, &requested_properties(t, props.to_vec()), assoc))
}

fn render_obj(st: &HubState, t: &str, obj: &Object, props: &[String], assoc: &[String]) -> Value {
    let mut v = obj.render(t, props);
    if let Some(a) = st.render_associations(t, obj.id, assoc) {
        v["associations"] = a;
    }
    v
}

/// What a read asks for: `properties` (or the type's defaults) plus the
/// `propertiesWithHistory`, which HubSpot also returns with their current
/// value (as recorded in HubSpot/hubspot-api-nodejs issue #154).
struct Reading {
    properties: Vec<String>,
    with_history: Vec<String>,
}

impl Reading {
    fn new(st: &HubState, t: &str, properties: Vec<String>, with_history: Vec<String>) -> Result<Reading, ApiError> {
        if !with_history.is_empty() && !st.history_readable {
            return Err(ApiError::missing_scopes(&[super::state::HISTORY_SCOPE]));
        }
        let mut properties = requested_properties(t, properties);
        for h in &with_history {
            if !properties.contains(h) {
                properties.push(h.clone());
            }
        }
        Ok(Reading { properties, with_history })
    }

    fn render(&self, st: &HubState, t: &str, obj: &Object, assoc: &[String]) -> Value {
        let mut v = render_obj(st, t, obj, &self.properties, assoc);
        if !self.with_history.is_empty() {
            v["propertiesWithHistory"] = obj.render_history(t, &self.with_history);
        }
        v
    }

    /// [`Reading::render`] as JSON text, for records without associations.
    fn write(&self, out: &mut String, t: &str, obj: &Object) {
        let history = (!self.with_history.is_empty()).then_some(self.with_history.as_slice());
        obj.write_json(out, t, &self.properties, history);
    }
}

/// A JSON array of strings from a request body (`properties`, `propertiesWithHistory`).
fn string_list(body: &Map<String, Value>, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn get_one(st: &HubState, t: &str, raw_id: &str, req: &ApiRequest) -> Answer {
    let id = st.resolve(t, lookup_id(st, t, raw_id, req.q("idProperty"))?);
    let archived = req.q_bool("archived");
    let obj = st
        .store(t)?
        .get(id)
        .filter(|o| o.is_archived() == archived)
        .ok_or_else(|| ApiError::not_found("Object not found.  objectId are usually numeric."))?;
    let reading = Reading::new(st, t, req.q_list("properties"), req.q_list("propertiesWithHistory"))?;
    Ok((StatusCode::OK, reading.render(st, t, obj, &req.q_list("associations"))))
}

fn list(st: &HubState, ctx: &Ctx<'_>, t: &str, req: &ApiRequest) -> Answer {
    let limit = match req.q("limit") {
        None => LIST_DEFAULT_LIMIT,
        Some(v) => v.parse::<usize>().map_err(|_| ApiError::validation(format!("limit must be a number, was {v}")))?,
    };
    if limit == 0 || limit > LIST_MAX_LIMIT {
        return Err(ApiError::validation(format!("limit must be between 1 and {LIST_MAX_LIMIT}, was {limit}")));
    }
    let after = match req.q("after") {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().map_err(|_| ApiError::validation(format!("Invalid paging cursor after={v}")))?,
    };
    let archived = req.q_bool("archived");
    let reading = Reading::new(st, t, req.q_list("properties"), req.q_list("propertiesWithHistory"))?;
    // "Usage of this parameter will reduce the maximum number of objects
    // that can be read by a single request" (the spec): pages of at most 50,
    // followed by `after` like any other.
    let limit = if reading.with_history.is_empty() { limit } else { limit.min(LIST_MAX_LIMIT_WITH_HISTORY) };
    let assoc = req.q_list("associations");
    let mut page: Vec<&Object> = st
        .store(t)?
        .from_id(after)
        .filter(|o| o.is_archived() == archived && o.merged_into.is_none())
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| page.pop().map(|o| o.id)).flatten();
    let results: Vec<Value> = page.iter().map(|o| reading.render(st, t, o, &assoc)).collect();
    let mut body = json!({ "results": results });
    if let Some(next) = next {
        body["paging"] = json!({"next": {"after": next.to_string(), "link": format!("{}/crm/v3/objects/{t}?after={next}", ctx.base_url)}});
    }
    Ok((StatusCode::OK, body))
}

fn create(st: &mut HubState, ctx: &Ctx<'_>, t: &str, req: &ApiRequest) -> Answer {
    let body = req.body_obj()?;
    let props = body.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let assoc = body.get("associations").and_then(Value::as_array).cloned().unwrap_or_default();
    let id = st.create(t, &props, &assoc, ctx.now.timestamp_millis())?;
    let mut names: Vec<String> = props.keys().cloned().collect();
    names.extend(default_properties(t));
    Ok((StatusCode::CREATED, render(st, t, id, &names, &[])?))
}

fn do_search(st: &HubState, ctx: &Ctx<'_>, t: &str, req: &ApiRequest) -> TextAnswer {
    let body: SearchRequest = serde_json::from_value(req.body.clone().unwrap_or_else(|| json!({})))
        .map_err(|e| ApiError::validation(format!("Invalid input JSON: {e}")))?;
    let store = st.store(t)?;
    let cutoff_ms = ctx.search_lag_ms.map(|lag| ctx.now.timestamp_millis() - lag);
    let kind_of = |p: &str| st.kind_of(t, p);
    let page = search::run(store, t, &body, &kind_of, cutoff_ms)?;
    let props = requested_properties(t, body.properties.clone());
    Ok((StatusCode::OK, search::write_page(&page, t, &props)))
}

fn merge(st: &mut HubState, ctx: &Ctx<'_>, req: &ApiRequest) -> Answer {
    let body = req.body_obj()?;
    let id = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64()))
            .ok_or_else(|| ApiError::validation(format!("Invalid input JSON: {k} is required")))
    };
    let survivor = st.merge_contacts(id("primaryObjectId")?, id("objectIdToMerge")?, ctx.now.timestamp_millis())?;
    let mut props = default_properties("contacts");
    props.push("hs_merged_object_ids".into());
    Ok((StatusCode::OK, render(st, "contacts", survivor, &props, &[])?))
}

fn list_owners(ctx: &Ctx<'_>, req: &ApiRequest) -> Answer {
    let limit = req.q("limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(OWNERS_DEFAULT_LIMIT).clamp(1, 500);
    let after = req.q("after").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let email = req.q("email");
    let archived = req.q_bool("archived");
    let all: Vec<Value> = super::state::owners(ctx.org)
        .into_iter()
        .filter(|o| email.is_none_or(|e| o["email"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(e))))
        .filter(|_| !archived)
        .collect();
    let page: Vec<Value> = all.iter().skip(after).take(limit).cloned().collect();
    let end = after + page.len();
    let mut body = json!({ "results": page });
    if end < all.len() {
        body["paging"] =
            json!({"next": {"after": end.to_string(), "link": format!("{}/crm/v3/owners/?after={end}", ctx.base_url)}});
    }
    Ok((StatusCode::OK, body))
}

/// `MultiAssociatedObjectWithLabel`s of a record. A labelled association
/// (a lead's primary contact) lists the pair's unlabelled type too, as
/// HubSpot lists a primary association.
fn v4_ends(st: &HubState, t: &str, id: u64, to: &str) -> Vec<Value> {
    st.associations
        .of(t, id, to)
        .iter()
        .map(|e| {
            let mut types = Vec::new();
            if let Some(label) = super::store::association_label(e.type_id) {
                if let Some(unlabelled) =
                    super::store::association_types(t, to).into_iter().find(|(_, l)| l.is_none()).map(|(id, _)| id)
                {
                    types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": unlabelled, "label": null}));
                }
                types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": e.type_id, "label": label}));
            } else {
                types.push(json!({"category": "HUBSPOT_DEFINED", "typeId": e.type_id, "label": null}));
            }
            json!({"toObjectId": e.to_id, "associationTypes": types})
        })
        .collect()
}

/// Associate two live records with each of `types` (forward type ids; the
/// pair's default type for `None`). Returns the ids after following merges.
fn associate(
    st: &mut HubState,
    t: &str,
    id: u64,
    to: &str,
    to_id: u64,
    types: &[Option<u32>],
) -> Result<(u64, u64), ApiError> {
    let id = st.resolve(t, id);
    let to_id = st.resolve(to, to_id);
    let live =
        |st: &HubState, t: &str, id: u64| st.stores.get(t).and_then(|s| s.get(id)).is_some_and(|o| !o.is_archived());
    if !live(st, t, id) || !live(st, to, to_id) {
        return Err(ApiError::validation(format!(
            "No {} with ID {id} or {} with ID {to_id} exists",
            singular(t),
            singular(to)
        )));
    }
    for type_id in types {
        if super::store::typed_association_ids(t, to, *type_id).is_none() {
            return Err(ApiError::validation(format!(
                "HUBSPOT_DEFINED {} is not a valid association type between {t} and {to}",
                type_id.map_or_else(|| "(default)".to_string(), |n| n.to_string())
            )));
        }
    }
    for type_id in types {
        st.associations.link_typed(t, id, to, to_id, *type_id);
    }
    Ok((id, to_id))
}

fn inputs(req: &ApiRequest, max: usize) -> Result<Vec<Value>, ApiError> {
    let inputs = req
        .body_obj()?
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::validation("Invalid input JSON: inputs is required"))?;
    if inputs.len() > max {
        return Err(ApiError::validation(format!(
            "The maximum number of inputs supported in a batch request is {max}. Received {} inputs.",
            inputs.len()
        )));
    }
    Ok(inputs)
}

fn input_id(v: &Value) -> Option<String> {
    v.get("id").and_then(|x| x.as_str().map(str::to_string).or_else(|| x.as_u64().map(|n| n.to_string())))
}

fn batch_body(ctx: &Ctx<'_>, results: Vec<Value>, errors: Vec<Value>, ok_status: StatusCode) -> (StatusCode, Value) {
    let now = iso_ms(ctx.now.timestamp_millis());
    let mut body = json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    if errors.is_empty() {
        (ok_status, body)
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        (StatusCode::MULTI_STATUS, body)
    }
}

fn item_error(e: &ApiError, trace: &str) -> Value {
    let mut v = json!({"status": "error", "category": e.body["category"], "message": e.body["message"], "context": {"objectWriteTraceId": [trace]}});
    if let Some(existing) = e.body.pointer("/context/existingId") {
        v["context"]["existingId"] = existing.clone();
    }
    v
}

fn marked(ctx: &Ctx<'_>, input: &Value) -> bool {
    ctx.batch_failure_marker.as_ref().is_some_and(|m| input.to_string().contains(m.as_str()))
}

fn marker_error() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Property values were not valid")
}

/// `batch/read`, written as text: up to 100 records (50 with history).
fn batch_read(st: &HubState, ctx: &Ctx<'_>, t: &str, req: &ApiRequest) -> TextAnswer {
    let body = req.body_obj()?;
    let with_history = string_list(body, "propertiesWithHistory");
    let inputs = if with_history.is_empty() {
        inputs(req, MAX_BATCH_INPUTS)?
    } else {
        let all = inputs(req, usize::MAX)?;
        if all.len() > MAX_HISTORY_BATCH_INPUTS {
            return Err(ApiError::validation(format!(
                "The maximum number of inputs supported in a batch request for property histories is {MAX_HISTORY_BATCH_INPUTS}. Please reduce the number of items and try again"
            )));
        }
        all
    };
    let reading = Reading::new(st, t, string_list(body, "properties"), with_history)?;
    let id_property = body.get("idProperty").and_then(Value::as_str);
    let mut results = String::from("[");
    let mut missing = Vec::new();
    for input in &inputs {
        let raw = input_id(input).unwrap_or_default();
        let found = lookup_id(st, t, &raw, id_property)
            .ok()
            .map(|id| st.resolve(t, id))
            .and_then(|id| st.store(t).ok()?.get(id))
            .filter(|o| !o.is_archived());
        match found {
            Some(o) => {
                if results.len() > 1 {
                    results.push(',');
                }
                reading.write(&mut results, t, o);
            }
            None => missing.push(raw),
        }
    }
    results.push(']');
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![
            json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", singular(t).to_uppercase()), "context": {"ids": missing}}),
        ]
    };
    let now = iso_ms(ctx.now.timestamp_millis());
    let mut out = String::with_capacity(results.len() + 200);
    out.push_str("{\"status\":\"COMPLETE\",\"results\":");
    out.push_str(&results);
    out.push_str(",\"startedAt\":\"");
    out.push_str(&now);
    out.push_str("\",\"completedAt\":\"");
    out.push_str(&now);
    out.push('"');
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        out.push_str(",\"numErrors\":");
        out.push_str(&errors.len().to_string());
        out.push_str(",\"errors\":");
        out.push_str(&Value::Array(errors).to_string());
        StatusCode::MULTI_STATUS
    };
    out.push('}');
    Ok((status, out))
}

fn batch_write(st: &mut HubState, ctx: &Ctx<'_>, t: &str, op: &str, req: &ApiRequest, now_ms: i64) -> Answer {
    let inputs = inputs(req, MAX_BATCH_INPUTS)?;
    match op {
        "create" => {
            // Validation errors fail the whole batch before anything is written.
            let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for input in &inputs {
                let props = input.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                let values = st.validate_properties(t, &props)?;
                for (k, v) in values {
                    let unique = (t == "contacts" && k == "email")
                        || st.properties.get(t).and_then(|p| p.get(&k)).is_some_and(|d| d.has_unique_value);
                    if let (true, Some(v)) = (unique, v) {
                        if !seen.entry(k.clone()).or_default().insert(v.to_lowercase()) {
                            let what = if t == "contacts" { "Contact".to_string() } else { singular(t).to_string() };
                            return Err(ApiError::conflict(format!("{what} already exists")));
                        }
                    }
                }
            }
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                let trace = input
                    .get("objectWriteTraceId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                if marked(ctx, input) {
                    errors.push(item_error(&marker_error(), &trace));
                    continue;
                }
                let props = input.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                let assoc = input.get("associations").and_then(Value::as_array).cloned().unwrap_or_default();
                match st.create(t, &props, &assoc, now_ms) {
                    Ok(id) => {
                        let mut names: Vec<String> = props.keys().cloned().collect();
                        names.extend(default_properties(t));
                        let mut v = render(st, t, id, &names, &[])?;
                        if input.get("objectWriteTraceId").is_some() {
                            v["objectWriteTraceId"] = json!(trace);
                        }
                        results.push(v);
                    }
                    Err(e) if e.status == StatusCode::CONFLICT => errors.push(item_error(&e, &trace)),
                    Err(e) => return Err(e),
                }
            }
            Ok(batch_body(ctx, results, errors, StatusCode::CREATED))
        }
        "update" | "upsert" => {
            let upsert = op == "upsert";
            let mut ids = BTreeSet::new();
            for input in &inputs {
                let props = input.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                st.validate_properties(t, &props)?;
                let id = input_id(input)
                    .ok_or_else(|| ApiError::validation("Invalid input JSON: inputs[].id is required"))?;
                if !ids.insert(id.clone()) {
                    return Err(ApiError::validation(format!(
                        "Duplicate IDs found in batch input: [{id}]. IDs must be unique"
                    )));
                }
                if upsert && input.get("idProperty").and_then(Value::as_str).is_none() {
                    return Err(ApiError::validation("Invalid input JSON: inputs[].idProperty is required for upsert"));
                }
            }
            let mut results = Vec::new();
            let mut errors = Vec::new();
            let mut missing = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                let raw = input_id(input).unwrap_or_default();
                let id_property = input.get("idProperty").and_then(Value::as_str);
                let props = input.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                if marked(ctx, input) {
                    errors.push(item_error(&marker_error(), &i.to_string()));
                    continue;
                }
                let existing = lookup_id(st, t, &raw, id_property).ok();
                let outcome = match (existing, upsert) {
                    (Some(id), _) => st.update(t, id, &props, now_ms).map(|id| (id, false)),
                    (None, true) => {
                        let mut with_key = props.clone();
                        if let Some(p) = id_property {
                            with_key.insert(p.to_string(), Value::String(raw.clone()));
                        }
                        st.create(t, &with_key, &[], now_ms).map(|id| (id, true))
                    }
                    (None, false) => {
                        missing.push(raw.clone());
                        continue;
                    }
                };
                match outcome {
                    Ok((id, is_new)) => {
                        let mut v = render(st, t, id, &props.keys().cloned().collect::<Vec<_>>(), &[])?;
                        if upsert {
                            v["new"] = json!(is_new);
                        }
                        results.push(v);
                    }
                    Err(e) if e.status == StatusCode::NOT_FOUND => missing.push(raw),
                    Err(e) => errors.push(item_error(&e, &i.to_string())),
                }
            }
            if !missing.is_empty() {
                errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", singular(t).to_uppercase()), "context": {"ids": missing}}));
            }
            Ok(batch_body(ctx, results, errors, StatusCode::OK))
        }
        "archive" => {
            for input in &inputs {
                if let Some(id) = input_id(input).and_then(|s| s.parse().ok()) {
                    st.archive(t, id, now_ms);
                }
            }
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        other => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", format!("Unknown batch operation {other}")))
        }
    }
}

fn v4_batch_read(st: &HubState, ctx: &Ctx<'_>, from: &str, to: &str, req: &ApiRequest) -> Answer {
    let inputs = inputs(req, MAX_ASSOCIATION_READ_INPUTS)?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let raw = input_id(input).unwrap_or_default();
        let ends = raw.parse::<u64>().ok().map(|id| v4_ends(st, from, st.resolve(from, id), to)).unwrap_or_default();
        if ends.is_empty() {
            errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND", "message": format!("No {} is associated with {} {raw}.", singular(to), singular(from)), "context": {"fromObjectId": [raw]}}));
        } else {
            results.push(json!({"from": {"id": raw}, "to": ends}));
        }
    }
    Ok(batch_body(ctx, results, errors, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{EventKind, OrgConfig, OwnerRef};

    fn org() -> SyntheticOrg {
        crate::generate::generate(&OrgConfig { leads: 120, days: 6, ..OrgConfig::default() })
    }

    fn ctx(org: &SyntheticOrg) -> Ctx<'_> {
        Ctx {
            now: org.config.end_at(),
            base_url: "http://127.0.0.1:0",
            org,
            search_lag_ms: None,
            batch_failure_marker: None,
        }
    }

    fn state(org: &SyntheticOrg) -> HubState {
        let mut st = HubState::new();
        st.materialise(org, org.config.end_at());
        st
    }

    fn call(
        st: &mut HubState,
        ctx: &Ctx<'_>,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = ApiRequest::parse(method, path, query, &bytes).expect("request parses");
        match dispatch(st, ctx, &req) {
            Ok(answer) => answer,
            Err(e) => (e.status, e.body),
        }
    }

    /// The contact of a lead the timeline reassigned, with the owners it had
    /// in order.
    fn reassigned(org: &SyntheticOrg, st: &HubState) -> (u64, Vec<String>) {
        for (lead, contact) in &st.lead_contacts {
            let c = &st.stores["contacts"].get(*contact).expect("contact");
            if !c.is_searchable() {
                continue;
            }
            let owners: Vec<String> = org
                .events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::LeadCreated { lead: l, owner } | EventKind::Assigned { lead: l, owner } if l == lead => {
                        Some(super::super::state::owner_id(*owner).to_string())
                    }
                    _ => None,
                })
                .collect();
            let mut distinct = owners.clone();
            distinct.dedup();
            if distinct.len() >= 3 {
                return (*contact, distinct);
            }
        }
        panic!("the org should reassign some lead twice");
    }

    #[test]
    fn get_one_serves_the_timelines_owner_and_status_history_newest_first() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        let (contact, owners) = reassigned(&org, &st);
        let (status, body) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/contacts/{contact}"),
            Some("propertiesWithHistory=hubspot_owner_id,hs_lead_status,lifecyclestage"),
            None,
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        let history = &body["propertiesWithHistory"];
        let mut got: Vec<String> = history["hubspot_owner_id"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap().to_string())
            .collect();
        got.reverse();
        assert_eq!(got, owners, "every owner the timeline gave, oldest last in the answer");
        let times: Vec<&str> =
            history["hubspot_owner_id"].as_array().unwrap().iter().map(|e| e["timestamp"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
        // The current value is the newest entry, and is in `properties` too.
        assert_eq!(body["properties"]["hubspot_owner_id"], history["hubspot_owner_id"][0]["value"]);
        assert_eq!(body["properties"]["hs_lead_status"], history["hs_lead_status"][0]["value"]);
        let oldest_status = history["hs_lead_status"].as_array().unwrap().last().unwrap();
        assert_eq!(
            (oldest_status["value"].as_str(), oldest_status["sourceType"].as_str()),
            (Some("NEW"), Some("FORM"))
        );
        assert_eq!(history["hubspot_owner_id"][0]["sourceType"], "AUTOMATION_PLATFORM", "routing reassigned it");
        assert!(history["lifecyclestage"].is_array());
        assert!(body["properties"]["email"].is_string(), "the default properties still come");

        // Without the parameter there is no history block.
        let (_, plain) = call(&mut st, &cx, Method::GET, &format!("/crm/v3/objects/contacts/{contact}"), None, None);
        assert!(plain.get("propertiesWithHistory").is_none());
    }

    #[test]
    fn api_writes_are_recorded_as_the_integration_and_status_changes_as_the_owner() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        // A lead a rep moved on in the UI.
        let (lead, contact) = st
            .lead_contacts
            .iter()
            .map(|(l, c)| (*l, *c))
            .find(|(l, c)| {
                st.stores["contacts"].get(*c).is_some_and(|o| o.is_searchable())
                    && org.events.iter().any(|e| matches!(&e.kind, EventKind::StatusChanged { lead, .. } if lead == l))
                    && org.events.iter().all(|e| !matches!(&e.kind, EventKind::LeadCreated { lead, owner: OwnerRef::Queue(_) } | EventKind::Assigned { lead, owner: OwnerRef::Queue(_) } if lead == l))
            })
            .expect("a lead worked by a rep");
        let (status, body) = call(
            &mut st,
            &cx,
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{contact}"),
            None,
            Some(json!({"properties": {"hs_lead_status": "OPEN", "handoff_sla_status": "due"}})),
        );
        assert_eq!(status, StatusCode::OK, "{body} (lead {lead})");
        let (_, body) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/contacts/{contact}"),
            Some("propertiesWithHistory=hs_lead_status"),
            None,
        );
        let entries = body["propertiesWithHistory"]["hs_lead_status"].as_array().unwrap();
        assert_eq!(entries[0]["value"], "OPEN");
        assert_eq!(entries[0]["sourceType"], "INTEGRATION");
        assert_eq!(entries[0]["sourceId"], super::super::state::APP_ID.to_string());
        assert_eq!(entries[0]["timestamp"], iso_ms(cx.now.timestamp_millis()));
        assert!(entries[0].get("updatedByUserId").is_none());
        let by_rep = entries.iter().find(|e| e["sourceType"] == "CRM_UI").expect("the rep's own change");
        assert!(by_rep["sourceId"].as_str().unwrap().starts_with("userId:"));
        assert!(by_rep["updatedByUserId"].is_u64());
    }

    #[test]
    fn batch_reads_with_history_take_at_most_50_inputs_and_lists_50_per_page() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        let ids: Vec<Value> = st.stores["contacts"]
            .iter()
            .filter(|o| o.is_searchable())
            .take(51)
            .map(|o| json!({"id": o.id.to_string()}))
            .collect();
        assert_eq!(ids.len(), 51);
        let read = |inputs: &[Value], history: bool| {
            let mut body = json!({"inputs": inputs, "properties": ["email"]});
            if history {
                body["propertiesWithHistory"] = json!(["hubspot_owner_id", "hs_lead_status"]);
            }
            body
        };
        let (status, body) =
            call(&mut st, &cx, Method::POST, "/crm/v3/objects/contacts/batch/read", None, Some(read(&ids, true)));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["category"], "VALIDATION_ERROR");
        assert_eq!(
            body["message"],
            "The maximum number of inputs supported in a batch request for property histories is 50. Please reduce the number of items and try again"
        );
        let (status, body) =
            call(&mut st, &cx, Method::POST, "/crm/v3/objects/contacts/batch/read", None, Some(read(&ids[..50], true)));
        assert_eq!(status, StatusCode::OK, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 50);
        for r in results {
            assert!(r["propertiesWithHistory"]["hubspot_owner_id"].as_array().is_some_and(|a| !a.is_empty()), "{r}");
            assert_eq!(r["properties"]["hubspot_owner_id"], r["propertiesWithHistory"]["hubspot_owner_id"][0]["value"]);
            assert!(r["properties"]["email"].is_string());
        }
        // Without history the batch limit stays 100.
        let (status, body) =
            call(&mut st, &cx, Method::POST, "/crm/v3/objects/contacts/batch/read", None, Some(read(&ids, false)));
        assert_eq!(status, StatusCode::OK);
        assert!(body["results"][0].get("propertiesWithHistory").is_none());

        // A list asking for 100 with history gets pages of 50, then the rest.
        let (status, page) = call(
            &mut st,
            &cx,
            Method::GET,
            "/crm/v3/objects/contacts",
            Some("limit=100&propertiesWithHistory=hs_lead_status"),
            None,
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["results"].as_array().unwrap().len(), 50);
        let after = page["paging"]["next"]["after"].as_str().expect("a next page").to_string();
        let (_, plain) =
            call(&mut st, &cx, Method::GET, "/crm/v3/objects/contacts", Some("limit=100&properties=email"), None);
        assert_eq!(plain["results"][50]["id"].as_str(), Some(after.as_str()), "the next page starts at the 51st");
        let (status, second) = call(
            &mut st,
            &cx,
            Method::GET,
            "/crm/v3/objects/contacts",
            Some(&format!("limit=100&propertiesWithHistory=hs_lead_status&after={after}")),
            None,
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(second["results"][0]["id"].as_str(), Some(after.as_str()));
        assert!(page["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["propertiesWithHistory"]["hs_lead_status"].is_array()));
    }

    #[test]
    fn withheld_history_answers_missing_scopes() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        st.history_readable = false;
        let id = st.stores["contacts"].iter().find(|o| o.is_searchable()).map(|o| o.id).unwrap();
        let (status, body) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some("propertiesWithHistory=hs_lead_status"),
            None,
        );
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["category"], "MISSING_SCOPES");
        assert!(body["context"]["requiredGranularScopes"].is_array());
        let (status, _) = call(&mut st, &cx, Method::GET, &format!("/crm/v3/objects/contacts/{id}"), None, None);
        assert_eq!(status, StatusCode::OK, "plain reads still work");
    }

    /// The org's contacts and lead records, pairwise: `(lead index, contact, lead record)`.
    fn pairs(st: &HubState) -> Vec<(usize, u64, u64)> {
        st.lead_contacts.iter().filter_map(|(l, c)| Some((*l, *c, *st.lead_records.get(l)?))).collect()
    }

    #[test]
    fn every_org_lead_has_a_lead_record_owned_and_staged_like_its_contact() {
        let org = org();
        let st = state(&org);
        let pairs = pairs(&st);
        assert_eq!(pairs.len(), st.lead_contacts.len(), "one lead record per contact");
        let mut stages = BTreeSet::new();
        for (lead, contact, record) in pairs {
            let c = st.stores["contacts"].get(contact).unwrap();
            let l = st.stores["leads"].get(record).unwrap();
            assert_eq!(c.is_archived(), l.is_archived(), "lead {lead}: archived together");
            assert_eq!(c.merged_into.is_some(), l.merged_into.is_some(), "lead {lead}: merged together");
            if !c.is_searchable() {
                continue;
            }
            assert_eq!(c.properties.get("hubspot_owner_id"), l.properties.get("hubspot_owner_id"), "lead {lead}");
            let owners = |o: &Object, t: &str| -> Vec<String> {
                o.history(t, "hubspot_owner_id").into_iter().map(|e| e.value.to_string()).collect()
            };
            assert_eq!(owners(c, "contacts"), owners(l, "leads"), "lead {lead}: the same owner history");
            let status = c.properties.get("hs_lead_status");
            let stage = l.properties.get("hs_pipeline_stage");
            let want = match status {
                Some("NEW") => "new-stage-id",
                Some("IN_PROGRESS") => "attempting-stage-id",
                Some("CONNECTED") => "connected-stage-id",
                Some("OPEN_DEAL") => "qualified-stage-id",
                Some("UNQUALIFIED") => "unqualified-stage-id",
                Some("BAD_TIMING") => "1502380452",
                other => panic!("lead {lead}: status {other:?}"),
            };
            assert_eq!(stage, Some(want), "lead {lead}");
            assert_eq!(
                c.properties.get("disqualification_reason"),
                l.properties.get("hs_lead_disqualification_reason"),
                "lead {lead}: the reason lives on the lead too"
            );
            let entered = super::super::leads::date_entered_property(super::super::leads::stage(want).unwrap());
            assert!(l.properties.contains_key(&entered), "lead {lead}: {entered}");
            assert_eq!(
                st.associations.of("leads", record, "contacts"),
                vec![super::super::store::AssocEnd { to_id: contact, type_id: 578 }]
            );
            for t in ["calls", "emails", "meetings", "tasks"] {
                let of_contact: BTreeSet<u64> =
                    st.associations.of("contacts", contact, t).iter().map(|e| e.to_id).collect();
                let of_lead: BTreeSet<u64> = st.associations.of("leads", record, t).iter().map(|e| e.to_id).collect();
                assert_eq!(of_contact, of_lead, "lead {lead}: the same {t}");
            }
            stages.insert(want);
        }
        assert!(stages.len() >= 4, "the org moves leads through the pipeline: {stages:?}");
    }

    #[test]
    fn leads_crud_search_pipelines_and_labels() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        let contact = st.stores["contacts"].iter().find(|o| o.is_searchable()).map(|o| o.id).unwrap();
        // A lead needs a name and a primary contact.
        let (status, body) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/leads",
            None,
            Some(json!({"properties": {"hs_lead_name": "X"}})),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/leads",
            None,
            Some(
                json!({"properties": {}, "associations": [{"to": {"id": contact.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 578}]}]}),
            ),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, created) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/leads",
            None,
            Some(
                json!({"properties": {"hs_lead_name": "Ada Lovelace", "hubspot_owner_id": "70000001"}, "associations": [{"to": {"id": contact.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 578}]}]}),
            ),
        );
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (_, got) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/leads/{id}"),
            Some("properties=hs_pipeline,hs_pipeline_stage,hs_primary_contact_id"),
            None,
        );
        assert_eq!(got["properties"]["hs_pipeline"], "lead-pipeline-id");
        assert_eq!(got["properties"]["hs_pipeline_stage"], "new-stage-id");
        assert_eq!(got["properties"]["hs_primary_contact_id"], contact.to_string());
        assert_eq!(got["properties"]["hs_object_id"], id.as_str());
        assert!(got["properties"]["hs_createdate"].is_string() && got["properties"]["hs_lastmodifieddate"].is_string());

        // A stage change stamps its entry time and is in the history.
        let (status, _) = call(
            &mut st,
            &cx,
            Method::PATCH,
            &format!("/crm/v3/objects/leads/{id}"),
            None,
            Some(
                json!({"properties": {"hs_pipeline_stage": "unqualified-stage-id", "hs_lead_disqualification_reason": "no_budget"}}),
            ),
        );
        assert_eq!(status, StatusCode::OK);
        let (_, got) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/0-136/{id}"),
            Some(
                "properties=hs_v2_date_entered_unqualified_stage_id_1502380451&propertiesWithHistory=hs_pipeline_stage",
            ),
            None,
        );
        assert_eq!(
            got["properties"]["hs_v2_date_entered_unqualified_stage_id_1502380451"],
            iso_ms(cx.now.timestamp_millis())
        );
        let stages: Vec<&str> = got["propertiesWithHistory"]["hs_pipeline_stage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"].as_str().unwrap())
            .collect();
        assert_eq!(stages, vec!["unqualified-stage-id", "new-stage-id"]);
        let (status, _) = call(
            &mut st,
            &cx,
            Method::PATCH,
            &format!("/crm/v3/objects/leads/{id}"),
            None,
            Some(json!({"properties": {"hs_pipeline_stage": "nope"}})),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown stage is refused");

        // Search with the contacts' filter semantics.
        let (status, page) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/leads/search",
            None,
            Some(
                json!({"filterGroups": [{"filters": [{"propertyName": "hs_lead_disqualification_reason", "operator": "EQ", "value": "NO_BUDGET"}, {"propertyName": "hs_object_id", "operator": "EQ", "value": id}]}], "properties": ["hs_lead_name"]}),
            ),
        );
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 1);
        assert_eq!(page["results"][0]["properties"]["hs_lead_name"], "Ada Lovelace");

        // Pipelines.
        let (status, pipelines) = call(&mut st, &cx, Method::GET, "/crm/v3/pipelines/leads", None, None);
        assert_eq!(status, StatusCode::OK);
        let labels: Vec<&str> = pipelines["results"][0]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["label"].as_str().unwrap())
            .collect();
        assert_eq!(&labels[..5], &["New", "Attempting", "Connected", "Qualified", "Disqualified"]);
        let (status, stage) = call(
            &mut st,
            &cx,
            Method::GET,
            "/crm/v3/pipelines/leads/lead-pipeline-id/stages/qualified-stage-id",
            None,
            None,
        );
        assert_eq!((status, stage["label"].as_str()), (StatusCode::OK, Some("Qualified")));
        let (status, _) = call(&mut st, &cx, Method::GET, "/crm/v3/pipelines/leads/other", None, None);
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Association labels and v4 reads: the primary contact lists both types.
        let (_, labels) = call(&mut st, &cx, Method::GET, "/crm/v4/associations/leads/contacts/labels", None, None);
        let ids: BTreeSet<u64> =
            labels["results"].as_array().unwrap().iter().map(|r| r["typeId"].as_u64().unwrap()).collect();
        assert_eq!(ids, BTreeSet::from([578, 608]));
        let (_, ends) =
            call(&mut st, &cx, Method::GET, &format!("/crm/v4/objects/leads/{id}/associations/contacts"), None, None);
        assert_eq!(ends["results"][0]["toObjectId"], contact);
        let types: Vec<(u64, Value)> = ends["results"][0]["associationTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["typeId"].as_u64().unwrap(), t["label"].clone()))
            .collect();
        assert_eq!(types, vec![(608, Value::Null), (578, json!("Primary"))]);

        // A task associated with the lead through the lead's own type.
        let (status, task) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/tasks",
            None,
            Some(
                json!({"properties": {"hs_timestamp": "2026-03-06T10:00:00Z", "hs_task_subject": "Call"}, "associations": [{"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 647}]}]}),
            ),
        );
        assert_eq!(status, StatusCode::CREATED, "{task}");
        let task_id: u64 = task["id"].as_str().unwrap().parse().unwrap();
        let (_, read) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/leads/tasks/batch/read",
            None,
            Some(json!({"inputs": [{"id": id}]})),
        );
        assert_eq!(read["results"][0]["to"][0]["toObjectId"], task_id);
        assert_eq!(read["results"][0]["to"][0]["associationTypes"][0]["typeId"], 646);
    }

    #[test]
    fn deals_answer_search_reads_listings_properties_and_associations() {
        let base = crate::generate::generate(&OrgConfig { leads: 120, days: 20, ..OrgConfig::default() });
        let ae = base.users.len() - 1;
        let org = super::super::state::tests::with_opportunities(base, ae);
        let mut st = state(&org);
        let cx = ctx(&org);
        let deals: Vec<(u64, i64)> = st.stores["deals"].iter().map(|d| (d.id, d.updated_at_ms)).collect();
        assert!(deals.len() >= 2, "{deals:?}");

        // Properties.
        let (status, props) = call(&mut st, &cx, Method::GET, "/crm/v3/properties/deals", None, None);
        assert_eq!(status, StatusCode::OK);
        let names: BTreeSet<&str> =
            props["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        for name in ["dealname", "dealstage", "pipeline", "amount", "closedate", "hubspot_owner_id", "createdate"] {
            assert!(names.contains(name), "{name}: {names:?}");
        }
        assert!(!names.contains("hs_createdate"), "deals are created at createdate");

        // Get by id: the defaults, then named properties with the times added.
        let (id, _) = deals[0];
        let (status, deal) = call(&mut st, &cx, Method::GET, &format!("/crm/v3/objects/deals/{id}"), None, None);
        assert_eq!(status, StatusCode::OK, "{deal}");
        assert_eq!(deal["properties"]["dealstage"], "appointmentscheduled");
        assert_eq!(deal["properties"]["pipeline"], "default");
        assert_eq!(deal["properties"]["createdate"], deal["createdAt"]);
        assert_eq!(deal["properties"]["hs_lastmodifieddate"], deal["updatedAt"]);
        assert!(deal["properties"].get("hubspot_owner_id").is_none(), "not a default property");
        let (_, deal) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/deals/{id}"),
            Some("properties=hubspot_owner_id&associations=contacts"),
            None,
        );
        assert_eq!(
            deal["properties"]["hubspot_owner_id"],
            super::super::state::owner_id(OwnerRef::User(ae)).to_string()
        );
        assert_eq!(deal["properties"]["hs_object_id"], id.to_string());
        assert_eq!(deal["associations"]["contacts"]["results"][0]["type"], "deal_to_contact");

        // Search: a window on hs_lastmodifieddate, paged by id like contacts.
        let mut times: Vec<i64> = deals.iter().map(|(_, t)| *t).collect();
        times.sort();
        let (lo, hi) = (times[0], times[times.len() - 1] + 1);
        let window = |after_id: u64| {
            json!({"filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": lo.to_string()},
                {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": hi.to_string()},
                {"propertyName": "hs_object_id", "operator": "GT", "value": after_id.to_string()}]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": ["hubspot_owner_id", "dealstage"], "limit": 1})
        };
        let (status, page) = call(&mut st, &cx, Method::POST, "/crm/v3/objects/deals/search", None, Some(window(0)));
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], deals.len());
        let first: u64 = page["results"][0]["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(first, deals.iter().map(|(id, _)| *id).min().unwrap());
        let (_, next) = call(&mut st, &cx, Method::POST, "/crm/v3/objects/deals/search", None, Some(window(first)));
        assert!(next["results"][0]["id"].as_str().unwrap().parse::<u64>().unwrap() > first);
        assert!(page["results"][0]["properties"]["createdate"].is_string());

        // Batch read; v4 associations both ways and from the deal's meeting.
        let inputs: Vec<Value> = deals.iter().map(|(id, _)| json!({"id": id.to_string()})).collect();
        let (status, read) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/deals/batch/read",
            None,
            Some(json!({"inputs": inputs, "properties": ["dealname"]})),
        );
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(read["results"].as_array().unwrap().len(), deals.len());
        let (status, to_contacts) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/deals/contacts/batch/read",
            None,
            Some(json!({"inputs": inputs})),
        );
        assert_eq!(status, StatusCode::OK, "{to_contacts}");
        let first_end = &to_contacts["results"][0]["to"][0];
        assert_eq!(first_end["associationTypes"][0]["typeId"], 3);
        let contact = first_end["toObjectId"].as_u64().unwrap();
        let (_, back) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/contacts/deals/batch/read",
            None,
            Some(json!({"inputs": [{"id": contact.to_string()}]})),
        );
        assert_eq!(back["results"][0]["to"][0]["associationTypes"][0]["typeId"], 4);
        let meeting = st.stores["meetings"]
            .iter()
            .find(|m| !st.associations.of("meetings", m.id, "deals").is_empty())
            .map(|m| m.id)
            .unwrap();
        let (status, on_deal) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/meetings/deals/batch/read",
            None,
            Some(json!({"inputs": [{"id": meeting.to_string()}]})),
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(on_deal["results"][0]["to"][0]["associationTypes"][0]["typeId"], 212);
        let (status, no_contact) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/meetings/contacts/batch/read",
            None,
            Some(json!({"inputs": [{"id": meeting.to_string()}]})),
        );
        assert_eq!(status, StatusCode::MULTI_STATUS, "a deal's meeting has no contact: {no_contact}");
        assert_eq!(no_contact["errors"][0]["subCategory"], "crm.associations.NO_ASSOCIATIONS_FOUND");

        // Create: dealname and dealstage are required; the pipeline defaults.
        let (status, refused) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/deals",
            None,
            Some(json!({"properties": {"dealname": "No stage"}})),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(refused["context"]["properties"], json!(["dealstage"]));
        let (status, created) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/deals",
            None,
            Some(
                json!({"properties": {"dealname": "Expansion", "dealstage": "qualifiedtobuy"}, "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]}),
            ),
        );
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["properties"]["pipeline"], "default");
        let new_id: u64 = created["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(st.associations.of("deals", new_id, "contacts")[0].to_id, contact);

        // Archived: gone from search and listed with archived=true.
        let (status, _) = call(&mut st, &cx, Method::DELETE, &format!("/crm/v3/objects/deals/{id}"), None, None);
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, page) = call(&mut st, &cx, Method::POST, "/crm/v3/objects/deals/search", None, Some(window(0)));
        assert_eq!(page["total"], deals.len() - 1);
        let (status, archived) =
            call(&mut st, &cx, Method::GET, "/crm/v3/objects/deals", Some("archived=true&limit=100"), None);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(archived["results"].as_array().unwrap().len(), 1);
        assert_eq!(archived["results"][0]["id"], id.to_string());
        assert!(archived["results"][0]["archivedAt"].is_string());
        let (_, live) = call(&mut st, &cx, Method::GET, "/crm/v3/objects/deals", Some("limit=100"), None);
        assert_eq!(live["results"].as_array().unwrap().len(), deals.len());
    }

    #[test]
    fn a_portal_without_the_leads_object_refuses_every_leads_call() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        st.leads_available = false;
        for (method, path, body) in [
            (Method::GET, "/crm/v3/objects/leads", None),
            (Method::POST, "/crm/v3/objects/leads/search", Some(json!({}))),
            (Method::GET, "/crm/v3/pipelines/leads", None),
            (Method::GET, "/crm/v3/properties/leads", None),
            (Method::POST, "/crm/v4/associations/contacts/leads/batch/read", Some(json!({"inputs": []}))),
        ] {
            let (status, body) = call(&mut st, &cx, method, path, None, body);
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            assert_eq!(body["category"], "MISSING_SCOPES");
            assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"][0], "crm.objects.leads.read", "{path}");
        }
        let (status, body) =
            call(&mut st, &cx, Method::POST, "/crm/v3/objects/leads", None, Some(json!({"properties": {}})));
        assert_eq!(
            (status, body["errors"][0]["context"]["requiredGranularScopes"][0].as_str()),
            (StatusCode::FORBIDDEN, Some("crm.objects.leads.write"))
        );
        let (status, _) = call(&mut st, &cx, Method::GET, "/crm/v3/objects/contacts", None, None);
        assert_eq!(status, StatusCode::OK, "contacts still work");
    }

    #[test]
    fn named_properties_come_with_the_id_and_both_timestamps() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        let contact = st.stores["contacts"].iter().find(|o| o.is_searchable()).map(|o| o.id).unwrap();
        let keys = |v: &Value| -> BTreeSet<String> { v["properties"].as_object().unwrap().keys().cloned().collect() };
        let want: BTreeSet<String> =
            ["email", "hs_object_id", "createdate", "lastmodifieddate"].iter().map(|s| s.to_string()).collect();
        let (_, one) = call(
            &mut st,
            &cx,
            Method::GET,
            &format!("/crm/v3/objects/contacts/{contact}"),
            Some("properties=email"),
            None,
        );
        assert_eq!(keys(&one), want);
        let (_, page) =
            call(&mut st, &cx, Method::GET, "/crm/v3/objects/contacts", Some("properties=email&limit=2"), None);
        assert_eq!(keys(&page["results"][0]), want);
        let (_, batch) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/contacts/batch/read",
            None,
            Some(
                json!({"inputs": [{"id": contact.to_string()}], "properties": ["email"], "propertiesWithHistory": []}),
            ),
        );
        assert_eq!(keys(&batch["results"][0]), want, "an empty propertiesWithHistory is accepted");
        assert!(batch["results"][0].get("propertiesWithHistory").is_none());
        let (_, found) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/contacts/search",
            None,
            Some(json!({"properties": ["email"], "limit": 1})),
        );
        assert_eq!(keys(&found["results"][0]), want);
        let (_, tasks) =
            call(&mut st, &cx, Method::GET, "/crm/v3/objects/calls", Some("properties=hs_call_title&limit=1"), None);
        let want: BTreeSet<String> = ["hs_call_title", "hs_object_id", "hs_createdate", "hs_lastmodifieddate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(keys(&tasks["results"][0]), want);
    }

    #[test]
    fn v4_batch_reads_take_1000_ids_and_refuse_more() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        let ids: Vec<Value> = (0..1_000u64).map(|i| json!({"id": (1_001 + i).to_string()})).collect();
        let (status, body) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/contacts/leads/batch/read",
            None,
            Some(json!({"inputs": ids})),
        );
        assert!(status == StatusCode::OK || status == StatusCode::MULTI_STATUS, "{status}");
        assert!(!body["results"].as_array().unwrap().is_empty());
        let mut more = ids.clone();
        more.push(json!({"id": "99999"}));
        let (status, body) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v4/associations/contacts/leads/batch/read",
            None,
            Some(json!({"inputs": more})),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["category"], "VALIDATION_ERROR");
    }

    #[test]
    fn a_unique_property_is_found_through_its_index_as_a_scan_would() {
        let org = org();
        let mut st = state(&org);
        let cx = ctx(&org);
        let contact = st.stores["contacts"].iter().find(|o| o.is_searchable()).map(|o| o.id).unwrap();
        let (status, _) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/properties/tasks",
            None,
            Some(
                json!({"name": "handoff_key", "label": "k", "type": "string", "fieldType": "text", "groupName": "task", "hasUniqueValue": true}),
            ),
        );
        assert_eq!(status, StatusCode::CREATED);
        assert!(st.stores["tasks"].is_indexed("handoff_key"));
        let assoc = json!([{"to": {"id": contact.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]);
        let inputs: Vec<Value> = (0..5)
            .map(|i| json!({"properties": {"hs_timestamp": "2026-03-06T10:00:00Z", "handoff_key": format!("Key-{i}")}, "associations": assoc}))
            .collect();
        let (status, _) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/tasks/batch/create",
            None,
            Some(json!({"inputs": inputs})),
        );
        assert_eq!(status, StatusCode::CREATED);
        // Renamed and archived records leave the index.
        let renamed = st.stores["tasks"].find_by_property("handoff_key", "Key-3").map(|o| o.id).unwrap();
        call(
            &mut st,
            &cx,
            Method::PATCH,
            &format!("/crm/v3/objects/tasks/{renamed}"),
            None,
            Some(json!({"properties": {"handoff_key": "Key-3b"}})),
        );
        let archived = st.stores["tasks"].find_by_property("handoff_key", "Key-4").map(|o| o.id).unwrap();
        call(&mut st, &cx, Method::DELETE, &format!("/crm/v3/objects/tasks/{archived}"), None, None);
        for (value, hits) in [("Key-0", 1), ("key-0", 1), ("Key-3", 0), ("Key-3b", 1), ("Key-4", 0), ("nope", 0)] {
            let search = |extra: Option<Value>| {
                let mut filters = vec![json!({"propertyName": "handoff_key", "operator": "EQ", "value": value})];
                filters.extend(extra);
                json!({"filterGroups": [{"filters": filters}], "properties": ["handoff_key"]})
            };
            let (_, fast) = call(&mut st, &cx, Method::POST, "/crm/v3/objects/tasks/search", None, Some(search(None)));
            // A second filter every task passes still takes the index; an OR
            // group forces the scan: the answers must agree.
            let mut slow = search(None);
            slow["filterGroups"]
                .as_array_mut()
                .unwrap()
                .push(json!({"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "0"}]}));
            let (_, scanned) = call(&mut st, &cx, Method::POST, "/crm/v3/objects/tasks/search", None, Some(slow));
            assert_eq!(fast["total"], hits, "{value}: {fast}");
            assert_eq!(fast["results"], scanned["results"], "{value}");
        }
        let (status, got) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/tasks/batch/read",
            None,
            Some(
                json!({"idProperty": "handoff_key", "inputs": [{"id": "Key-1"}, {"id": "key-1"}], "properties": ["handoff_key"]}),
            ),
        );
        assert_eq!(status, StatusCode::MULTI_STATUS, "idProperty lookups are exact: {got}");
        assert_eq!(got["results"][0]["properties"]["handoff_key"], "Key-1");
        let (status, _) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/tasks",
            None,
            Some(json!({"properties": {"hs_timestamp": "2026-03-06T10:00:00Z", "handoff_key": "Key-0"}})),
        );
        assert_eq!(status, StatusCode::CONFLICT, "the index sees the clash");
        let (status, _) = call(
            &mut st,
            &cx,
            Method::POST,
            "/crm/v3/objects/tasks",
            None,
            Some(json!({"properties": {"hs_timestamp": "2026-03-06T10:00:00Z", "handoff_key": "Key-4"}})),
        );
        assert_eq!(status, StatusCode::CREATED, "an archived task's key is free again");
    }
}
