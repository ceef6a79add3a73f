//! What `handoff doctor` learns about an org: the CRM-neutral report each
//! connector's [`crate::Connector::inspect`] returns, and the fields it may
//! be asked to create. Judging it against the policy is the caller's work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ApiBudget, Connector, ConnectorError, CrmKind, Owner, Stream};

/// A field's type, as far as handoff cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text (Salesforce string/textarea, HubSpot string).
    Text,
    /// A fixed list of values (Salesforce picklist, HubSpot enumeration).
    Picklist,
    Number,
    DateTime,
    Date,
    Boolean,
    /// Anything else (ids, references, emails, phones …).
    Other,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Picklist => "picklist",
            FieldKind::Number => "number",
            FieldKind::DateTime => "datetime",
            FieldKind::Date => "date",
            FieldKind::Boolean => "boolean",
            FieldKind::Other => "other",
        }
    }
}

/// One field (property) of an object, as the CRM describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldInfo {
    pub kind: FieldKind,
    /// The CRM's own name of the type (`double`, `datetime`, `enumeration` …).
    pub crm_type: String,
    /// Salesforce: an External ID; HubSpot: a property requiring unique values.
    pub unique: bool,
}

/// Which object a field lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldObject {
    /// Salesforce Lead, HubSpot contact.
    Lead,
    /// Salesforce Task (Activity), HubSpot task.
    Task,
}

/// A field handoff needs, as it should be created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub object: FieldObject,
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    /// External ID and unique (Salesforce) / unique values (HubSpot).
    pub unique: bool,
}

/// Field history tracking on the lead object (Salesforce).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTracking {
    /// The lead object keeps field history (Lead describe lists `Histories`).
    pub lead_history: bool,
    /// The lead fields tracked, by API name (`OwnerId`, `Status`), when the
    /// org says field by field (`FieldDefinition.IsFieldHistoryTracked`).
    #[serde(default)]
    pub tracked_fields: Option<Vec<String>>,
}

/// The scopes an app's token holds, against those the connector needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes {
    pub granted: Vec<String>,
    pub required: Vec<String>,
}

impl Scopes {
    /// The required scopes not granted, in order.
    pub fn missing(&self) -> Vec<&str> {
        self.required.iter().filter(|r| !self.granted.contains(r)).map(String::as_str).collect()
    }
}

/// What an org looks like to handoff. Made by reading only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgReport {
    pub crm: CrmKind,
    /// The lead object's fields (Salesforce Lead, HubSpot contact properties) by name.
    pub lead_fields: BTreeMap<String, FieldInfo>,
    /// The task key field's name and, when it exists, what it is.
    pub task_key_field: String,
    pub task_key: Option<FieldInfo>,
    /// `None` where the CRM has no such switch (HubSpot keeps every property's history).
    pub history: Option<HistoryTracking>,
    /// `None` where the CRM does not report scopes (Salesforce).
    pub scopes: Option<Scopes>,
    /// Users and queues, as a pull of the owners stream reads them.
    pub owners: Vec<Owner>,
    /// How many leads each user without a manager (who manages no one
    /// either) owns: a rep like that leaves escalations nowhere to go, an
    /// integration or admin user owning nothing does not matter. At most
    /// [`MAX_OWNER_COUNTS`] users are counted.
    #[serde(default)]
    pub leads_by_unmanaged_user: BTreeMap<String, u64>,
    /// Leads (or contacts) in the org.
    pub lead_count: u64,
    /// Activities a backfill reads.
    pub activity_count: u64,
    /// API calls a backfill of this org would take, from its page sizes.
    pub backfill_calls: u64,
    /// The budget as the CRM reported it during the inspection.
    pub budget: ApiBudget,
    /// Fields read from a related record, not written (HubSpot leads mode:
    /// the lead's contact, where fit and intent live).
    #[serde(default)]
    pub related_fields: BTreeMap<String, FieldInfo>,
    /// The status values the org offers, where they live in a list the
    /// connector reads (HubSpot's lead pipelines in leads mode); `None`
    /// where they are not listed.
    #[serde(default)]
    pub status_values: Option<Vec<StatusValue>>,
}

/// One status value the org offers: a lead pipeline stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusValue {
    /// What the status field holds (a stage id).
    pub id: String,
    /// What people see.
    pub label: String,
    /// The pipeline (or list) it belongs to, by label.
    pub group: String,
}

/// The most users whose leads `inspect` counts one by one.
pub const MAX_OWNER_COUNTS: usize = 50;

/// Active users without a manager who manage no one either (the top of a
/// hierarchy manages someone), in id order.
pub fn unmanaged_users(owners: &[Owner]) -> Vec<&Owner> {
    let managers: std::collections::BTreeSet<&str> = owners.iter().filter_map(|o| o.manager_id.as_deref()).collect();
    owners
        .iter()
        .filter(|o| o.kind == crate::OwnerKind::User && o.active)
        .filter(|o| o.manager_id.is_none() && !managers.contains(o.id.as_str()))
        .collect()
}

/// Calls needed to read `records` in pages of `page_size` (at least one).
pub fn pages(records: u64, page_size: u64) -> u64 {
    records.div_ceil(page_size.max(1)).max(1)
}

/// Every owner, read through the owners stream from its start (the same
/// pull a backfill makes). Stops after `max_pages` pages.
pub async fn read_owners<C: Connector + ?Sized>(connector: &C, max_pages: usize) -> Result<Vec<Owner>, ConnectorError> {
    let mut owners: BTreeMap<String, Owner> = BTreeMap::new();
    let mut cursor = None;
    for _ in 0..max_pages {
        let page = connector.pull(Stream::Owners, cursor.as_ref()).await?;
        for o in page.owners {
            owners.insert(o.id.clone(), o);
        }
        if page.cursor.is_some() {
            cursor = page.cursor;
        }
        if !page.has_more {
            return Ok(owners.into_values().collect());
        }
    }
    Err(ConnectorError::Protocol {
        crm: connector.crm(),
        endpoint: "owners".into(),
        message: format!("the owners listing did not end within {max_pages} pages"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_up_and_never_fall_below_one() {
        assert_eq!(pages(0, 200), 1);
        assert_eq!(pages(200, 200), 1);
        assert_eq!(pages(201, 200), 2);
        assert_eq!(pages(5, 0), 5);
    }

    #[test]
    fn missing_scopes_keep_their_order() {
        let s = Scopes { granted: vec!["b".into()], required: vec!["a".into(), "b".into(), "c".into()] };
        assert_eq!(s.missing(), vec!["a", "c"]);
    }
}
