//! Authentication: one private-app token (`pat-na1-…`) plus OAuth v1
//! refresh (`POST /oauth/v1/token`) handing out access tokens that expire
//! after `expires_in` (1800 s by default) of simulated time.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::limits::AuthKind;

#[derive(Debug, Clone)]
struct AccessToken {
    expires_at: DateTime<Utc>,
    revoked: bool,
}

/// Every credential the emulator accepts.
#[derive(Debug)]
pub struct Tokens {
    pub private_app_token: String,
    private_app_revoked: bool,
    pub client_id: String,
    pub client_secret: String,
    /// Refresh tokens and whether they are still valid.
    refresh: BTreeMap<String, bool>,
    /// The refresh token handed out at startup.
    initial_refresh: String,
    access: BTreeMap<String, AccessToken>,
    pub expires_in_secs: i64,
    pub portal_id: u64,
    /// Each refresh hands out a new refresh token and invalidates the one
    /// used (off by default: HubSpot's v1 endpoint returns the same one).
    pub rotate_refresh_tokens: bool,
    /// The scopes the app was granted, as the token-info endpoints report
    /// them (`POST /__sandbox/hubspot/scopes` narrows them).
    pub scopes: Vec<String>,
}

/// The scopes an app installed for handoff holds by default (the
/// sandbox portal has the Leads object, so the leads scopes too, and deals
/// to read for the AE's commitments).
pub const DEFAULT_SCOPES: [&str; 9] = [
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.leads.read",
    "crm.objects.leads.write",
    "crm.objects.owners.read",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "oauth",
];

fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl Tokens {
    pub fn new(portal_id: u64) -> Self {
        let mut refresh = BTreeMap::new();
        let initial_refresh = random_token("na1-");
        refresh.insert(initial_refresh.clone(), true);
        Tokens {
            initial_refresh,
            private_app_token: format!("pat-na1-{}", uuid::Uuid::new_v4()),
            private_app_revoked: false,
            client_id: uuid::Uuid::new_v4().to_string(),
            client_secret: uuid::Uuid::new_v4().to_string(),
            refresh,
            access: BTreeMap::new(),
            expires_in_secs: 1800,
            portal_id,
            rotate_refresh_tokens: false,
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `POST /oauth/v2/private-apps/get/access-token-info` with
    /// `{"tokenKey": "pat-…"}`: the private app's scopes.
    pub fn private_app_token_info(&self, body: &Value) -> (StatusCode, Value) {
        let key = body.get("tokenKey").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || key != self.private_app_token || self.private_app_revoked {
            return (
                StatusCode::BAD_REQUEST,
                json!({"status": "error", "message": "The tokenKey is invalid or expired", "category": "VALIDATION_ERROR", "correlationId": uuid::Uuid::new_v4().to_string()}),
            );
        }
        (StatusCode::OK, json!({"userId": 1, "hubId": self.portal_id, "appId": 1, "scopes": self.scopes}))
    }

    /// `GET /oauth/v1/access-tokens/{token}`: an OAuth access token's metadata.
    pub fn access_token_info(&self, token: &str, now: DateTime<Utc>) -> (StatusCode, Value) {
        match self.access.get(token) {
            Some(t) if !t.revoked && t.expires_at > now => (
                StatusCode::OK,
                json!({
                    "token": token,
                    "user": "integration@example.com",
                    "hub_domain": "example.com",
                    "scopes": self.scopes,
                    "hub_id": self.portal_id,
                    "app_id": 1,
                    "expires_in": (t.expires_at - now).num_seconds(),
                    "user_id": 1,
                    "token_type": "access",
                }),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                json!({"status": "error", "message": "The access token is invalid or expired", "correlationId": uuid::Uuid::new_v4().to_string()}),
            ),
        }
    }

    /// The refresh token handed out at startup.
    pub fn initial_refresh_token(&self) -> String {
        self.initial_refresh.clone()
    }

    /// Who is calling, from the `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>, now: DateTime<Utc>) -> Result<AuthKind, ApiError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        if token == self.private_app_token {
            return if self.private_app_revoked { Err(ApiError::unauthenticated()) } else { Ok(AuthKind::PrivateApp) };
        }
        match self.access.get(token) {
            Some(t) if t.revoked => Err(ApiError::unauthenticated()),
            Some(t) if t.expires_at <= now => Err(ApiError::expired((now - t.expires_at).num_seconds())),
            Some(_) => Ok(AuthKind::OAuth),
            None => Err(ApiError::unauthenticated()),
        }
    }

    /// `POST /oauth/v1/token` with a form body. Answers the status and JSON body.
    pub fn token_endpoint(&mut self, form: &BTreeMap<String, String>, now: DateTime<Utc>) -> (StatusCode, Value) {
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if get("client_id") != self.client_id || get("client_secret") != self.client_secret {
            return (
                StatusCode::BAD_REQUEST,
                json!({"status": "BAD_CLIENT_ID", "message": "missing or invalid client id", "correlationId": uuid::Uuid::new_v4().to_string()}),
            );
        }
        match get("grant_type") {
            "refresh_token" => {
                let rt = get("refresh_token").to_string();
                if self.refresh.get(&rt) != Some(&true) {
                    return (
                        StatusCode::BAD_REQUEST,
                        json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token", "correlationId": uuid::Uuid::new_v4().to_string()}),
                    );
                }
                let rt = if self.rotate_refresh_tokens {
                    let rotated = random_token("na1-");
                    self.refresh.insert(rt, false);
                    self.refresh.insert(rotated.clone(), true);
                    rotated
                } else {
                    rt
                };
                let access = random_token("CJ");
                self.access.insert(
                    access.clone(),
                    AccessToken { expires_at: now + Duration::seconds(self.expires_in_secs), revoked: false },
                );
                (
                    StatusCode::OK,
                    json!({
                        "token_type": "bearer",
                        "refresh_token": rt,
                        "access_token": access,
                        "expires_in": self.expires_in_secs,
                        "token_use": "access_token",
                        "hub_id": self.portal_id,
                    }),
                )
            }
            other => (
                StatusCode::BAD_REQUEST,
                json!({"status": "BAD_GRANT_TYPE", "message": format!("unsupported grant_type {other:?}; the sandbox issues tokens by refresh_token"), "correlationId": uuid::Uuid::new_v4().to_string()}),
            ),
        }
    }

    /// Revoke one token (access, refresh or the private-app token), or all.
    pub fn revoke(&mut self, token: Option<&str>) {
        match token {
            None => {
                self.private_app_revoked = true;
                self.access.values_mut().for_each(|t| t.revoked = true);
                self.refresh.values_mut().for_each(|v| *v = false);
            }
            Some(t) => {
                if t == self.private_app_token {
                    self.private_app_revoked = true;
                }
                if let Some(a) = self.access.get_mut(t) {
                    a.revoked = true;
                }
                if let Some(r) = self.refresh.get_mut(t) {
                    *r = false;
                }
            }
        }
    }

    /// Revoke every OAuth access token; refresh tokens stay valid.
    pub fn revoke_access_tokens(&mut self) {
        self.access.values_mut().for_each(|t| t.revoked = true);
    }

    /// The refresh tokens still valid.
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        self.refresh.iter().filter(|(_, ok)| **ok).map(|(t, _)| t.clone()).collect()
    }

    /// Make every OAuth access token expire at `now`.
    pub fn expire_access_tokens(&mut self, now: DateTime<Utc>) {
        for t in self.access.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn refresh_issues_a_token_that_expires_after_1800_seconds() {
        let mut t = Tokens::new(42);
        let mut form = BTreeMap::new();
        form.insert("grant_type".to_string(), "refresh_token".to_string());
        form.insert("client_id".to_string(), t.client_id.clone());
        form.insert("client_secret".to_string(), t.client_secret.clone());
        form.insert("refresh_token".to_string(), t.initial_refresh_token());
        let (status, body) = t.token_endpoint(&form, t0());
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["expires_in"], 1800);
        assert_eq!(body["token_use"], "access_token");
        let header = format!("Bearer {}", body["access_token"].as_str().unwrap());
        assert_eq!(t.authenticate(Some(&header), t0() + Duration::seconds(1799)).unwrap(), AuthKind::OAuth);
        let e = t.authenticate(Some(&header), t0() + Duration::seconds(1800 + 120)).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.body["category"], "EXPIRED_AUTHENTICATION");

        form.insert("refresh_token".to_string(), "nope".to_string());
        let (status, body) = t.token_endpoint(&form, t0());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
    }

    #[test]
    fn rotation_hands_out_a_new_refresh_token_and_retires_the_old_one() {
        let mut t = Tokens::new(42);
        t.rotate_refresh_tokens = true;
        let first = t.initial_refresh_token();
        let mut form = BTreeMap::new();
        form.insert("grant_type".to_string(), "refresh_token".to_string());
        form.insert("client_id".to_string(), t.client_id.clone());
        form.insert("client_secret".to_string(), t.client_secret.clone());
        form.insert("refresh_token".to_string(), first.clone());
        let (status, body) = t.token_endpoint(&form, t0());
        assert_eq!(status, StatusCode::OK);
        let rotated = body["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(rotated, first);
        assert_eq!(t.valid_refresh_tokens(), vec![rotated.clone()]);
        assert_eq!(t.initial_refresh_token(), first, "the startup token is still what the credentials name");
        let (status, body) = t.token_endpoint(&form, t0());
        assert_eq!((status, body["status"].as_str()), (StatusCode::BAD_REQUEST, Some("BAD_REFRESH_TOKEN")));
        // Revoking access tokens only keeps the refresh token usable.
        let access = format!("Bearer {}", {
            form.insert("refresh_token".to_string(), rotated);
            t.token_endpoint(&form, t0()).1["access_token"].as_str().unwrap().to_string()
        });
        t.revoke_access_tokens();
        assert_eq!(t.authenticate(Some(&access), t0()).unwrap_err().body["category"], "INVALID_AUTHENTICATION");
        assert_eq!(t.valid_refresh_tokens().len(), 1);
    }

    #[test]
    fn revoked_or_unknown_tokens_get_invalid_authentication() {
        let mut t = Tokens::new(42);
        let header = format!("Bearer {}", t.private_app_token);
        assert_eq!(t.authenticate(Some(&header), t0()).unwrap(), AuthKind::PrivateApp);
        assert_eq!(t.authenticate(None, t0()).unwrap_err().body["category"], "INVALID_AUTHENTICATION");
        t.revoke(None);
        let e = t.authenticate(Some(&header), t0()).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.body["category"], "INVALID_AUTHENTICATION");
    }
}
