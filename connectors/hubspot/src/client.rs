//! One place that sends requests: pacing, the bearer token, timeouts,
//! retries per error class (the shared [`RetryPolicy`]), `Retry-After`, and
//! a `tracing` event for every request and outcome.

use std::time::Duration;

use handoff_model::retry::{RetryDecision, RetryPolicy};
use handoff_model::ErrorClass;
use reqwest::Method;
use serde_json::Value;

use crate::auth::Authenticator;
use crate::error::HubspotError;
use crate::limits::{Bucket, Limits};
use crate::settings::HubspotSettings;
use crate::wire::{self, ErrorBody, RateHeaders, RatePolicy};

/// One request, described for sending and for the logs.
pub struct Request<'a> {
    pub method: Method,
    /// Path under the base URL, starting with `/`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<&'a Value>,
    pub bucket: Bucket,
    /// Safe to send twice. A create is not: when its outcome is unknown
    /// (timeout, 5xx) the caller must look the records up before retrying.
    pub idempotent: bool,
    /// For the logs: the object type and the cursor position.
    pub object: &'a str,
    pub cursor: &'a str,
}

/// A successful (2xx, including 207) answer.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: for<'de> serde::Deserialize<'de>>(&self, endpoint: &str) -> Result<T, HubspotError> {
        serde_json::from_slice(&self.body).map_err(|e| HubspotError::Protocol {
            endpoint: endpoint.to_string(),
            message: format!("cannot read the {} response: {e}", self.status),
        })
    }
}

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    pub auth: Authenticator,
    pub limits: Limits,
    policy: RetryPolicy,
}

/// Build the reqwest client: keep-alive and gzip are reqwest's defaults;
/// timeouts and the extra CA come from the settings.
pub fn http_client(settings: &HubspotSettings, follow_redirects: bool) -> Result<reqwest::Client, HubspotError> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.request_timeout_secs))
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("handoff/", env!("CARGO_PKG_VERSION")));
    if !follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| HubspotError::CaFile { path: path.display().to_string(), message: e.to_string() })?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| HubspotError::CaFile { path: path.display().to_string(), message: e.to_string() })?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| HubspotError::Client(e.to_string()))
}

impl Client {
    pub fn new(settings: &HubspotSettings) -> Result<Client, HubspotError> {
        let http = http_client(settings, true)?;
        let token_http = http_client(settings, false)?;
        let auth = Authenticator::new(
            &settings.auth,
            &settings.base_url,
            token_http,
            settings.token_store.clone(),
            settings.clock.clone(),
        )?;
        let limits = Limits::new(
            settings.burst_per_10s,
            settings.search_per_second,
            settings.daily_budget_share,
            settings.daily_limit_fallback,
            settings.clock.clone(),
        );
        let policy = RetryPolicy {
            max_attempts: settings.max_attempts,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            // A storm is waited out inside the call: the pull then completes.
            max_rate_limit_wait: Duration::from_secs(15 * 60),
        };
        Ok(Client { http, base_url: settings.base_url.trim_end_matches('/').to_string(), auth, limits, policy })
    }

    /// Send with pacing and retries. 2xx/207 come back as `Ok`; anything
    /// else, once retries are spent or pointless, as an error.
    pub async fn send(&self, req: Request<'_>) -> Result<Response, HubspotError> {
        let endpoint = format!("{} {}", req.method, req.path);
        let url = format!("{}{}", self.base_url, req.path);
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            self.limits.acquire(req.bucket).await?;
            let token = self.auth.bearer().await?;
            let mut rb = self.http.request(req.method.clone(), &url).bearer_auth(token.expose()).query(&req.query);
            if let Some(body) = req.body {
                rb = rb.json(body);
            }
            let (class, message) = match rb.send().await {
                Err(e) => {
                    tracing::warn!(connector = "hubspot", object = req.object, cursor = req.cursor, %endpoint, attempt, error = %e, "request failed in transport");
                    if !req.idempotent {
                        return Err(HubspotError::Transport {
                            endpoint,
                            attempts: attempt,
                            message: format!("outcome unknown: {e}"),
                        });
                    }
                    (ErrorClass::Retryable, e.to_string())
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    self.limits.observe(req.bucket, &RateHeaders::parse(&headers));
                    let body = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) if req.idempotent => {
                            tracing::warn!(connector = "hubspot", object = req.object, cursor = req.cursor, %endpoint, attempt, status, error = %e, "response body lost");
                            self.wait(
                                attempt,
                                &ErrorClass::Retryable,
                                &mut reauthenticated,
                                &endpoint,
                                e.to_string(),
                                &token,
                            )
                            .await?;
                            continue;
                        }
                        Err(e) => {
                            return Err(HubspotError::Transport {
                                endpoint,
                                attempts: attempt,
                                message: format!("outcome unknown: {e}"),
                            })
                        }
                    };
                    tracing::debug!(connector = "hubspot", object = req.object, cursor = req.cursor, %endpoint, attempt, status, "request");
                    if (200..300).contains(&status) {
                        return Ok(Response { status, body });
                    }
                    let err = ErrorBody::parse(&body);
                    if status == 401 && !reauthenticated {
                        // Access tokens expire by design: the first refusal is routine.
                        tracing::info!(connector = "hubspot", object = req.object, %endpoint, status, "token expired; re-authenticating");
                    } else {
                        tracing::warn!(connector = "hubspot", object = req.object, cursor = req.cursor, %endpoint, attempt, status, code = %err.code(), message = %err.message, "request refused");
                    }
                    if status == 429 {
                        let retry_after = wire::retry_after_secs(&headers);
                        let policy = RatePolicy::from_body(&err);
                        if let Some(stop) =
                            self.limits.on_rate_limited(policy, req.bucket, retry_after.map(Duration::from_secs))
                        {
                            return Err(stop);
                        }
                        let secs = retry_after.unwrap_or(if policy == RatePolicy::Secondly { 1 } else { 10 });
                        (ErrorClass::RateLimited { retry_after_secs: secs }, err.message.clone())
                    } else {
                        let class = wire::classify(status, &err);
                        let retry_unsafe = !req.idempotent && class == ErrorClass::Retryable;
                        if retry_unsafe || matches!(class, ErrorClass::Permanent | ErrorClass::NeedsConfig) {
                            return Err(HubspotError::Api {
                                endpoint,
                                status,
                                category: err.code(),
                                message: err.message,
                            });
                        }
                        if class == ErrorClass::Auth && reauthenticated {
                            return Err(HubspotError::Auth(format!(
                                "{endpoint}: {} even after re-authenticating; check the token and the app's scopes",
                                err.message
                            )));
                        }
                        (class, format!("{status} {}: {}", err.code(), err.message))
                    }
                }
            };
            self.wait(attempt, &class, &mut reauthenticated, &endpoint, message, &token).await?;
        }
    }

    /// Apply the retry decision for a failed attempt, or give up.
    async fn wait(
        &self,
        attempt: u32,
        class: &ErrorClass,
        reauthenticated: &mut bool,
        endpoint: &str,
        message: String,
        token: &handoff_model::Secret,
    ) -> Result<(), HubspotError> {
        let unit: f64 = rand::random();
        match self.policy.decide(attempt, class, *reauthenticated, unit) {
            RetryDecision::RetryAfter(d) => {
                tracing::info!(connector = "hubspot", %endpoint, attempt, wait_ms = d.as_millis() as u64, "retrying");
                tokio::time::sleep(d).await;
                Ok(())
            }
            RetryDecision::Reauthenticate => {
                *reauthenticated = true;
                self.auth.reauthenticate(token).await
            }
            RetryDecision::GiveUp => Err(match class {
                ErrorClass::Auth => HubspotError::Auth(format!("{endpoint}: {message}")),
                _ => HubspotError::Transport { endpoint: endpoint.to_string(), attempts: attempt, message },
            }),
        }
    }
}
