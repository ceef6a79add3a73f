//! Token requests for the three OAuth flows. The JWT assertion is built by
//! hand with `jsonwebtoken`, since the `oauth2` crate has no JWT-bearer grant.

use handoff_model::{Secret, Timestamp};
use handoff_runtime::{FormValue, Grant, RuntimeError, TokenAnswer};
use serde::Serialize;

use crate::error::SalesforceError;
use crate::settings::SalesforceAuth;

pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a minted assertion is valid. Salesforce allows at most 3 minutes.
const ASSERTION_VALIDITY_SECS: i64 = 180;

#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    /// Seconds since the epoch (not milliseconds: a classic mistake).
    exp: i64,
}

/// Sign an RS256 assertion for the JWT bearer flow.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &Secret,
    now: Timestamp,
) -> Result<Secret, SalesforceError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes()).map_err(|e| {
        SalesforceError::NeedsConfig {
            message: format!("the JWT private key is not a usable RSA PEM key ({e})"),
            fix: "Set auth.private_key to the PEM private key whose certificate is uploaded to the connected app"
                .into(),
        }
    })?;
    let claims =
        Claims { iss: client_id, sub: username, aud: audience, exp: now.timestamp() + ASSERTION_VALIDITY_SECS };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .map(Secret::new)
        .map_err(|e| SalesforceError::Auth { code: "jwt_signing".into(), message: e.to_string() })
}

/// The token request of each flow, for the shared [`TokenManager`](handoff_runtime::TokenManager).
pub struct SalesforceGrant {
    pub auth: SalesforceAuth,
    pub login_url: String,
    /// Overrides the `instance_url` of the token answer.
    pub instance_url: Option<String>,
}

impl Grant for SalesforceGrant {
    fn form(
        &self,
        stored_refresh: Option<&Secret>,
        now: Timestamp,
    ) -> Result<Vec<(&'static str, FormValue)>, RuntimeError> {
        let plain = |s: &str| FormValue::Plain(s.to_string());
        Ok(match &self.auth {
            SalesforceAuth::JwtBearer { client_id, username, private_key_pem, audience } => {
                let aud = audience.as_deref().unwrap_or(&self.login_url).trim_end_matches('/');
                let assertion = jwt_assertion(client_id, username, aud, private_key_pem, now).map_err(|e| match e {
                    SalesforceError::NeedsConfig { message, fix } => RuntimeError::NeedsConfig { message, fix },
                    other => RuntimeError::Auth { message: other.to_string() },
                })?;
                vec![("grant_type", plain(JWT_BEARER_GRANT)), ("assertion", FormValue::Secret(assertion))]
            }
            SalesforceAuth::RefreshToken { client_id, client_secret, refresh_token } => {
                let token = stored_refresh.cloned().unwrap_or_else(|| refresh_token.clone());
                let mut f = vec![
                    ("grant_type", plain("refresh_token")),
                    ("client_id", plain(client_id)),
                    ("refresh_token", FormValue::Secret(token)),
                ];
                if let Some(secret) = client_secret {
                    f.push(("client_secret", FormValue::Secret(secret.clone())));
                }
                f
            }
            SalesforceAuth::ClientCredentials { client_id, client_secret } => vec![
                ("grant_type", plain("client_credentials")),
                ("client_id", plain(client_id)),
                ("client_secret", FormValue::Secret(client_secret.clone())),
            ],
        })
    }

    fn configured_refresh_token(&self) -> Option<Secret> {
        match &self.auth {
            SalesforceAuth::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        }
    }

    fn base_url(&self, answer: &TokenAnswer) -> Result<String, RuntimeError> {
        let url = self.instance_url.clone().or_else(|| answer.instance_url.clone()).ok_or_else(|| {
            RuntimeError::Protocol {
                endpoint: "oauth token".into(),
                message: "the token answer names no instance_url; set salesforce.instance_url".into(),
            }
        })?;
        match url::Url::parse(&url) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(url.trim_end_matches('/').to_string()),
            _ => Err(RuntimeError::Protocol {
                endpoint: "oauth token".into(),
                message: format!("the instance_url {:?} is not an http(s) URL", handoff_model::redact(&url)),
            }),
        }
    }

    fn refusal_fix(&self) -> String {
        match &self.auth {
            SalesforceAuth::JwtBearer { .. } => "check the connected app's consumer key, the username, that the certificate matches auth.private_key and that the user is pre-authorised".into(),
            SalesforceAuth::RefreshToken { .. } => "re-authorise the connected app and update auth.refresh_token".into(),
            SalesforceAuth::ClientCredentials { .. } => "check the client id and secret, that the client credentials flow is enabled with a run-as user, and that login_url is the org's My Domain".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_names_the_setting() {
        let err =
            jwt_assertion("cid", "u@x", "https://login.salesforce.com", &Secret::new("not a key"), chrono::Utc::now());
        match err {
            Err(SalesforceError::NeedsConfig { fix, .. }) => assert!(fix.contains("private_key")),
            other => panic!("expected NeedsConfig, got {other:?}"),
        }
    }

    #[test]
    fn refresh_form_prefers_the_stored_rotated_token_and_never_prints_it() {
        let grant = SalesforceGrant {
            auth: SalesforceAuth::RefreshToken {
                client_id: "cid".into(),
                client_secret: None,
                refresh_token: Secret::new("configured-token"),
            },
            login_url: "https://login.salesforce.com".into(),
            instance_url: None,
        };
        let form = match grant.form(Some(&Secret::new("rotated-token")), chrono::Utc::now()) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        assert!(form
            .iter()
            .any(|(k, v)| *k == "refresh_token" && matches!(v, FormValue::Secret(s) if s.expose() == "rotated-token")));
        assert!(!format!("{form:?}").contains("rotated-token"));
    }
}
