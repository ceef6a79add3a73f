//! The sObjects the emulator serves and their fields: what `describe`
//! reports, what SOQL may name, and what writes may set.
//!
//! Only the objects handoff reads or writes exist (Lead, Task, Event,
//! Opportunity, User, Group, BusinessHours, Holiday). Admins can add custom
//! fields at run time, as they would in Setup, and `describe` shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A field's data type, named as `describe` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Id,
    Reference,
    String,
    Textarea,
    Picklist,
    Email,
    Phone,
    Boolean,
    Double,
    Int,
    Date,
    Datetime,
    Time,
    /// History `OldValue`/`NewValue`: text, an id or a number, whichever
    /// the changed field holds.
    AnyType,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Boolean => "boolean",
            FieldType::Double => "double",
            FieldType::Int => "int",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Time => "time",
            FieldType::AnyType => "anyType",
        }
    }

    fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Double => "xsd:double",
            FieldType::Int => "xsd:int",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            FieldType::Time => "xsd:time",
            FieldType::AnyType => "xsd:anyType",
            _ => "xsd:string",
        }
    }

    /// Whether SOQL compares its values as text (case-insensitively).
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Picklist
                | FieldType::Email
                | FieldType::Phone
                | FieldType::AnyType
        )
    }
}

/// One field of an sObject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub custom: bool,
    #[serde(default, rename = "externalId")]
    pub external_id: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default = "yes")]
    pub nillable: bool,
    #[serde(default = "yes")]
    pub createable: bool,
    #[serde(default = "yes")]
    pub updateable: bool,
    /// Must be set on create (`REQUIRED_FIELD_MISSING` otherwise).
    #[serde(default)]
    pub required: bool,
    #[serde(default, rename = "picklistValues")]
    pub picklist: Vec<String>,
    #[serde(default, rename = "referenceTo")]
    pub reference_to: Vec<String>,
    #[serde(default)]
    pub length: Option<u32>,
}

fn yes() -> bool {
    true
}

impl FieldDef {
    fn new(name: &str, kind: FieldType) -> Self {
        FieldDef {
            name: name.to_string(),
            kind,
            label: None,
            custom: name.ends_with("__c"),
            external_id: false,
            unique: false,
            nillable: true,
            createable: true,
            updateable: true,
            required: false,
            picklist: Vec::new(),
            reference_to: Vec::new(),
            length: None,
        }
    }

    /// Set by the system only (ids, audit fields, formula-like flags).
    fn system(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self.nillable = false;
        self
    }

    fn not_null(mut self) -> Self {
        self.nillable = false;
        self
    }

    fn refs(mut self, to: &[&str]) -> Self {
        self.reference_to = to.iter().map(|s| s.to_string()).collect();
        self
    }

    fn values(mut self, values: &[&str]) -> Self {
        self.picklist = values.iter().map(|s| s.to_string()).collect();
        self
    }

    fn external_unique(mut self) -> Self {
        self.external_id = true;
        self.unique = true;
        self
    }

    /// The relationship name SOQL uses for a reference field (`OwnerId` →
    /// `Owner`, `Foo__c` → `Foo__r`).
    pub fn relationship_name(&self) -> Option<String> {
        if self.kind != FieldType::Reference {
            return None;
        }
        if let Some(base) = self.name.strip_suffix("__c") {
            return Some(format!("{base}__r"));
        }
        self.name.strip_suffix("Id").map(str::to_string)
    }

    /// A reference that may point at several object types: SOQL reaches it
    /// through the `Name` pseudo-object, which has only a few fields.
    pub fn is_polymorphic(&self) -> bool {
        self.reference_to.len() > 1
    }

    fn describe(&self) -> Value {
        let label = self.label.clone().unwrap_or_else(|| self.name.trim_end_matches("__c").replace('_', " "));
        let picklist: Vec<Value> = self
            .picklist
            .iter()
            .map(|v| json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v}))
            .collect();
        let length = self.length.unwrap_or(match self.kind {
            FieldType::Id | FieldType::Reference => 18,
            FieldType::Textarea => 32000,
            FieldType::String | FieldType::Picklist | FieldType::Email | FieldType::Phone | FieldType::AnyType => 255,
            _ => 0,
        });
        json!({
            "aggregatable": true,
            "autoNumber": false,
            "byteLength": length * 3,
            "calculated": false,
            "calculatedFormula": null,
            "caseSensitive": false,
            "controllerName": null,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": null,
            "defaultedOnCreate": !self.createable,
            "dependentPicklist": false,
            "deprecatedAndHidden": false,
            "digits": if self.kind == FieldType::Int { 9 } else { 0 },
            "externalId": self.external_id,
            "filterable": self.kind != FieldType::AnyType,
            "groupable": !matches!(self.kind, FieldType::Double | FieldType::Datetime | FieldType::Textarea),
            "htmlFormatted": false,
            "idLookup": self.kind == FieldType::Id || (self.external_id && self.kind.is_textual()),
            "inlineHelpText": null,
            "label": label,
            "length": length,
            "name": self.name,
            "nameField": self.name == "Name",
            "namePointing": self.is_polymorphic(),
            "nillable": self.nillable,
            "picklistValues": picklist,
            "polymorphicForeignKey": self.is_polymorphic(),
            "precision": if self.kind == FieldType::Double { 18 } else { 0 },
            "referenceTo": self.reference_to,
            "relationshipName": self.relationship_name(),
            "relationshipOrder": null,
            "restrictedPicklist": false,
            "scale": if self.kind == FieldType::Double { 2 } else { 0 },
            "soapType": self.kind.soap_type(),
            "sortable": self.kind != FieldType::Textarea,
            "type": self.kind.as_str(),
            "unique": self.unique,
            "updateable": self.updateable,
            "writeRequiresMasterRead": false
        })
    }
}

/// A child relationship of an sObject: the children of type `child` whose
/// reference field `field` names the parent, reached in SOQL subqueries as
/// `(SELECT … FROM {name})`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildRelationship {
    /// The relationship name (`Histories`, `Tasks`).
    pub name: &'static str,
    pub child: &'static str,
    pub field: &'static str,
    /// Deleting the parent deletes the children (history goes with its lead).
    pub cascade_delete: bool,
}

impl ChildRelationship {
    fn describe(&self) -> Value {
        json!({
            "cascadeDelete": self.cascade_delete,
            "childSObject": self.child,
            "deprecatedAndHidden": false,
            "field": self.field,
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": self.name,
            "restrictedDelete": false
        })
    }
}

/// One sObject type.
#[derive(Debug, Clone, PartialEq)]
pub struct SObjectDef {
    pub name: &'static str,
    pub label: &'static str,
    pub label_plural: &'static str,
    pub key_prefix: &'static str,
    /// Has `IsDeleted` and goes to the Recycle Bin on delete.
    pub soft_delete: bool,
    /// Task and Event: `IsArchived` rows are hidden from `query`.
    pub archivable: bool,
    pub fields: Vec<FieldDef>,
    /// What subqueries may reach from this object, as `describe` lists them.
    pub child_relationships: Vec<ChildRelationship>,
}

impl SObjectDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field behind relationship `rel` (`Owner` → `OwnerId`).
    pub fn relationship(&self, rel: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.relationship_name().is_some_and(|r| r.eq_ignore_ascii_case(rel)))
    }

    /// The child relationship named `name` (case-insensitive).
    pub fn child_relationship(&self, name: &str) -> Option<&ChildRelationship> {
        self.child_relationships.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The `/sobjects/{name}/describe` body.
    pub fn describe(&self, version: &str) -> Value {
        let mut d = self.summary(version);
        let fields: Vec<Value> = self.fields.iter().map(FieldDef::describe).collect();
        let children: Vec<Value> = self.child_relationships.iter().map(ChildRelationship::describe).collect();
        if let Some(obj) = d.as_object_mut() {
            obj.insert("fields".into(), Value::Array(fields));
            obj.insert("childRelationships".into(), Value::Array(children));
            obj.insert("recordTypeInfos".into(), json!([]));
            obj.insert("supportedScopes".into(), json!([{"label": "All leads", "name": "everything"}]));
        }
        d
    }

    /// The entry in the describe-global list.
    pub fn summary(&self, version: &str) -> Value {
        let base = format!("/services/data/{version}/sobjects/{}", self.name);
        let writable = !matches!(self.name, "User" | "Group" | "BusinessHours" | "Holiday" | "LeadHistory");
        json!({
            "activateable": false,
            "createable": writable,
            "custom": false,
            "customSetting": false,
            "deletable": writable,
            "deprecatedAndHidden": false,
            "feedEnabled": false,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": true,
            "mergeable": self.name == "Lead",
            "name": self.name,
            "queryable": true,
            "replicateable": true,
            "retrieveable": true,
            "searchable": true,
            "triggerable": true,
            "undeletable": self.soft_delete,
            "updateable": writable,
            "urls": {
                "sobject": base,
                "describe": format!("{base}/describe"),
                "rowTemplate": format!("{base}/{{ID}}")
            }
        })
    }
}

/// Fields of the `Name` pseudo-object, which polymorphic relationships
/// (`Lead.Owner`, `Task.Who` …) resolve to.
pub const NAME_FIELDS: &[&str] = &[
    "Id",
    "Name",
    "Type",
    "Alias",
    "Email",
    "FirstName",
    "LastName",
    "IsActive",
    "Phone",
    "Title",
    "UserRoleId",
    "ProfileId",
];

/// Lead `Status` picklist (the standard LeadStatus values).
pub const LEAD_STATUSES: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Qualified",
    "Unqualified",
    "Closed - Converted",
    "Closed - Not Converted",
];

/// `LeadHistory.Field` values the emulator writes: the insert, and the
/// two tracked fields. An owner change is recorded under `Owner` (the
/// relationship), not `OwnerId`.
pub const HISTORY_FIELDS: &[&str] = &["created", "Owner", "Status"];

fn audit(fields: &mut Vec<FieldDef>) {
    use FieldType::*;
    fields.push(FieldDef::new("CreatedDate", Datetime).system().not_null());
    fields.push(FieldDef::new("CreatedById", Reference).system().not_null().refs(&["User"]));
    fields.push(FieldDef::new("LastModifiedDate", Datetime).system().not_null());
    fields.push(FieldDef::new("LastModifiedById", Reference).system().not_null().refs(&["User"]));
    fields.push(FieldDef::new("SystemModstamp", Datetime).system().not_null());
}

/// The standard schema of a fresh sandbox org.
pub fn standard_objects() -> BTreeMap<String, SObjectDef> {
    use FieldType::*;
    let id = || FieldDef::new("Id", Id).system().not_null();
    let deleted = || FieldDef::new("IsDeleted", Boolean).system().not_null();

    let mut lead = vec![
        id(),
        deleted(),
        FieldDef::new("MasterRecordId", Reference).system().refs(&["Lead"]),
        FieldDef::new("FirstName", String),
        FieldDef::new("LastName", String).required(),
        FieldDef::new("Name", String).system(),
        FieldDef::new("Title", String),
        FieldDef::new("Company", String).required(),
        FieldDef::new("Email", Email),
        FieldDef::new("Phone", Phone),
        FieldDef::new("Country", String),
        FieldDef::new("Industry", Picklist),
        FieldDef::new("NumberOfEmployees", Int),
        FieldDef::new("LeadSource", Picklist).values(&[
            "Web",
            "Demo Request",
            "Content Download",
            "Event",
            "Outbound",
            "Other",
        ]),
        FieldDef::new("Status", Picklist).not_null().values(LEAD_STATUSES),
        FieldDef::new("Rating", Picklist).values(&["Hot", "Warm", "Cold"]),
        FieldDef::new("OwnerId", Reference).not_null().refs(&["Group", "User"]),
        FieldDef::new("IsConverted", Boolean).system().not_null(),
        FieldDef::new("ConvertedDate", Date).system(),
        // What a conversion made. The emulator makes no Account or Contact,
        // so those two stay empty; the Opportunity is made with the AE's
        // commitments (`OrgConfig::opportunities`).
        FieldDef::new("ConvertedAccountId", Reference).system().refs(&["Account"]),
        FieldDef::new("ConvertedContactId", Reference).system().refs(&["Contact"]),
        FieldDef::new("ConvertedOpportunityId", Reference).system().refs(&["Opportunity"]),
        FieldDef::new("IsUnreadByOwner", Boolean).not_null(),
        FieldDef::new("LastActivityDate", Date).system(),
        FieldDef::new("Lead_Score__c", Double),
        FieldDef::new("Intent_Action__c", String),
        FieldDef::new("Disqualification_Reason__c", Picklist).values(&[
            "wrong_persona",
            "no_budget",
            "bad_timing",
            "bad_contact_data",
            "already_customer",
            "competitor",
            "did_not_meet_criteria",
        ]),
        FieldDef::new("MQL_Date__c", Datetime),
        FieldDef::new("SLA_Grade__c", String),
        FieldDef::new("SLA_Due__c", Datetime),
        FieldDef::new("SLA_Status__c", String),
        FieldDef::new("SLA_Breach_Count__c", Double),
    ];
    audit(&mut lead);

    let activity_common = |subtype: &str, subtypes: &[&str]| {
        vec![
            id(),
            deleted(),
            FieldDef::new("WhoId", Reference).refs(&["Contact", "Lead"]),
            FieldDef::new("WhatId", Reference).refs(&["Account", "Opportunity"]),
            FieldDef::new("Subject", String),
            FieldDef::new("ActivityDate", Date),
            FieldDef::new("Description", Textarea),
            FieldDef::new("OwnerId", Reference).not_null().refs(&["Group", "User"]),
            FieldDef::new("Type", Picklist).values(&["Call", "Email", "Meeting", "Other"]),
            FieldDef::new(subtype, Picklist).values(subtypes),
            FieldDef::new("IsArchived", Boolean).system().not_null(),
        ]
    };
    let mut task = activity_common("TaskSubtype", &["Task", "Email", "ListEmail", "Cadence", "Call"]);
    task.extend([
        FieldDef::new("Status", Picklist).not_null().values(&[
            "Not Started",
            "In Progress",
            "Completed",
            "Waiting on someone else",
            "Deferred",
        ]),
        FieldDef::new("Priority", Picklist).not_null().values(&["High", "Normal", "Low"]),
        FieldDef::new("IsHighPriority", Boolean).system().not_null(),
        FieldDef::new("IsClosed", Boolean).system().not_null(),
        FieldDef::new("CompletedDateTime", Datetime).system(),
        FieldDef::new("CallType", Picklist).values(&["Internal", "Inbound", "Outbound"]),
        FieldDef::new("CallDisposition", String),
        FieldDef::new("CallDurationInSeconds", Int),
        FieldDef::new("ReminderDateTime", Datetime),
        FieldDef::new("IsReminderSet", Boolean).not_null(),
        FieldDef::new("Handoff_Key__c", String).external_unique(),
    ]);
    audit(&mut task);

    let mut event = activity_common("EventSubtype", &["Event"]);
    event.extend([
        FieldDef::new("ActivityDateTime", Datetime),
        FieldDef::new("StartDateTime", Datetime),
        FieldDef::new("EndDateTime", Datetime),
        FieldDef::new("DurationInMinutes", Int),
        FieldDef::new("IsAllDayEvent", Boolean).not_null(),
        FieldDef::new("ShowAs", Picklist).values(&["Busy", "OutOfOffice", "Free"]),
        FieldDef::new("Location", String),
    ]);
    audit(&mut event);

    // What a conversion creates (the emulator has no Account or Contact).
    let mut opportunity = vec![
        id(),
        deleted(),
        FieldDef::new("Name", String).required(),
        FieldDef::new("StageName", Picklist).required().values(&[
            "Prospecting",
            "Qualification",
            "Needs Analysis",
            "Proposal/Price Quote",
            "Negotiation/Review",
            "Closed Won",
            "Closed Lost",
        ]),
        FieldDef::new("CloseDate", Date).required(),
        FieldDef::new("Amount", Double),
        FieldDef::new("LeadSource", Picklist),
        FieldDef::new("OwnerId", Reference).not_null().refs(&["User"]),
        FieldDef::new("IsClosed", Boolean).system().not_null(),
        FieldDef::new("IsWon", Boolean).system().not_null(),
    ];
    audit(&mut opportunity);

    let mut user = vec![
        id(),
        FieldDef::new("Username", String).required(),
        FieldDef::new("FirstName", String),
        FieldDef::new("LastName", String).required(),
        FieldDef::new("Name", String).system(),
        FieldDef::new("Alias", String),
        FieldDef::new("Email", Email).required(),
        FieldDef::new("Title", String),
        FieldDef::new("Department", String),
        FieldDef::new("ManagerId", Reference).refs(&["User"]),
        FieldDef::new("TimeZoneSidKey", Picklist).not_null(),
        FieldDef::new("IsActive", Boolean).not_null(),
        FieldDef::new("UserType", Picklist).system().values(&["Standard"]),
    ];
    audit(&mut user);

    let mut group = vec![
        id(),
        FieldDef::new("Name", String).required(),
        FieldDef::new("DeveloperName", String),
        FieldDef::new("Type", Picklist).not_null().values(&["Queue", "Regular", "Role"]),
        FieldDef::new("Email", Email),
    ];
    audit(&mut group);

    let mut hours = vec![
        id(),
        FieldDef::new("Name", String).required(),
        FieldDef::new("IsActive", Boolean).not_null(),
        FieldDef::new("IsDefault", Boolean).not_null(),
        FieldDef::new("TimeZoneSidKey", Picklist).not_null(),
    ];
    for day in ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"] {
        hours.push(FieldDef::new(&format!("{day}StartTime"), Time));
        hours.push(FieldDef::new(&format!("{day}EndTime"), Time));
    }
    audit(&mut hours);

    let mut holiday = vec![
        id(),
        FieldDef::new("Name", String).required(),
        FieldDef::new("Description", String),
        FieldDef::new("ActivityDate", Date),
        FieldDef::new("IsAllDay", Boolean).not_null(),
        FieldDef::new("StartTimeInMinutes", Int),
        FieldDef::new("EndTimeInMinutes", Int),
        FieldDef::new("IsRecurrence", Boolean).not_null(),
        FieldDef::new("RecurrenceType", Picklist),
    ];
    audit(&mut holiday);

    // Field history: read-only rows, no LastModifiedDate or SystemModstamp
    // (they never change), `Field = 'created'` for the insert.
    let history = vec![
        id(),
        deleted(),
        FieldDef::new("LeadId", Reference).system().not_null().refs(&["Lead"]),
        FieldDef::new("Field", Picklist).system().not_null().values(HISTORY_FIELDS),
        FieldDef::new("DataType", Picklist).system().values(&["Text", "EntityId", "DynamicEnum"]),
        FieldDef::new("OldValue", AnyType).system(),
        FieldDef::new("NewValue", AnyType).system(),
        FieldDef::new("CreatedDate", Datetime).system().not_null(),
        FieldDef::new("CreatedById", Reference).system().not_null().refs(&["User"]),
    ];

    let child = |name, child, field, cascade_delete| ChildRelationship { name, child, field, cascade_delete };
    let plain = |name, label, label_plural, key_prefix, fields| SObjectDef {
        name,
        label,
        label_plural,
        key_prefix,
        soft_delete: false,
        archivable: false,
        fields,
        child_relationships: Vec::new(),
    };
    let defs = [
        SObjectDef {
            soft_delete: true,
            // The emulator keeps a deleted lead's activities (a merge moves
            // them to the survivor); only its history goes with it.
            child_relationships: vec![
                child("Events", "Event", "WhoId", false),
                child("Histories", "LeadHistory", "LeadId", true),
                child("Tasks", "Task", "WhoId", false),
            ],
            ..plain("Lead", "Lead", "Leads", "00Q", lead)
        },
        SObjectDef { soft_delete: true, archivable: true, ..plain("Task", "Task", "Tasks", "00T", task) },
        SObjectDef { soft_delete: true, archivable: true, ..plain("Event", "Event", "Events", "00U", event) },
        SObjectDef { soft_delete: true, ..plain("Opportunity", "Opportunity", "Opportunities", "006", opportunity) },
        plain("User", "User", "Users", "005", user),
        plain("Group", "Group", "Groups", "00G", group),
        plain("BusinessHours", "Business Hours", "Business Hours", "01m", hours),
        plain("Holiday", "Holiday", "Holidays", "0C0", holiday),
        plain("LeadHistory", "Lead History", "Lead History", "017", history),
    ];
    defs.into_iter().map(|d| (d.name.to_string(), d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_reports_custom_external_unique_fields() {
        let objects = standard_objects();
        let task = objects["Task"].describe("v62.0");
        let key = task["fields"].as_array().unwrap().iter().find(|f| f["name"] == "Handoff_Key__c").unwrap();
        assert_eq!(key["custom"], json!(true));
        assert_eq!(key["externalId"], json!(true));
        assert_eq!(key["unique"], json!(true));
        assert_eq!(key["type"], json!("string"));
        assert_eq!(task["keyPrefix"], json!("00T"));
        let lead = &objects["Lead"];
        let owner = lead.relationship("owner").unwrap();
        assert_eq!(owner.name, "OwnerId");
        assert!(owner.is_polymorphic());
        let reason = lead.describe("v62.0")["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "Disqualification_Reason__c")
            .cloned()
            .unwrap();
        assert_eq!(reason["picklistValues"].as_array().unwrap().len(), 7);
    }
}
