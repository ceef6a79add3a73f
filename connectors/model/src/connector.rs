//! The one trait the daemon drives, and what crosses it.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Absence, Action, ActionKey, Activity, BusinessCalendar, CrmKind, FieldSpec, Lead, Opportunity, OrgReport, Owner,
    Timestamp,
};

/// What a pull reads. Each stream has its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Leads,
    Owners,
    Activities,
    Calendars,
    /// Opportunities (Salesforce `Opportunity`) or deals (HubSpot `deal`)
    /// the leads became, with their owners: read only when the policy has
    /// the AE's commitments (a connector told not to read them answers an
    /// empty, finished page without a call).
    Opportunities,
}

impl Stream {
    pub const ALL: [Stream; 5] =
        [Stream::Owners, Stream::Calendars, Stream::Leads, Stream::Opportunities, Stream::Activities];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Leads => "leads",
            Stream::Owners => "owners",
            Stream::Activities => "activities",
            Stream::Calendars => "calendars",
            Stream::Opportunities => "opportunities",
        }
    }
}

/// An opaque position in a stream. The daemon stores it and hands it back;
/// only the connector that produced it reads it. A connector only returns a
/// cursor past a time window once that window has been read to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// A record that disappeared from the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub stream: Stream,
    pub id: String,
    /// The surviving record when the deletion was a merge.
    pub merged_into: Option<String>,
    pub deleted_at: Timestamp,
}

/// A record the CRM sent that cannot be mapped: no id, a field of the
/// wrong type, an unreadable date. It is not dropped and it does not block
/// the stream: the daemon keeps it in the stream's quarantine (listed by
/// `handoff state`, re-read later) and holds the lead it belongs to, while
/// the cursor moves on and the rest of the org is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    pub stream: Stream,
    /// The record's id, when it has a readable one.
    pub id: Option<String>,
    /// The lead it belongs to (itself for a lead, the lead an activity is
    /// about), when known: that lead is held, not judged on partial data.
    pub lead_id: Option<String>,
    /// What is wrong, naming the field.
    pub reason: String,
    /// The record as the CRM sent it, as JSON text, redacted and cut to
    /// [`Quarantined::MAX_RAW_CHARS`].
    pub raw: String,
    /// The start of the window it was read in: reading the stream again
    /// from there reads it again.
    pub window_from: Timestamp,
}

impl Quarantined {
    /// The longest raw record kept.
    pub const MAX_RAW_CHARS: usize = 8 * 1024;

    /// A quarantined record, its raw text redacted and cut.
    pub fn new(
        stream: Stream,
        id: Option<String>,
        lead_id: Option<String>,
        reason: impl Into<String>,
        raw: &serde_json::Value,
        window_from: Timestamp,
    ) -> Self {
        let text = raw.to_string();
        let cut: String = text.chars().take(Self::MAX_RAW_CHARS).collect();
        Quarantined {
            stream,
            id: id.filter(|i| !i.is_empty()),
            lead_id: lead_id.filter(|l| !l.is_empty()),
            reason: crate::redact(&reason.into()),
            raw: crate::redact(&cut),
            window_from,
        }
    }
}

/// One page of a pull. The daemon applies the records, then stores `cursor`
/// in the same transaction; if `has_more` it asks again with that cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PullPage {
    pub leads: Vec<Lead>,
    pub activities: Vec<Activity>,
    pub owners: Vec<Owner>,
    pub calendars: Vec<BusinessCalendar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opportunities: Vec<Opportunity>,
    /// Users' absences the CRM records (read with the activities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absences: Vec<Absence>,
    pub deletions: Vec<Deletion>,
    /// Records that could not be mapped (see [`Quarantined`]).
    #[serde(default)]
    pub quarantined: Vec<Quarantined>,
    /// Leads of this page read without their history because handoff's own
    /// write-back was the last to modify them (re-reading every history its
    /// writes touch would cost most of a steady tick's calls). The history
    /// the daemon holds for them still stands; a change in what the page
    /// shows (an edit the write-back followed closely) is dated at the
    /// record's modification, as when the CRM keeps no history.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub history_not_read: std::collections::BTreeSet<String>,
    /// Where to resume. `None` means "unchanged" (nothing finished moving).
    pub cursor: Option<Cursor>,
    pub has_more: bool,
}

/// How the daemon should treat a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient (5xx, timeout, lock contention): retry with backoff.
    Retryable,
    /// The CRM asked us to wait (429, daily budget spent): retry after the delay.
    RateLimited { retry_after_secs: u64 },
    /// The data is wrong and will stay wrong (validation, deleted record).
    Permanent,
    /// Missing field, permission or property: an operator must fix the CRM or the config.
    NeedsConfig,
    /// Credentials were refused even after re-authenticating.
    Auth,
}

/// A classified failure for one record of a write batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteError {
    pub class: ErrorClass,
    /// The CRM's error code (`REQUIRED_FIELD_MISSING`, `VALIDATION_ERROR` …).
    pub code: String,
    pub message: String,
}

/// The fate of one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteOutcome {
    pub key: ActionKey,
    /// The CRM id of the record created or updated, or why it failed.
    pub result: Result<String, WriteError>,
}

/// The API budget as the CRM last reported it, against the operator's share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiBudget {
    /// Calls used in the current day, as the CRM counts them.
    pub used: u64,
    /// The org's limit for the day.
    pub limit: u64,
    /// The share of `limit` handoff may use (operator's setting).
    pub allowed: u64,
    /// When the connector may call again if it has stopped at the budget.
    pub paused_until: Option<Timestamp>,
}

impl ApiBudget {
    pub fn remaining(&self) -> u64 {
        self.allowed.saturating_sub(self.used)
    }
}

/// A connector-level failure: the call as a whole did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("{crm}: authentication failed: {message}. Check the credentials in the config (and that the connected/private app is authorised)")]
    Auth { crm: CrmKind, message: String },
    #[error("{crm}: {message}. {fix}")]
    NeedsConfig { crm: CrmKind, message: String, fix: String },
    #[error("{crm}: API budget reached; paused for {retry_after:?}")]
    Budget { crm: CrmKind, retry_after: Duration },
    #[error("{crm}: request failed after retries: {message}")]
    Transport { crm: CrmKind, message: String },
    #[error("{crm}: unexpected response from {endpoint}: {message}")]
    Protocol { crm: CrmKind, endpoint: String, message: String },
    #[error("{crm}: stored cursor {cursor:?} is not one this connector wrote: {message}")]
    BadCursor { crm: CrmKind, cursor: String, message: String },
}

/// One CRM org, seen through handoff's eyes.
///
/// Implementations own their HTTP client, token lifecycle, pacing and
/// retries; the daemon only sees pages, outcomes and budgets.
#[async_trait]
pub trait Connector: Send + Sync {
    fn crm(&self) -> CrmKind;

    /// Obtain (or refresh) credentials and check the org is usable: objects
    /// readable, the fields the policy names exist.
    async fn authenticate(&self) -> Result<(), ConnectorError>;

    /// Read the next page of `stream` after `cursor` (`None`: from the
    /// beginning, i.e. a backfill), stopping short of `now - lag`.
    async fn pull(&self, stream: Stream, cursor: Option<&Cursor>) -> Result<PullPage, ConnectorError>;

    /// Apply actions, batched as the CRM allows. Returns one outcome per
    /// action, in input order. Writes are idempotent by action key: replaying
    /// a batch never creates a second record.
    async fn write(&self, actions: &[Action]) -> Result<Vec<WriteOutcome>, ConnectorError>;

    /// The budget as last reported by the CRM.
    fn budget(&self) -> ApiBudget;

    /// Read what `handoff doctor` judges: fields and their types, the task
    /// key, history tracking, scopes, owners, counts and the budget. Makes
    /// no write call.
    async fn inspect(&self) -> Result<OrgReport, ConnectorError>;

    /// Create these fields in the org (only on the operator's request,
    /// `handoff doctor --fix`). Returns a line per field created. A CRM
    /// whose fields are deployed as metadata instead says so.
    async fn create_fields(&self, fields: &[FieldSpec]) -> Result<Vec<String>, ConnectorError> {
        let _ = fields;
        Err(ConnectorError::NeedsConfig {
            crm: self.crm(),
            message: "this CRM's fields cannot be created through its data API".into(),
            fix: "deploy them as metadata (`handoff doctor --write-package DIR`)".into(),
        })
    }
}
