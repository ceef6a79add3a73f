//! Property definitions per object type (`/crm/v3/properties/{object}`):
//! the HubSpot-defined ones handoff touches, the portal's custom ones from
//! the org contract, and any a client creates (`handoff_key` on tasks).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::search::ValueKind;
use super::store::iso_ms;

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    /// `string`, `number`, `datetime`, `enumeration`, `bool`, `date`.
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    /// `(label, value)`.
    pub options: Vec<(String, String)>,
    pub has_unique_value: bool,
    pub hubspot_defined: bool,
    /// Computed by HubSpot, refused on writes.
    pub read_only_value: bool,
    pub created_at_ms: i64,
}

impl PropertyDef {
    pub fn value_kind(&self) -> ValueKind {
        match self.kind.as_str() {
            "number" => ValueKind::Number,
            "datetime" | "date" => ValueKind::DateTime,
            _ => ValueKind::Text,
        }
    }

    /// The `Property` JSON, shaped like the recorded
    /// `GET /crm/v3/properties/contacts` response.
    pub fn render(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, (label, value))| json!({"label": label, "value": value, "displayOrder": i, "hidden": false}))
            .collect();
        json!({
            "updatedAt": iso_ms(self.created_at_ms),
            "createdAt": iso_ms(self.created_at_ms),
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": options,
            "displayOrder": -1,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": false,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value
            },
            "formField": false,
            "dataSensitivity": "non_sensitive"
        })
    }
}

/// Body of `POST /crm/v3/properties/{object}` (`PropertyCreate`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    pub name: Option<String>,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub field_type: Option<String>,
    pub group_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub options: Vec<OptionInput>,
}

#[derive(Debug, Deserialize)]
pub struct OptionInput {
    pub label: String,
    pub value: String,
}

const KINDS: [&str; 6] = ["string", "number", "datetime", "enumeration", "bool", "date"];

fn def(name: &str, label: &str, kind: &str, group: &str, hubspot_defined: bool, options: &[&str]) -> PropertyDef {
    let field_type = match kind {
        "enumeration" => "select",
        "number" => "number",
        "datetime" | "date" => "date",
        "bool" => "booleancheckbox",
        _ => "text",
    };
    PropertyDef {
        name: name.to_string(),
        label: label.to_string(),
        kind: kind.to_string(),
        field_type: field_type.to_string(),
        group_name: group.to_string(),
        description: String::new(),
        options: options.iter().map(|o| (o.to_string(), o.to_string())).collect(),
        has_unique_value: false,
        hubspot_defined,
        read_only_value: false,
        created_at_ms: 1_593_532_657_277,
    }
}

fn read_only(mut d: PropertyDef) -> PropertyDef {
    d.read_only_value = true;
    d
}

/// The definitions a fresh portal has, per object type.
pub fn defaults() -> BTreeMap<String, BTreeMap<String, PropertyDef>> {
    let common = |group: &str, modified: &str, created: &str| {
        vec![
            read_only(def("hs_object_id", "Record ID", "number", group, true, &[])),
            read_only(def(modified, "Last Modified Date", "datetime", group, true, &[])),
            read_only(def(created, "Create Date", "datetime", group, true, &[])),
            def("hubspot_owner_id", "Owner", "enumeration", group, true, &[]),
            def("hs_timestamp", "Activity date", "datetime", group, true, &[]),
        ]
    };
    let mut out = BTreeMap::new();
    let mut contacts = vec![
        read_only(def("hs_object_id", "Record ID", "number", "contactinformation", true, &[])),
        read_only(def("lastmodifieddate", "Last Modified Date", "datetime", "contactinformation", true, &[])),
        read_only(def("createdate", "Create Date", "datetime", "contactinformation", true, &[])),
        def("hubspot_owner_id", "Contact owner", "enumeration", "contactinformation", true, &[]),
        def("firstname", "First Name", "string", "contactinformation", true, &[]),
        def("lastname", "Last Name", "string", "contactinformation", true, &[]),
        def("email", "Email", "string", "contactinformation", true, &[]),
        def("company", "Company Name", "string", "contactinformation", true, &[]),
        def("jobtitle", "Job Title", "string", "contactinformation", true, &[]),
        def("numemployees", "Number of Employees", "enumeration", "contactinformation", true, &[]),
        def("industry", "Industry", "string", "contactinformation", true, &[]),
        def("country", "Country/Region", "string", "contactinformation", true, &[]),
        def("phone", "Phone Number", "string", "contactinformation", true, &[]),
        read_only(def(
            "hs_analytics_source",
            "Original Source",
            "enumeration",
            "analyticsinformation",
            true,
            &[
                "ORGANIC_SEARCH",
                "PAID_SEARCH",
                "EMAIL_MARKETING",
                "SOCIAL_MEDIA",
                "REFERRALS",
                "OTHER_CAMPAIGNS",
                "DIRECT_TRAFFIC",
                "OFFLINE",
                "PAID_SOCIAL",
            ],
        )),
        def(
            "hs_lead_status",
            "Lead Status",
            "enumeration",
            "sales_properties",
            true,
            &[
                "NEW",
                "OPEN",
                "IN_PROGRESS",
                "OPEN_DEAL",
                "UNQUALIFIED",
                "ATTEMPTED_TO_CONTACT",
                "CONNECTED",
                "BAD_TIMING",
            ],
        ),
        read_only(def(
            "hs_lifecyclestage_marketingqualifiedlead_date",
            "Date entered 'Marketing Qualified Lead (Lifecycle Stage Pipeline)'",
            "datetime",
            "contactinformation",
            true,
            &[],
        )),
        def(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "contactinformation",
            true,
            &[
                "subscriber",
                "lead",
                "marketingqualifiedlead",
                "salesqualifiedlead",
                "opportunity",
                "customer",
                "evangelist",
                "other",
            ],
        ),
        read_only(def("hubspotscore", "HubSpot Score", "number", "contactinformation", true, &[])),
        read_only(def("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "contactinformation", true, &[])),
        read_only(def(
            "hs_last_sales_activity_timestamp",
            "Last Engagement Date",
            "datetime",
            "contactinformation",
            true,
            &[],
        )),
        def("intent_action", "Intent action", "string", "contactinformation", false, &[]),
        def(
            "disqualification_reason",
            "Disqualification reason",
            "enumeration",
            "contactinformation",
            false,
            &[
                "wrong_persona",
                "no_budget",
                "bad_timing",
                "bad_contact_data",
                "already_customer",
                "competitor",
                "did_not_meet_criteria",
            ],
        ),
        def("handoff_sla_grade", "Handoff SLA grade", "string", "contactinformation", false, &[]),
        def("handoff_sla_due", "Handoff SLA due", "datetime", "contactinformation", false, &[]),
        def("handoff_sla_status", "Handoff SLA status", "string", "contactinformation", false, &[]),
        def("handoff_sla_breach_count", "Handoff SLA breach count", "number", "contactinformation", false, &[]),
    ];
    contacts.iter_mut().for_each(|d| d.has_unique_value = d.name == "hs_object_id");
    out.insert("contacts".to_string(), contacts.into_iter().map(|d| (d.name.clone(), d)).collect());

    let mut tasks = common("task", "hs_lastmodifieddate", "hs_createdate");
    tasks.extend([
        def("hs_task_subject", "Task Title", "string", "task", true, &[]),
        def("hs_task_body", "Notes", "string", "task", true, &[]),
        def(
            "hs_task_status",
            "Task Status",
            "enumeration",
            "task",
            true,
            &["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"],
        ),
        def("hs_task_priority", "Priority", "enumeration", "task", true, &["NONE", "LOW", "MEDIUM", "HIGH"]),
        def("hs_task_type", "Task Type", "enumeration", "task", true, &["EMAIL", "CALL", "TODO"]),
        def("hs_task_reminders", "Reminder", "string", "task", true, &[]),
        read_only(def("hs_task_completion_date", "Completed at", "datetime", "task", true, &[])),
    ]);
    out.insert("tasks".to_string(), tasks.into_iter().map(|d| (d.name.clone(), d)).collect());

    let mut calls = common("call", "hs_lastmodifieddate", "hs_createdate");
    calls.extend([
        def("hs_call_title", "Call Title", "string", "call", true, &[]),
        def("hs_call_body", "Call notes", "string", "call", true, &[]),
        def("hs_call_direction", "Call direction", "enumeration", "call", true, &["INBOUND", "OUTBOUND"]),
        def("hs_call_disposition", "Call outcome", "string", "call", true, &[]),
        def(
            "hs_call_status",
            "Call status",
            "enumeration",
            "call",
            true,
            &[
                "BUSY",
                "CALLING_CRM_USER",
                "CANCELED",
                "COMPLETED",
                "CONNECTING",
                "FAILED",
                "IN_PROGRESS",
                "NO_ANSWER",
                "QUEUED",
                "RINGING",
            ],
        ),
        def("hs_call_duration", "Call duration", "number", "call", true, &[]),
    ]);
    out.insert("calls".to_string(), calls.into_iter().map(|d| (d.name.clone(), d)).collect());

    let mut emails = common("email", "hs_lastmodifieddate", "hs_createdate");
    emails.extend([
        def("hs_email_subject", "Email subject", "string", "email", true, &[]),
        def("hs_email_text", "Email body", "string", "email", true, &[]),
        def(
            "hs_email_direction",
            "Email direction",
            "enumeration",
            "email",
            true,
            &["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"],
        ),
        def(
            "hs_email_status",
            "Email send status",
            "enumeration",
            "email",
            true,
            &["BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"],
        ),
        read_only(def("hs_sequence_id", "Sequence ID", "string", "email", true, &[])),
    ]);
    out.insert("emails".to_string(), emails.into_iter().map(|d| (d.name.clone(), d)).collect());

    let mut meetings = common("meeting", "hs_lastmodifieddate", "hs_createdate");
    meetings.extend([
        def("hs_meeting_title", "Meeting name", "string", "meeting", true, &[]),
        def("hs_meeting_body", "Meeting description", "string", "meeting", true, &[]),
        def(
            "hs_meeting_outcome",
            "Meeting outcome",
            "enumeration",
            "meeting",
            true,
            &["SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"],
        ),
        def("hs_meeting_start_time", "Start time", "datetime", "meeting", true, &[]),
        def("hs_meeting_end_time", "End time", "datetime", "meeting", true, &[]),
    ]);
    out.insert("meetings".to_string(), meetings.into_iter().map(|d| (d.name.clone(), d)).collect());

    let stage_ids: Vec<&str> = super::leads::STAGES.iter().map(|s| s.id).collect();
    let mut leads: Vec<PropertyDef> = common("lead_information", "hs_lastmodifieddate", "hs_createdate")
        .into_iter()
        .filter(|d| d.name != "hs_timestamp")
        .collect();
    leads.extend([
        def("hs_lead_name", "Lead name", "string", "lead_information", true, &[]),
        def("hs_pipeline", "Pipeline", "enumeration", "lead_information", true, &[super::leads::PIPELINE_ID]),
        def("hs_pipeline_stage", "Lead stage", "enumeration", "lead_information", true, &stage_ids),
        def(
            "hs_lead_disqualification_reason",
            "Disqualification reason",
            "enumeration",
            "lead_information",
            true,
            &REASON_CODES,
        ),
        def(
            "hs_lead_type",
            "Lead type",
            "enumeration",
            "lead_information",
            true,
            &["NEW_BUSINESS", "UPSELL", "RE_ATTEMPTING"],
        ),
        def("hs_lead_label", "Lead label", "enumeration", "lead_information", true, &["HOT", "WARM", "COLD"]),
        read_only(def("hs_primary_contact_id", "Primary contact ID", "number", "lead_information", true, &[])),
        def("handoff_sla_grade", "Handoff SLA grade", "string", "lead_information", false, &[]),
        def("handoff_sla_due", "Handoff SLA due", "datetime", "lead_information", false, &[]),
        def("handoff_sla_status", "Handoff SLA status", "string", "lead_information", false, &[]),
        def("handoff_sla_breach_count", "Handoff SLA breach count", "number", "lead_information", false, &[]),
    ]);
    for stage in &super::leads::STAGES {
        let name = super::leads::date_entered_property(stage);
        let label = super::leads::date_entered_label(stage);
        leads.push(read_only(def(&name, &label, "datetime", "lead_information", true, &[])));
    }
    out.insert("leads".to_string(), leads.into_iter().map(|d| (d.name.clone(), d)).collect());

    // Deals: created at `createdate` (as contacts), modified at
    // `hs_lastmodifieddate` (as every other object), in the portal's one
    // default pipeline with HubSpot's default stages.
    let mut deals: Vec<PropertyDef> = common("dealinformation", "hs_lastmodifieddate", "createdate")
        .into_iter()
        .filter(|d| d.name != "hs_timestamp")
        .collect();
    deals.extend([
        def("dealname", "Deal Name", "string", "dealinformation", true, &[]),
        def("dealstage", "Deal Stage", "enumeration", "dealinformation", true, &DEAL_STAGES),
        def("pipeline", "Pipeline", "enumeration", "dealinformation", true, &[DEAL_PIPELINE]),
        def("amount", "Amount", "number", "dealinformation", true, &[]),
        def("closedate", "Close Date", "datetime", "dealinformation", true, &[]),
        def("dealtype", "Deal Type", "enumeration", "dealinformation", true, &["newbusiness", "existingbusiness"]),
    ]);
    out.insert("deals".to_string(), deals.into_iter().map(|d| (d.name.clone(), d)).collect());
    out
}

/// The id of a portal's default deal pipeline.
pub const DEAL_PIPELINE: &str = "default";
/// The stages of the default deal pipeline, in order (HubSpot's internal
/// values; a deal starts in the first).
pub const DEAL_STAGES: [&str; 7] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

/// The disqualification reasons the portal offers: the org's reason codes
/// (HubSpot's own default options for `hs_lead_disqualification_reason` are
/// portal-configurable and not recorded anywhere we trust).
const REASON_CODES: [&str; 7] = crate::generate::REASON_CODES;

/// Validate a `PropertyCreate` into a definition.
pub fn from_create(body: PropertyCreate, now_ms: i64) -> Result<PropertyDef, ApiError> {
    let mut missing = Vec::new();
    for (field, present) in [
        ("name", body.name.is_some()),
        ("label", body.label.is_some()),
        ("type", body.kind.is_some()),
        ("fieldType", body.field_type.is_some()),
        ("groupName", body.group_name.is_some()),
    ] {
        if !present {
            missing.push(field);
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(format!(
            "Invalid input JSON on line 1: missing required fields {}",
            missing.join(", ")
        )));
    }
    let kind = body.kind.unwrap_or_default();
    if !KINDS.contains(&kind.as_str()) {
        return Err(ApiError::validation(format!(
            "Invalid input JSON on line 1: Cannot deserialize value of type `PropertyType` from String \"{kind}\""
        )));
    }
    let name = body.name.unwrap_or_default();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(ApiError::validation(format!(
            "Property name '{name}' is invalid: use lowercase letters, digits and underscores"
        )));
    }
    Ok(PropertyDef {
        name,
        label: body.label.unwrap_or_default(),
        kind,
        field_type: body.field_type.unwrap_or_default(),
        group_name: body.group_name.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        options: body.options.into_iter().map(|o| (o.label, o.value)).collect(),
        has_unique_value: body.has_unique_value,
        hubspot_defined: false,
        read_only_value: false,
        created_at_ms: now_ms,
    })
}
