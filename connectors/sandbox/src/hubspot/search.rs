//! `POST /crm/v3/objects/{type}/search`: filter groups (AND inside a group,
//! OR across groups) with the real operators, one sort, `limit` ≤ 200,
//! stringified-offset `after`, and the 10,000-result cap.
//!
//! Pure: the caller passes the store, the property types and the search
//! index's cutoff (under the search-lag fault, records modified after it
//! are invisible; archived and merged-away records always are).
//!
//! A search of one filter group bounded only on the modified time and
//! `hs_object_id`, sorted by id (how handoff and most sync tools page), is
//! answered from the store's `(modified, id)` index without touching the
//! records: a window of 100,000 contacts costs one pass over integers.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::store::{modified_property, parse_time_ms, Object, ObjectStore};

/// Most results one search can page through.
pub const SEARCH_CAP: usize = 10_000;
pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 10;
/// Filter-count limits (Aug 2024 changelog).
pub const MAX_GROUPS: usize = 5;
pub const MAX_FILTERS_PER_GROUP: usize = 10;
pub const MAX_FILTERS_TOTAL: usize = 25;

/// How a property's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    Number,
    DateTime,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    pub filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    pub sorts: Vec<Value>,
    #[serde(default)]
    pub properties: Vec<String>,
    pub query: Option<String>,
    /// A number, or a string holding one (clients send both).
    pub limit: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterGroup {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    pub value: Option<Value>,
    pub values: Option<Vec<Value>>,
    pub high_value: Option<Value>,
}

/// One page of matches.
#[derive(Debug)]
pub struct SearchPage<'a> {
    pub total: usize,
    pub results: Vec<&'a Object>,
    /// The offset of the next page, absent on the last one.
    pub next_after: Option<usize>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bad_request() -> ApiError {
    ApiError::validation("There was a problem with the request.")
}

/// Filter values on datetime properties: epoch milliseconds or RFC 3339.
/// A bare date fails on the real API unless `dateTimeFormat` is given.
fn filter_time_ms(v: &str) -> Result<i64, ApiError> {
    if v.len() == 10 && v.as_bytes().get(4) == Some(&b'-') {
        return Err(bad_request());
    }
    parse_time_ms(v).ok_or_else(bad_request)
}

/// A comparable form of a value of `kind`.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Cmp {
    Text(String),
    Num(f64),
}

fn stored(kind: ValueKind, v: &str) -> Option<Cmp> {
    match kind {
        ValueKind::Text => Some(Cmp::Text(v.to_lowercase())),
        ValueKind::Number => v.trim().parse::<f64>().ok().map(Cmp::Num),
        ValueKind::DateTime => parse_time_ms(v).map(|ms| Cmp::Num(ms as f64)),
    }
}

fn operand(kind: ValueKind, v: &str) -> Result<Cmp, ApiError> {
    match kind {
        ValueKind::Text => Ok(Cmp::Text(v.to_lowercase())),
        ValueKind::Number => v.trim().parse::<f64>().map(Cmp::Num).map_err(|_| bad_request()),
        ValueKind::DateTime => filter_time_ms(v).map(|ms| Cmp::Num(ms as f64)),
    }
}

/// A filter with its operands parsed once.
struct Compiled {
    property: String,
    kind: ValueKind,
    op: Op,
}

enum Op {
    Eq(Cmp),
    Neq(Cmp),
    Lt(Cmp),
    Lte(Cmp),
    Gt(Cmp),
    Gte(Cmp),
    Between(Cmp, Cmp),
    In(Vec<Cmp>),
    NotIn(Vec<Cmp>),
    Has,
    NotHas,
    ContainsToken(String),
    NotContainsToken(String),
}

fn compile(f: &Filter, kind_of: &dyn Fn(&str) -> ValueKind) -> Result<Compiled, ApiError> {
    let kind = kind_of(&f.property_name);
    let one = || -> Result<Cmp, ApiError> {
        let v = f.value.as_ref().and_then(scalar).ok_or_else(bad_request)?;
        operand(kind, &v)
    };
    let many = || -> Result<Vec<Cmp>, ApiError> {
        let vs = f.values.as_ref().ok_or_else(bad_request)?;
        vs.iter().map(|v| scalar(v).ok_or_else(bad_request).and_then(|s| operand(kind, &s))).collect()
    };
    let token = || -> Result<String, ApiError> {
        let v = f.value.as_ref().and_then(scalar).ok_or_else(bad_request)?;
        Ok(v.replace('*', "").to_lowercase())
    };
    let op = match f.operator.as_str() {
        "EQ" => Op::Eq(one()?),
        "NEQ" => Op::Neq(one()?),
        "LT" => Op::Lt(one()?),
        "LTE" => Op::Lte(one()?),
        "GT" => Op::Gt(one()?),
        "GTE" => Op::Gte(one()?),
        "BETWEEN" => {
            let high = f.high_value.as_ref().and_then(scalar).ok_or_else(bad_request)?;
            Op::Between(one()?, operand(kind, &high)?)
        }
        "IN" => Op::In(many()?),
        "NOT_IN" => Op::NotIn(many()?),
        "HAS_PROPERTY" => Op::Has,
        "NOT_HAS_PROPERTY" => Op::NotHas,
        "CONTAINS_TOKEN" => Op::ContainsToken(token()?),
        "NOT_CONTAINS_TOKEN" => Op::NotContainsToken(token()?),
        other => {
            return Err(ApiError::validation(format!(
            "Invalid input JSON on line 1: Cannot deserialize value of type `FilterOperator` from String \"{other}\""
        )))
        }
    };
    Ok(Compiled { property: f.property_name.clone(), kind, op })
}

/// The comparable value of `name` on `o`, computed numeric properties
/// read without formatting them.
fn value_of(o: &Object, object_type: &str, name: &str, kind: ValueKind) -> Option<Cmp> {
    if kind != ValueKind::Text {
        if let Some(n) = o.numeric_property(object_type, name) {
            return Some(Cmp::Num(n as f64));
        }
    }
    match o.properties.get(name) {
        Some(v) if !v.is_empty() => stored(kind, v),
        Some(_) => None,
        None => o.property(object_type, name).filter(|v| !v.is_empty()).and_then(|v| stored(kind, &v)),
    }
}

impl Compiled {
    fn matches(&self, object_type: &str, o: &Object) -> bool {
        match &self.op {
            Op::Has | Op::NotHas | Op::ContainsToken(_) | Op::NotContainsToken(_) => {}
            _ => return self.compare(value_of(o, object_type, &self.property, self.kind)),
        }
        let raw = o.property(object_type, &self.property).filter(|v| !v.is_empty());
        match &self.op {
            Op::Has => raw.is_some(),
            Op::NotHas => raw.is_none(),
            Op::ContainsToken(t) => raw.is_some_and(|v| v.to_lowercase().contains(t.as_str())),
            Op::NotContainsToken(t) => !raw.is_some_and(|v| v.to_lowercase().contains(t.as_str())),
            _ => false,
        }
    }

    /// Compare a record's value with the operands (comparison operators).
    fn compare(&self, val: Option<Cmp>) -> bool {
        let cmp = |f: &dyn Fn(&Cmp) -> bool| val.as_ref().is_some_and(f);
        match &self.op {
            Op::Eq(x) => cmp(&|v| v == x),
            Op::Neq(x) => !cmp(&|v| v == x),
            Op::Lt(x) => cmp(&|v| v < x),
            Op::Lte(x) => cmp(&|v| v <= x),
            Op::Gt(x) => cmp(&|v| v > x),
            Op::Gte(x) => cmp(&|v| v >= x),
            Op::Between(lo, hi) => cmp(&|v| v >= lo && v <= hi),
            Op::In(xs) => cmp(&|v| xs.contains(v)),
            Op::NotIn(xs) => !cmp(&|v| xs.contains(v)),
            Op::Has | Op::NotHas | Op::ContainsToken(_) | Op::NotContainsToken(_) => false,
        }
    }

    /// The inclusive integer range `[lo, hi]` this filter allows on a
    /// numeric property, `None` for operators that are no range. A
    /// fractional bound rounds inward (`GT 4.5` is `>= 5`).
    fn int_range(&self) -> Option<(Option<i64>, Option<i64>)> {
        let num = |c: &Cmp| match c {
            Cmp::Num(n) if n.is_finite() => Some(*n),
            _ => None,
        };
        let ceil = |c: &Cmp| num(c).map(|n| n.ceil() as i64);
        let floor = |c: &Cmp| num(c).map(|n| n.floor() as i64);
        let strictly_above = |c: &Cmp| num(c).map(|n| n.floor() as i64 + 1);
        let strictly_below = |c: &Cmp| num(c).map(|n| n.ceil() as i64 - 1);
        let both = |lo: Option<i64>, hi: Option<i64>| match (lo, hi) {
            (Some(_), Some(_)) => Some((lo, hi)),
            _ => None,
        };
        match &self.op {
            Op::Gte(x) => ceil(x).map(|lo| (Some(lo), None)),
            Op::Gt(x) => strictly_above(x).map(|lo| (Some(lo), None)),
            Op::Lte(x) => floor(x).map(|hi| (None, Some(hi))),
            Op::Lt(x) => strictly_below(x).map(|hi| (None, Some(hi))),
            Op::Between(lo, hi) => both(ceil(lo), floor(hi)),
            Op::Eq(x) if num(x).is_some_and(|n| n.fract() == 0.0) => both(ceil(x), floor(x)),
            _ => None,
        }
    }
}

/// Inclusive integer bounds, either side open.
#[derive(Debug, Clone, Copy, Default)]
struct Range {
    lo: Option<i64>,
    hi: Option<i64>,
}

impl Range {
    fn narrow(&mut self, (lo, hi): (Option<i64>, Option<i64>)) {
        self.lo = max_opt(self.lo, lo);
        self.hi = min_opt(self.hi, hi);
    }

    fn contains(&self, v: i64) -> bool {
        self.lo.is_none_or(|lo| v >= lo) && self.hi.is_none_or(|hi| v <= hi)
    }
}

/// The modified-time and id ranges of a single group whose filters are all
/// ranges on those two properties; `None` when the group filters anything else.
fn index_ranges(group: &[Compiled], object_type: &str) -> Option<(Range, Range)> {
    let (mut time, mut id) = (Range::default(), Range::default());
    for c in group {
        let range = c.int_range()?;
        if c.property == modified_property(object_type) && c.kind == ValueKind::DateTime {
            time.narrow(range);
        } else if c.property == "hs_object_id" && c.kind == ValueKind::Number {
            id.narrow(range);
        } else {
            return None;
        }
    }
    Some((time, id))
}

fn parse_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The one honoured sort: `(property, descending)`. Accepts both the
/// object form and the string form (`"createdate"` / `"-createdate"`).
fn parse_sort(sorts: &[Value]) -> Result<Option<(String, bool)>, ApiError> {
    let Some(first) = sorts.first() else { return Ok(None) };
    match first {
        Value::String(s) => Ok(Some(match s.strip_prefix('-') {
            Some(name) => (name.to_string(), true),
            None => (s.clone(), false),
        })),
        Value::Object(o) => {
            let name = o.get("propertyName").and_then(Value::as_str).ok_or_else(bad_request)?;
            let desc = match o.get("direction").and_then(Value::as_str).unwrap_or("ASCENDING") {
                "ASCENDING" => false,
                "DESCENDING" => true,
                _ => return Err(bad_request()),
            };
            Ok(Some((name.to_string(), desc)))
        }
        _ => Err(bad_request()),
    }
}

/// Properties a free-text `query` looks in.
fn query_properties(object_type: &str) -> &'static [&'static str] {
    match object_type {
        "contacts" => &["email", "firstname", "lastname", "phone", "company"],
        "tasks" => &["hs_task_subject", "hs_task_body"],
        "deals" => &["dealname"],
        _ => &["hs_call_title", "hs_email_subject", "hs_meeting_title"],
    }
}

/// Run a search. `cutoff_ms`: the search index has seen writes up to this
/// instant only (the search-lag fault); archived and merged-away records
/// are never found.
pub fn run<'a>(
    store: &'a ObjectStore,
    object_type: &str,
    req: &SearchRequest,
    kind_of: &dyn Fn(&str) -> ValueKind,
    cutoff_ms: Option<i64>,
) -> Result<SearchPage<'a>, ApiError> {
    let limit = match &req.limit {
        None => DEFAULT_LIMIT,
        Some(v) => parse_usize(v).ok_or_else(bad_request)?,
    };
    if limit > MAX_LIMIT {
        return Err(ApiError::validation(format!("limit must be less than or equal to {MAX_LIMIT}, but was {limit}")));
    }
    let after = match &req.after {
        None => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(v) => parse_usize(v).ok_or_else(bad_request)?,
    };
    if after + limit > SEARCH_CAP {
        return Err(ApiError::search_cap());
    }
    let total_filters: usize = req.filter_groups.iter().map(|g| g.filters.len()).sum();
    if req.filter_groups.len() > MAX_GROUPS
        || req.filter_groups.iter().any(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
        || total_filters > MAX_FILTERS_TOTAL
    {
        return Err(ApiError::validation(format!(
            "Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters per group and {MAX_FILTERS_TOTAL} filters in total are allowed."
        )));
    }
    let groups: Vec<Vec<Compiled>> = req
        .filter_groups
        .iter()
        .map(|g| g.filters.iter().map(|f| compile(f, kind_of)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<_, _>>()?;
    let sort = parse_sort(&req.sorts)?;
    let query = req.query.as_ref().map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    // The index holds `(modified, id)`; the lag cutoff is one more bound on it.
    let visible_until = Range { lo: None, hi: cutoff_ms };

    // One group of modified/id ranges, sorted by id ascending (or not at all):
    // answer from the index alone.
    let by_id_ascending = sort.as_ref().is_none_or(|(name, desc)| name == "hs_object_id" && !desc);
    let single = match groups.as_slice() {
        [only] => index_ranges(only, object_type),
        [] => Some((Range::default(), Range::default())),
        _ => None,
    };
    if let (Some((mut time, id)), true, None) = (single, by_id_ascending, &query) {
        time.narrow((visible_until.lo, visible_until.hi));
        // A window holding every searchable record (a backfill): page the
        // id index by binary search.
        let whole = store.searchable_span().is_none_or(|(first, last)| time.contains(first) && time.contains(last));
        if whole {
            let all = store.searchable_ids();
            let from = id.lo.map_or(0, |lo| all.partition_point(|x| i64::try_from(*x).is_ok_and(|x| x < lo)));
            let to = id
                .hi
                .map_or(all.len(), |hi| all.partition_point(|x| i64::try_from(*x).is_ok_and(|x| x <= hi)))
                .max(from);
            let matching = &all[from..to];
            let total = matching.len();
            let results: Vec<&Object> =
                matching.iter().skip(after).take(limit).filter_map(|oid| store.get(*oid)).collect();
            let end = after + results.len();
            let next_after = (end < total).then_some(end);
            return Ok(SearchPage { total, results, next_after });
        }
        let to_exclusive = time.hi.map(|hi| hi.saturating_add(1));
        let mut ids: Vec<u64> = store
            .searchable_between(time.lo, to_exclusive)
            .filter(|(_, oid)| i64::try_from(*oid).is_ok_and(|v| id.contains(v)))
            .map(|(_, oid)| oid)
            .collect();
        let total = ids.len();
        let wanted = (after + limit).min(total);
        if wanted < total {
            ids.select_nth_unstable(wanted);
            ids.truncate(wanted);
        }
        ids.sort_unstable();
        let results: Vec<&Object> = ids.iter().skip(after).filter_map(|oid| store.get(*oid)).collect();
        let end = after + results.len();
        let next_after = (end < total).then_some(end);
        return Ok(SearchPage { total, results, next_after });
    }

    // Otherwise evaluate the filters record by record, walking only the
    // modified window when a single group bounds it.
    let window = match groups.as_slice() {
        [only] => {
            let mut time = Range::default();
            for c in
                only.iter().filter(|c| c.property == modified_property(object_type) && c.kind == ValueKind::DateTime)
            {
                if let Some(r) = c.int_range() {
                    time.narrow(r);
                }
            }
            time
        }
        _ => Range::default(),
    };
    let mut time = window;
    time.narrow((visible_until.lo, visible_until.hi));
    let to_exclusive = time.hi.map(|hi| hi.saturating_add(1));
    // A single group with `EQ` on an indexed (unique) property, such as a
    // task's `handoff_key`: its few candidates come from the value index.
    let indexed: Option<Vec<&Object>> = match groups.as_slice() {
        [only] => only.iter().find_map(|c| match &c.op {
            Op::Eq(Cmp::Text(v)) => store.find_indexed(&c.property, v),
            _ => None,
        }),
        _ => None,
    };
    let candidates: Box<dyn Iterator<Item = &Object>> = match indexed {
        Some(hits) => Box::new(hits.into_iter().filter(move |o| o.is_searchable() && time.contains(o.updated_at_ms))),
        None => Box::new(store.modified_between(time.lo, to_exclusive)),
    };
    let mut matched: Vec<&Object> = candidates
        .filter(|o| groups.is_empty() || groups.iter().any(|g| g.iter().all(|c| c.matches(object_type, o))))
        .filter(|o| match &query {
            None => true,
            Some(q) => query_properties(object_type)
                .iter()
                .any(|p| o.properties.get(p).is_some_and(|v| v.to_lowercase().contains(q.as_str()))),
        })
        .collect();

    match &sort {
        Some((name, desc)) => {
            let kind = kind_of(name);
            let mut keyed: Vec<(Option<Cmp>, &Object)> =
                matched.iter().map(|o| (value_of(o, object_type, name, kind), *o)).collect();
            keyed.sort_by(|(va, a), (vb, b)| {
                let ord = match (va, vb) {
                    (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                let ord = if *desc { ord.reverse() } else { ord };
                ord.then(a.id.cmp(&b.id))
            });
            matched = keyed.into_iter().map(|(_, o)| o).collect();
        }
        None => matched.sort_by_key(|o| o.id),
    }

    let total = matched.len();
    let results: Vec<&Object> = matched.into_iter().skip(after).take(limit).collect();
    let end = after + results.len();
    let next_after = (end < total).then_some(end);
    Ok(SearchPage { total, results, next_after })
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

/// The response body for a page. Search paging carries `after` only (no
/// `link`), as in the recorded responses.
pub fn render_page(page: &SearchPage<'_>, object_type: &str, properties: &[String]) -> Value {
    let results: Vec<Value> = page.results.iter().map(|o| o.render(object_type, properties)).collect();
    let mut body = json!({ "total": page.total, "results": results });
    if let Some(next) = page.next_after {
        body["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    body
}

/// [`render_page`] written straight to JSON text (what the HTTP answer sends).
pub fn write_page(page: &SearchPage<'_>, object_type: &str, properties: &[String]) -> String {
    let mut out = String::with_capacity(256 + page.results.len() * 64 * (properties.len() + 4));
    out.push_str("{\"total\":");
    out.push_str(&page.total.to_string());
    out.push_str(",\"results\":[");
    for (i, o) in page.results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        o.write_json(&mut out, object_type, properties, None);
    }
    out.push(']');
    if let Some(next) = page.next_after {
        out.push_str(",\"paging\":{\"next\":{\"after\":\"");
        out.push_str(&next.to_string());
        out.push_str("\"}}");
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hubspot::store::Source;

    fn store() -> ObjectStore {
        let mut s = ObjectStore::default();
        for id in 1..=30u64 {
            let mut properties = BTreeMap::new();
            properties.insert("email".to_string(), format!("p{id}@example.com"));
            if id % 2 == 0 {
                properties.insert("hs_lead_status".to_string(), "NEW".to_string());
            }
            // Equal timestamps in pairs, like a bulk update.
            let mut o = Object::new(id, 0, 1_000 * (id as i64 / 2), Source::Form);
            o.properties = properties.into_iter().collect();
            o.archived_at_ms = (id == 30).then_some(5);
            s.put(o);
        }
        s
    }

    fn kinds(name: &str) -> ValueKind {
        match name {
            "lastmodifieddate" | "createdate" => ValueKind::DateTime,
            "hs_object_id" => ValueKind::Number,
            _ => ValueKind::Text,
        }
    }

    fn req(v: Value) -> SearchRequest {
        serde_json::from_value(v).unwrap()
    }

    fn ids(p: &SearchPage<'_>) -> Vec<u64> {
        p.results.iter().map(|o| o.id).collect()
    }

    #[test]
    fn window_plus_id_cursor_pages_in_id_order_and_skips_archived() {
        let s = store();
        let r = req(json!({
            "filterGroups": [{"filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "5000"},
                {"propertyName": "lastmodifieddate", "operator": "LT", "value": "15000"},
                {"propertyName": "hs_object_id", "operator": "GT", "value": "11"}
            ]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": 3
        }));
        let p = run(&s, "contacts", &r, &kinds, None).unwrap();
        assert_eq!(p.total, 18);
        assert_eq!(ids(&p), vec![12, 13, 14]);
        assert_eq!(p.next_after, Some(3));
        let last = req(
            json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "BETWEEN", "value": "14000", "highValue": "15000"}]}], "after": "1"}),
        );
        let p = run(&s, "contacts", &last, &kinds, None).unwrap();
        // ids 28, 29 (14000) and 30 (archived, 15000): total 2, one left after offset 1.
        assert_eq!(p.total, 2);
        assert_eq!(ids(&p), vec![29]);
        assert_eq!(p.next_after, None);
    }

    #[test]
    fn the_index_path_answers_like_record_by_record_evaluation() {
        let s = store();
        for (lo, hi, last, limit, after) in
            [(0, 20_000, 0, 7, 0), (3_000, 9_000, 4, 2, 1), (2_500, 2_600, 0, 5, 0), (0, 40_000, 25, 200, 0)]
        {
            let filters = json!([
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": lo.to_string()},
                {"propertyName": "lastmodifieddate", "operator": "LT", "value": hi.to_string()},
                {"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}
            ]);
            let fast = req(
                json!({"filterGroups": [{"filters": filters}], "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": limit, "after": after.to_string()}),
            );
            // A filter every record passes forces the record-by-record path.
            let mut slow_filters = filters.as_array().unwrap().clone();
            slow_filters.push(json!({"propertyName": "email", "operator": "HAS_PROPERTY"}));
            let slow = req(
                json!({"filterGroups": [{"filters": slow_filters}], "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": limit, "after": after.to_string()}),
            );
            for cutoff in [None, Some(6_000)] {
                let a = run(&s, "contacts", &fast, &kinds, cutoff).unwrap();
                let b = run(&s, "contacts", &slow, &kinds, cutoff).unwrap();
                assert_eq!(
                    (a.total, ids(&a), a.next_after),
                    (b.total, ids(&b), b.next_after),
                    "window {lo}..{hi} after id {last}, cutoff {cutoff:?}"
                );
            }
        }
    }

    #[test]
    fn groups_are_ored_and_operators_behave() {
        let s = store();
        let r = req(json!({"filterGroups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "P3@example.com"}]},
            {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": ["5", 7]}]},
            {"filters": [{"propertyName": "hs_lead_status", "operator": "HAS_PROPERTY"}, {"propertyName": "hs_object_id", "operator": "LTE", "value": "4"}]}
        ], "sorts": ["-hs_object_id"]}));
        let p = run(&s, "contacts", &r, &kinds, None).unwrap();
        assert_eq!(ids(&p), vec![7, 5, 4, 3, 2]);
        let r = req(
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_lead_status", "operator": "NOT_HAS_PROPERTY"}, {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "p1*"}]}], "limit": 200}),
        );
        let p = run(&s, "contacts", &r, &kinds, None).unwrap();
        assert_eq!(ids(&p), vec![1, 11, 13, 15, 17, 19]);
    }

    #[test]
    fn caps_and_bad_input_answer_400() {
        let s = store();
        let e = run(&s, "contacts", &req(json!({"after": "10000", "limit": 10})), &kinds, None).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.body["category"], "VALIDATION_ERROR");
        assert!(run(&s, "contacts", &req(json!({"after": "9800", "limit": 200})), &kinds, None).is_ok());
        assert!(run(&s, "contacts", &req(json!({"limit": 201})), &kinds, None).is_err());
        let bare_date = req(
            json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "2020-11-15"}]}]}),
        );
        assert!(run(&s, "contacts", &bare_date, &kinds, None).is_err());
        let bad_op =
            req(json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]}));
        assert!(run(&s, "contacts", &bad_op, &kinds, None).is_err());
    }

    #[test]
    fn visibility_predicate_hides_lagging_records() {
        let s = store();
        let p = run(&s, "contacts", &req(json!({"limit": 100})), &kinds, Some(9_999)).unwrap();
        assert_eq!(p.total, 19);
        assert!(ids(&p).iter().all(|id| *id < 20));
    }

    #[test]
    fn written_pages_are_the_rendered_ones() {
        let s = store();
        let props = vec!["email".to_string(), "hs_lead_status".to_string(), "lastmodifieddate".to_string()];
        for limit in [2, 29, 200] {
            let p = run(&s, "contacts", &req(json!({"limit": limit})), &kinds, None).unwrap();
            let text = write_page(&p, "contacts", &props);
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), render_page(&p, "contacts", &props), "{text}");
        }
    }

    #[test]
    fn last_page_has_no_paging() {
        let s = store();
        let p = run(&s, "contacts", &req(json!({"limit": 29})), &kinds, None).unwrap();
        let body = render_page(&p, "contacts", &["email".to_string()]);
        assert_eq!(body["total"], 29);
        assert!(body.get("paging").is_none());
        let p = run(&s, "contacts", &req(json!({"limit": 2})), &kinds, None).unwrap();
        let body = render_page(&p, "contacts", &[]);
        assert_eq!(body["paging"]["next"]["after"], "2");
    }
}
