//! Credentials: a token that never changes (a HubSpot private app), or
//! access tokens from an OAuth token endpoint (Salesforce's three flows,
//! HubSpot's refresh grant), renewed once on a refusal (single-flight: many
//! requests refused at once renew once) and ahead of `expires_in` when the
//! CRM says how long a token lives.
//!
//! A rotated refresh token is saved through the [`TokenStore`] before the
//! session it came with is used. Whatever the token endpoint answers goes
//! through [`handoff_model::redact`] before it becomes part of an error: an
//! endpoint that echoes the submitted form (refresh token, client secret,
//! assertion) shows none of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use handoff_model::{ErrorClass, RetryDecision, RetryPolicy, Secret, Timestamp};
use serde_json::Value;
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::error::RuntimeError;
use crate::http::{self, HttpSettings, ReadFailure};
use crate::token::TokenStore;

/// What a request is sent with.
#[derive(Clone)]
pub struct Access {
    pub token: Secret,
    /// Where API requests go (Salesforce: the org's instance URL).
    pub base_url: String,
    /// Who the token acts as, when the token endpoint says (Salesforce's
    /// identity URL, `…/id/{org id}/{user id}`).
    pub identity: Option<String>,
}

/// Hands out the access for each request.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// The access to send now, obtaining or renewing it when due.
    async fn access(&self, deadline: Instant) -> Result<Access, RuntimeError>;
    /// `stale` was refused: renew, unless another request already did.
    async fn renew(&self, stale: &Secret, deadline: Instant) -> Result<(), RuntimeError>;
    /// Token requests made so far.
    fn logins(&self) -> u64;
}

/// A token that does not expire and cannot be renewed (a private app's):
/// a refusal is final.
pub struct StaticToken {
    access: Access,
}

impl StaticToken {
    pub fn new(token: Secret, base_url: impl Into<String>) -> Self {
        StaticToken { access: Access { token, base_url: base_url.into(), identity: None } }
    }
}

#[async_trait]
impl Credentials for StaticToken {
    async fn access(&self, _deadline: Instant) -> Result<Access, RuntimeError> {
        Ok(self.access.clone())
    }

    async fn renew(&self, _stale: &Secret, _deadline: Instant) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn logins(&self) -> u64 {
        0
    }
}

/// One field of a token request. Secrets stay [`Secret`] until the one
/// request that sends them.
#[derive(Debug)]
pub enum FormValue {
    Plain(String),
    Secret(Secret),
}

/// A token endpoint's answer, its tokens already wrapped as secrets.
pub struct TokenAnswer {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// Lifetime of the access token, when the CRM says.
    pub expires_in: Option<Duration>,
    /// Salesforce: the org's instance.
    pub instance_url: Option<String>,
    /// Salesforce: the identity URL of the user the token acts as (`id`).
    pub identity: Option<String>,
}

/// How one CRM's OAuth flow asks for a token.
pub trait Grant: Send + Sync {
    /// The form of a token request; `refresh_token` is the newest one known
    /// (saved, else configured) for grants that use one.
    fn form(
        &self,
        refresh_token: Option<&Secret>,
        now: Timestamp,
    ) -> Result<Vec<(&'static str, FormValue)>, RuntimeError>;
    /// The configured refresh token, for grants that use one.
    fn configured_refresh_token(&self) -> Option<Secret>;
    /// Where API requests go once this answer is in.
    fn base_url(&self, answer: &TokenAnswer) -> Result<String, RuntimeError>;
    /// What the operator should do when the token endpoint refuses.
    fn refusal_fix(&self) -> String;
}

/// The longest token lifetime believed (a year): a larger `expires_in`
/// is read as this, so no answer can overflow the arithmetic.
const MAX_TOKEN_LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// Renew this long before the access token expires (at most a sixth of its
/// lifetime for short-lived tokens).
const RENEW_AHEAD: Duration = Duration::from_secs(300);

struct Held {
    access: Access,
    renew_at: Option<Timestamp>,
}

struct TokenState {
    held: Option<Held>,
    refresh: Option<Secret>,
    loaded: bool,
}

/// Access tokens from a token endpoint.
pub struct TokenManager {
    grant: Box<dyn Grant>,
    token_url: String,
    store: Arc<dyn TokenStore>,
    clock: SharedClock,
    http: reqwest::Client,
    settings: HttpSettings,
    retry: RetryPolicy,
    state: tokio::sync::Mutex<TokenState>,
    logins: AtomicU64,
}

impl TokenManager {
    pub fn new(
        grant: Box<dyn Grant>,
        token_url: String,
        store: Arc<dyn TokenStore>,
        clock: SharedClock,
        http: reqwest::Client,
        settings: HttpSettings,
        retry: RetryPolicy,
    ) -> Result<Self, RuntimeError> {
        url::Url::parse(&token_url).map_err(|e| RuntimeError::Settings {
            message: format!("the token URL {token_url:?} is not a URL: {e}"),
        })?;
        Ok(TokenManager {
            grant,
            token_url,
            store,
            clock,
            http,
            settings,
            retry,
            state: tokio::sync::Mutex::new(TokenState { held: None, refresh: None, loaded: false }),
            logins: AtomicU64::new(0),
        })
    }

    async fn login(&self, s: &mut TokenState, deadline: Instant) -> Result<Access, RuntimeError> {
        if !s.loaded {
            if let Some(configured) = self.grant.configured_refresh_token() {
                s.refresh = Some(self.store.load().map_err(RuntimeError::TokenStore)?.unwrap_or(configured));
            }
            s.loaded = true;
        }
        let now = self.clock.now();
        let form = self.grant.form(s.refresh.as_ref(), now)?;
        let answer = self.exchange(&form, deadline).await?;
        if let Some(rotated) = answer.refresh_token.clone().filter(|t| !t.is_empty()) {
            if s.refresh.as_ref() != Some(&rotated) && self.grant.configured_refresh_token().is_some() {
                // Persist before use: the old refresh token is void now.
                self.store.save(&rotated).map_err(RuntimeError::TokenStore)?;
                s.refresh = Some(rotated);
            }
        }
        let base_url = self.grant.base_url(&answer)?;
        let renew_at = answer.expires_in.map(|lifetime| {
            let ahead = RENEW_AHEAD.min(lifetime / 6);
            now + chrono::Duration::from_std(lifetime - ahead).unwrap_or_else(|_| chrono::Duration::zero())
        });
        let access = Access { token: answer.access_token, base_url, identity: answer.identity };
        s.held = Some(Held { access: access.clone(), renew_at });
        Ok(access)
    }

    /// Ask for a token, retrying what a retry can cure (the endpoint down,
    /// an answer lost) within `deadline`.
    async fn exchange(
        &self,
        form: &[(&'static str, FormValue)],
        deadline: Instant,
    ) -> Result<TokenAnswer, RuntimeError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match self.exchange_once(form, deadline).await {
                Ok(answer) => return Ok(answer),
                Err(e @ RuntimeError::Transport { .. }) => e,
                Err(other) => return Err(other),
            };
            let unit: f64 = rand::random();
            match self.retry.decide(attempt, &ErrorClass::Retryable, true, unit) {
                RetryDecision::RetryAfter(wait) if Instant::now() + wait < deadline => {
                    tracing::warn!(object = "oauth token", attempt, error = %err, "token request failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(err),
            }
        }
    }

    async fn exchange_once(
        &self,
        form: &[(&'static str, FormValue)],
        deadline: Instant,
    ) -> Result<TokenAnswer, RuntimeError> {
        let endpoint = "oauth token";
        let pairs: Vec<(&str, &str)> = form
            .iter()
            .map(|(k, v)| match v {
                FormValue::Plain(s) => (*k, s.as_str()),
                FormValue::Secret(s) => (*k, s.expose()),
            })
            .collect();
        let request = self.http.post(&self.token_url).form(&pairs);
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(object = endpoint, "requesting an access token");
        let attempt_deadline = (Instant::now() + self.settings.attempt_deadline).min(deadline);
        let raw = match http::read(request, &self.settings, attempt_deadline).await {
            Ok(raw) => raw,
            Err(ReadFailure::Transport { message, .. }) => {
                return Err(RuntimeError::Transport {
                    endpoint: endpoint.into(),
                    attempts: 1,
                    message,
                    outcome_unknown: false,
                })
            }
            Err(ReadFailure::Refused { message }) => {
                return Err(RuntimeError::Protocol { endpoint: endpoint.into(), message })
            }
        };
        if raw.status == 429 || raw.status >= 500 {
            return Err(RuntimeError::Transport {
                endpoint: endpoint.into(),
                attempts: 1,
                message: format!("the token endpoint answered HTTP {}: {}", raw.status, describe_refusal(&raw.body)),
                outcome_unknown: false,
            });
        }
        if !(200..300).contains(&raw.status) {
            let why = describe_refusal(&raw.body);
            tracing::warn!(object = endpoint, status = raw.status, refusal = %why, "the token endpoint refused");
            return Err(RuntimeError::Auth {
                message: format!(
                    "the token endpoint refused (HTTP {}: {why}); {}",
                    raw.status,
                    self.grant.refusal_fix()
                ),
            });
        }
        parse_token_answer(&raw.body).map_err(|message| RuntimeError::Protocol { endpoint: endpoint.into(), message })
    }
}

/// A token answer: a JSON object with a non-empty `access_token`.
pub fn parse_token_answer(body: &[u8]) -> Result<TokenAnswer, String> {
    let not_a_token = || format!("the token endpoint's answer is not a token: {:?}", crate::decode::snippet(body));
    let v: Value = serde_json::from_slice(body).map_err(|_| not_a_token())?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let access_token = Secret::new(text("access_token").ok_or_else(not_a_token)?);
    let refresh_token = text("refresh_token").map(Secret::new);
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .map(|s| Duration::from_secs(s.min(MAX_TOKEN_LIFETIME_SECS)));
    Ok(TokenAnswer {
        access_token,
        refresh_token,
        expires_in,
        instance_url: text("instance_url").map(str::to_string),
        identity: text("id").map(str::to_string),
    })
}

/// What a token endpoint's refusal says, without any secret: RFC 6749's
/// `error`/`error_description`, HubSpot's `status`/`message`, else the
/// start of the body. Redacted.
pub fn describe_refusal(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            match (field("error").or_else(|| field("status")), field("error_description").or_else(|| field("message")))
            {
                (Some(code), Some(desc)) => format!("{code}: {desc}"),
                (Some(code), None) => code,
                (None, Some(desc)) => desc,
                (None, None) => crate::decode::snippet(body),
            }
        }
        Err(_) => crate::decode::snippet(body),
    };
    handoff_model::redact(&text)
}

#[async_trait]
impl Credentials for TokenManager {
    async fn access(&self, deadline: Instant) -> Result<Access, RuntimeError> {
        let mut s = self.state.lock().await;
        if let Some(h) = &s.held {
            if h.renew_at.is_none_or(|t| t > self.clock.now()) {
                return Ok(h.access.clone());
            }
        }
        self.login(&mut s, deadline).await
    }

    async fn renew(&self, stale: &Secret, deadline: Instant) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().await;
        if s.held.as_ref().is_some_and(|h| h.access.token != *stale) {
            return Ok(());
        }
        self.login(&mut s, deadline).await.map(|_| ())
    }

    fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_and_non_tokens_refused_without_secrets() {
        let a = parse_token_answer(
            br#"{"access_token":"00Dxx!AQ0x.token","instance_url":"https://x","expires_in":"1800"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.expires_in, Some(Duration::from_secs(1800)));
        assert_eq!(a.instance_url.as_deref(), Some("https://x"));
        let e = parse_token_answer(b"<html>client_secret=sekret-123456&refresh_token=rt-abcdef</html>")
            .err()
            .unwrap_or_default();
        assert!(e.contains("not a token"), "{e}");
        assert!(!e.contains("sekret-123456") && !e.contains("rt-abcdef"), "{e}");
        assert!(parse_token_answer(br#"{"access_token":""}"#).is_err());
    }

    #[test]
    fn refusals_are_described_without_the_echoed_form() {
        assert_eq!(
            describe_refusal(br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#),
            "invalid_grant: expired access/refresh token"
        );
        assert_eq!(
            describe_refusal(br#"{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token"}"#),
            "BAD_REFRESH_TOKEN: missing or unknown refresh token"
        );
        let echo = b"<pre>grant_type=refresh_token&client_id=abc&client_secret=cs-998877665544&refresh_token=na1-aaaa-bbbb-cccc</pre>";
        let d = describe_refusal(echo);
        assert!(!d.contains("cs-998877665544") && !d.contains("na1-aaaa-bbbb-cccc"), "{d}");
    }
}
