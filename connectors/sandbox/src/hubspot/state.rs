//! The portal's state: records, associations, property definitions, owners,
//! tokens and rate-limit counters, plus the lazy materialisation of the
//! synthetic org's timeline into HubSpot records.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use handoff_model::ActivityKind;
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::leads;
use super::limits::{LimitConfig, RateLimiter};
use super::oauth::Tokens;
use super::properties::{self, PropertyDef};
use super::search::ValueKind;
use super::store::{association_types, iso_ms, parse_time_ms, Associations, Object, ObjectStore, Source, OBJECT_TYPES};
use crate::org::{EventKind, LeadStatus, OwnerRef, SyntheticOrg, TimelineCursor};

/// Owner ids: people and queues live in separate ranges so a glance at an
/// id tells which it is.
pub const USER_OWNER_ID_BASE: u64 = 70_000_000;
pub const QUEUE_OWNER_ID_BASE: u64 = 80_000_000;
const USER_ID_BASE: u64 = 9_000_000;
const TEAM_ID_BASE: u64 = 5_000;
/// First record id handed out.
const FIRST_OBJECT_ID: u64 = 1_001;
pub const PORTAL_ID: u64 = 44_237_313;
pub const APP_ID: u64 = 3_120_001;

/// The scope a request for property history is refused for when the admin
/// has withheld history (`POST /__sandbox/hubspot/history`). Which scope a
/// real portal wants for it is not recorded anywhere we trust.
pub const HISTORY_SCOPE: &str = "crm.objects.contacts.sensitive.read";

/// The `Connected` call outcome GUID.
const CALL_CONNECTED: &str = "f240bbac-87c9-4f6e-bf70-924b57d47db7";
/// The sequence the generated org enrolls leads in (`hs_sequence_id` of its emails).
const SANDBOX_SEQUENCE_ID: &str = "581001";

/// The source of an API write: the app (one per portal here).
pub const API_SOURCE: Source = Source::Integration { app_id: APP_ID };

pub fn owner_id(owner: OwnerRef) -> u64 {
    match owner {
        OwnerRef::User(i) => USER_OWNER_ID_BASE + i as u64,
        OwnerRef::Queue(i) => QUEUE_OWNER_ID_BASE + i as u64,
    }
}

/// An inline association in a create body, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssociation {
    pub to_type: String,
    pub to_id: u64,
    /// The forward type the client named.
    pub type_id: u32,
}

/// How a write failed for one record of a batch (or a single write).
pub type WriteResult = Result<u64, ApiError>;

pub struct HubState {
    pub stores: BTreeMap<String, ObjectStore>,
    pub associations: Associations,
    pub properties: BTreeMap<String, BTreeMap<String, PropertyDef>>,
    pub tokens: Tokens,
    pub limits: RateLimiter,
    next_id: u64,
    /// Which org events have been applied.
    timeline: TimelineCursor,
    /// Lead index → contact id.
    pub lead_contacts: BTreeMap<usize, u64>,
    /// Lead index → lead record id (the Leads object).
    pub lead_records: BTreeMap<usize, u64>,
    /// Lead index → the deal its conversion created.
    pub lead_deals: BTreeMap<usize, u64>,
    /// Whether the portal has the Leads object (Sales Hub Professional or
    /// Enterprise); without it every leads call answers 403 (admin
    /// `POST /__sandbox/hubspot/portal`). The org's leads exist either way,
    /// so one generated org serves contact mode and leads mode alike.
    pub leads_available: bool,
    /// Whether reads may ask for `propertiesWithHistory` (else 403
    /// `MISSING_SCOPES`, as for an app without the scope).
    pub history_readable: bool,
    /// Writes to answer with a lost response after applying them (admin).
    pub lost_responses: Option<LostResponses>,
}

/// The next `count` API writes are applied, then their answer is lost: an
/// error `status` instead of the real answer, or the real answer `delay_ms`
/// late (past a client's timeout). What a client cannot tell from a failed
/// write that never happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostResponses {
    pub count: u32,
    pub status: Option<u16>,
    pub delay_ms: Option<u64>,
}

impl HubState {
    pub fn new() -> Self {
        let mut stores = BTreeMap::new();
        for t in OBJECT_TYPES {
            stores.insert(t.to_string(), ObjectStore::default());
        }
        if let Some(contacts) = stores.get_mut("contacts") {
            // Contact emails are unique, compared without case.
            contacts.index_property("email");
        }
        HubState {
            stores,
            associations: Associations::default(),
            properties: properties::defaults(),
            tokens: Tokens::new(PORTAL_ID),
            limits: RateLimiter::new(LimitConfig::default()),
            next_id: FIRST_OBJECT_ID,
            timeline: TimelineCursor::default(),
            lead_contacts: BTreeMap::new(),
            lead_records: BTreeMap::new(),
            lead_deals: BTreeMap::new(),
            leads_available: true,
            history_readable: true,
            lost_responses: None,
        }
    }

    pub fn store(&self, object_type: &str) -> Result<&ObjectStore, ApiError> {
        self.stores.get(object_type).ok_or_else(|| ApiError::unknown_object_type(object_type))
    }

    pub fn kind_of(&self, object_type: &str, property: &str) -> ValueKind {
        self.properties
            .get(object_type)
            .and_then(|p| p.get(property))
            .map(PropertyDef::value_kind)
            .unwrap_or(ValueKind::Text)
    }

    fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Apply every org event at or before `now` not applied yet.
    pub fn materialise(&mut self, org: &SyntheticOrg, now: DateTime<Utc>) {
        let mut cursor = self.timeline;
        for event in cursor.due(org, now) {
            self.apply_event(org, &event.kind, event.at.timestamp_millis());
        }
        self.timeline = cursor;
    }

    fn apply_event(&mut self, org: &SyntheticOrg, kind: &EventKind, at_ms: i64) {
        match kind {
            EventKind::LeadCreated { lead, owner } => {
                let Some(l) = org.leads.get(*lead) else { return };
                let mut p = BTreeMap::new();
                let mut set = |k: &str, v: Option<String>| {
                    if let Some(v) = v {
                        p.insert(k.to_string(), v);
                    }
                };
                set("firstname", Some(l.first_name.clone()));
                set("lastname", l.last_name.clone());
                set("email", Some(l.email.clone()));
                set("company", l.company.clone());
                set("jobtitle", l.title.clone());
                set("numemployees", l.employees.map(|n| n.to_string()));
                set("industry", l.industry.clone());
                set("country", l.country.clone());
                set("phone", l.phone.clone());
                set("hs_analytics_source", Some(analytics_source(&l.source).to_string()));
                set("intent_action", Some(l.intent_action.clone()));
                set("hubspotscore", Some(l.score.to_string()));
                set("hs_lead_status", Some("NEW".to_string()));
                set("lifecyclestage", Some("marketingqualifiedlead".to_string()));
                set("hubspot_owner_id", Some(owner_id(*owner).to_string()));
                let id = self.insert("contacts", p, at_ms, at_ms, Source::Form);
                self.lead_contacts.insert(*lead, id);
                // The lead record a form's lead-creation workflow makes,
                // owned like its contact and associated with it (primary).
                let mut name = l.first_name.clone();
                if let Some(last) = &l.last_name {
                    name.push(' ');
                    name.push_str(last);
                }
                let mut p = BTreeMap::new();
                p.insert("hs_lead_name".to_string(), name);
                p.insert("hs_pipeline".to_string(), leads::PIPELINE_ID.to_string());
                p.insert("hs_pipeline_stage".to_string(), leads::NEW_STAGE.to_string());
                p.insert("hs_lead_type".to_string(), "NEW_BUSINESS".to_string());
                p.insert("hs_primary_contact_id".to_string(), id.to_string());
                p.insert("hubspot_owner_id".to_string(), owner_id(*owner).to_string());
                if let Some(stage) = leads::stage(leads::NEW_STAGE) {
                    p.insert(leads::date_entered_property(stage), iso_ms(at_ms));
                }
                let lead_id = self.insert("leads", p, at_ms, at_ms, Source::Automation);
                self.associations.link("leads", lead_id, "contacts", id);
                self.lead_records.insert(*lead, lead_id);
            }
            EventKind::Assigned { lead, owner } => {
                // Routing is a workflow; the lead's owner follows the
                // contact's (HubSpot's "sync lead owner" setting).
                let change = [("hubspot_owner_id", Some(owner_id(*owner).to_string()))];
                self.patch_lead(*lead, at_ms, &change, Source::Automation);
                self.patch_lead_record(*lead, at_ms, &change, Source::Automation);
            }
            EventKind::Touch { lead, by, kind, automated } => {
                let Some(contact) = self.lead_contact(*lead) else { return };
                let owner = owner_id(OwnerRef::User(*by)).to_string();
                let ts = iso_ms(at_ms);
                let (object_type, props): (&str, Vec<(&str, String)>) = match kind {
                    ActivityKind::Call => (
                        "calls",
                        vec![
                            ("hs_call_title", "Call".to_string()),
                            ("hs_call_direction", "OUTBOUND".to_string()),
                            ("hs_call_status", "COMPLETED".to_string()),
                            ("hs_call_disposition", CALL_CONNECTED.to_string()),
                        ],
                    ),
                    ActivityKind::Email if *automated => (
                        "emails",
                        vec![
                            ("hs_email_subject", "Sequence email".to_string()),
                            ("hs_email_direction", "EMAIL".to_string()),
                            ("hs_email_status", "SENT".to_string()),
                            // HubSpot sets the sequence on the emails a sequence sends.
                            ("hs_sequence_id", SANDBOX_SEQUENCE_ID.to_string()),
                        ],
                    ),
                    ActivityKind::Email => (
                        "emails",
                        vec![
                            ("hs_email_subject", "Following up".to_string()),
                            ("hs_email_direction", "EMAIL".to_string()),
                            ("hs_email_status", "SENT".to_string()),
                        ],
                    ),
                    ActivityKind::Meeting => ("meetings", meeting_properties("Intro meeting", at_ms)),
                    ActivityKind::Task => (
                        "tasks",
                        vec![
                            ("hs_task_subject", "Follow up".to_string()),
                            ("hs_task_status", "COMPLETED".to_string()),
                            ("hs_task_type", "TODO".to_string()),
                            ("hs_task_completion_date", ts.clone()),
                        ],
                    ),
                };
                let mut p: BTreeMap<String, String> = props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                p.insert("hs_timestamp".to_string(), ts.clone());
                p.insert("hubspot_owner_id".to_string(), owner);
                let id = self.insert(object_type, p, at_ms, at_ms, Source::CrmUi { user_id: Some(user_id(*by)) });
                self.associations.link(object_type, id, "contacts", contact);
                if let Some(lead_record) = self.lead_record(*lead) {
                    self.associations.link("leads", lead_record, object_type, id);
                }
                self.patch_lead(*lead, at_ms, &[("hs_last_sales_activity_timestamp", Some(ts))], Source::Calculated);
            }
            EventKind::StatusChanged { lead, status } => {
                let (lead_status, stage, reason): (&str, Option<&str>, Option<String>) = match status {
                    LeadStatus::New => ("NEW", None, None),
                    LeadStatus::Working => ("IN_PROGRESS", None, None),
                    LeadStatus::Accepted => ("CONNECTED", Some("salesqualifiedlead"), None),
                    LeadStatus::Rejected { reason } => ("UNQUALIFIED", None, reason.clone()),
                    LeadStatus::ClosedUnresponsive { reason } => ("BAD_TIMING", None, reason.clone()),
                    LeadStatus::Converted => ("OPEN_DEAL", Some("opportunity"), None),
                };
                let mut changes = vec![("hs_lead_status", Some(lead_status.to_string()))];
                if let Some(stage) = stage {
                    changes.push(("lifecyclestage", Some(stage.to_string())));
                }
                if let Some(reason) = &reason {
                    changes.push(("disqualification_reason", Some(reason.clone())));
                }
                // The owner works the lead in the UI; a queue's leads change by workflow.
                let source = match self.lead_contact(*lead).and_then(|id| self.stores.get("contacts")?.get(id)) {
                    Some(c) => owner_source(c.properties.get("hubspot_owner_id")),
                    None => Source::Automation,
                };
                self.patch_lead(*lead, at_ms, &changes, source);
                let mut lead_changes = vec![("hs_pipeline_stage", Some(leads::stage_for(status).to_string()))];
                if let Some(reason) = reason {
                    lead_changes.push(("hs_lead_disqualification_reason", Some(reason)));
                }
                self.patch_lead_record(*lead, at_ms, &lead_changes, source);
            }
            EventKind::Deleted { lead } => {
                if let Some(id) = self.lead_contact(*lead) {
                    self.archive("contacts", id, at_ms);
                }
                if let Some(id) = self.lead_record(*lead) {
                    self.archive("leads", id, at_ms);
                }
            }
            EventKind::Merged { lead, into } => {
                if let (Some(&loser), Some(&survivor)) = (self.lead_contacts.get(lead), self.lead_contacts.get(into)) {
                    // A timeline merge of already-gone contacts is simply skipped.
                    let _ = self.merge_contacts(survivor, loser, at_ms);
                }
                if let (Some(&loser), Some(&survivor)) = (self.lead_records.get(lead), self.lead_records.get(into)) {
                    let _ = self.merge_records("leads", survivor, loser, at_ms);
                }
            }
            EventKind::OpportunityCreated { lead, owner } => {
                let Some(contact) = self.lead_contact(*lead) else { return };
                let Some(l) = org.leads.get(*lead) else { return };
                // The AE creates the deal in the UI from the converted
                // contact, in the default pipeline's first stage.
                let name = match &l.company {
                    Some(company) => format!("{company} - new business"),
                    None => format!("{} - new business", l.email),
                };
                let mut p = BTreeMap::new();
                p.insert("dealname".to_string(), name);
                p.insert("dealstage".to_string(), properties::DEAL_STAGES[0].to_string());
                p.insert("pipeline".to_string(), properties::DEAL_PIPELINE.to_string());
                p.insert("dealtype".to_string(), "newbusiness".to_string());
                p.insert("amount".to_string(), deal_amount(l.employees).to_string());
                p.insert("closedate".to_string(), iso_ms(at_ms + DEAL_CLOSE_AFTER_MS));
                p.insert("hubspot_owner_id".to_string(), owner_id(OwnerRef::User(*owner)).to_string());
                let id = self.insert("deals", p, at_ms, at_ms, Source::CrmUi { user_id: Some(user_id(*owner)) });
                self.associations.link("deals", id, "contacts", contact);
                self.lead_deals.insert(*lead, id);
            }
            EventKind::OpportunityMeeting { lead, by } => {
                let Some(deal) = self.lead_deal(*lead) else { return };
                let mut p: BTreeMap<String, String> = meeting_properties("Discovery meeting", at_ms)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                p.insert("hs_timestamp".to_string(), iso_ms(at_ms));
                p.insert("hubspot_owner_id".to_string(), owner_id(OwnerRef::User(*by)).to_string());
                let id = self.insert("meetings", p, at_ms, at_ms, Source::CrmUi { user_id: Some(user_id(*by)) });
                // Logged on the deal's record: associated with the deal only.
                self.associations.link("meetings", id, "deals", deal);
            }
        }
    }

    /// The live deal an org lead's conversion created.
    fn lead_deal(&self, lead: usize) -> Option<u64> {
        let id = *self.lead_deals.get(&lead)?;
        self.stores.get("deals")?.get(id).filter(|o| o.is_searchable()).map(|o| o.id)
    }

    /// The contact a lead of the org became, following merges (events
    /// about a merged-away lead land on its survivor).
    fn lead_contact(&self, lead: usize) -> Option<u64> {
        self.lead_contacts.get(&lead).map(|id| self.resolve("contacts", *id))
    }

    /// The lead record of an org lead, following merges.
    fn lead_record(&self, lead: usize) -> Option<u64> {
        self.lead_records.get(&lead).map(|id| self.resolve("leads", *id))
    }

    fn patch_lead(&mut self, lead: usize, at_ms: i64, changes: &[(&str, Option<String>)], source: Source) {
        let Some(id) = self.lead_contact(lead) else { return };
        self.patch_record("contacts", id, at_ms, changes, source);
    }

    fn patch_lead_record(&mut self, lead: usize, at_ms: i64, changes: &[(&str, Option<String>)], source: Source) {
        let Some(id) = self.lead_record(lead) else { return };
        self.patch_record("leads", id, at_ms, changes, source);
    }

    /// Apply a timeline change to a live record (a lead's stage change also
    /// stamps the stage's entry time).
    fn patch_record(&mut self, t: &str, id: u64, at_ms: i64, changes: &[(&str, Option<String>)], source: Source) {
        let Some(store) = self.stores.get_mut(t) else { return };
        store.update(id, |obj| {
            if !obj.is_searchable() {
                return;
            }
            let stage_before = obj.properties.get("hs_pipeline_stage").map(str::to_string);
            for (k, v) in changes {
                obj.set(k, v.clone(), at_ms, source);
            }
            if t == "leads" {
                stamp_stage_entry(obj, stage_before.as_deref(), at_ms);
            }
            obj.updated_at_ms = obj.updated_at_ms.max(at_ms);
        });
    }

    /// Insert a new record without validation (org timeline and admin);
    /// `created_by` is the source of its values in the property history.
    pub fn insert(
        &mut self,
        object_type: &str,
        properties: BTreeMap<String, String>,
        created_at_ms: i64,
        updated_at_ms: i64,
        created_by: Source,
    ) -> u64 {
        let id = self.allocate_id();
        if let Some(store) = self.stores.get_mut(object_type) {
            let mut obj = Object::new(id, created_at_ms, updated_at_ms, created_by);
            obj.properties = properties.into_iter().collect();
            store.put(obj);
        }
        id
    }

    /// Follow merges: the id a merged-away contact now answers with.
    pub fn resolve(&self, object_type: &str, id: u64) -> u64 {
        let mut id = id;
        for _ in 0..16 {
            match self.stores.get(object_type).and_then(|s| s.get(id)).and_then(|o| o.merged_into) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    /// Turn a properties map from a request into stored strings, refusing
    /// unknown and read-only properties. Datetimes are normalised to ISO
    /// millis; numbers and booleans become their string form; `null` and
    /// `""` clear the property (`None`).
    pub fn validate_properties(
        &self,
        object_type: &str,
        props: &Map<String, Value>,
    ) -> Result<BTreeMap<String, Option<String>>, ApiError> {
        let defs = self.properties.get(object_type).ok_or_else(|| ApiError::unknown_object_type(object_type))?;
        let unknown: Vec<String> = props.keys().filter(|k| !defs.contains_key(*k)).cloned().collect();
        if !unknown.is_empty() {
            return Err(ApiError::unknown_properties(&unknown));
        }
        let mut out = BTreeMap::new();
        for (k, v) in props {
            let def = &defs[k];
            if def.read_only_value && k != "hs_task_completion_date" {
                return Err(ApiError::validation(format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":\"\\\"{k}\\\" is a read only property; its value cannot be set.\",\"error\":\"READ_ONLY_VALUE\",\"name\":\"{k}\"}}]"
                )));
            }
            let s = match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => return Err(ApiError::validation(format!("Property {k} must be a string, number or boolean"))),
            };
            if let Some(v) = &s {
                if def.kind == "enumeration" && !def.options.is_empty() && !def.options.iter().any(|(_, o)| o == v) {
                    return Err(ApiError::validation(format!(
                        "Property values were not valid: [{{\"isValid\":false,\"message\":\"{v} was not one of the allowed options: [{}]\",\"error\":\"INVALID_OPTION\",\"name\":\"{k}\"}}]",
                        def.options.iter().map(|(_, o)| o.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            let s = match (s, def.value_kind()) {
                (Some(s), ValueKind::DateTime) => match parse_time_ms(&s) {
                    Some(ms) => Some(iso_ms(ms)),
                    None => {
                        return Err(ApiError::validation(format!(
                            "Property values were not valid: [{{\"isValid\":false,\"message\":\"{s} was not a valid long.\",\"error\":\"INVALID_LONG\",\"name\":\"{k}\"}}]"
                        )))
                    }
                },
                (Some(s), ValueKind::Number) if s.parse::<f64>().is_err() => {
                    return Err(ApiError::validation(format!(
                        "Property values were not valid: [{{\"isValid\":false,\"message\":\"{s} was not a valid number.\",\"error\":\"INVALID_FLOAT\",\"name\":\"{k}\"}}]"
                    )))
                }
                (s, _) => s,
            };
            out.insert(k.clone(), s);
        }
        Ok(out)
    }

    /// Another live record of `object_type` already holding a unique value
    /// among `values` (email for contacts, `hasUniqueValue` properties).
    pub fn unique_conflict(
        &self,
        object_type: &str,
        values: &BTreeMap<String, Option<String>>,
        except: Option<u64>,
    ) -> Option<(String, u64)> {
        let defs = self.properties.get(object_type)?;
        let store = self.stores.get(object_type)?;
        for (k, v) in values {
            let Some(v) = v else { continue };
            let unique = defs.get(k).is_some_and(|d| d.has_unique_value) || (object_type == "contacts" && k == "email");
            if !unique {
                continue;
            }
            let same = |x: &str| {
                if object_type == "contacts" && k == "email" {
                    x.eq_ignore_ascii_case(v)
                } else {
                    x == v
                }
            };
            let found = match store.find_indexed(k, v) {
                Some(hits) => hits.into_iter().find(|o| o.is_searchable() && o.properties.get(k).is_some_and(same)),
                None => store.iter().find(|o| o.is_searchable() && o.properties.get(k).is_some_and(same)),
            };
            if let Some(o) = found.filter(|o| Some(o.id) != except) {
                return Some((k.clone(), o.id));
            }
        }
        None
    }

    /// The 409 for a unique-value clash, as HubSpot words it for contacts.
    pub fn conflict_error(object_type: &str, property: &str, existing_id: u64) -> ApiError {
        let message = if object_type == "contacts" && property == "email" {
            format!("Contact already exists. Existing ID: {existing_id}")
        } else {
            format!(
                "A {} with the unique value for property {property} already exists. Existing ID: {existing_id}",
                singular(object_type)
            )
        };
        ApiError::conflict(message)
            .with_context(json!({"existingId": [existing_id.to_string()], "propertyName": [property]}))
    }

    /// Validate and create one record (API write). Associations must point
    /// at live records with the documented HUBSPOT_DEFINED type id.
    pub fn create(
        &mut self,
        object_type: &str,
        props: &Map<String, Value>,
        associations: &[Value],
        now_ms: i64,
    ) -> WriteResult {
        let values = self.validate_properties(object_type, props)?;
        let required: &[&str] = match object_type {
            "contacts" => &[],
            "leads" => &["hs_lead_name"],
            // A deal without a pipeline goes into the default one.
            "deals" => &["dealname", "dealstage"],
            _ => &["hs_timestamp"],
        };
        let missing: Vec<&str> =
            required.iter().copied().filter(|p| !values.get(*p).is_some_and(|v| v.is_some())).collect();
        if !missing.is_empty() {
            return Err(ApiError::validation(format!(
                "Error creating {}. Some required properties were not set.",
                singular(object_type).to_uppercase()
            ))
            .with_context(json!({ "properties": missing })));
        }
        if object_type == "contacts"
            && !["email", "firstname", "lastname"].iter().any(|k| values.get(*k).is_some_and(|v| v.is_some()))
        {
            return Err(ApiError::validation("Error creating CONTACT. Some required properties were not set.")
                .with_context(json!({"properties": ["email", "firstname", "lastname"]})));
        }
        let links = self.parse_associations(object_type, associations)?;
        let primary_contact = links.iter().find(|l| l.to_type == "contacts").map(|l| l.to_id);
        if object_type == "leads" && primary_contact.is_none() {
            // "Must be associated with an existing contact" (the leads guide);
            // the exact wording of the refusal is not recorded.
            return Err(ApiError::validation(
                "Error creating LEAD. A lead must be associated with an existing contact (associationTypeId 578, LEAD_TO_PRIMARY_CONTACT).",
            ));
        }
        if let Some((property, existing)) = self.unique_conflict(object_type, &values, None) {
            return Err(Self::conflict_error(object_type, &property, existing));
        }
        let mut stored: BTreeMap<String, String> = values.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        if object_type == "deals" {
            stored.entry("pipeline".to_string()).or_insert_with(|| properties::DEAL_PIPELINE.to_string());
        }
        if object_type == "leads" {
            stored.entry("hs_pipeline".to_string()).or_insert_with(|| leads::PIPELINE_ID.to_string());
            stored.entry("hs_pipeline_stage".to_string()).or_insert_with(|| leads::NEW_STAGE.to_string());
            if let Some(contact) = primary_contact {
                stored.insert("hs_primary_contact_id".to_string(), contact.to_string());
            }
            if let Some(stage) = stored.get("hs_pipeline_stage").and_then(|s| leads::stage(s)) {
                stored.insert(leads::date_entered_property(stage), iso_ms(now_ms));
            }
        }
        let id = self.insert(object_type, stored, now_ms, now_ms, API_SOURCE);
        for l in links {
            self.associations.link_typed(object_type, id, &l.to_type, l.to_id, Some(l.type_id));
        }
        Ok(id)
    }

    fn parse_associations(&self, object_type: &str, associations: &[Value]) -> Result<Vec<NewAssociation>, ApiError> {
        let mut out = Vec::new();
        for a in associations {
            let to_id = a
                .pointer("/to/id")
                .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                .ok_or_else(|| ApiError::validation("Invalid input JSON: associations[].to.id is required"))?;
            let types = a.get("types").and_then(Value::as_array).cloned().unwrap_or_default();
            if types.is_empty() {
                return Err(ApiError::validation("Invalid input JSON: associations[].types must not be empty"));
            }
            for t in types {
                let category = t.get("associationCategory").and_then(Value::as_str).unwrap_or("");
                let type_id = t.get("associationTypeId").and_then(Value::as_u64).unwrap_or(0);
                let target = OBJECT_TYPES
                    .iter()
                    .find(|to| association_types(object_type, to).iter().any(|(id, _)| u64::from(*id) == type_id));
                let (Some(to_type), "HUBSPOT_DEFINED") = (target, category) else {
                    return Err(ApiError::validation(format!(
                        "{category} {type_id} is not a valid association type between {object_type} and any object"
                    )));
                };
                let live = self
                    .stores
                    .get(*to_type)
                    .and_then(|s| s.get(to_id))
                    .is_some_and(|o| !o.is_archived() && o.merged_into.is_none());
                if !live {
                    return Err(ApiError::validation(format!("No {} with ID {to_id} exists", singular(to_type)))
                        .with_context(json!({"ids": [to_id.to_string()]})));
                }
                out.push(NewAssociation { to_type: to_type.to_string(), to_id, type_id: type_id as u32 });
            }
        }
        Ok(out)
    }

    /// Validate and update one live record.
    pub fn update(&mut self, object_type: &str, id: u64, props: &Map<String, Value>, now_ms: i64) -> WriteResult {
        let values = self.validate_properties(object_type, props)?;
        let id = self.resolve(object_type, id);
        if self.store(object_type)?.get(id).is_none_or(|o| o.is_archived()) {
            return Err(ApiError::not_found(format!("Object not found.  objectId are usually numeric. {id}")));
        }
        if let Some((property, existing)) = self.unique_conflict(object_type, &values, Some(id)) {
            return Err(Self::conflict_error(object_type, &property, existing));
        }
        let is_task = object_type == "tasks";
        if let Some(s) = self.stores.get_mut(object_type) {
            s.update(id, |obj| {
                let completing = is_task
                    && values.get("hs_task_status").is_some_and(|v| v.as_deref() == Some("COMPLETED"))
                    && obj.properties.get("hs_task_status") != Some("COMPLETED");
                let stage_before = obj.properties.get("hs_pipeline_stage").map(str::to_string);
                for (k, v) in values {
                    obj.set(&k, v, now_ms, API_SOURCE);
                }
                // HubSpot stamps a task's completion when its status becomes COMPLETED.
                if completing {
                    obj.set("hs_task_completion_date", Some(iso_ms(now_ms)), now_ms, API_SOURCE);
                }
                if object_type == "leads" {
                    stamp_stage_entry(obj, stage_before.as_deref(), now_ms);
                }
                obj.updated_at_ms = now_ms.max(obj.updated_at_ms);
            });
        }
        Ok(id)
    }

    /// Archive (soft delete). Archiving does not move `updatedAt`, as on
    /// the real service. Returns false when there was nothing live to archive.
    pub fn archive(&mut self, object_type: &str, id: u64, at_ms: i64) -> bool {
        let Some(store) = self.stores.get_mut(object_type) else { return false };
        store
            .update(id, |obj| {
                let live = !obj.is_archived();
                if live {
                    obj.archived_at_ms = Some(at_ms);
                }
                live
            })
            .unwrap_or(false)
    }

    /// Merge contact `loser` into `survivor`: the survivor keeps its values
    /// (filling blanks from the loser), records the loser in
    /// `hs_merged_object_ids`, takes over its associations; the loser's id
    /// answers with the survivor from then on.
    pub fn merge_contacts(&mut self, survivor: u64, loser: u64, at_ms: i64) -> Result<u64, ApiError> {
        self.merge_records("contacts", survivor, loser, at_ms)
    }

    /// [`HubState::merge_contacts`] for any object type (the timeline merges
    /// the lead records of merged leads the same way).
    pub fn merge_records(&mut self, t: &str, survivor: u64, loser: u64, at_ms: i64) -> Result<u64, ApiError> {
        let survivor = self.resolve(t, survivor);
        let loser = self.resolve(t, loser);
        if survivor == loser {
            return Err(ApiError::validation(format!("Cannot merge a {} into itself", singular(t))));
        }
        let store = self.store(t)?;
        let (Some(s), Some(l)) = (store.get(survivor).cloned(), store.get(loser).cloned()) else {
            return Err(ApiError::not_found("Object not found.  objectId are usually numeric."));
        };
        if s.is_archived() || l.is_archived() {
            return Err(ApiError::not_found("Object not found.  objectId are usually numeric."));
        }
        let mut s = s;
        for (k, v) in l.properties.iter() {
            if k != "email" && k != "hs_merged_object_ids" && !s.properties.contains_key(k) {
                // The survivor takes the value with the history behind it.
                s.properties.insert(k, v);
                s.changes.insert(k, l.history(t, k));
            }
        }
        let mut merged: BTreeSet<String> = s
            .properties
            .get("hs_merged_object_ids")
            .map(|v| v.split(';').filter(|x| !x.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        merged.insert(loser.to_string());
        if let Some(ids) = l.properties.get("hs_merged_object_ids") {
            merged.extend(ids.split(';').filter(|x| !x.is_empty()).map(str::to_string));
        }
        s.set(
            "hs_merged_object_ids",
            Some(merged.into_iter().collect::<Vec<_>>().join(";")),
            at_ms,
            Source::Calculated,
        );
        s.updated_at_ms = s.updated_at_ms.max(at_ms);
        let mut l = l;
        l.merged_into = Some(survivor);
        l.updated_at_ms = l.updated_at_ms.max(at_ms);
        if let Some(store) = self.stores.get_mut(t) {
            store.put(s);
            store.put(l);
        }
        self.associations.remap(t, loser, survivor);
        Ok(survivor)
    }

    /// The `associations` block of a record for the requested target types.
    pub fn render_associations(&self, object_type: &str, id: u64, to_types: &[String]) -> Option<Value> {
        let mut block = Map::new();
        for to in to_types {
            let ends = self.associations.of(object_type, id, to);
            if ends.is_empty() {
                continue;
            }
            let label = format!("{}_to_{}", singular(object_type), singular(to));
            let results: Vec<Value> = ends.iter().map(|e| json!({"id": e.to_id.to_string(), "type": label})).collect();
            block.insert(to.clone(), json!({ "results": results }));
        }
        (!block.is_empty()).then_some(Value::Object(block))
    }
}

impl Default for HubState {
    fn default() -> Self {
        Self::new()
    }
}

/// Stamp the entry time of a lead's stage when it moved to a new one, as
/// HubSpot's calculated `hs_v2_date_entered_*` properties do.
fn stamp_stage_entry(obj: &mut Object, before: Option<&str>, at_ms: i64) {
    let Some(now) = obj.properties.get("hs_pipeline_stage").map(str::to_string) else { return };
    if before == Some(now.as_str()) {
        return;
    }
    if let Some(stage) = leads::stage(&now) {
        obj.set(&leads::date_entered_property(stage), Some(iso_ms(at_ms)), at_ms, Source::Calculated);
    }
}

/// A logged meeting's own properties (title, outcome, start and end), as
/// the timeline's meetings carry them; the caller adds `hs_timestamp` and
/// the owner.
fn meeting_properties(title: &str, at_ms: i64) -> Vec<(&'static str, String)> {
    vec![
        ("hs_meeting_title", title.to_string()),
        ("hs_meeting_outcome", "COMPLETED".to_string()),
        ("hs_meeting_start_time", iso_ms(at_ms)),
        ("hs_meeting_end_time", iso_ms(at_ms + 30 * 60_000)),
    ]
}

/// A new deal's close date: a quarter after it was created.
const DEAL_CLOSE_AFTER_MS: i64 = 90 * 86_400_000;

/// A deal's amount in the portal's currency, by the company's size.
fn deal_amount(employees: Option<u32>) -> u64 {
    match employees.unwrap_or(0) {
        0..=49 => 6_000,
        50..=499 => 24_000,
        _ => 90_000,
    }
}

/// The HubSpot user id of the org's user `index` (not its owner id).
pub fn user_id(index: usize) -> u64 {
    USER_ID_BASE + index as u64
}

/// Who changes a lead owned by `owner` (an owner id): the owner in the UI
/// when a person owns it, a workflow when a queue does.
fn owner_source(owner: Option<&str>) -> Source {
    match owner.and_then(|o| o.parse::<u64>().ok()) {
        Some(id) if (USER_OWNER_ID_BASE..QUEUE_OWNER_ID_BASE).contains(&id) => {
            Source::CrmUi { user_id: Some(USER_ID_BASE + (id - USER_OWNER_ID_BASE)) }
        }
        _ => Source::Automation,
    }
}

/// `contacts` → `contact`.
pub fn singular(object_type: &str) -> &str {
    object_type.strip_suffix('s').unwrap_or(object_type)
}

/// HubSpot's original-source enumeration for the generator's lead sources.
fn analytics_source(source: &str) -> &'static str {
    match source {
        "Web" => "ORGANIC_SEARCH",
        "Demo Request" => "DIRECT_TRAFFIC",
        "Content Download" => "PAID_SEARCH",
        "Event" => "OFFLINE",
        "Outbound" => "OTHER_CAMPAIGNS",
        "Email" => "EMAIL_MARKETING",
        "Social" => "SOCIAL_MEDIA",
        "Referral" => "REFERRALS",
        _ => "OTHER_CAMPAIGNS",
    }
}

/// The owners of the org as `PublicOwner` JSON: users as PERSON with their
/// team (primary), queues as QUEUE. No manager: HubSpot has none.
pub fn owners(org: &SyntheticOrg) -> Vec<Value> {
    let teams: Vec<String> = org.users.iter().map(|u| u.team.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let created = iso_ms(org.config.start_at.timestamp_millis());
    let mut out: Vec<Value> = org
        .users
        .iter()
        .map(|u| {
            let team_idx = teams.iter().position(|t| *t == u.team).unwrap_or(0);
            json!({
                "id": owner_id(OwnerRef::User(u.index)).to_string(),
                "email": u.email,
                "type": "PERSON",
                "firstName": u.first_name,
                "lastName": u.last_name,
                "userId": user_id(u.index),
                "userIdIncludingInactive": user_id(u.index),
                "createdAt": created,
                "updatedAt": created,
                "archived": false,
                "teams": [{"id": (TEAM_ID_BASE + team_idx as u64).to_string(), "name": u.team, "primary": true}],
            })
        })
        .collect();
    out.extend(org.queues.iter().map(|q| {
        json!({
            "id": owner_id(OwnerRef::Queue(q.index)).to_string(),
            "type": "QUEUE",
            "firstName": q.name,
            "lastName": "",
            "createdAt": created,
            "updatedAt": created,
            "archived": false,
            "teams": [],
        })
    }));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::org::{OrgConfig, OrgEvent};

    /// `org` with the AE's side added by hand (what `OrgConfig::opportunities`
    /// generates): every conversion creates a deal owned by user `ae`, and
    /// every other one gets a meeting on the deal two hours later. The
    /// timeline stays sorted, each deal after its conversion.
    pub(crate) fn with_opportunities(mut org: SyntheticOrg, ae: usize) -> SyntheticOrg {
        let converted: Vec<(usize, DateTime<Utc>)> = org
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StatusChanged { lead, status: LeadStatus::Converted } => Some((*lead, e.at)),
                _ => None,
            })
            .collect();
        for (i, (lead, at)) in converted.into_iter().enumerate() {
            org.events.push(OrgEvent { at, kind: EventKind::OpportunityCreated { lead, owner: ae } });
            if i % 2 == 0 {
                let met_at = at + chrono::Duration::hours(2);
                org.events.push(OrgEvent { at: met_at, kind: EventKind::OpportunityMeeting { lead, by: ae } });
            }
        }
        // Stable: an event keeps its place among those at the same instant.
        org.events.sort_by_key(|e| e.at);
        org
    }

    #[test]
    fn a_generated_org_with_opportunities_materialises_a_deal_per_conversion() {
        let org =
            crate::generate::generate(&OrgConfig { leads: 150, days: 20, opportunities: true, ..OrgConfig::default() });
        let now = org.config.end_at();
        let mut st = HubState::new();
        st.materialise(&org, now);
        let due = org.events.iter().filter(|e| e.at <= now);
        let (mut created, mut met) = (0, 0);
        for e in due {
            match e.kind {
                EventKind::OpportunityCreated { lead, owner } => {
                    created += 1;
                    let deal = st.stores["deals"].get(st.lead_deals[&lead]).unwrap();
                    assert_eq!(
                        deal.properties.get("hubspot_owner_id"),
                        Some(owner_id(OwnerRef::User(owner)).to_string().as_str())
                    );
                    assert!(org.users[owner].ae, "lead {lead}: the deal is an AE's");
                }
                EventKind::OpportunityMeeting { .. } => met += 1,
                _ => {}
            }
        }
        assert!(created > 0, "the generator converts some leads");
        assert_eq!(st.stores["deals"].len(), created);
        let on_deals =
            st.stores["meetings"].iter().filter(|m| !st.associations.of("meetings", m.id, "deals").is_empty()).count();
        assert_eq!(on_deals, met);
    }

    #[test]
    fn conversions_become_deals_of_the_ae_and_deal_meetings_are_on_the_deal_only() {
        let base = crate::generate::generate(&OrgConfig { leads: 120, days: 20, ..OrgConfig::default() });
        let ae = base.users.len() - 1;
        let org = with_opportunities(base, ae);
        let now = org.config.end_at();
        let mut st = HubState::new();
        st.materialise(&org, now);
        let due: Vec<&OrgEvent> = org.events.iter().filter(|e| e.at <= now).collect();
        let created: Vec<(usize, i64)> = due
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::OpportunityCreated { lead, .. } => Some((lead, e.at.timestamp_millis())),
                _ => None,
            })
            .collect();
        let meetings = due.iter().filter(|e| matches!(e.kind, EventKind::OpportunityMeeting { .. })).count();
        assert!(created.len() >= 2 && meetings >= 1, "the org converts some leads: {created:?}");
        assert_eq!(st.stores["deals"].len(), created.len(), "one deal per conversion");

        let ae_owner = owner_id(OwnerRef::User(ae)).to_string();
        for (lead, at_ms) in &created {
            let deal = st.lead_deals[lead];
            let d = st.stores["deals"].get(deal).unwrap();
            assert_eq!(d.properties.get("hubspot_owner_id"), Some(ae_owner.as_str()), "owned by the AE");
            assert_eq!(d.created_at_ms, *at_ms, "created at the conversion");
            assert_eq!(d.property("deals", "createdate"), Some(iso_ms(*at_ms)));
            assert_eq!(d.properties.get("dealstage"), Some("appointmentscheduled"));
            assert_eq!(d.properties.get("pipeline"), Some("default"));
            assert!(d.properties.get("dealname").is_some_and(|n| !n.is_empty()));
            assert!(d.properties.get("amount").is_some_and(|a| a.parse::<u64>().is_ok()));
            let contact = st.lead_contact(*lead).unwrap();
            let to_contacts = st.associations.of("deals", deal, "contacts");
            assert_eq!(to_contacts.iter().map(|e| (e.to_id, e.type_id)).collect::<Vec<_>>(), vec![(contact, 3)]);
            assert!(st.associations.of("contacts", contact, "deals").iter().any(|e| e.to_id == deal && e.type_id == 4));
            // The conversion came first: the contact is an open deal.
            let c = st.stores["contacts"].get(contact).unwrap();
            assert_eq!(c.properties.get("hs_lead_status"), Some("OPEN_DEAL"));
        }

        let on_deals: Vec<&Object> = st.stores["meetings"]
            .iter()
            .filter(|m| !st.associations.of("meetings", m.id, "deals").is_empty())
            .collect();
        assert_eq!(on_deals.len(), meetings, "one meeting per deal meeting");
        for m in on_deals {
            assert!(
                st.associations.of("meetings", m.id, "contacts").is_empty(),
                "meeting {} is on the deal only",
                m.id
            );
            assert!(st.associations.of("meetings", m.id, "leads").is_empty());
            let deal = st.associations.of("meetings", m.id, "deals")[0];
            assert_eq!(deal.type_id, 212, "meeting → deal");
            assert!(st
                .associations
                .of("deals", deal.to_id, "meetings")
                .iter()
                .any(|e| e.to_id == m.id && e.type_id == 211));
            assert_eq!(m.properties.get("hubspot_owner_id"), Some(ae_owner.as_str()));
            assert_eq!(m.properties.get("hs_meeting_title"), Some("Discovery meeting"));
            assert_eq!(m.properties.get("hs_timestamp"), m.properties.get("hs_meeting_start_time"));
            let start = m.properties.get("hs_meeting_start_time").and_then(parse_time_ms).unwrap();
            let deal_created = st.stores["deals"].get(deal.to_id).unwrap().created_at_ms;
            assert_eq!(start, deal_created + 2 * 3_600_000);
            assert_eq!(m.created_at_ms, start);
        }
        // Every other meeting is a touch on a contact, as before.
        let touches =
            due.iter().filter(|e| matches!(e.kind, EventKind::Touch { kind: ActivityKind::Meeting, .. })).count();
        assert_eq!(st.stores["meetings"].len(), touches + meetings);
    }

    #[test]
    fn timeline_materialises_up_to_now_with_hubspot_values() {
        let org = crate::generate::generate(&OrgConfig { leads: 80, days: 6, ..OrgConfig::default() });
        let now = org.config.start_at + chrono::Duration::days(3);
        let mut st = HubState::new();
        st.materialise(&org, now);
        let due: Vec<_> = org.events.iter().filter(|e| e.at <= now).collect();
        let created = due.iter().filter(|e| matches!(e.kind, EventKind::LeadCreated { .. })).count();
        assert!(created > 0 && created < 80, "half the timeline: {created}");
        assert_eq!(st.stores["contacts"].len(), created);
        let touches = due.iter().filter(|e| matches!(e.kind, EventKind::Touch { .. })).count();
        let engagements: usize = ["calls", "emails", "meetings", "tasks"].iter().map(|t| st.stores[*t].len()).sum();
        assert_eq!(engagements, touches);
        for t in ["calls", "emails", "meetings", "tasks"] {
            for o in st.stores[t].iter() {
                assert_eq!(st.associations.of(t, o.id, "contacts").len(), 1, "{t} {} has its contact", o.id);
                assert!(o.properties["hubspot_owner_id"].parse::<u64>().unwrap() >= USER_OWNER_ID_BASE);
            }
        }
        for (lead, id) in &st.lead_contacts {
            let c = st.stores["contacts"].get(*id).unwrap();
            let status = c.properties.get("hs_lead_status");
            assert!(
                matches!(
                    status,
                    Some("NEW" | "IN_PROGRESS" | "CONNECTED" | "UNQUALIFIED" | "BAD_TIMING" | "OPEN_DEAL")
                ),
                "lead {lead}: {status:?}"
            );
        }
        let deleted = due.iter().filter(|e| matches!(e.kind, EventKind::Deleted { .. })).count();
        assert_eq!(st.stores["contacts"].iter().filter(|o| o.is_archived()).count(), deleted);

        // Later requests apply only what became due since.
        let end = org.config.end_at();
        st.materialise(&org, end);
        let all_created = org.events.iter().filter(|e| matches!(e.kind, EventKind::LeadCreated { .. })).count();
        assert_eq!(st.stores["contacts"].len(), all_created);
        let merged = org.events.iter().filter(|e| matches!(e.kind, EventKind::Merged { .. })).count();
        // Merges of contacts the timeline already deleted are skipped.
        let merged_away = st.stores["contacts"].iter().filter(|o| o.merged_into.is_some()).count();
        assert!(merged_away <= merged && (merged == 0 || merged_away > 0), "{merged_away} of {merged}");
    }
}
