//! Salesforce's JSON shapes and how its errors are classified. Pure.

use std::time::Duration;

use handoff_model::{ErrorClass, WriteError};
use serde::Deserialize;
use serde_json::Value;

/// One page of `query` / `queryAll`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    #[serde(default)]
    pub total_size: u64,
    pub done: bool,
    /// Present only when `done` is false.
    #[serde(default)]
    pub next_records_url: Option<String>,
    pub records: Vec<serde_json::Map<String, Value>>,
}

/// One element of the REST error envelope (a JSON array).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorItem {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Per-record result of an sObject Collections call, in request order.
#[derive(Debug, Clone, Deserialize)]
pub struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<RecordError>,
    /// Upserts only: whether the record was new.
    #[serde(default)]
    pub created: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    pub status_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// `describe` of one sObject, reduced to what the connector checks.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Describe {
    pub name: String,
    pub fields: Vec<DescribeField>,
    /// What subqueries can reach (`Histories` when field history is tracked).
    #[serde(default)]
    pub child_relationships: Vec<DescribeChildRelationship>,
}

impl Describe {
    /// Whether a child relationship of this name is listed.
    pub fn has_child_relationship(&self, name: &str) -> bool {
        self.child_relationships.iter().any(|c| c.relationship_name.as_deref() == Some(name))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeChildRelationship {
    /// `null` for relationships SOQL cannot name.
    #[serde(default)]
    pub relationship_name: Option<String>,
    #[serde(default, rename = "childSObject")]
    pub child_sobject: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeField {
    pub name: String,
    #[serde(default)]
    pub external_id: bool,
    /// The field's type (`string`, `double`, `datetime`, `picklist` …).
    #[serde(default, rename = "type")]
    pub field_type: String,
}

impl DescribeField {
    /// The field as `handoff doctor` judges it.
    pub fn info(&self) -> handoff_model::FieldInfo {
        use handoff_model::FieldKind;
        let kind = match self.field_type.as_str() {
            "string" | "textarea" => FieldKind::Text,
            "picklist" => FieldKind::Picklist,
            "double" | "int" | "long" | "currency" | "percent" => FieldKind::Number,
            "datetime" => FieldKind::DateTime,
            "date" => FieldKind::Date,
            "boolean" => FieldKind::Boolean,
            _ => FieldKind::Other,
        };
        handoff_model::FieldInfo { kind, crm_type: self.field_type.clone(), unique: self.external_id }
    }
}

/// Parse an error body: the usual array, a single object, or anything else
/// (an HTML error page from an edge proxy) kept as its (redacted) start.
pub fn parse_error_body(body: &[u8]) -> ApiErrorItem {
    if let Ok(items) = serde_json::from_slice::<Vec<ApiErrorItem>>(body) {
        if let Some(first) = items.into_iter().next() {
            return first;
        }
    }
    if let Ok(item) = serde_json::from_slice::<ApiErrorItem>(body) {
        if !item.error_code.is_empty() {
            return item;
        }
    }
    ApiErrorItem { message: handoff_runtime::decode::snippet(body), error_code: String::new(), fields: Vec::new() }
}

/// Salesforce's error envelope (`[{"errorCode": …, "message": …}]`, or one
/// such object) found in an answer that came with a success status: what
/// it reports.
pub fn error_envelope(v: &Value) -> Option<String> {
    let item = match v {
        Value::Array(items) => items.first()?,
        Value::Object(_) => v,
        _ => return None,
    };
    let code = item.get("errorCode").and_then(Value::as_str)?;
    let message = item.get("message").and_then(Value::as_str).unwrap_or_default();
    Some(format!("{code}: {message}"))
}

/// How a whole-request failure should be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Handle per [`ErrorClass`] (retry, give up, re-authenticate).
    Class(ErrorClass),
    /// The org's daily limit (or handoff's share) is spent: stop until it recovers.
    DailyLimit,
}

/// Classify a non-2xx REST answer.
///
/// `REQUEST_LIMIT_EXCEEDED` means two things: the daily quota ("TotalRequests
/// Limit exceeded") — stop, don't hammer — or too many concurrent long
/// requests — back off for seconds.
pub fn classify_response(status: u16, error: &ApiErrorItem, retry_after: Option<Duration>) -> Failure {
    let code = error.error_code.as_str();
    match (status, code) {
        (_, "REQUEST_LIMIT_EXCEEDED") if error.message.contains("TotalRequests") => Failure::DailyLimit,
        (_, "REQUEST_LIMIT_EXCEEDED") => Failure::Class(ErrorClass::RateLimited {
            retry_after_secs: retry_after.map(|d| d.as_secs().max(1)).unwrap_or(5),
        }),
        (429, _) => Failure::Class(ErrorClass::RateLimited {
            retry_after_secs: retry_after.map(|d| d.as_secs().max(1)).unwrap_or(1),
        }),
        (401, _) => Failure::Class(ErrorClass::Auth),
        (_, "INVALID_SESSION_ID") => Failure::Class(ErrorClass::Auth),
        (_, "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "REQUEST_RUNNING_TOO_LONG" | "QUERY_TIMEOUT") => {
            Failure::Class(ErrorClass::Retryable)
        }
        // 406 and 420 are edge-proxy answers ("we are setting things up").
        (406 | 408 | 420 | 500..=599, _) => Failure::Class(ErrorClass::Retryable),
        (_, c) if needs_config(c) => Failure::Class(ErrorClass::NeedsConfig),
        (403, _) => Failure::Class(ErrorClass::NeedsConfig),
        _ => Failure::Class(ErrorClass::Permanent),
    }
}

fn needs_config(code: &str) -> bool {
    matches!(
        code,
        "INVALID_FIELD"
            | "INVALID_FIELD_FOR_INSERT_UPDATE"
            | "INVALID_TYPE"
            | "INSUFFICIENT_ACCESS_OR_READONLY"
            | "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
            | "API_DISABLED_FOR_ORG"
            | "API_CURRENTLY_DISABLED"
            | "TXN_SECURITY_METERING_ERROR"
            | "NOT_FOUND"
    )
}

/// Classify one record's failure inside an sObject Collections answer.
pub fn classify_record_error(error: &RecordError) -> WriteError {
    let class = match error.status_code.as_str() {
        // Lock contention and a rolled-back sibling are worth another try;
        // the upsert key makes the retry harmless.
        "UNABLE_TO_LOCK_ROW"
        | "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        | "SERVER_UNAVAILABLE"
        | "REQUEST_RUNNING_TOO_LONG" => ErrorClass::Retryable,
        "REQUEST_LIMIT_EXCEEDED" => ErrorClass::RateLimited { retry_after_secs: 60 },
        c if needs_config(c) => ErrorClass::NeedsConfig,
        _ => ErrorClass::Permanent,
    };
    let message = if error.fields.is_empty() {
        error.message.clone()
    } else {
        format!("{} (fields: {})", error.message, error.fields.join(", "))
    };
    WriteError { class, code: error.status_code.clone(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_whole_request_failures() {
        let e = |code: &str, msg: &str| ApiErrorItem { message: msg.into(), error_code: code.into(), fields: vec![] };
        assert_eq!(
            classify_response(403, &e("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), None),
            Failure::DailyLimit
        );
        assert_eq!(
            classify_response(403, &e("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."), None),
            Failure::Class(ErrorClass::RateLimited { retry_after_secs: 5 })
        );
        assert_eq!(
            classify_response(429, &e("", ""), Some(Duration::from_secs(7))),
            Failure::Class(ErrorClass::RateLimited { retry_after_secs: 7 })
        );
        assert_eq!(classify_response(401, &e("INVALID_SESSION_ID", ""), None), Failure::Class(ErrorClass::Auth));
        assert_eq!(classify_response(503, &e("SERVER_UNAVAILABLE", ""), None), Failure::Class(ErrorClass::Retryable));
        assert_eq!(classify_response(400, &e("INVALID_FIELD", ""), None), Failure::Class(ErrorClass::NeedsConfig));
        assert_eq!(classify_response(400, &e("MALFORMED_QUERY", ""), None), Failure::Class(ErrorClass::Permanent));
    }

    #[test]
    fn unparseable_error_bodies_keep_a_snippet() {
        let e = parse_error_body(b"<html>We are setting things up</html>");
        assert_eq!(e.error_code, "");
        assert!(e.message.contains("setting things up"));
    }

    #[test]
    fn an_error_envelope_is_recognised_and_a_page_is_not() {
        let err: Value = serde_json::json!([{"message": "Your query request was running for too long.", "errorCode": "QUERY_TIMEOUT"}]);
        assert_eq!(
            error_envelope(&err).as_deref(),
            Some("QUERY_TIMEOUT: Your query request was running for too long.")
        );
        let page: Value = serde_json::json!({"totalSize": 0, "done": true, "records": []});
        assert_eq!(error_envelope(&page), None);
        let saves: Value = serde_json::json!([{"id": "00T", "success": true, "errors": []}]);
        assert_eq!(error_envelope(&saves), None);
    }
}
