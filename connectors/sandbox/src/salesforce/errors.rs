//! Salesforce's error bodies, exactly as the real service writes them.
//!
//! Three shapes exist and clients parse each one differently:
//! - REST resources answer a JSON **array** `[{"message", "errorCode"[, "fields"]}]`
//!   (simple-salesforce maps the HTTP status to an exception class and keeps
//!   this array as the exception's `content`);
//! - per-record results of collections and upserts carry
//!   `{"statusCode", "message", "fields"}` inside `errors`;
//! - the OAuth token endpoint answers `{"error", "error_description"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A REST error: HTTP status plus the one-element error array.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: &'static str,
    pub message: String,
    /// Field names the error is about; `None` leaves the key out, as the
    /// real service does for session and limit errors.
    pub fields: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, error_code, message: message.into(), fields: None }
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = Some(fields);
        self
    }

    /// 401 for a missing, expired or revoked access token.
    pub fn invalid_session() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    /// 403 once the org's rolling 24-hour allocation is spent.
    pub fn request_limit_exceeded() -> Self {
        Self::new(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    }

    pub fn malformed_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", message)
    }

    pub fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", message)
    }

    pub fn invalid_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_TYPE", message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
    }

    pub fn json_parser(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
    }

    /// The body as the array Salesforce sends.
    pub fn body(&self) -> Value {
        let mut e = json!({ "message": self.message, "errorCode": self.error_code });
        if let (Some(fields), Some(obj)) = (&self.fields, e.as_object_mut()) {
            obj.insert("fields".into(), json!(fields));
        }
        Value::Array(vec![e])
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// One entry of a per-record `errors` array (collections, upsert results).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(status_code: impl Into<String>, message: impl Into<String>, fields: Vec<String>) -> Self {
        RecordError { status_code: status_code.into(), message: message.into(), fields }
    }

    /// What the healthy records of a failed `allOrNone` collection get.
    pub fn rolled_back() -> Self {
        Self::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            vec![],
        )
    }

    pub fn to_json(&self) -> Value {
        json!({ "statusCode": self.status_code, "message": self.message, "fields": self.fields })
    }
}

/// A `{"id", "success", "errors"}` SaveResult for a failed record: the real
/// service leaves `id` out of failed creates and keeps it on failed updates.
pub fn failed_save_result(id: Option<&str>, errors: &[RecordError]) -> Value {
    let errs: Vec<Value> = errors.iter().map(RecordError::to_json).collect();
    match id {
        Some(id) => json!({ "id": id, "success": false, "errors": errs }),
        None => json!({ "success": false, "errors": errs }),
    }
}

/// An OAuth token-endpoint failure (HTTP 400 unless said otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error: "invalid_grant", description: description.into() }
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error: "invalid_client", description: description.into() }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error: "invalid_request", description: description.into() }
    }

    pub fn unsupported_grant_type() -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: "grant type not supported".into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_limit_bodies_match_the_real_service() {
        assert_eq!(
            ApiError::invalid_session().body(),
            json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}])
        );
        assert_eq!(ApiError::invalid_session().status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            ApiError::request_limit_exceeded().body(),
            json!([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}])
        );
        assert_eq!(ApiError::request_limit_exceeded().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn fields_appear_only_when_given() {
        let e = ApiError::invalid_field("No such column 'foo' on sobject of type Lead").with_fields(vec!["foo".into()]);
        assert_eq!(e.body()[0]["fields"], json!(["foo"]));
        assert!(ApiError::malformed_query("x").body()[0].get("fields").is_none());
    }

    #[test]
    fn rolled_back_and_oauth_shapes() {
        assert_eq!(
            failed_save_result(None, &[RecordError::rolled_back()]),
            json!({"success": false, "errors": [{
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": []}]})
        );
        assert_eq!(
            OAuthError::invalid_grant("expired access/refresh token").body(),
            json!({"error":"invalid_grant","error_description":"expired access/refresh token"})
        );
    }
}
