//! The HTTP side: one keep-alive, gzip-capable client with the session,
//! the courtesy pacer, the server-driven pause, the daily budget and the
//! retry loop. Every request and outcome is a `tracing` event.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use handoff_model::{ErrorClass, RetryDecision, Secret};
use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::RwLock;

use crate::auth::token_form;
use crate::error::SalesforceError;
use crate::limits::{parse_limit_info, BudgetGate, DailyBudget};
use crate::settings::SalesforceSettings;
use crate::wire::{classify_response, parse_error_body, Failure, OAuthErrorBody, TokenResponse};

#[derive(Clone)]
struct Session {
    access_token: Secret,
    instance_url: String,
    /// Bumped on every login, so concurrent 401s re-authenticate only once.
    generation: u64,
}

/// A successful answer.
pub struct Answer {
    pub body: String,
}

pub struct Client {
    http: reqwest::Client,
    pub settings: SalesforceSettings,
    session: RwLock<Option<Session>>,
    login_lock: tokio::sync::Mutex<()>,
    pacer: DefaultDirectRateLimiter,
    /// Nothing is sent before this instant (set from `Retry-After` and backoffs on 429).
    pause_until: Mutex<Option<tokio::time::Instant>>,
    budget: Mutex<DailyBudget>,
    rng: Mutex<StdRng>,
    sent: AtomicU64,
    logins: AtomicU64,
}

impl Client {
    pub fn new(settings: SalesforceSettings) -> Result<Self, SalesforceError> {
        settings.validate().map_err(SalesforceError::Settings)?;
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .gzip(true)
            // Following redirects would send the bearer token to wherever a proxy points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("handoff-salesforce/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| SalesforceError::CaFile { path: path.display().to_string(), message: e.to_string() })?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| SalesforceError::CaFile { path: path.display().to_string(), message: e.to_string() })?;
            builder = builder.add_root_certificate(cert);
        }
        let http =
            builder.build().map_err(|e| SalesforceError::Settings(format!("cannot build the HTTP client: {e}")))?;
        let per_sec = NonZeroU32::new(settings.requests_per_sec).unwrap_or(NonZeroU32::MIN);
        // A burst of one: the pacer spaces requests evenly rather than letting a batch out at once.
        let pacer = RateLimiter::direct(Quota::per_second(per_sec).allow_burst(NonZeroU32::MIN));
        let budget = DailyBudget::new(settings.daily_budget_share, settings.budget_recheck);
        Ok(Client {
            http,
            session: RwLock::new(None),
            login_lock: tokio::sync::Mutex::new(()),
            pacer,
            pause_until: Mutex::new(None),
            budget: Mutex::new(budget),
            rng: Mutex::new(StdRng::from_entropy()),
            sent: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            settings,
        })
    }

    /// Requests sent to the REST API (not counting token requests).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Token requests made (first login and re-authentications).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    pub fn budget(&self) -> handoff_model::ApiBudget {
        self.budget.lock().map(|b| b.snapshot()).unwrap_or_default()
    }

    /// The org's base URL of the current session (for links to records).
    pub async fn instance_url(&self) -> Option<String> {
        self.session.read().await.as_ref().map(|s| s.instance_url.clone())
    }

    pub fn api_path(&self, rest: &str) -> String {
        format!("/services/data/{}/{}", self.settings.api_version, rest.trim_start_matches('/'))
    }

    /// Log in unless a session newer than `stale_generation` already exists.
    pub async fn login(&self, stale_generation: Option<u64>) -> Result<(), SalesforceError> {
        let _guard = self.login_lock.lock().await;
        let current = self.session.read().await.as_ref().map(|s| s.generation);
        if current.is_some() && current != stale_generation {
            return Ok(());
        }
        let now = (self.settings.clock)();
        let form = token_form(&self.settings.auth, &self.settings.login_url, self.settings.token_store.load(), now)?;
        let url = format!("{}/services/oauth2/token", self.settings.login_url.trim_end_matches('/'));
        self.pacer.until_ready().await;
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(connector = "salesforce", object = "oauth2/token", "requesting an access token");
        let resp = self.http.post(&url).form(&form.pairs()).send().await.map_err(|e| SalesforceError::Transport {
            endpoint: "oauth2/token".into(),
            message: e.without_url().to_string(),
        })?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| SalesforceError::Transport { endpoint: "oauth2/token".into(), message: e.to_string() })?;
        if !status.is_success() {
            let err: OAuthErrorBody = serde_json::from_str(&body).unwrap_or(OAuthErrorBody {
                error: format!("http_{}", status.as_u16()),
                error_description: Some(body.chars().take(200).collect()),
            });
            tracing::warn!(connector = "salesforce", object = "oauth2/token", status = status.as_u16(), code = %err.error, "token refused");
            return Err(SalesforceError::Auth { code: err.error, message: err.error_description.unwrap_or_default() });
        }
        let token: TokenResponse = serde_json::from_str(&body).map_err(|e| SalesforceError::Protocol {
            endpoint: "oauth2/token".into(),
            message: format!("token answer does not parse: {e}"),
        })?;
        if let Some(rotated) = token.refresh_token.filter(|t| !t.is_empty()) {
            // Persist before using the session: the old refresh token is void now.
            self.settings.token_store.save(&Secret::new(rotated)).map_err(|e| SalesforceError::NeedsConfig {
                message: format!("could not persist the rotated refresh token: {e}"),
                fix: "Check that the state directory is writable".into(),
            })?;
        }
        let instance_url = self.settings.instance_url.clone().unwrap_or(token.instance_url);
        let generation = current.map_or(1, |g| g + 1);
        *self.session.write().await = Some(Session {
            access_token: Secret::new(token.access_token),
            instance_url: instance_url.trim_end_matches('/').to_string(),
            generation,
        });
        Ok(())
    }

    async fn session(&self) -> Result<Session, SalesforceError> {
        if let Some(s) = self.session.read().await.clone() {
            return Ok(s);
        }
        self.login(None).await?;
        self.session.read().await.clone().ok_or_else(|| SalesforceError::Auth {
            code: "no_session".into(),
            message: "login returned without a session".into(),
        })
    }

    fn unit_sample(&self) -> f64 {
        use rand::Rng;
        self.rng.lock().map(|mut r| r.gen::<f64>()).unwrap_or(0.5)
    }

    async fn wait_for_pause(&self) {
        loop {
            let until = self.pause_until.lock().ok().and_then(|p| *p);
            match until {
                Some(t) if t > tokio::time::Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    fn extend_pause(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        if let Ok(mut p) = self.pause_until.lock() {
            if p.is_none_or(|cur| cur < until) {
                *p = Some(until);
            }
        }
    }

    /// Send one REST request, retrying per the policy. `target` is an API
    /// path (`/services/data/…`, e.g. a `nextRecordsUrl`) on the instance.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        object: &str,
    ) -> Result<Answer, SalesforceError> {
        let mut reauthenticated = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let now = (self.settings.clock)();
            let gate = self.budget.lock().map(|b| b.gate(now)).unwrap_or(BudgetGate::Open);
            if let BudgetGate::Paused { retry_after } = gate {
                tracing::info!(connector = "salesforce", object, ?retry_after, "paused at the daily budget");
                return Err(SalesforceError::Budget { retry_after });
            }
            self.wait_for_pause().await;
            self.pacer.until_ready().await;
            let session = self.session().await?;
            let url = format!("{}{}", session.instance_url, target);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(session.access_token.expose())
                .header("Sforce-Query-Options", format!("batchSize={}", self.settings.query_batch_size));
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(connector = "salesforce", object, method = %method, path = target, attempt, "request");
            let outcome: Result<(), (Failure, Option<u16>, String, String)> = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if let Some(info) = resp.headers().get("Sforce-Limit-Info").and_then(|v| v.to_str().ok()) {
                        let info = parse_limit_info(info);
                        if let Ok(mut b) = self.budget.lock() {
                            b.observe(&info, (self.settings.clock)());
                        }
                    }
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(handoff_model::retry::parse_retry_after_secs)
                        .map(Duration::from_secs);
                    match resp.text().await {
                        Ok(text) if status.is_success() => {
                            tracing::debug!(connector = "salesforce", object, status = status.as_u16(), "response");
                            return Ok(Answer { body: text });
                        }
                        Ok(text) => {
                            let err = parse_error_body(&text);
                            let failure = classify_response(status.as_u16(), &err, retry_after);
                            Err((failure, Some(status.as_u16()), err.error_code, err.message))
                        }
                        Err(e) => Err((
                            Failure::Class(ErrorClass::Retryable),
                            Some(status.as_u16()),
                            String::new(),
                            e.to_string(),
                        )),
                    }
                }
                Err(e) => {
                    Err((Failure::Class(ErrorClass::Retryable), None, String::new(), e.without_url().to_string()))
                }
            };
            let Err((failure, status, code, message)) = outcome else { continue };
            if matches!(failure, Failure::Class(ErrorClass::Auth)) && !reauthenticated {
                // Access tokens expire by design: the first refusal is routine.
                tracing::info!(connector = "salesforce", object, status, code = %code, "session expired; re-authenticating");
            } else {
                tracing::warn!(connector = "salesforce", object, status, code = %code, message = %message, attempt, "request failed");
            }
            let class = match failure {
                Failure::DailyLimit => {
                    if let Ok(mut b) = self.budget.lock() {
                        b.pause((self.settings.clock)());
                    }
                    continue; // the gate at the top of the loop reports the pause
                }
                Failure::Class(c) => c,
            };
            match self.settings.retry.decide(attempt, &class, reauthenticated, self.unit_sample()) {
                RetryDecision::Reauthenticate => {
                    reauthenticated = true;
                    attempt -= 1; // re-authenticating is not a failed attempt of the request
                    self.login(Some(session.generation)).await?;
                }
                RetryDecision::RetryAfter(wait) => {
                    // A server-requested wait holds back every request, not just this one.
                    if matches!(class, ErrorClass::RateLimited { .. }) {
                        self.extend_pause(wait);
                    } else {
                        tokio::time::sleep(wait).await;
                    }
                }
                RetryDecision::GiveUp => {
                    return Err(match class {
                        ErrorClass::Auth => SalesforceError::Auth { code, message },
                        ErrorClass::RateLimited { retry_after_secs } => {
                            SalesforceError::Budget { retry_after: Duration::from_secs(retry_after_secs) }
                        }
                        ErrorClass::Retryable if status.is_none() => {
                            SalesforceError::Transport { endpoint: object.to_string(), message }
                        }
                        _ => SalesforceError::Api {
                            endpoint: object.to_string(),
                            status: status.unwrap_or(0),
                            code,
                            message,
                        },
                    });
                }
            }
        }
    }

    /// `send` and parse the JSON answer.
    pub async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        target: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        object: &str,
    ) -> Result<T, SalesforceError> {
        let answer = self.send(method, target, query, body, object).await?;
        serde_json::from_str(&answer.body).map_err(|e| SalesforceError::Protocol {
            endpoint: target.to_string(),
            message: format!("answer does not parse: {e}"),
        })
    }
}
