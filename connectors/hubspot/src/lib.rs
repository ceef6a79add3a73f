//! handoff's HubSpot connector: contacts (or, in leads mode, lead records
//! joined with their contacts) as leads (with their ownership and
//! status history from `propertiesWithHistory`), engagements (calls,
//! emails, meetings, tasks) as activities, deals as opportunities (when the
//! policy has the AE's commitments), owners with managers from the
//! settings, and write-back of SLA properties and tasks through the CRM v3
//! API.
//!
//! # Layout
//! - [`settings`]: [`HubspotSettings`], [`HubspotAuth`], [`TokenStore`], [`Clock`].
//! - [`wire`]: HubSpot's JSON shapes and headers, and error classification (pure).
//! - [`cursor`]: cursor state and window arithmetic (pure).
//! - [`map`]: HubSpot records → the CRM-neutral model (pure).
//! - [`limits`]: HubSpot's dialect of the shared runtime: the burst and
//!   search pacers, its rate headers and 429 bodies.
//! - [`auth`]: the OAuth refresh grant.
//! - [`client`]: sending through the shared runtime (`handoff-runtime`:
//!   deadlines, retries per error class, re-authentication, the pause gate,
//!   the daily budget, tokens), and strict reading of answers.
//! - `pull` / `write`: the two halves of the [`Connector`] trait.
//! - `lead_records`: leads mode, where the SLA's lead is the lead record.
//! - `deals`: the opportunity stream (deals, and engagements logged on
//!   them), read only with [`HubspotSettings::read_opportunities`].
//! - `inspect`: what `handoff doctor` reads, and the properties it creates on request.

pub mod auth;
pub mod client;
pub mod cursor;
mod deals;
pub mod error;
mod inspect;
mod lead_records;
pub mod limits;
mod listing;
pub mod map;
mod pull;
pub mod settings;
pub mod wire;
mod write;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use handoff_model::{
    Action, ApiBudget, Connector, ConnectorError, CrmKind, Cursor, OwnerKind, PullPage, Stream, WriteOutcome,
};
use reqwest::Method;

pub use error::HubspotError;
pub use inspect::{property_body, property_info, REQUIRED_SCOPES};
pub use settings::{
    Clock, HttpSettings, HubspotAuth, HubspotSettings, LeadObject, MemoryTokenStore, SharedClock, SystemClock,
    TokenStore,
};

use crate::client::{Client, Request};
use crate::cursor::{OwnersCursor, RecordsCursor};
use crate::limits::Bucket;

/// One HubSpot portal, seen through handoff's eyes.
pub struct HubspotConnector {
    settings: HubspotSettings,
    client: Client,
    /// Whether the `handoff_key` task property was confirmed.
    task_property_checked: tokio::sync::Mutex<bool>,
    /// Owner id → user or queue (HubSpot's owner `type`), from the owners
    /// listing; filled when an ownership history names an owner not seen yet.
    owner_kinds: tokio::sync::Mutex<BTreeMap<String, OwnerKind>>,
    /// Set once property history turned out unreadable (the app lacks the
    /// scope): leads then come without history and the daemon keeps its own.
    history_unavailable: AtomicBool,
    /// Where a contact's record lives in HubSpot's app, for task bodies:
    /// asked once (`None` inside: the account details were unreadable).
    contact_link: tokio::sync::Mutex<Option<Option<String>>>,
    /// When handoff's own updates left each contact (see [`listing`]).
    own_writes: listing::OwnWrites,
    /// What each contact's history-bearing properties were when last delivered.
    digests: handoff_runtime::echo::HistoryDigests,
    /// Leads mode's property names, primary contacts and association type.
    leads_cache: lead_records::LeadsModeCache,
}

/// Validate the settings and build the connector. Makes no request: call
/// [`Connector::authenticate`] to check the credentials and the portal.
pub async fn connect(settings: HubspotSettings) -> Result<HubspotConnector, HubspotError> {
    settings.validate()?;
    let client = Client::new(&settings)?;
    Ok(HubspotConnector {
        settings,
        client,
        task_property_checked: tokio::sync::Mutex::new(false),
        owner_kinds: tokio::sync::Mutex::new(BTreeMap::new()),
        history_unavailable: AtomicBool::new(false),
        contact_link: tokio::sync::Mutex::new(None),
        own_writes: listing::OwnWrites::default(),
        digests: handoff_runtime::echo::HistoryDigests::default(),
        leads_cache: lead_records::LeadsModeCache::default(),
    })
}

impl HubspotConnector {
    pub fn settings(&self) -> &HubspotSettings {
        &self.settings
    }

    /// API requests sent so far (token requests not counted).
    pub fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
    }

    async fn check_access(&self) -> Result<(), HubspotError> {
        self.client.authenticate().await?;
        // One cheap read proves the token and the contacts scope.
        self.client
            .send(Request {
                method: Method::GET,
                path: "/crm/v3/objects/contacts".into(),
                query: vec![("limit", "1".into())],
                body: None,
                bucket: Bucket::Burst,
                idempotent: true,
                object: "contacts",
                cursor: "authenticate",
            })
            .await?;
        if self.leads_mode() {
            self.check_leads_object().await?;
        }
        self.ensure_task_key_property().await?;
        // The account details (for links to records in task bodies) are
        // read once here, so that writes cost only their batches.
        self.contact_link_base().await;
        Ok(())
    }
}

#[async_trait]
impl Connector for HubspotConnector {
    fn crm(&self) -> CrmKind {
        CrmKind::Hubspot
    }

    async fn authenticate(&self) -> Result<(), ConnectorError> {
        self.check_access().await.map_err(ConnectorError::from)
    }

    async fn pull(&self, stream: Stream, cursor: Option<&Cursor>) -> Result<PullPage, ConnectorError> {
        tracing::debug!(connector = "hubspot", stream = stream.as_str(), cursor = ?cursor.map(|c| &c.0), "pull");
        // Every call of the pull ends within one operation deadline, well inside the watchdog.
        handoff_runtime::within(handoff_runtime::DEFAULT_OPERATION_DEADLINE, self.pull_one(stream, cursor)).await
    }

    async fn write(&self, actions: &[Action]) -> Result<Vec<WriteOutcome>, ConnectorError> {
        let op = self.write_actions(actions);
        handoff_runtime::within(handoff_runtime::DEFAULT_OPERATION_DEADLINE, op).await.map_err(ConnectorError::from)
    }

    fn budget(&self) -> ApiBudget {
        self.client.budget()
    }

    async fn inspect(&self) -> Result<handoff_model::OrgReport, ConnectorError> {
        handoff_runtime::within(handoff_runtime::DEFAULT_OPERATION_DEADLINE, self.inspect_portal()).await
    }

    async fn create_fields(&self, fields: &[handoff_model::FieldSpec]) -> Result<Vec<String>, ConnectorError> {
        let op = self.create_properties(fields);
        handoff_runtime::within(handoff_runtime::DEFAULT_OPERATION_DEADLINE, op).await.map_err(ConnectorError::from)
    }
}

impl HubspotConnector {
    async fn pull_one(&self, stream: Stream, cursor: Option<&Cursor>) -> Result<PullPage, ConnectorError> {
        let result = match stream {
            // Off, the deal stream is not read at all: an empty, finished page.
            Stream::Opportunities if !self.settings.read_opportunities => Ok(PullPage::default()),
            Stream::Leads | Stream::Activities | Stream::Opportunities => {
                if stream == Stream::Leads {
                    self.digests.pulling_from(cursor.map(|c| c.0.as_str()));
                }
                let state = match cursor {
                    Some(c) => cursor::decode::<RecordsCursor>(stream, c)?,
                    None => RecordsCursor::default(),
                };
                self.pull_records(stream, state).await
            }
            Stream::Owners => {
                let state = match cursor {
                    Some(c) => cursor::decode::<OwnersCursor>(stream, c)?,
                    None => OwnersCursor::default(),
                };
                self.pull_owners(state).await
            }
            // HubSpot exposes no business hours or holidays: calendars come
            // from the policy file.
            Stream::Calendars => {
                if let Some(c) = cursor {
                    cursor::decode::<OwnersCursor>(stream, c)?;
                }
                Ok(PullPage::default())
            }
        };
        result.map_err(ConnectorError::from)
    }
}
