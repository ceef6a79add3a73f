//! Every request the sandbox served, so tests can count API calls and see
//! exactly what was written.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One served request.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// Simulated time it was served at.
    pub at: DateTime<Utc>,
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// Whether the CRM counts it against the API limit (the Salesforce
    /// versions list and the token endpoints, for example, do not).
    pub counted: bool,
    /// Request body for writes (JSON), kept so tests can assert what was sent.
    pub body: Option<serde_json::Value>,
}

/// Append-only, shared by the emulator and the admin API.
#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<Vec<LoggedRequest>>>,
}

impl LoggedRequest {
    /// The records a Salesforce write carried through sObject Collections:
    /// a collection request's own, or those of every collection inside a
    /// Composite request (whose subrequests are not logged on their own).
    pub fn collection_records(&self) -> Vec<&serde_json::Value> {
        let Some(body) = &self.body else { return Vec::new() };
        if self.path.ends_with("/composite") {
            body["compositeRequest"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|sub| sub["url"].as_str().is_some_and(|u| u.contains("/composite/sobjects")))
                .filter_map(|sub| sub["body"]["records"].as_array())
                .flatten()
                .collect()
        } else if self.path.contains("/composite/sobjects") {
            body["records"].as_array().into_iter().flatten().collect()
        } else {
            Vec::new()
        }
    }
}

impl RequestLog {
    pub fn push(&self, req: LoggedRequest) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).push(req);
    }

    /// A copy of everything logged so far.
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
