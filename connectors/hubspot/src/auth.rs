//! Credentials: a private-app token as is, or OAuth access tokens obtained
//! with the refresh grant through the `oauth2` crate.
//!
//! HubSpot says a 401 is not a reliable sign that a token needs refreshing,
//! so tokens are refreshed ahead of `expires_in`, counted on the CRM's clock
//! (the settings' [`Clock`]: the machine's in production, the sandbox's
//! simulated one in tests); a 401 still triggers one
//! single-flight re-authentication (the sandbox, and a revoked token, can
//! make a token die early). A refresh token HubSpot rotates is saved through
//! the [`TokenStore`] before it is used.

use std::sync::Arc;
use std::time::Duration;

use handoff_model::{Secret, Timestamp};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError, TokenResponse,
    TokenUrl,
};
use tokio::sync::Mutex;

use crate::error::HubspotError;
use crate::settings::{Clock, HubspotAuth, TokenStore};
use crate::wire::ErrorBody;

type OAuthClient = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Refresh this long before the access token expires (capped at a sixth
/// of its lifetime for short-lived tokens).
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

struct Access {
    token: Secret,
    refresh_at: Timestamp,
}

struct OAuthState {
    client: OAuthClient,
    refresh_token: Secret,
    access: Option<Access>,
}

enum Inner {
    PrivateApp(Secret),
    OAuth(Box<Mutex<OAuthState>>),
}

/// Hands out the bearer token for each request.
pub struct Authenticator {
    inner: Inner,
    /// Its own client: no redirects, since a token request must never be
    /// sent on to another host.
    http: reqwest::Client,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    pub fn new(
        auth: &HubspotAuth,
        base_url: &str,
        http: reqwest::Client,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HubspotError> {
        let inner = match auth {
            HubspotAuth::PrivateApp { token } => Inner::PrivateApp(token.clone()),
            HubspotAuth::OAuth { client_id, client_secret, refresh_token, token_url } => {
                let url =
                    token_url.clone().unwrap_or_else(|| format!("{}/oauth/v1/token", base_url.trim_end_matches('/')));
                let token_url = TokenUrl::new(url.clone()).map_err(|e| HubspotError::Settings {
                    field: "auth.token_url",
                    message: format!("{url:?} is not a URL: {e}"),
                })?;
                // HubSpot takes the client credentials in the form body.
                let client = BasicClient::new(ClientId::new(client_id.clone()))
                    .set_client_secret(ClientSecret::new(client_secret.expose().to_string()))
                    .set_auth_type(AuthType::RequestBody)
                    .set_token_uri(token_url);
                let stored = store.load().map_err(HubspotError::TokenStore)?;
                let refresh_token = stored.unwrap_or_else(|| refresh_token.clone());
                Inner::OAuth(Box::new(Mutex::new(OAuthState { client, refresh_token, access: None })))
            }
        };
        Ok(Authenticator { inner, http, store, clock })
    }

    /// The token to send now, refreshing it first when it is due.
    pub async fn bearer(&self) -> Result<Secret, HubspotError> {
        match &self.inner {
            Inner::PrivateApp(token) => Ok(token.clone()),
            Inner::OAuth(state) => {
                let mut s = state.lock().await;
                match &s.access {
                    Some(a) if a.refresh_at > self.clock.now() => Ok(a.token.clone()),
                    _ => self.refresh(&mut s).await,
                }
            }
        }
    }

    /// A request was refused with 401 while using `stale`: get a new token,
    /// unless another request already did. Private-app tokens cannot be
    /// renewed, so the caller's retry will surface the refusal.
    pub async fn reauthenticate(&self, stale: &Secret) -> Result<(), HubspotError> {
        match &self.inner {
            Inner::PrivateApp(_) => Ok(()),
            Inner::OAuth(state) => {
                let mut s = state.lock().await;
                if s.access.as_ref().is_some_and(|a| a.token != *stale) {
                    return Ok(());
                }
                self.refresh(&mut s).await.map(|_| ())
            }
        }
    }

    async fn refresh(&self, s: &mut OAuthState) -> Result<Secret, HubspotError> {
        tracing::info!(connector = "hubspot", "refreshing the OAuth access token");
        let response = s
            .client
            .exchange_refresh_token(&RefreshToken::new(s.refresh_token.expose().to_string()))
            .request_async(&self.http)
            .await
            .map_err(describe_token_error)?;
        if let Some(rotated) = response.refresh_token() {
            let rotated = Secret::new(rotated.secret().clone());
            if rotated != s.refresh_token {
                // Persist before use: if this fails the old token is kept.
                self.store.save(&rotated).map_err(HubspotError::TokenStore)?;
                s.refresh_token = rotated;
            }
        }
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(1800));
        let ahead = REFRESH_AHEAD.min(lifetime / 6);
        let token = Secret::new(response.access_token().secret().clone());
        let valid_for = chrono::Duration::from_std(lifetime - ahead).unwrap_or(chrono::Duration::zero());
        s.access = Some(Access { token: token.clone(), refresh_at: self.clock.now() + valid_for });
        Ok(token)
    }
}

/// A failed token request, described without any secret. HubSpot answers a
/// bad refresh token with its own body (`{"status":"BAD_REFRESH_TOKEN",…}`)
/// rather than RFC 6749's `error`, which `oauth2` reports as a parse error.
fn describe_token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> HubspotError {
    match e {
        RequestTokenError::ServerResponse(r) => HubspotError::Auth(format!(
            "the token endpoint refused the refresh token ({}); re-authorise the app and update `auth.refresh_token`",
            r.error()
        )),
        RequestTokenError::Parse(_, body) => {
            let b = ErrorBody::parse(&body);
            HubspotError::Auth(format!(
                "the token endpoint refused the refresh ({}: {}); re-authorise the app and update `auth.refresh_token`",
                b.status.unwrap_or_else(|| "error".into()),
                b.message
            ))
        }
        RequestTokenError::Request(err) => {
            HubspotError::Transport { endpoint: "oauth token".into(), attempts: 1, message: err.to_string() }
        }
        RequestTokenError::Other(m) => HubspotError::Auth(format!("token endpoint: {m}")),
    }
}
