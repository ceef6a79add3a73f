//! Token requests for the three OAuth flows. The JWT assertion is built by
//! hand with `jsonwebtoken`, since the `oauth2` crate has no JWT-bearer grant.

use handoff_model::{Secret, Timestamp};
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

/// The form fields of a token request. Secrets stay `Secret` until the
/// request is built, so this value can be logged safely.
#[derive(Debug)]
pub struct TokenForm {
    pub fields: Vec<(&'static str, FormValue)>,
}

#[derive(Debug)]
pub enum FormValue {
    Plain(String),
    Secret(Secret),
}

impl TokenForm {
    /// The urlencoded pairs, exposing secrets for the one request that sends them.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        self.fields
            .iter()
            .map(|(k, v)| match v {
                FormValue::Plain(s) => (*k, s.as_str()),
                FormValue::Secret(s) => (*k, s.expose()),
            })
            .collect()
    }
}

/// Build the token request for `auth`. `stored_refresh` is the rotated
/// refresh token from the store, which supersedes the configured one.
pub fn token_form(
    auth: &SalesforceAuth,
    login_url: &str,
    stored_refresh: Option<Secret>,
    now: Timestamp,
) -> Result<TokenForm, SalesforceError> {
    let plain = |s: &str| FormValue::Plain(s.to_string());
    let fields = match auth {
        SalesforceAuth::JwtBearer { client_id, username, private_key_pem, audience } => {
            let aud = audience.as_deref().unwrap_or(login_url).trim_end_matches('/');
            let assertion = jwt_assertion(client_id, username, aud, private_key_pem, now)?;
            vec![("grant_type", plain(JWT_BEARER_GRANT)), ("assertion", FormValue::Secret(assertion))]
        }
        SalesforceAuth::RefreshToken { client_id, client_secret, refresh_token } => {
            let token = stored_refresh.unwrap_or_else(|| refresh_token.clone());
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
    };
    Ok(TokenForm { fields })
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
        let auth = SalesforceAuth::RefreshToken {
            client_id: "cid".into(),
            client_secret: None,
            refresh_token: Secret::new("configured-token"),
        };
        let form =
            token_form(&auth, "https://login.salesforce.com", Some(Secret::new("rotated-token")), chrono::Utc::now());
        let form = match form {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        assert!(form.pairs().contains(&("refresh_token", "rotated-token")));
        assert!(!format!("{form:?}").contains("rotated-token"));
    }
}
