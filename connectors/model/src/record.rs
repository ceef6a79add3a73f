//! Records pulled from a CRM, in CRM-neutral form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Which CRM a record or connector belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmKind {
    Salesforce,
    Hubspot,
}

impl CrmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmKind::Salesforce => "salesforce",
            CrmKind::Hubspot => "hubspot",
        }
    }
}

impl std::fmt::Display for CrmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lead (Salesforce `Lead`) or contact (HubSpot `contact`).
///
/// The connector fills the canonical fields it can know for every CRM
/// (id, owner, timestamps, deletion); everything else — status, source,
/// score, reason code, custom fields — stays in [`Lead::fields`] under the
/// CRM's own API names, and the policy's field mapping says which is which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// The CRM's record id (`00Q…` in Salesforce, the numeric `hs_object_id` in HubSpot).
    pub id: String,
    /// Current owner: a user or a queue id; `None` when unassigned.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Every field the connector pulled, by CRM API name, as JSON values
    /// (strings, numbers, booleans, null). Datetimes stay as the CRM's strings.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    #[serde(with = "crate::stamp")]
    pub created_at: Timestamp,
    /// The CRM's modification stamp (`SystemModstamp` / `lastmodifieddate`).
    #[serde(with = "crate::stamp")]
    pub modified_at: Timestamp,
    /// Ownership history, oldest first, starting with the owner the lead was
    /// created with.
    ///
    /// A connector fills it from the CRM's field history (Salesforce
    /// `LeadHistory`, HubSpot `propertiesWithHistory`) when the CRM keeps
    /// one, and then it is complete: the daemon takes it as the truth. Left
    /// empty, the daemon keeps its own history of what successive pulls
    /// showed (each change dated at the record's modification time).
    #[serde(default)]
    pub assignments: Vec<Assignment>,
    /// Status history, oldest first, starting with the status the lead was
    /// created with; same provenance rules as `assignments`.
    #[serde(default)]
    pub status_changes: Vec<StatusChange>,
    /// History of other fields the policy judges a lead by (the fields that
    /// decide qualification, the reason code), by CRM API name, each oldest
    /// first and starting with the value the lead was created with. Same
    /// provenance rules as `assignments`: filled from the CRM's field
    /// history for the fields it tracks (Salesforce tracked fields, HubSpot
    /// `propertiesWithHistory`); a field left out here is covered by the
    /// history the daemon observes. A field with no history at all is taken
    /// to have held its current value since creation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_history: BTreeMap<String, Vec<FieldChange>>,
    /// Set when the lead became an opportunity (Salesforce conversion,
    /// HubSpot lifecycle stage `opportunity` or later).
    #[serde(default)]
    #[serde(with = "crate::stamp::option")]
    pub converted_at: Option<Timestamp>,
    /// The CRM takes no more writes on this record, nor new activities
    /// naming it: a lead Salesforce converted (`CANNOT_UPDATE_CONVERTED_LEAD`).
    /// handoff then writes no SLA fields on it, and logs its tasks on the
    /// opportunity it became.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Deleted in the CRM (Salesforce `IsDeleted`, HubSpot archived).
    #[serde(default)]
    pub deleted: bool,
    /// Merged into another record, which now carries its history.
    #[serde(default)]
    pub merged_into: Option<String>,
    /// The opportunities this lead became, joined by the daemon from the
    /// opportunity stream before the engine judges the lead (a connector
    /// leaves it empty; the store keeps opportunities apart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opportunities: Vec<Opportunity>,
}

impl Lead {
    /// A field's value as a string, if it is set and not null.
    pub fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
    }
}

/// An opportunity (Salesforce `Opportunity`) or deal (HubSpot `deal`): what
/// a lead became once sales took it on, and whoever owns it now (the AE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opportunity {
    /// The CRM's record id (`006…` in Salesforce, the deal's numeric id in HubSpot).
    pub id: String,
    /// The leads it came from: Salesforce the lead converted into it
    /// (`Lead.ConvertedOpportunityId`), HubSpot the contacts associated
    /// with the deal.
    #[serde(default)]
    pub lead_ids: Vec<String>,
    /// Its owner now (`OwnerId` / `hubspot_owner_id`); `None` when unowned.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// When it was created (`CreatedDate` / `createdate`).
    #[serde(with = "crate::stamp")]
    pub created_at: Timestamp,
    #[serde(with = "crate::stamp")]
    pub modified_at: Timestamp,
    /// Deleted in the CRM (Salesforce `IsDeleted`, HubSpot archived).
    #[serde(default)]
    pub deleted: bool,
}

/// A stretch of time a user is away, as the CRM records it (Salesforce: an
/// `Event` the user owns marked `ShowAs = 'OutOfOffice'`; HubSpot keeps no
/// such record). The daemon counts the whole days it covers as the user's
/// time off, alongside `policy.owners.time_off`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    /// The CRM record's id (the Event's).
    pub id: String,
    /// The user who is away.
    pub owner_id: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// An all-day entry: its days are calendar dates (Salesforce stores
    /// them at midnight GMT), not instants in the user's zone.
    #[serde(default)]
    pub all_day: bool,
    pub modified_at: Timestamp,
}

/// The lead was given to `owner_id` at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub owner_id: String,
    pub owner_kind: OwnerKind,
    #[serde(with = "crate::stamp")]
    pub at: Timestamp,
}

/// The lead's status field took the value `status` at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: String,
    #[serde(with = "crate::stamp")]
    pub at: Timestamp,
}

/// A field took the value `value` at `at` (`null` when it was emptied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub value: serde_json::Value,
    #[serde(with = "crate::stamp")]
    pub at: Timestamp,
}

/// Kind of logged activity. Only calls, emails and meetings are touches;
/// tasks are to-dos (and the reminders handoff itself creates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Call,
    Email,
    Meeting,
    Task,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Call => "call",
            ActivityKind::Email => "email",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Task => "task",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A call, email, meeting or task logged against a lead or its opportunity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    pub kind: ActivityKind,
    /// The lead (Salesforce `WhoId`, HubSpot associated contact) it belongs
    /// to; empty when it was logged on an opportunity only (then
    /// `opportunity_id` says which, and the daemon finds the lead).
    pub lead_id: String,
    /// The opportunity or deal it was logged on (Salesforce `WhatId` of an
    /// `Opportunity`, HubSpot an associated deal), when the connector reads
    /// opportunities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_id: Option<String>,
    /// Who logged or owns it.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// When it happened (call/email time, meeting start, task due or completion time).
    #[serde(with = "crate::stamp")]
    pub occurred_at: Timestamp,
    #[serde(with = "crate::stamp")]
    pub modified_at: Timestamp,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub direction: Option<Direction>,
    /// For tasks: closed/completed.
    #[serde(default)]
    pub completed: bool,
    /// Set when handoff created this record itself (its action key, read back
    /// from the external-id field or property). Such records never count as
    /// touches and never trigger work (echo suppression).
    #[serde(default)]
    pub handoff_key: Option<String>,
    /// Logged by automation rather than by a person: a sequence, cadence or
    /// workflow email, a list email (Salesforce `TaskSubtype` `ListEmail` or
    /// `Cadence`; HubSpot emails sent by a sequence). The policy says
    /// whether such activities count as touches (by default they do not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automated: bool,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    User,
    Queue,
}

/// A user or queue that can own leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub kind: OwnerKind,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The user's manager (Salesforce `ManagerId`; from the policy for HubSpot).
    #[serde(default)]
    pub manager_id: Option<String>,
    /// IANA zone name (Salesforce `TimeZoneSidKey`), when the CRM knows it.
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default)]
    pub modified_at: Option<Timestamp>,
}

fn default_true() -> bool {
    true
}
