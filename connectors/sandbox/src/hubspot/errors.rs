//! HubSpot's error bodies, byte-for-byte in the shapes the real API sends
//! (see `tests/fixtures/hubspot/` for the recorded originals):
//! `{"status":"error","message":…,"correlationId":<uuid>,"category":…}`,
//! and the 429 bodies carrying `errorType` and `policyName` instead of a
//! category.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// An API error: the HTTP status and the JSON body to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl ApiError {
    /// The generic `Error` schema body.
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({
                "status": "error",
                "message": message.into(),
                "correlationId": correlation_id(),
                "category": category,
            }),
        }
    }

    pub fn with_context(mut self, context: Value) -> Self {
        self.body["context"] = context;
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// No or unknown bearer token.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    /// An OAuth access token past its `expires_in`.
    pub fn expired(ago_secs: i64) -> Self {
        let minutes = (ago_secs / 60).max(0);
        Self::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!("The OAuth token used to make this call expired {minutes} minute(s) ago."),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    /// Route or object type the API does not know: the real body has no
    /// category (recorded in `errors-400-search-invalid-object.json`).
    pub fn unknown_object_type(name: &str) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "status": "error",
                "message": format!("Unable to infer object type from: {name}"),
                "correlationId": correlation_id(),
            }),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// Paging a search past its 10,000th result. The real service answers
    /// HTTP 400; the exact wording is not recorded anywhere we trust, so the
    /// body uses the generic search-failure message in the `Error` shape.
    pub fn search_cap() -> Self {
        Self::validation("There was a problem with the request.")
    }

    /// Unknown properties in a write, listed the way HubSpot lists them
    /// (`PROPERTY_DOESNT_EXIST` per property, in `message` and in `errors`).
    pub fn unknown_properties(names: &[String]) -> Self {
        let items: Vec<Value> = names
            .iter()
            .map(|n| json!({"isValid": false, "message": format!("Property \"{n}\" does not exist"), "error": "PROPERTY_DOESNT_EXIST", "name": n}))
            .collect();
        let errors: Vec<Value> = names
            .iter()
            .map(|n| json!({"message": format!("Property \"{n}\" does not exist"), "code": "PROPERTY_DOESNT_EXIST", "context": {"propertyName": [n]}}))
            .collect();
        let mut e = Self::validation(format!("Property values were not valid: {}", Value::Array(items)));
        e.body["errors"] = Value::Array(errors);
        e
    }

    /// The app lacks a scope: 403 in the recorded `MISSING_SCOPES` shape
    /// (`errors-403-missing-scopes.json`).
    pub fn missing_scopes(scopes: &[&str]) -> Self {
        Self::new(StatusCode::FORBIDDEN, "MISSING_SCOPES", "One or more of the following scopes are required.")
            .with_context(json!({"requiredGranularScopes": scopes, "links": ["https://developers.hubspot.com/scopes"]}))
    }

    pub fn internal(status: StatusCode) -> Self {
        Self::new(status, "INTERNAL_ERROR", "internal error")
    }
}

/// Which rate limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePolicy {
    /// The 10-second rolling burst bucket.
    TenSecondlyRolling,
    /// The per-second search bucket.
    Secondly,
    /// The daily quota of private apps.
    Daily,
}

impl RatePolicy {
    pub fn policy_name(self) -> &'static str {
        match self {
            RatePolicy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            RatePolicy::Secondly => "SECONDLY",
            RatePolicy::Daily => "DAILY",
        }
    }

    fn message(self) -> &'static str {
        match self {
            RatePolicy::TenSecondlyRolling => "You have reached your ten_secondly_rolling limit.",
            RatePolicy::Secondly => "You have reached your secondly limit.",
            RatePolicy::Daily => "You have reached your daily limit.",
        }
    }
}

/// The 429 body for `policy` (`groupName` names the app and portal).
pub fn rate_limited(policy: RatePolicy, app_id: u64, portal_id: u64) -> ApiError {
    let group = match policy {
        RatePolicy::TenSecondlyRolling => format!("publicapi:private_app-api-calls-ten-secondly:{app_id}:{portal_id}"),
        RatePolicy::Secondly => format!("publicapi:private_app-api-calls-secondly:{app_id}:{portal_id}"),
        RatePolicy::Daily => format!("publicapi:private_app-api-calls-daily:{app_id}:{portal_id}"),
    };
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: json!({
            "status": "error",
            "message": policy.message(),
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy.policy_name(),
            "groupName": group,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_error_has_the_four_fields() {
        let e = ApiError::not_found("gone");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body["status"], "error");
        assert_eq!(e.body["category"], "OBJECT_NOT_FOUND");
        assert_eq!(e.body["message"], "gone");
        assert!(uuid::Uuid::parse_str(e.body["correlationId"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn unknown_property_body_matches_the_recorded_shape() {
        let e = ApiError::unknown_properties(&["first000name".to_string()]);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body["category"], "VALIDATION_ERROR");
        assert_eq!(
            e.body["message"],
            "Property values were not valid: [{\"error\":\"PROPERTY_DOESNT_EXIST\",\"isValid\":false,\"message\":\"Property \\\"first000name\\\" does not exist\",\"name\":\"first000name\"}]"
        );
        assert_eq!(e.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
        assert_eq!(e.body["errors"][0]["context"]["propertyName"][0], "first000name");
    }

    #[test]
    fn rate_limit_bodies_name_their_policy() {
        for (policy, name, message) in [
            (
                RatePolicy::TenSecondlyRolling,
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
            ),
            (RatePolicy::Secondly, "SECONDLY", "You have reached your secondly limit."),
            (RatePolicy::Daily, "DAILY", "You have reached your daily limit."),
        ] {
            let e = rate_limited(policy, 1, 2);
            assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(e.body["policyName"], name);
            assert_eq!(e.body["message"], message);
            assert_eq!(e.body["errorType"], "RATE_LIMIT");
            assert_eq!(e.body["status"], "error");
        }
    }
}
