//! HubSpot's JSON shapes and headers, and what they mean for handoff.
//! Pure: no I/O, so every shape is unit-tested against recorded responses.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use handoff_model::{ErrorClass, Timestamp};
use serde::Deserialize;
use serde_json::Value;

/// A `SimplePublicObject`. Property values are strings or `null`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiObject {
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
    pub archived_at: Option<String>,
    /// Echoed back on batch creates so results can be matched to inputs.
    pub object_write_trace_id: Option<String>,
    /// Present when the read asked for `propertiesWithHistory`: every value
    /// each property took, newest first as HubSpot sends it.
    #[serde(default)]
    pub properties_with_history: BTreeMap<String, Vec<HistoryValue>>,
}

/// One value a property took (`propertiesWithHistory`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryValue {
    /// `""` (or `null`) when the property was cleared.
    #[serde(default)]
    pub value: Option<String>,
    pub timestamp: String,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub updated_by_user_id: Option<u64>,
}

impl ApiObject {
    /// A property as a non-empty string (HubSpot sends `null` and `""` for unset).
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NextPage {
    pub after: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Paging {
    pub next: Option<NextPage>,
}

/// `POST /crm/v3/objects/{type}/search` and `GET /crm/v3/objects/{type}`.
/// The envelope is read strictly (`results` must be there: an error body
/// is not an empty page); the records one by one, so one unreadable record
/// is quarantined instead of failing its page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ObjectPage {
    #[serde(default)]
    pub total: Option<u64>,
    pub results: Vec<Value>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

impl ObjectPage {
    pub fn next_after(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.as_str())
    }

    /// Each record, or why it cannot be read.
    pub fn records(&self) -> Vec<Result<ApiObject, BadRecord>> {
        self.results.iter().map(object).collect()
    }
}

/// A record that cannot be read, as HubSpot sent it, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    pub raw: Value,
    /// Its id, when it has a readable one.
    pub id: Option<String>,
    pub reason: String,
}

impl BadRecord {
    pub fn new(raw: &Value, reason: impl Into<String>) -> Self {
        BadRecord { raw: raw.clone(), id: raw.get("id").and_then(id_string), reason: reason.into() }
    }
}

/// The numeric id of a raw record (its keyset position), when readable.
pub fn raw_numeric_id(raw: &Value) -> Option<u64> {
    raw.get("id").and_then(id_string).and_then(|id| id.trim().parse().ok())
}

/// A record read strictly: an object with a string `id`, and property
/// values that are strings or null (HubSpot sends every value as text; a
/// number or an object is not guessed at).
pub fn object(raw: &Value) -> Result<ApiObject, BadRecord> {
    let Some(fields) = raw.as_object() else {
        return Err(BadRecord::new(raw, format!("the record is {raw}, not an object")));
    };
    match fields.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => {}
        Some(other) => return Err(BadRecord::new(raw, format!("id is {other}, not text"))),
        None => return Err(BadRecord::new(raw, "the record has no id")),
    }
    if let Some(props) = fields.get("properties").and_then(Value::as_object) {
        if let Some((name, value)) = props.iter().find(|(_, v)| !(v.is_string() || v.is_null())) {
            return Err(BadRecord::new(raw, format!("property {name} is {value}, not text")));
        }
    }
    serde_json::from_value(raw.clone()).map_err(|e| BadRecord::new(raw, format!("the record is not readable: {e}")))
}

/// HubSpot's error body. `category` is absent on some errors (unknown
/// object types) and on 429s, which carry `errorType`/`policyName` instead.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub message: String,
    pub category: Option<String>,
    pub sub_category: Option<String>,
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, Value>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
    pub error_type: Option<String>,
    pub policy_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    pub code: Option<String>,
}

impl ErrorBody {
    /// Parse any error response; a body that is not HubSpot JSON (a proxy's
    /// HTML page) becomes a message holding its start.
    pub fn parse(body: &[u8]) -> ErrorBody {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| ErrorBody { message: handoff_runtime::decode::snippet(body), ..ErrorBody::default() })
    }

    /// The most specific code: the first detail code, else the category,
    /// else the policy name, else the status.
    pub fn code(&self) -> String {
        self.errors
            .iter()
            .find_map(|d| d.code.clone())
            .or_else(|| self.category.clone())
            .or_else(|| self.policy_name.clone())
            .or_else(|| self.status.clone())
            .unwrap_or_else(|| "UNKNOWN".into())
    }

    /// Strings listed under `context[key]`.
    pub fn context_strings(&self, key: &str) -> Vec<String> {
        match self.context.get(key) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
}

/// Batch create/read/update response (200/201/207).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    #[serde(default)]
    pub results: Vec<ApiObject>,
    #[serde(default)]
    pub errors: Vec<ErrorBody>,
    #[serde(default)]
    pub num_errors: Option<u64>,
}

/// `GET /crm/v3/owners`: the envelope strictly, the owners one by one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OwnerPage {
    pub results: Vec<Value>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

impl OwnerPage {
    pub fn next_after(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.as_str())
    }

    /// Each owner, or why it cannot be read.
    pub fn owners(&self) -> Vec<Result<ApiOwner, BadRecord>> {
        self.results
            .iter()
            .map(|raw| match raw.get("id") {
                Some(Value::String(id)) if !id.trim().is_empty() => serde_json::from_value(raw.clone())
                    .map_err(|e| BadRecord::new(raw, format!("the owner is not readable: {e}"))),
                Some(other) => Err(BadRecord::new(raw, format!("id is {other}, not text"))),
                None => Err(BadRecord::new(raw, "the owner has no id")),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiOwner {
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub archived: bool,
    pub updated_at: Option<String>,
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AssociationBatch {
    #[serde(default)]
    pub results: Vec<AssociationResult>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AssociationResult {
    pub from: AssociationFrom,
    #[serde(default)]
    pub to: Vec<AssociationTo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AssociationFrom {
    pub id: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationTo {
    pub to_object_id: Value,
    #[serde(default)]
    pub association_types: Vec<AssociationTypeRef>,
}

/// One type of an association (`{"category", "typeId", "label"}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationTypeRef {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub type_id: Option<u32>,
    #[serde(default)]
    pub label: Option<String>,
}

/// `GET /crm/v4/associations/{from}/{to}/labels`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AssociationLabels {
    #[serde(default)]
    pub results: Vec<AssociationTypeRef>,
}

/// An id HubSpot sends as a number or a string.
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A HubSpot datetime: ISO-8601 (`…Z` or `…+00:00`) or epoch milliseconds.
pub fn parse_time(value: &str) -> Option<Timestamp> {
    let v = value.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc))
}

/// The `X-HubSpot-RateLimit-*` headers of one response (absent ones `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
    pub interval_ms: Option<u64>,
    pub max: Option<u64>,
    pub remaining: Option<u64>,
}

impl RateHeaders {
    pub fn parse(headers: &reqwest::header::HeaderMap) -> RateHeaders {
        let num =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok());
        RateHeaders {
            daily: num("x-hubspot-ratelimit-daily"),
            daily_remaining: num("x-hubspot-ratelimit-daily-remaining"),
            interval_ms: num("x-hubspot-ratelimit-interval-milliseconds"),
            max: num("x-hubspot-ratelimit-max"),
            remaining: num("x-hubspot-ratelimit-remaining"),
        }
    }
}

/// Which limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePolicy {
    /// The 10-second burst bucket.
    TenSecondly,
    /// Search's per-second bucket.
    Secondly,
    /// The portal's daily quota: stop until tomorrow.
    Daily,
}

impl RatePolicy {
    /// From the 429 body's `policyName`, falling back on the message the
    /// official SDK matches when `policyName` is missing.
    pub fn from_body(body: &ErrorBody) -> RatePolicy {
        match body.policy_name.as_deref() {
            Some("DAILY") => RatePolicy::Daily,
            Some("SECONDLY") => RatePolicy::Secondly,
            Some(_) => RatePolicy::TenSecondly,
            None if body.message.contains("daily limit") => RatePolicy::Daily,
            None if body.message.contains("secondly limit") => RatePolicy::Secondly,
            None => RatePolicy::TenSecondly,
        }
    }
}

/// How handoff treats a failed record or call, from its status and body.
pub fn classify(status: u16, body: &ErrorBody) -> ErrorClass {
    let category = body.category.as_deref().unwrap_or("");
    let code = body.code();
    match status {
        429 => ErrorClass::RateLimited { retry_after_secs: 10 },
        401 => ErrorClass::Auth,
        403 => ErrorClass::NeedsConfig,
        500..=599 => ErrorClass::Retryable,
        408 | 423 => ErrorClass::Retryable,
        _ if category == "RATE_LIMITS" => ErrorClass::RateLimited { retry_after_secs: 10 },
        _ if code == "PROPERTY_DOESNT_EXIST" || category == "MISSING_SCOPES" => ErrorClass::NeedsConfig,
        _ if category == "INTERNAL_ERROR" || category == "LOCKED" || category == "TIMEOUT" => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_status_and_category() {
        let body = |cat: &str| ErrorBody { category: Some(cat.into()), ..ErrorBody::default() };
        assert_eq!(classify(400, &body("VALIDATION_ERROR")), ErrorClass::Permanent);
        assert_eq!(classify(404, &body("OBJECT_NOT_FOUND")), ErrorClass::Permanent);
        assert_eq!(classify(502, &ErrorBody::default()), ErrorClass::Retryable);
        assert_eq!(classify(403, &body("MISSING_SCOPES")), ErrorClass::NeedsConfig);
        assert_eq!(classify(401, &body("INVALID_AUTHENTICATION")), ErrorClass::Auth);
        let unknown_prop = ErrorBody {
            category: Some("VALIDATION_ERROR".into()),
            errors: vec![ErrorDetail { message: "x".into(), code: Some("PROPERTY_DOESNT_EXIST".into()) }],
            ..ErrorBody::default()
        };
        assert_eq!(classify(400, &unknown_prop), ErrorClass::NeedsConfig);
    }

    #[test]
    fn rate_policy_from_policy_name_or_message() {
        let b = |p: Option<&str>, m: &str| ErrorBody {
            policy_name: p.map(str::to_string),
            message: m.into(),
            ..ErrorBody::default()
        };
        assert_eq!(RatePolicy::from_body(&b(Some("DAILY"), "")), RatePolicy::Daily);
        assert_eq!(RatePolicy::from_body(&b(Some("TEN_SECONDLY_ROLLING"), "")), RatePolicy::TenSecondly);
        assert_eq!(RatePolicy::from_body(&b(None, "You have reached your secondly limit.")), RatePolicy::Secondly);
        assert_eq!(RatePolicy::from_body(&b(None, "something")), RatePolicy::TenSecondly);
    }

    #[test]
    fn parses_both_time_forms() {
        let iso = parse_time("2019-10-30T03:30:17.883Z").unwrap();
        assert_eq!(iso.timestamp_millis(), 1_572_406_217_883);
        assert_eq!(parse_time("2019-10-30T03:30:17.883+00:00"), Some(iso));
        assert_eq!(parse_time("1572406217883"), Some(iso));
        assert_eq!(parse_time("soon"), None);
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn recorded_search_pages_parse_with_nulls_and_paging() {
        let p1: ObjectPage = serde_json::from_slice(&fixture("search-contacts-page-1.json")).unwrap();
        assert_eq!(p1.total, Some(57));
        assert_eq!(p1.next_after(), Some("54"));
        let first = p1.records().remove(0).unwrap();
        assert_eq!(first.prop("company"), None, "null property");
        assert_eq!(first.prop("email"), Some("johnnie77@hotmail.com"));
        assert!(p1.records().iter().all(Result::is_ok));
        let p2: ObjectPage = serde_json::from_slice(&fixture("search-contacts-page-2.json")).unwrap();
        assert_eq!(p2.next_after(), None, "the last page has no paging");
        let list: ObjectPage = serde_json::from_slice(&fixture("objects-contacts-list.json")).unwrap();
        assert!(list.total.is_none());
        assert!(!list.results.is_empty());
    }

    #[test]
    fn recorded_errors_parse_with_and_without_category() {
        let no_category = ErrorBody::parse(&fixture("errors-400-search-invalid-object.json"));
        assert_eq!(no_category.category, None);
        assert_eq!(no_category.code(), "error");
        assert_eq!(classify(400, &no_category), ErrorClass::Permanent);
        let scopes = ErrorBody::parse(&fixture("errors-403-missing-scopes.json"));
        assert_eq!(scopes.code(), "MISSING_SCOPES");
        assert_eq!(classify(403, &scopes), ErrorClass::NeedsConfig);
        assert_eq!(scopes.context_strings("requiredGranularScopes"), vec!["custom-object-read".to_string()]);
        let conflict = ErrorBody::parse(&fixture("batch-create-contacts-409-conflict.json"));
        assert_eq!(conflict.code(), "CONFLICT");
        let dup = ErrorBody::parse(&fixture("batch-update-contacts-400-duplicate-ids.json"));
        assert_eq!(dup.context_strings("ids"), vec!["123456".to_string()]);
    }

    #[test]
    fn history_blocks_parse_in_the_shape_hubspot_sends() {
        // The keys of a real `propertiesWithHistory` answer (HubSpot's own
        // nodejs SDK issue #154; API writes carry the app id as sourceId).
        let body = br#"{"status": "COMPLETE", "results": [{"id": "51", "properties": {"hs_object_id": "51", "hs_lead_status": "CONNECTED"},
            "propertiesWithHistory": {"hs_lead_status": [
                {"value": "CONNECTED", "timestamp": "2026-03-03T10:00:00.000Z", "sourceType": "CRM_UI", "sourceId": "userId:28604240", "updatedByUserId": 28604240},
                {"value": "NEW", "timestamp": "2026-03-02T09:00:00.000Z", "sourceType": "INTEGRATION", "sourceId": "5670736"}]},
            "createdAt": "2026-03-02T09:00:00.000Z", "updatedAt": "2026-03-03T10:00:00.000Z", "archived": false}],
            "startedAt": "2026-03-03T10:00:01.000Z", "completedAt": "2026-03-03T10:00:01.000Z"}"#;
        let b: BatchResponse = serde_json::from_slice(body).unwrap();
        let h = &b.results[0].properties_with_history["hs_lead_status"];
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].value.as_deref(), Some("CONNECTED"));
        assert_eq!(h[0].updated_by_user_id, Some(28_604_240));
        assert_eq!(h[1].source_type.as_deref(), Some("INTEGRATION"));
        assert_eq!(h[1].updated_by_user_id, None);
        // Records read without history have none.
        let plain: ObjectPage = serde_json::from_slice(&fixture("search-contacts-page-1.json")).unwrap();
        assert!(plain.records().remove(0).unwrap().properties_with_history.is_empty());
    }

    #[test]
    fn an_error_body_is_not_an_empty_page_and_bad_records_are_named() {
        assert!(serde_json::from_str::<ObjectPage>(r#"{"status":"error","message":"internal"}"#).is_err());
        let page: ObjectPage = serde_json::from_value(serde_json::json!({"results": [
            {"id": "1", "properties": {"lastmodifieddate": "2026-03-02T10:00:00Z"}},
            {"properties": {"lastmodifieddate": "2026-03-02T10:00:00Z"}},
            {"id": 7, "properties": {}},
            {"id": "8", "properties": {"lastmodifieddate": 1772445600000u64}},
        ]}))
        .unwrap();
        let reasons: Vec<String> = page.records().into_iter().filter_map(|r| r.err().map(|b| b.reason)).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("no id"));
        assert!(reasons[1].contains("id is 7"));
        assert!(reasons[2].contains("property lastmodifieddate is 1772445600000"));
        assert_eq!(raw_numeric_id(&page.results[2]), Some(7), "a numeric id still marks the keyset position");
    }

    #[test]
    fn non_json_error_bodies_keep_their_start() {
        let b = ErrorBody::parse(b"<html>bad gateway</html>");
        assert!(b.message.contains("bad gateway"));
        assert_eq!(b.code(), "UNKNOWN");
    }
}
