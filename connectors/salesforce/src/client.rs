//! The HTTP side, on the shared runtime: Salesforce's dialect (its courtesy
//! pacer, `Sforce-Limit-Info`, its error envelope and what each error code
//! means) and the few calls the connector makes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use handoff_model::CrmKind;
use handoff_runtime::{
    http, Bucket, BudgetReset, DailyBudget, Dialect, Observed, Pacer, Raw, Refusal, Request, Runtime, TokenManager,
};
use reqwest::Method;
use serde_json::Value;

use crate::auth::SalesforceGrant;
use crate::error::SalesforceError;
use crate::limits::parse_limit_info;
use crate::settings::SalesforceSettings;
use crate::wire::{classify_response, error_envelope, parse_error_body, Failure};

/// Salesforce's side of the shared send loop.
struct SalesforceDialect {
    pacer: Pacer,
}

#[async_trait]
impl Dialect for SalesforceDialect {
    fn crm(&self) -> CrmKind {
        CrmKind::Salesforce
    }

    async fn pace(&self, _bucket: Bucket) {
        self.pacer.until_ready().await;
    }

    fn observe(&self, _bucket: Bucket, raw: &Raw, seen: &mut Observed<'_>) {
        if let Some(info) = raw.headers.get("Sforce-Limit-Info").and_then(|v| v.to_str().ok()) {
            if let Some((used, limit)) = parse_limit_info(info).api_usage {
                seen.budget.observe(used, limit, seen.now);
            }
        }
    }

    fn classify(&self, _bucket: Bucket, raw: &Raw, retry_after: Option<Duration>) -> Refusal {
        let err = parse_error_body(&raw.body);
        let failure = classify_response(raw.status, &err, retry_after);
        Refusal {
            daily_limit: failure == Failure::DailyLimit,
            class: match failure {
                Failure::Class(c) => c,
                Failure::DailyLimit => handoff_model::ErrorClass::RateLimited { retry_after_secs: 0 },
            },
            code: err.error_code,
            message: err.message,
            pause: None,
        }
    }
}

/// A successful answer.
pub struct Answer {
    pub body: Vec<u8>,
}

pub struct Client {
    rt: Runtime,
    pub settings: SalesforceSettings,
}

impl Client {
    pub fn new(settings: SalesforceSettings) -> Result<Self, SalesforceError> {
        settings.validate().map_err(SalesforceError::Settings)?;
        let http = http::build_client(&settings.http)?;
        let token_url = format!("{}/services/oauth2/token", settings.login_url.trim_end_matches('/'));
        let grant = SalesforceGrant {
            auth: settings.auth.clone(),
            login_url: settings.login_url.clone(),
            instance_url: settings.instance_url.clone(),
        };
        let tokens = TokenManager::new(
            Box::new(grant),
            token_url,
            settings.token_store.clone(),
            settings.clock.clone(),
            http.clone(),
            settings.http.clone(),
            settings.retry.clone(),
        )?;
        // A burst of one: the pacer spaces requests evenly rather than letting a batch out at once.
        let dialect = SalesforceDialect { pacer: Pacer::per_second(settings.requests_per_sec) };
        let budget = DailyBudget::new(
            settings.daily_budget_share,
            BudgetReset::Rolling { recheck: settings.budget_recheck },
            None,
        );
        let rt = Runtime::new(
            http,
            settings.http.clone(),
            settings.retry.clone(),
            Arc::new(dialect),
            Arc::new(tokens),
            settings.clock.clone(),
            budget,
        );
        Ok(Client { rt, settings })
    }

    /// Requests sent to the REST API (not counting token requests).
    pub fn requests_sent(&self) -> u64 {
        self.rt.requests_sent()
    }

    /// Token requests made (first login and re-authentications).
    pub fn logins(&self) -> u64 {
        self.rt.logins()
    }

    pub fn budget(&self) -> handoff_model::ApiBudget {
        self.rt.budget()
    }

    /// The org's base URL of the current session (for links to records);
    /// `None` when no session can be had now.
    pub async fn instance_url(&self) -> Option<String> {
        self.rt.credentials().access(self.rt.call_deadline()).await.ok().map(|a| a.base_url)
    }

    /// The id of the user the session acts as (the last part of the token
    /// answer's identity URL); `None` when no session can be had now or the
    /// answer named none.
    pub async fn user_id(&self) -> Option<String> {
        let access = self.rt.credentials().access(self.rt.call_deadline()).await.ok()?;
        let id = access.identity?.trim_end_matches('/').rsplit('/').next()?.to_string();
        let plausible =
            (15..=18).contains(&id.len()) && id.starts_with("005") && id.chars().all(|c| c.is_ascii_alphanumeric());
        plausible.then_some(id)
    }

    pub fn api_path(&self, rest: &str) -> String {
        format!("/services/data/{}/{}", self.settings.api_version, rest.trim_start_matches('/'))
    }

    /// Log in unless a session exists.
    pub async fn login(&self) -> Result<(), SalesforceError> {
        self.rt.credentials().access(self.rt.call_deadline()).await?;
        Ok(())
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
        let request = Request {
            method,
            path: target.to_string(),
            query: query.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            body,
            headers: vec![("Sforce-Query-Options", format!("batchSize={}", self.settings.query_batch_size))],
            bucket: Bucket::Default,
            // Reads, and writes that are upserts by key or updates by id: all safe to repeat.
            idempotent: true,
            object,
            cursor: "",
        };
        let response = self.rt.send(request).await?;
        Ok(Answer { body: response.body })
    }

    /// `send` and read the answer as `T`, refusing anything that is not
    /// whole JSON of that shape (an error envelope sent with a 200, HTML,
    /// a truncated body).
    pub async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        target: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        object: &str,
    ) -> Result<T, SalesforceError> {
        let answer = self.send(method, target, query, body, object).await?;
        Ok(handoff_runtime::decode::json(object, &answer.body, &error_envelope)?)
    }
}
