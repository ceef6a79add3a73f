//! The send loop both connectors use: budget gate, pause gate, pacing,
//! credentials, one attempt within its deadline, the CRM's verdict on a
//! refusal, then a retry with full jitter, a re-authentication, a pause or
//! a stop. What is a CRM difference (how a refusal reads, which headers
//! carry the limits, how requests are paced) is the [`Dialect`]'s; the
//! rest is made once, here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use handoff_model::{ApiBudget, CrmKind, ErrorClass, RetryDecision, RetryPolicy, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::auth::Credentials;
use crate::budget::{DailyBudget, PauseGate, Scope};
use crate::clock::SharedClock;
use crate::error::RuntimeError;
use crate::http::{self, HttpSettings, Raw, ReadFailure};

/// How long one connector operation (a pull of one page, a write) may take
/// in all, whatever number of calls it makes: well inside the service's
/// watchdog, whose pings (every 90 s) need the loop to commit something.
pub const DEFAULT_OPERATION_DEADLINE: Duration = Duration::from_secs(75);

tokio::task_local! {
    static OPERATION_DEADLINE: Instant;
}

/// Runs `op` so that every call it makes ends by `limit` from now (each
/// call still by its own deadline too). Nested operations keep the
/// earlier end.
pub async fn within<F: std::future::Future>(limit: Duration, op: F) -> F::Output {
    let end = Instant::now() + limit;
    let end = OPERATION_DEADLINE.try_with(|d| *d).map_or(end, |d| d.min(end));
    OPERATION_DEADLINE.scope(end, op).await
}

/// Which of the CRM's rate buckets a request draws from (HubSpot's search
/// has its own; everything else shares the default one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Default,
    Search,
}

/// One request, described for sending and for the logs.
pub struct Request<'a> {
    pub method: Method,
    /// A path on the CRM's API host, starting with `/` (a `nextRecordsUrl`
    /// is one). Anything else is refused: a server cannot send the bearer
    /// token elsewhere by naming another host in a "next page".
    pub path: String,
    pub query: Vec<(&'a str, String)>,
    pub body: Option<&'a Value>,
    pub headers: Vec<(&'static str, String)>,
    pub bucket: Bucket,
    /// Safe to send twice. A create is not: when its outcome is unknown
    /// the caller must look the records up before retrying.
    pub idempotent: bool,
    /// For the logs: the object type and the cursor position.
    pub object: &'a str,
    pub cursor: &'a str,
}

impl<'a> Request<'a> {
    /// A GET of `path`, idempotent, from the default bucket.
    pub fn get(path: impl Into<String>, object: &'a str, cursor: &'a str) -> Self {
        Request {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            bucket: Bucket::Default,
            idempotent: true,
            object,
            cursor,
        }
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A CRM's verdict on a non-2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub class: ErrorClass,
    /// The CRM's error code (`INVALID_SESSION_ID`, `MISSING_SCOPES` …).
    pub code: String,
    /// What the CRM said (the runtime redacts it before it goes anywhere).
    pub message: String,
    /// The daily limit is spent: stop until the budget says otherwise.
    pub daily_limit: bool,
    /// Close this scope for this long before anything else is sent.
    pub pause: Option<(Scope, Duration)>,
}

/// What the runtime lends a dialect while it reads a response's headers.
pub struct Observed<'a> {
    pub budget: &'a mut DailyBudget,
    pub gate: &'a PauseGate,
    pub now: Timestamp,
}

/// What differs between CRMs.
#[async_trait]
pub trait Dialect: Send + Sync {
    fn crm(&self) -> CrmKind;
    /// Wait until a request from `bucket` may go (local pacing).
    async fn pace(&self, bucket: Bucket);
    /// Learn from any answer's headers (usage counts, limits).
    fn observe(&self, bucket: Bucket, raw: &Raw, seen: &mut Observed<'_>);
    /// Read a non-2xx answer. `retry_after`: the server's `Retry-After`,
    /// already read and clamped.
    fn classify(&self, bucket: Bucket, raw: &Raw, retry_after: Option<Duration>) -> Refusal;
}

/// The connector's HTTP side.
pub struct Runtime {
    http: reqwest::Client,
    settings: HttpSettings,
    retry: RetryPolicy,
    dialect: Arc<dyn Dialect>,
    credentials: Arc<dyn Credentials>,
    clock: SharedClock,
    gate: PauseGate,
    budget: Mutex<DailyBudget>,
    rng: Mutex<StdRng>,
    sent: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What an attempt's failure comes to before the retry policy decides.
struct Failed {
    class: ErrorClass,
    status: Option<u16>,
    code: String,
    message: String,
    pause_scope: Scope,
}

impl Runtime {
    /// `http` must come from [`http::build_client`] with `settings`.
    pub fn new(
        http: reqwest::Client,
        settings: HttpSettings,
        retry: RetryPolicy,
        dialect: Arc<dyn Dialect>,
        credentials: Arc<dyn Credentials>,
        clock: SharedClock,
        budget: DailyBudget,
    ) -> Self {
        Runtime {
            http,
            settings,
            retry,
            dialect,
            credentials,
            clock,
            gate: PauseGate::default(),
            budget: Mutex::new(budget),
            rng: Mutex::new(StdRng::from_entropy()),
            sent: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn credentials(&self) -> &Arc<dyn Credentials> {
        &self.credentials
    }

    /// API requests sent (token requests not counted).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Token requests made.
    pub fn logins(&self) -> u64 {
        self.credentials.logins()
    }

    pub fn budget(&self) -> ApiBudget {
        lock(&self.budget).snapshot(self.clock.now())
    }

    /// Close `scope` for `wait` (a dialect's own signal, e.g. "remaining 0").
    pub fn pause(&self, scope: Scope, wait: Duration) {
        self.gate.pause(scope, wait);
    }

    /// A deadline for a call starting now: the call deadline, or the end
    /// of the operation it is part of ([`within`]) when that comes first.
    pub fn call_deadline(&self) -> Instant {
        let own = Instant::now() + self.settings.call_deadline;
        OPERATION_DEADLINE.try_with(|d| *d).map_or(own, |d| d.min(own))
    }

    fn unit_sample(&self) -> f64 {
        lock(&self.rng).gen::<f64>()
    }

    /// Send `req`, retrying per the policy, within the call deadline. 2xx
    /// comes back as `Ok`; anything else, once retries are spent or
    /// pointless, as an error whose text went through the redactor.
    pub async fn send(&self, req: Request<'_>) -> Result<Response, RuntimeError> {
        let endpoint = format!("{} {}", req.method, req.path);
        if !req.path.starts_with('/') || req.path.starts_with("//") {
            return Err(RuntimeError::Protocol {
                endpoint: req.object.to_string(),
                message: format!(
                    "the next request would go to {:?}, which is not a path on the CRM's host; handoff sends its token nowhere else",
                    crate::decode::snippet(req.path.as_bytes())
                ),
            });
        }
        let deadline = self.call_deadline();
        let crm = self.dialect.crm();
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            if let Err(retry_after) = lock(&self.budget).gate(self.clock.now()) {
                tracing::info!(connector = %crm, object = req.object, ?retry_after, "paused at the daily budget");
                return Err(RuntimeError::Budget { retry_after });
            }
            if let Some(open) = self.gate.open_at(req.bucket) {
                if open >= deadline {
                    return Err(RuntimeError::Budget { retry_after: open - Instant::now() });
                }
                tokio::time::sleep_until(open).await;
            }
            self.dialect.pace(req.bucket).await;
            let access = self.credentials.access(deadline).await?;
            let now = Instant::now();
            if now >= deadline {
                return Err(RuntimeError::Transport {
                    endpoint,
                    attempts: attempt - 1,
                    message: format!("the call took longer than its {:?} deadline", self.settings.call_deadline),
                    outcome_unknown: false,
                });
            }
            let url = format!("{}{}", access.base_url.trim_end_matches('/'), req.path);
            let mut rb = self.http.request(req.method.clone(), &url).bearer_auth(access.token.expose());
            if !req.query.is_empty() {
                rb = rb.query(&req.query);
            }
            for (name, value) in &req.headers {
                rb = rb.header(*name, value);
            }
            if let Some(body) = req.body {
                rb = rb.json(body);
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            if req.bucket == Bucket::Default {
                lock(&self.budget).count_sent(self.clock.now());
            }
            tracing::debug!(connector = %crm, object = req.object, cursor = req.cursor, %endpoint, attempt, "request");
            let attempt_deadline = (now + self.settings.attempt_deadline).min(deadline);
            let failed = match http::read(rb, &self.settings, attempt_deadline).await {
                Err(ReadFailure::Refused { message }) => {
                    tracing::warn!(connector = %crm, object = req.object, cursor = req.cursor, %endpoint, attempt, error = %message, "answer refused");
                    return Err(RuntimeError::Protocol { endpoint, message });
                }
                Err(ReadFailure::Transport { message, sent }) => {
                    tracing::warn!(connector = %crm, object = req.object, cursor = req.cursor, %endpoint, attempt, error = %message, "request failed in transport");
                    if !req.idempotent && sent {
                        return Err(RuntimeError::Transport {
                            endpoint,
                            attempts: attempt,
                            message: format!("outcome unknown: {message}"),
                            outcome_unknown: true,
                        });
                    }
                    Failed {
                        class: ErrorClass::Retryable,
                        status: None,
                        code: String::new(),
                        message,
                        pause_scope: Scope::All,
                    }
                }
                Ok(raw) => {
                    {
                        let mut budget = lock(&self.budget);
                        let mut seen = Observed { budget: &mut budget, gate: &self.gate, now: self.clock.now() };
                        self.dialect.observe(req.bucket, &raw, &mut seen);
                    }
                    if (200..300).contains(&raw.status) {
                        tracing::debug!(connector = %crm, object = req.object, status = raw.status, "response");
                        return Ok(Response { status: raw.status, headers: raw.headers, body: raw.body });
                    }
                    let retry_after = crate::retry_after::from_headers(&raw.headers, self.clock.now());
                    let refusal = self.dialect.classify(req.bucket, &raw, retry_after);
                    let message = handoff_model::redact(&refusal.message);
                    let routine = refusal.class == ErrorClass::Auth && !renewed;
                    if routine {
                        // Access tokens expire by design: the first refusal is routine.
                        tracing::info!(connector = %crm, object = req.object, %endpoint, status = raw.status, code = %refusal.code, "session expired; re-authenticating");
                    } else {
                        tracing::warn!(connector = %crm, object = req.object, cursor = req.cursor, %endpoint, attempt, status = raw.status, code = %refusal.code, message = %message, "request refused");
                    }
                    if let Some((scope, wait)) = refusal.pause {
                        self.gate.pause(scope, wait);
                    }
                    if refusal.daily_limit {
                        let wait = lock(&self.budget).exhausted(retry_after, self.clock.now());
                        return Err(RuntimeError::Budget { retry_after: wait });
                    }
                    let api = |class: ErrorClass| RuntimeError::Api {
                        endpoint: endpoint.clone(),
                        status: raw.status,
                        code: refusal.code.clone(),
                        message: message.clone(),
                        class,
                    };
                    match refusal.class {
                        ErrorClass::Auth if !renewed => {
                            renewed = true;
                            // Re-authenticating is not a failed attempt of the request.
                            attempt -= 1;
                            self.credentials.renew(&access.token, deadline).await?;
                            continue;
                        }
                        ErrorClass::Auth => {
                            return Err(RuntimeError::Auth {
                                message: format!(
                                    "{endpoint}: {message} even after re-authenticating; check the credentials and the app's permissions"
                                ),
                            })
                        }
                        ErrorClass::Permanent | ErrorClass::NeedsConfig => return Err(api(refusal.class)),
                        ErrorClass::Retryable if !req.idempotent => return Err(api(ErrorClass::Retryable)),
                        _ => {}
                    }
                    Failed {
                        pause_scope: refusal.pause.map_or(Scope::All, |(s, _)| s),
                        class: refusal.class,
                        status: Some(raw.status),
                        code: refusal.code,
                        message,
                    }
                }
            };
            let give_up = |f: Failed| match f.class {
                ErrorClass::RateLimited { retry_after_secs } => {
                    RuntimeError::Budget { retry_after: Duration::from_secs(retry_after_secs) }
                }
                _ => RuntimeError::Transport {
                    endpoint: endpoint.clone(),
                    attempts: attempt,
                    message: match f.status {
                        Some(s) => format!("HTTP {s} {}: {}", f.code, f.message),
                        None => f.message,
                    },
                    outcome_unknown: false,
                },
            };
            match self.retry.decide(attempt, &failed.class, renewed, self.unit_sample()) {
                RetryDecision::RetryAfter(wait) => {
                    if Instant::now() + wait >= deadline {
                        return Err(match failed.class {
                            ErrorClass::RateLimited { .. } => RuntimeError::Budget { retry_after: wait },
                            _ => give_up(failed),
                        });
                    }
                    tracing::info!(connector = %crm, object = req.object, %endpoint, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                    if matches!(failed.class, ErrorClass::RateLimited { .. }) {
                        // A server-requested wait holds back every request in its scope.
                        self.gate.pause(failed.pause_scope, wait);
                    } else {
                        tokio::time::sleep(wait).await;
                    }
                }
                RetryDecision::Reauthenticate | RetryDecision::GiveUp => return Err(give_up(failed)),
            }
        }
    }
}
