//! One place that sends requests: the shared runtime (deadlines, retries
//! per error class, re-authentication, `Retry-After`, pause gate, budget,
//! token handling) with HubSpot's dialect (its pacers, headers and error
//! bodies), and strict reading of HubSpot's answers.

use std::sync::Arc;

use handoff_runtime::{http, BudgetReset, DailyBudget, Runtime, StaticToken, TokenManager};
use reqwest::Method;
use serde_json::Value;

use crate::auth::HubspotGrant;
use crate::error::HubspotError;
use crate::limits::{Bucket, HubspotDialect};
use crate::settings::{HubspotAuth, HubspotSettings};

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

/// HubSpot's error envelope (`{"status": "error", "message": …}`) found in
/// an answer that came with a success status: what it reports.
pub fn error_envelope(v: &Value) -> Option<String> {
    let status = v.get("status").and_then(Value::as_str)?;
    if !status.eq_ignore_ascii_case("error") {
        return None;
    }
    let category = v.get("category").and_then(Value::as_str).unwrap_or("error");
    let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
    Some(format!("{category}: {message}"))
}

impl Response {
    /// The answer as `T`: whole JSON of that shape, not an error envelope.
    pub fn json<T: serde::de::DeserializeOwned>(&self, endpoint: &str) -> Result<T, HubspotError> {
        Ok(handoff_runtime::decode::json(endpoint, &self.body, &error_envelope)?)
    }
}

pub struct Client {
    rt: Runtime,
    dialect: Arc<HubspotDialect>,
}

impl Client {
    pub fn new(settings: &HubspotSettings) -> Result<Client, HubspotError> {
        let http = http::build_client(&settings.http)?;
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        let credentials: Arc<dyn handoff_runtime::Credentials> = match &settings.auth {
            HubspotAuth::PrivateApp { token } => Arc::new(StaticToken::new(token.clone(), base_url.clone())),
            HubspotAuth::OAuth { client_id, client_secret, refresh_token, token_url } => {
                let url = token_url.clone().unwrap_or_else(|| format!("{base_url}/oauth/v1/token"));
                let grant = HubspotGrant {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    refresh_token: refresh_token.clone(),
                    base_url: base_url.clone(),
                };
                Arc::new(
                    TokenManager::new(
                        Box::new(grant),
                        url,
                        settings.token_store.clone(),
                        settings.clock.clone(),
                        http.clone(),
                        settings.http.clone(),
                        settings.retry_policy(),
                    )
                    .map_err(|e| HubspotError::Settings { field: "auth.token_url", message: e.to_string() })?,
                )
            }
        };
        let dialect = Arc::new(HubspotDialect::new(settings.burst_per_10s, settings.search_per_second));
        let budget =
            DailyBudget::new(settings.daily_budget_share, BudgetReset::UtcMidnight, settings.daily_limit_fallback);
        let rt = Runtime::new(
            http,
            settings.http.clone(),
            settings.retry_policy(),
            dialect.clone(),
            credentials,
            settings.clock.clone(),
            budget,
        );
        Ok(Client { rt, dialect })
    }

    /// Make sure a token can be had now (logging in when the flow needs it).
    pub async fn authenticate(&self) -> Result<(), HubspotError> {
        self.rt.credentials().access(self.rt.call_deadline()).await?;
        Ok(())
    }

    /// The access token requests go out with now (for the token-info
    /// endpoints, which take the token itself as their argument).
    pub async fn access_token(&self) -> Result<handoff_model::Secret, HubspotError> {
        Ok(self.rt.credentials().access(self.rt.call_deadline()).await?.token)
    }

    pub fn budget(&self) -> handoff_model::ApiBudget {
        self.rt.budget()
    }

    /// The search pacer's current rate per second.
    pub fn search_per_second(&self) -> u32 {
        self.dialect.search_per_second()
    }

    /// API requests sent (token requests not counted).
    pub fn requests_sent(&self) -> u64 {
        self.rt.requests_sent()
    }

    /// `GET path?query`: a read of `object`, safe to repeat, on the burst
    /// budget, answered as `T`.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(&'static str, String)>,
        object: &str,
        cursor: &str,
    ) -> Result<T, HubspotError> {
        let request = Request {
            method: Method::GET,
            path: path.to_string(),
            query,
            body: None,
            bucket: Bucket::Burst,
            idempotent: true,
            object,
            cursor,
        };
        self.send(request).await?.json(path)
    }

    /// `POST path` with `body`: a read of `object` (a batch read, an
    /// association read), safe to repeat, on the burst budget, answered as `T`.
    pub async fn post_read<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        object: &str,
        cursor: &str,
    ) -> Result<T, HubspotError> {
        let request = Request {
            method: Method::POST,
            path: path.to_string(),
            query: vec![],
            body: Some(body),
            bucket: Bucket::Burst,
            idempotent: true,
            object,
            cursor,
        };
        self.send(request).await?.json(path)
    }

    /// Send with pacing and retries. 2xx/207 come back as `Ok`; anything
    /// else, once retries are spent or pointless, as an error.
    pub async fn send(&self, req: Request<'_>) -> Result<Response, HubspotError> {
        let shared = handoff_runtime::Request {
            method: req.method,
            path: req.path,
            query: req.query,
            body: req.body,
            headers: Vec::new(),
            bucket: req.bucket.shared(),
            idempotent: req.idempotent,
            object: req.object,
            cursor: req.cursor,
        };
        let r = self.rt.send(shared).await?;
        Ok(Response { status: r.status, body: r.body })
    }
}
