//! Credentials: a private-app token as is, or OAuth access tokens from
//! HubSpot's refresh grant, through the shared runtime's token manager.
//!
//! HubSpot says a 401 is not a reliable sign that a token needs refreshing,
//! so tokens are refreshed ahead of `expires_in`, counted on the CRM's clock
//! (the settings' clock: the machine's in production, the sandbox's
//! simulated one in tests); a 401 still triggers one single-flight
//! re-authentication (the sandbox, and a revoked token, can make a token die
//! early). A refresh token HubSpot rotates is saved through the
//! `TokenStore` before it is used.

use handoff_model::{Secret, Timestamp};
use handoff_runtime::{FormValue, Grant, RuntimeError, TokenAnswer};

/// HubSpot's refresh grant. HubSpot takes the client credentials in the
/// form body.
pub struct HubspotGrant {
    pub client_id: String,
    pub client_secret: Secret,
    /// Used only when the token store holds no newer one.
    pub refresh_token: Secret,
    pub base_url: String,
}

impl Grant for HubspotGrant {
    fn form(
        &self,
        refresh_token: Option<&Secret>,
        _now: Timestamp,
    ) -> Result<Vec<(&'static str, FormValue)>, RuntimeError> {
        let token = refresh_token.cloned().unwrap_or_else(|| self.refresh_token.clone());
        Ok(vec![
            ("grant_type", FormValue::Plain("refresh_token".into())),
            ("client_id", FormValue::Plain(self.client_id.clone())),
            ("client_secret", FormValue::Secret(self.client_secret.clone())),
            ("refresh_token", FormValue::Secret(token)),
        ])
    }

    fn configured_refresh_token(&self) -> Option<Secret> {
        Some(self.refresh_token.clone())
    }

    fn base_url(&self, _answer: &TokenAnswer) -> Result<String, RuntimeError> {
        Ok(self.base_url.clone())
    }

    fn refusal_fix(&self) -> String {
        "re-authorise the app and update `auth.refresh_token` (check `auth.client_id` and the client secret too)".into()
    }
}
