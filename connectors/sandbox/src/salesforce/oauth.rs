//! The OAuth 2.0 token endpoint (`POST /services/oauth2/token`) and the
//! sessions it hands out.
//!
//! Three grants, as a connected app allows them: the JWT bearer flow
//! (RS256 assertion checked against the app's certificate, with `iss`,
//! `sub`, `aud` and `exp` checked — and no refresh token in the answer),
//! the refresh-token flow (optionally rotating the refresh token), and the
//! client-credentials flow (running as the app's run-as user). Access
//! tokens are opaque, expire after the session timeout in simulated time,
//! and can be revoked; a dead token gets 401 `INVALID_SESSION_ID`.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::errors::OAuthError;

/// The JWT bearer grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Salesforce's default session timeout (Setup → Session Settings).
pub const DEFAULT_SESSION_TIMEOUT_SECS: i64 = 2 * 60 * 60;

/// The connected app and run-as user the sandbox org is set up with.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The integration user's username (the JWT `sub`) and id.
    pub username: String,
    pub user_id: String,
    pub org_id: String,
    /// PEM of the certificate's public key uploaded to the connected app.
    pub jwt_public_key_pem: String,
    /// Accepted JWT audiences: login, test and the instance itself.
    pub audiences: Vec<String>,
    /// `instance_url` in token answers.
    pub instance_url: String,
}

#[derive(Debug, Clone)]
struct Session {
    user_id: String,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    user_id: String,
}

/// Issued sessions and refresh tokens.
#[derive(Debug)]
pub struct TokenStore {
    sessions: HashMap<String, Session>,
    refresh: HashMap<String, RefreshGrant>,
    pub session_timeout: Duration,
    /// Each refresh returns a new refresh token and kills the old one.
    pub rotate_refresh_tokens: bool,
    counter: u64,
}

impl Default for TokenStore {
    fn default() -> Self {
        TokenStore {
            sessions: HashMap::new(),
            refresh: HashMap::new(),
            session_timeout: Duration::seconds(DEFAULT_SESSION_TIMEOUT_SECS),
            rotate_refresh_tokens: false,
            counter: 0,
        }
    }
}

/// The form fields of a token request (all optional; each grant checks its own).
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub assertion: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
}

fn random_token(org_id: &str, counter: u64) -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{}!AQ{counter:04}{a}{b}", &org_id[..15.min(org_id.len())])
}

/// HMAC-SHA256 (RFC 2104) over `msg` with `key`: the token answer's
/// `signature` lets a client check `id` + `issued_at` came from the server.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(inner.finalize());
    outer.finalize().into()
}

impl TokenStore {
    /// Open a session for `user_id` at `now`; returns the access token.
    pub fn issue_session(&mut self, app: &AppConfig, user_id: &str, now: DateTime<Utc>) -> String {
        self.counter += 1;
        let token = random_token(&app.org_id, self.counter);
        self.sessions
            .insert(token.clone(), Session { user_id: user_id.to_string(), expires_at: now + self.session_timeout });
        token
    }

    /// A fresh refresh token for `user_id` (what the web-server flow would
    /// have granted when the user approved the app).
    pub fn issue_refresh_token(&mut self, app: &AppConfig, user_id: &str) -> String {
        self.counter += 1;
        let token = format!("5Aep{}", random_token(&app.org_id, self.counter).replace('!', "."));
        self.refresh.insert(token.clone(), RefreshGrant { user_id: user_id.to_string() });
        token
    }

    /// The user behind a live access token.
    pub fn session_user(&self, token: &str, now: DateTime<Utc>) -> Option<&str> {
        self.sessions.get(token).filter(|s| s.expires_at > now).map(|s| s.user_id.as_str())
    }

    /// Admin: kill every access token (and, if `refresh` too, every refresh token).
    pub fn revoke_all(&mut self, refresh: bool) {
        self.sessions.clear();
        if refresh {
            self.refresh.clear();
        }
    }

    /// Admin: make every access token expired as of `now`.
    pub fn expire_all(&mut self, now: DateTime<Utc>) {
        for s in self.sessions.values_mut() {
            s.expires_at = now;
        }
    }

    /// `POST /services/oauth2/revoke`: an access or refresh token.
    pub fn revoke(&mut self, token: &str) -> bool {
        self.sessions.remove(token).is_some() || self.refresh.remove(token).is_some()
    }

    pub fn live_sessions(&self, now: DateTime<Utc>) -> usize {
        self.sessions.values().filter(|s| s.expires_at > now).count()
    }

    /// Answer a token request. `basic` is the decoded HTTP Basic
    /// `(client_id, client_secret)`, if the client sent one.
    pub fn token(
        &mut self,
        app: &AppConfig,
        form: &TokenForm,
        basic: Option<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<Value, OAuthError> {
        match form.grant_type.as_deref() {
            Some(JWT_BEARER) => {
                let assertion = form
                    .assertion
                    .as_deref()
                    .ok_or_else(|| OAuthError::invalid_request("assertion parameter missing"))?;
                let user_id = self.check_assertion(app, assertion, now)?;
                let access = self.issue_session(app, &user_id, now);
                Ok(token_body(app, &access, &user_id, now, "api", None))
            }
            Some("refresh_token") => {
                let rt = form
                    .refresh_token
                    .as_deref()
                    .ok_or_else(|| OAuthError::invalid_request("refresh_token parameter missing"))?;
                let client_id = form.client_id.clone().or_else(|| basic.as_ref().map(|b| b.0.clone()));
                if client_id.as_deref() != Some(app.client_id.as_str()) {
                    return Err(OAuthError::invalid_client("invalid client credentials"));
                }
                let secret = form.client_secret.clone().or_else(|| basic.as_ref().map(|b| b.1.clone()));
                if secret.as_deref().is_some_and(|s| s != app.client_secret) {
                    return Err(OAuthError::invalid_client("invalid client credentials"));
                }
                let grant = self
                    .refresh
                    .get(rt)
                    .cloned()
                    .ok_or_else(|| OAuthError::invalid_grant("expired access/refresh token"))?;
                let rotated = if self.rotate_refresh_tokens {
                    self.refresh.remove(rt);
                    Some(self.issue_refresh_token(app, &grant.user_id))
                } else {
                    None
                };
                let access = self.issue_session(app, &grant.user_id, now);
                Ok(token_body(app, &access, &grant.user_id, now, "api refresh_token", rotated.as_deref()))
            }
            Some("client_credentials") => {
                let (id, secret) = match (basic, &form.client_id, &form.client_secret) {
                    (Some(b), _, _) => b,
                    (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
                    _ => return Err(OAuthError::invalid_client("invalid client credentials")),
                };
                if id != app.client_id || secret != app.client_secret {
                    return Err(OAuthError::invalid_client("invalid client credentials"));
                }
                let user_id = app.user_id.clone();
                let access = self.issue_session(app, &user_id, now);
                Ok(token_body(app, &access, &user_id, now, "api", None))
            }
            Some(_) | None => Err(OAuthError::unsupported_grant_type()),
        }
    }

    /// Verify an RS256 assertion against the app's public key and its
    /// claims against the app and simulated time. Returns the user id.
    fn check_assertion(&self, app: &AppConfig, assertion: &str, now: DateTime<Utc>) -> Result<String, OAuthError> {
        use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
        let key = DecodingKey::from_rsa_pem(app.jwt_public_key_pem.as_bytes())
            .map_err(|_| OAuthError::invalid_grant("invalid assertion"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Claims are checked below against the simulated clock and the app.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = decode::<Claims>(assertion, &key, &validation)
            .map_err(|_| OAuthError::invalid_grant("invalid assertion"))?
            .claims;
        if claims.iss.as_deref() != Some(app.client_id.as_str()) {
            return Err(OAuthError {
                error: "invalid_client_id",
                ..OAuthError::invalid_client("client identifier invalid")
            });
        }
        let aud_ok = match &claims.aud {
            Some(Value::String(a)) => app.audiences.iter().any(|x| x == a.trim_end_matches('/')),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| app.audiences.iter().any(|x| x == a.trim_end_matches('/'))),
            _ => false,
        };
        if !aud_ok {
            return Err(OAuthError::invalid_grant("audience is invalid"));
        }
        match claims.exp {
            Some(exp) if exp > now.timestamp() => {}
            _ => return Err(OAuthError::invalid_grant("expired authorization code")),
        }
        if claims.sub.as_deref() != Some(app.username.as_str()) {
            return Err(OAuthError::invalid_grant("user hasn't approved this consumer"));
        }
        Ok(app.user_id.clone())
    }
}

/// The token answer: `access_token`, `instance_url`, `id`, `token_type`,
/// `issued_at` (epoch ms as a string), `signature`, `scope`, and a
/// `refresh_token` only when one is handed out.
fn token_body(
    app: &AppConfig,
    access: &str,
    user_id: &str,
    now: DateTime<Utc>,
    scope: &str,
    refresh_token: Option<&str>,
) -> Value {
    let id = format!("{}/id/{}/{}", app.instance_url, app.org_id, user_id);
    let issued_at = now.timestamp_millis().to_string();
    let sig = hmac_sha256(app.client_secret.as_bytes(), format!("{id}{issued_at}").as_bytes());
    let mut body = json!({
        "access_token": access,
        "signature": base64::engine::general_purpose::STANDARD.encode(sig),
        "scope": scope,
        "instance_url": app.instance_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let (Some(rt), Some(obj)) = (refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".into(), json!(rt));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
