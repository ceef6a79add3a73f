//! The org's data and server-side state, and the operations on it that do
//! not touch HTTP: validated writes, query execution with server-side
//! cursors, `updated`/`deleted` windows.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Map, Value};

use super::bulk::QueryJobs;
use super::errors::{ApiError, RecordError};
use super::limits::{ApiUsage, BulkUsage};
use super::oauth::{AppConfig, TokenStore};
use super::schema::{standard_objects, ChildRelationship, FieldType, SObjectDef};
use super::soql::{self, Bound, Db};
use super::store::{
    fmt_date, fmt_datetime, is_id_with_prefix, make_id, normalise_id, parse_date, parse_datetime, set, to_millis,
    FieldRef, Record, Table,
};

/// Default and bounds of `Sforce-Query-Options: batchSize`.
pub const DEFAULT_BATCH_SIZE: usize = 2000;
pub const MIN_BATCH_SIZE: usize = 200;
/// Lead's child relationship to its field history.
pub const HISTORIES: &str = "Histories";
/// Records per sObject Collections request.
pub const MAX_COLLECTION_RECORDS: usize = 200;
/// `updated`/`deleted` answer at most this many ids.
pub const MAX_REPLICATION_IDS: usize = 600_000;
/// Open query cursors kept; the oldest is dropped beyond this.
const MAX_LOCATORS: usize = 100;

/// Pod part of ids the timeline materialises (derived from org indexes).
pub const ORG_POD: &str = "Hs0";
/// Pod part of ids created through the API or admin routes.
const NEW_POD: &str = "Hs1";
/// Pod part of `LeadHistory` ids (one sequence for timeline and API rows).
const HISTORY_POD: &str = "Hs3";

/// A server-side query cursor: the matching ids at query time.
#[derive(Debug, Clone)]
struct Locator {
    bound: Bound,
    ids: Vec<String>,
    batch_size: usize,
    seq: u64,
}

/// Everything the emulator holds, behind one lock.
pub struct SfState {
    pub objects: BTreeMap<String, SObjectDef>,
    pub tables: BTreeMap<String, Table>,
    pub tokens: TokenStore,
    pub usage: ApiUsage,
    /// The Bulk API allocations (`/limits`).
    pub bulk_usage: BulkUsage,
    /// Bulk API 2.0 query jobs.
    pub query_jobs: QueryJobs,
    pub app: AppConfig,
    /// How many timeline events have been applied.
    pub applied_events: usize,
    locators: HashMap<String, Locator>,
    counter: u64,
    locator_seq: u64,
    history_seq: u64,
    /// Field history tracking on Lead (`Owner`, `Status`): while on, changes
    /// write `LeadHistory` rows and Lead's describe lists `Histories`.
    field_history: bool,
    /// The Lead fields whose changes history rows record (Setup's Set
    /// History Tracking): `OwnerId` and `Status` by default.
    tracked_fields: std::collections::BTreeSet<String>,
    /// A `LeadHistory` row with every field null, cloned for each new row.
    history_row: Record,
    /// While a Composite request runs: every row as it was before its
    /// first change, so an `allOrNone` failure can put it all back.
    journal: Option<Vec<Undo>>,
}

impl Db for SfState {
    fn object(&self, name: &str) -> Option<&SObjectDef> {
        self.objects.values().find(|o| o.name.eq_ignore_ascii_case(name))
    }

    fn lookup(&self, id: &str) -> Option<(&SObjectDef, &Record)> {
        let id = normalise_id(id);
        let def = self.objects.values().find(|o| id.starts_with(o.key_prefix))?;
        let rec = self.tables.get(def.name)?.get(&id)?;
        Some((def, rec))
    }

    fn children<'a>(&'a self, child: &str, field: &str, parent: &str) -> Vec<(&'a str, &'a Record)> {
        self.child_rows(child, field, parent)
    }
}

/// What a write was asked to do, for the audit fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Update,
}

/// One applied write, kept so an `allOrNone` batch can be undone.
#[derive(Debug, Clone)]
pub struct Undo {
    object: String,
    id: String,
    before: Option<Record>,
}

/// A page of query results.
pub struct QueryPage {
    pub body: Value,
}

fn is_true(rec: &Record, field: &str) -> bool {
    rec.get(field).and_then(FieldRef::as_bool).unwrap_or(false)
}

impl SfState {
    pub fn new(app: AppConfig) -> Self {
        let objects = standard_objects();
        let history_row: Record = objects
            .get("LeadHistory")
            .map(|d| d.fields.iter().map(|f| (f.name.clone(), Value::Null)).collect())
            .unwrap_or_default();
        let tables = objects
            .keys()
            .map(|k| {
                // Index every reference field a child relationship reaches through.
                let parent_fields: Vec<&str> = objects
                    .values()
                    .flat_map(|o| &o.child_relationships)
                    .filter(|c| c.child == k.as_str())
                    .map(|c| c.field)
                    .collect();
                let unique_fields: Vec<&str> =
                    objects[k].fields.iter().filter(|f| f.unique).map(|f| f.name.as_str()).collect();
                (k.clone(), Table::with_indexes(&parent_fields, &unique_fields))
            })
            .collect();
        SfState {
            objects,
            tables,
            tokens: TokenStore::default(),
            usage: ApiUsage::default(),
            bulk_usage: BulkUsage::default(),
            query_jobs: QueryJobs::default(),
            app,
            applied_events: 0,
            locators: HashMap::new(),
            counter: 0,
            locator_seq: 0,
            history_seq: 0,
            field_history: true,
            tracked_fields: ["OwnerId", "Status"].into_iter().map(str::to_string).collect(),
            history_row,
            journal: None,
        }
    }

    /// Start remembering every row changed from now on (a Composite
    /// request with `allOrNone`).
    pub fn begin_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Stop remembering; the changes made since [`SfState::begin_journal`],
    /// oldest first, for [`SfState::rollback`].
    pub fn end_journal(&mut self) -> Vec<Undo> {
        self.journal.take().unwrap_or_default()
    }

    /// Note a row's state before a change, while a journal is open.
    fn remember(&mut self, object: &str, id: &str) {
        if self.journal.is_none() {
            return;
        }
        let before = self.tables.get(object).and_then(|t| t.get(id)).cloned();
        if let Some(journal) = self.journal.as_mut() {
            journal.push(Undo { object: object.to_string(), id: id.to_string(), before });
        }
    }

    /// Whether Lead field history is tracked.
    pub fn field_history(&self) -> bool {
        self.field_history
    }

    /// Turn Lead field history tracking on or off, as an admin would in
    /// Setup: off, no new rows are written and `Histories` leaves Lead's
    /// describe (a subquery on it then fails as on an org without it);
    /// rows already written stay.
    pub fn set_field_history(&mut self, on: bool) {
        self.field_history = on;
        let Some(lead) = self.objects.get_mut("Lead") else { return };
        lead.child_relationships.retain(|c| c.name != HISTORIES);
        if on {
            lead.child_relationships.push(ChildRelationship {
                name: HISTORIES,
                child: "LeadHistory",
                field: "LeadId",
                cascade_delete: true,
            });
            lead.child_relationships.sort_by_key(|c| c.name);
        }
    }

    /// The Lead fields tracked, as `FieldDefinition.IsFieldHistoryTracked` says.
    pub fn tracked_fields(&self) -> &std::collections::BTreeSet<String> {
        &self.tracked_fields
    }

    /// Which Lead fields are tracked (by API name: `OwnerId`, `Status`).
    pub fn set_tracked_fields(&mut self, fields: std::collections::BTreeSet<String>) {
        self.tracked_fields = fields;
    }

    /// Tooling API `FieldDefinition` rows of an object: every field's
    /// `QualifiedApiName`, `DataType` and `IsFieldHistoryTracked` (false
    /// everywhere when the object's history is off).
    pub fn field_definitions(&self, object: &str) -> Option<Vec<Value>> {
        let def = self.objects.get(object)?;
        let tracked = |name: &str| object == "Lead" && self.field_history && self.tracked_fields.contains(name);
        Some(
            def.fields
                .iter()
                .map(|f| {
                    json!({
                        "attributes": {"type": "FieldDefinition"},
                        "QualifiedApiName": f.name,
                        "DataType": f.kind.as_str(),
                        "IsFieldHistoryTracked": tracked(&f.name),
                    })
                })
                .collect(),
        )
    }

    /// The display name of a user or queue, for the `Text` owner history row.
    fn owner_name(&self, id: &str) -> Value {
        self.lookup(id)
            .and_then(|(_, r)| r.get("Name").and_then(FieldRef::as_str).map(str::to_string))
            .map_or(Value::Null, Value::from)
    }

    #[allow(clippy::too_many_arguments)] // one LeadHistory row's columns
    fn push_history(
        &mut self,
        lead_id: &str,
        field: &str,
        data_type: &str,
        old: Value,
        new: Value,
        at: DateTime<Utc>,
        by: &str,
    ) -> String {
        self.history_seq += 1;
        let id = make_id("017", HISTORY_POD, self.history_seq);
        let mut rec = self.history_row.clone();
        set(&mut rec, "Id", json!(id));
        set(&mut rec, "IsDeleted", json!(false));
        set(&mut rec, "LeadId", json!(lead_id));
        set(&mut rec, "Field", json!(field));
        set(&mut rec, "DataType", json!(data_type));
        set(&mut rec, "OldValue", old);
        set(&mut rec, "NewValue", new);
        set(&mut rec, "CreatedDate", json!(fmt_datetime(at)));
        set(&mut rec, "CreatedById", json!(by));
        self.put_raw("LeadHistory", &id, rec);
        id
    }

    /// The `created` history row of a new lead. Returns the ids written.
    pub fn history_on_create(&mut self, lead_id: &str, at: DateTime<Utc>, by: &str) -> Vec<String> {
        if !self.field_history {
            return Vec::new();
        }
        vec![self.push_history(lead_id, "created", "Text", Value::Null, Value::Null, at, by)]
    }

    /// History rows for what changed between two versions of a lead, as
    /// Salesforce writes them: an owner change is two `Owner` rows, the ids
    /// (`EntityId`) then the names (`Text`); a status change one `Status`
    /// row. Returns the ids written.
    pub fn history_on_update(
        &mut self,
        lead_id: &str,
        before: &Record,
        after: &Record,
        at: DateTime<Utc>,
        by: &str,
    ) -> Vec<String> {
        if !self.field_history {
            return Vec::new();
        }
        let mut written = Vec::new();
        let value = |r: &Record, f: &str| r.value(f);
        let (old_owner, new_owner) = (value(before, "OwnerId"), value(after, "OwnerId"));
        if old_owner != new_owner && self.tracked_fields.contains("OwnerId") {
            let old_name = old_owner.as_str().map_or(Value::Null, |id| self.owner_name(id));
            let new_name = new_owner.as_str().map_or(Value::Null, |id| self.owner_name(id));
            written.push(self.push_history(lead_id, "Owner", "EntityId", old_owner, new_owner, at, by));
            written.push(self.push_history(lead_id, "Owner", "Text", old_name, new_name, at, by));
        }
        let (old_status, new_status) = (value(before, "Status"), value(after, "Status"));
        if old_status != new_status && self.tracked_fields.contains("Status") {
            written.push(self.push_history(lead_id, "Status", "DynamicEnum", old_status, new_status, at, by));
        }
        written
    }

    /// Rows of `child` whose `field` names `parent`, in id order.
    pub fn child_rows<'a>(&'a self, child: &str, field: &str, parent: &str) -> Vec<(&'a str, &'a Record)> {
        let Some(table) = self.tables.get(child) else { return Vec::new() };
        if table.has_parent_index(field) {
            table.children_of(field, parent).filter_map(|id| table.get(id).map(|r| (id, r))).collect()
        } else {
            table.rows().filter(|(_, r)| r.get(field).and_then(FieldRef::as_str) == Some(parent)).collect()
        }
    }

    /// The schema's spelling of an object name, if it exists.
    pub fn object_name(&self, name: &str) -> Option<String> {
        self.object(name).map(|o| o.name.to_string())
    }

    pub fn new_id(&mut self, object: &str) -> String {
        self.counter += 1;
        let prefix = self.objects.get(object).map_or("000", |o| o.key_prefix);
        make_id(prefix, NEW_POD, self.counter)
    }

    pub fn table(&self, object: &str) -> Option<&Table> {
        self.tables.get(object)
    }

    /// Store a row exactly as given (timeline and admin writes).
    pub fn put_raw(&mut self, object: &str, id: &str, rec: Record) {
        self.remember(object, id);
        if let Some(t) = self.tables.get_mut(object) {
            t.put(id, rec);
        }
    }

    /// Change a stored row in place (timeline events touching a few fields).
    pub fn modify(&mut self, object: &str, id: &str, f: impl FnOnce(&mut Record)) -> bool {
        self.remember(object, id);
        self.tables.get_mut(object).is_some_and(|t| t.modify(id, f))
    }

    pub fn get(&self, object: &str, id: &str) -> Option<&Record> {
        self.tables.get(object)?.get(&normalise_id(id))
    }

    /// Check and convert one field value to the stored form.
    fn convert(def: &SObjectDef, name: &str, v: &Value) -> Result<(String, Value), RecordError> {
        let f = def.field(name).ok_or_else(|| {
            RecordError::new(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", def.name),
                vec![],
            )
        })?;
        let bad = |what: &str| {
            RecordError::new(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {what} from {v} value or request may be missing a required field"
                ),
                vec![f.name.clone()],
            )
        };
        let out = match (f.kind, v) {
            (_, Value::Null) => Value::Null,
            (FieldType::Boolean, Value::Bool(_)) => v.clone(),
            (FieldType::Boolean, _) => return Err(bad("boolean")),
            (FieldType::Double, Value::Number(_)) => v.clone(),
            (FieldType::Int, Value::Number(n)) if n.is_i64() => v.clone(),
            (FieldType::Double | FieldType::Int, Value::String(s)) => match s.parse::<f64>() {
                Ok(n) => json!(n),
                Err(_) => return Err(bad("double")),
            },
            (FieldType::Double | FieldType::Int, _) => return Err(bad("double")),
            (FieldType::Datetime, Value::String(s)) => match parse_datetime(s) {
                Some(dt) => json!(fmt_datetime(dt)),
                None => return Err(bad("datetime")),
            },
            (FieldType::Date, Value::String(s)) => match parse_date(s.get(..10).unwrap_or(s)) {
                Some(d) => json!(d.format("%Y-%m-%d").to_string()),
                None => return Err(bad("date")),
            },
            (FieldType::Id | FieldType::Reference, Value::String(s)) => {
                if !(s.len() == 15 || s.len() == 18) || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(RecordError::new(
                        "MALFORMED_ID",
                        format!(
                            "{}: id value of incorrect type: {s}",
                            f.label.clone().unwrap_or_else(|| f.name.clone())
                        ),
                        vec![f.name.clone()],
                    ));
                }
                json!(normalise_id(s))
            }
            (_, Value::String(_)) => v.clone(),
            (_, Value::Number(n)) => json!(n.to_string()),
            (_, Value::Bool(b)) => json!(b.to_string()),
            _ => return Err(bad("string")),
        };
        Ok((f.name.clone(), out))
    }

    /// Validate and apply one create or update coming from the API.
    /// Returns the record id, or the per-record errors.
    #[allow(clippy::too_many_arguments)] // the API write's inputs, as the routes hold them
    pub fn write(
        &mut self,
        object: &str,
        kind: WriteKind,
        id: Option<&str>,
        fields: &Map<String, Value>,
        user_id: &str,
        now: DateTime<Utc>,
        fail_marker: Option<&str>,
        undo: &mut Vec<Undo>,
    ) -> Result<String, Vec<RecordError>> {
        let def = self.objects.get(object).cloned().ok_or_else(|| {
            vec![RecordError::new("INVALID_TYPE", format!("sObject type '{object}' is not supported."), vec![])]
        })?;
        if !matches!(def.name, "Lead" | "Task" | "Event") {
            return Err(vec![RecordError::new(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
                vec![],
            )]);
        }
        if let Some(marker) = fail_marker {
            if Value::Object(fields.clone()).to_string().contains(marker) {
                return Err(vec![RecordError::new(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "This record failed a validation rule",
                    vec![],
                )]);
            }
        }
        // A map, not a row: a null here clears the field.
        let mut changes = Map::new();
        let mut not_writable = Vec::new();
        for (k, v) in fields {
            if k == "attributes" || (kind == WriteKind::Update && k.eq_ignore_ascii_case("Id")) {
                continue;
            }
            if k.eq_ignore_ascii_case("Id") {
                return Err(vec![RecordError::new("INVALID_FIELD", "cannot specify Id in an insert call", vec![])]);
            }
            let (name, value) = Self::convert(&def, k, v).map_err(|e| vec![e])?;
            if let Some(f) = def.field(&name) {
                let allowed = if kind == WriteKind::Create { f.createable } else { f.updateable };
                if !allowed {
                    not_writable.push(name.clone());
                }
                if f.kind == FieldType::Reference && !value.is_null() {
                    let target = value.as_str().unwrap_or("");
                    let exists = self.lookup(target).is_some_and(|(d, _)| f.reference_to.iter().any(|r| r == d.name));
                    let external = f.reference_to.iter().any(|r| !self.objects.contains_key(r));
                    if !exists && !external {
                        return Err(vec![RecordError::new(
                            "INVALID_CROSS_REFERENCE_KEY",
                            "invalid cross reference id",
                            vec![name.clone()],
                        )]);
                    }
                    // A converted lead is read-only: no new activity may
                    // name it (its Contact and Opportunity take them).
                    let converted = self.get("Lead", target).is_some_and(|lead| is_true(lead, "IsConverted"));
                    if name == "WhoId" && converted {
                        return Err(vec![RecordError::new(
                            "CANNOT_UPDATE_CONVERTED_LEAD",
                            "cannot reference converted lead",
                            vec![name.clone()],
                        )]);
                    }
                }
            }
            changes.insert(name, value);
        }
        if !not_writable.is_empty() {
            return Err(vec![RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    not_writable.join(", ")
                ),
                not_writable,
            )]);
        }

        let (id, before, mut rec) = match kind {
            WriteKind::Create => {
                let id = self.new_id(def.name);
                let mut rec = Record::new();
                rec.insert("Id", json!(id));
                rec.insert("CreatedDate", json!(fmt_datetime(now)));
                rec.insert("CreatedById", json!(user_id));
                if def.soft_delete {
                    rec.insert("IsDeleted", json!(false));
                }
                apply_defaults(def.name, &mut rec, user_id);
                (id, None, rec)
            }
            WriteKind::Update => {
                let id = normalise_id(id.unwrap_or(""));
                let Some(existing) = self.get(def.name, &id).cloned() else {
                    return Err(vec![RecordError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        vec![],
                    )]);
                };
                if is_true(&existing, "IsDeleted") {
                    return Err(vec![RecordError::new("ENTITY_IS_DELETED", "entity is deleted", vec![])]);
                }
                if def.name == "Lead" && is_true(&existing, "IsConverted") {
                    return Err(vec![RecordError::new(
                        "CANNOT_UPDATE_CONVERTED_LEAD",
                        "cannot reference converted lead",
                        vec![],
                    )]);
                }
                (id, Some(existing.clone()), existing)
            }
        };
        for (k, v) in changes {
            rec.insert(&k, v);
        }
        derive_fields(def.name, &mut rec, now);
        if kind == WriteKind::Create {
            let missing: Vec<String> = def
                .fields
                .iter()
                .filter(|f| f.required && rec.get(&f.name).is_none_or(|v| v.is_null() || v.as_str() == Some("")))
                .map(|f| f.name.clone())
                .collect();
            if !missing.is_empty() {
                return Err(vec![RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", missing.join(", ")),
                    missing,
                )]);
            }
            if def.name == "Event"
                && !is_true(&rec, "IsAllDayEvent")
                && rec.get("DurationInMinutes").is_none_or(FieldRef::is_null)
                && rec.get("EndDateTime").is_none_or(FieldRef::is_null)
            {
                return Err(vec![RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [DurationInMinutes]",
                    vec!["DurationInMinutes".into()],
                )]);
            }
        }
        // Unique fields (external ids) are unique case-insensitively among live rows.
        for f in def.fields.iter().filter(|f| f.unique) {
            let Some(val) = rec.get(&f.name).and_then(FieldRef::as_str).map(str::to_lowercase) else { continue };
            let clash = self.find_by_field(def.name, &f.name, &val).into_iter().find(|other| *other != id);
            if let Some(other) = clash {
                return Err(vec![RecordError::new(
                    "DUPLICATE_VALUE",
                    format!("duplicate value found: {} duplicates value on record with id: {other}", f.name),
                    vec![],
                )]);
            }
        }
        rec.insert("LastModifiedDate", json!(fmt_datetime(now)));
        rec.insert("LastModifiedById", json!(user_id));
        rec.insert("SystemModstamp", json!(fmt_datetime(now)));
        // Tracked changes leave history rows, undone with the write.
        let history = match (def.name, &before) {
            ("Lead", None) => self.history_on_create(&id, now, user_id),
            ("Lead", Some(b)) => self.history_on_update(&id, b, &rec, now, user_id),
            _ => Vec::new(),
        };
        undo.push(Undo { object: def.name.to_string(), id: id.clone(), before });
        undo.extend(history.into_iter().map(|h| Undo { object: "LeadHistory".to_string(), id: h, before: None }));
        self.put_raw(def.name, &id, rec);
        Ok(id)
    }

    /// Undo applied writes, newest first (an `allOrNone` batch that failed).
    pub fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            if let Some(t) = self.tables.get_mut(&u.object) {
                match u.before {
                    Some(before) => {
                        if !is_true(&before, "IsDeleted") {
                            t.undelete_mark(&u.id);
                        }
                        t.put(&u.id, before);
                    }
                    None => t.purge(&u.id),
                }
            }
        }
    }

    /// Soft delete (Recycle Bin): `IsDeleted = true`, modstamp bumped.
    pub fn delete(&mut self, object: &str, id: &str, now: DateTime<Utc>) -> Result<(), RecordError> {
        let id = normalise_id(id);
        let soft = self.objects.get(object).is_some_and(|d| d.soft_delete);
        let Some(mut rec) = self.get(object, &id).cloned() else {
            return Err(RecordError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![]));
        };
        if !soft {
            return Err(RecordError::new(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
                vec![],
            ));
        }
        if is_true(&rec, "IsDeleted") {
            return Err(RecordError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]));
        }
        rec.insert("IsDeleted", json!(true));
        rec.insert("SystemModstamp", json!(fmt_datetime(now)));
        self.remember(object, &id);
        if let Some(t) = self.tables.get_mut(object) {
            t.put(&id, rec);
            t.mark_deleted(&id, now);
        }
        self.cascade_delete(object, &id);
        Ok(())
    }

    /// Children that go to the Recycle Bin with their parent (a lead's
    /// history) are flagged deleted too.
    fn cascade_delete(&mut self, object: &str, id: &str) {
        let rels: Vec<ChildRelationship> = self
            .objects
            .get(object)
            .map(|d| d.child_relationships.iter().filter(|c| c.cascade_delete).cloned().collect())
            .unwrap_or_default();
        for rel in rels {
            let ids: Vec<String> = self
                .tables
                .get(rel.child)
                .map(|t| t.children_of(rel.field, id).map(str::to_string).collect())
                .unwrap_or_default();
            for child in &ids {
                self.remember(rel.child, child);
            }
            let Some(table) = self.tables.get_mut(rel.child) else { continue };
            for child in ids {
                if let Some(mut r) = table.get(&child).cloned() {
                    r.insert("IsDeleted", json!(true));
                    table.put(&child, r);
                }
            }
        }
    }

    /// Merge `loser` into `master` (Lead): the loser is deleted with
    /// `MasterRecordId` set, its activities move to the master.
    pub fn merge(&mut self, object: &str, master: &str, loser: &str, now: DateTime<Utc>) -> Result<(), RecordError> {
        let master = normalise_id(master);
        let loser = normalise_id(loser);
        if self.get(object, &master).is_none_or(|r| is_true(r, "IsDeleted")) {
            return Err(RecordError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![]));
        }
        self.delete(object, &loser, now)?;
        if let Some(mut rec) = self.get(object, &loser).cloned() {
            rec.insert("MasterRecordId", json!(master));
            self.put_raw(object, &loser, rec);
        }
        if let Some(mut rec) = self.get(object, &master).cloned() {
            rec.insert("SystemModstamp", json!(fmt_datetime(now)));
            rec.insert("LastModifiedDate", json!(fmt_datetime(now)));
            self.put_raw(object, &master, rec);
        }
        for activity in ["Task", "Event"] {
            let moved: Vec<(String, Record)> = self
                .child_rows(activity, "WhoId", &loser)
                .into_iter()
                .map(|(id, r)| (id.to_string(), r.clone()))
                .collect();
            for (id, mut r) in moved {
                r.insert("WhoId", json!(master));
                r.insert("SystemModstamp", json!(fmt_datetime(now)));
                self.put_raw(activity, &id, r);
            }
        }
        Ok(())
    }

    /// Live rows whose `field` equals `value` (case-insensitive), for upsert.
    pub fn find_by_field(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        let want = value.to_lowercase();
        let Some(t) = self.tables.get(object) else { return Vec::new() };
        let live = |r: &Record| !is_true(r, "IsDeleted");
        match t.with_unique_value(field, &want) {
            // Unique fields are indexed: no scan.
            Some(ids) => ids.into_iter().filter(|id| t.get(id).is_some_and(live)).collect(),
            // A field an admin added later: scan.
            None => t
                .rows()
                .filter(|(_, r)| live(r))
                .filter(|(_, r)| r.get(field).and_then(FieldRef::as_str).is_some_and(|s| s.to_lowercase() == want))
                .map(|(id, _)| id.to_string())
                .collect(),
        }
    }

    /// Run a query: `include_deleted` is `queryAll` (deleted and archived
    /// rows too). Answers the first page and keeps a cursor for the rest.
    pub fn run_query(
        &mut self,
        q: &str,
        include_deleted: bool,
        batch_size: usize,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<QueryPage, ApiError> {
        let parsed = soql::parse(q)?;
        let bound = soql::bind(self, parsed, now)?.with_deleted(include_deleted);
        let ids = self.matching_ids(&bound)?;
        if bound.query.is_count() {
            return Ok(QueryPage { body: json!({"totalSize": ids.len(), "done": true, "records": []}) });
        }
        let total = ids.len();
        let (first, end) = self.page(&bound, &ids, 0, batch_size, version);
        if end >= total {
            return Ok(QueryPage { body: json!({"totalSize": total, "done": true, "records": first}) });
        }
        let locator_id = self.add_locator(Locator { bound, ids, batch_size, seq: 0 });
        let next = format!("/services/data/{version}/query/{locator_id}-{end}");
        Ok(QueryPage { body: json!({"totalSize": total, "done": false, "nextRecordsUrl": next, "records": first}) })
    }

    /// The ids a bound query answers, in its order, after `OFFSET` and `LIMIT`.
    pub fn matching_ids(&self, bound: &Bound) -> Result<Vec<String>, ApiError> {
        let include_deleted = bound.include_deleted;
        let def = self.objects.get(&bound.object).cloned().ok_or_else(|| ApiError::invalid_type("unknown object"))?;
        let Some(table) = self.tables.get(&bound.object) else {
            return Err(ApiError::invalid_type("unknown object"));
        };
        let visible = |r: &Record| soql::is_visible(&def, r, include_deleted);
        let (lo, hi) = bound.modstamp_range();
        let use_index = lo.is_some() || hi.is_some() || bound.ordered_by_modstamp();
        // In index order with a LIMIT, rows past OFFSET + LIMIT are never needed.
        let enough = if bound.ordered_by_modstamp() {
            bound
                .query
                .limit
                .map_or(usize::MAX, |l| (l as usize).saturating_add(bound.query.offset.unwrap_or(0) as usize))
        } else {
            usize::MAX
        };
        let mut hits: Vec<(String, &Record)> = if use_index {
            table
                .range_by_modstamp(lo, hi)
                .filter_map(|id| table.get(id).map(|r| (id, r)))
                .filter(|(_, r)| visible(r) && bound.matches(self, r))
                .take(enough)
                .map(|(id, r)| (id.to_string(), r))
                .collect()
        } else {
            table
                .rows()
                .filter(|(_, r)| visible(r) && bound.matches(self, r))
                .map(|(id, r)| (id.to_string(), r))
                .collect()
        };
        if !(use_index && bound.ordered_by_modstamp()) {
            bound.sort(self, &mut hits);
        }
        let offset = bound.query.offset.unwrap_or(0) as usize;
        let limit = bound.query.limit.map_or(usize::MAX, |l| l as usize);
        Ok(hits.into_iter().skip(offset).take(limit).map(|(id, _)| id).collect())
    }

    fn add_locator(&mut self, mut loc: Locator) -> String {
        self.locator_seq += 1;
        let locator_id = make_id("01g", "Hs2", self.locator_seq);
        loc.seq = self.locator_seq;
        self.locators.insert(locator_id.clone(), loc);
        self.evict_locators();
        locator_id
    }

    /// Render the page of `ids` starting at `offset`. Child rows count
    /// toward the batch size as in the real API: a page ends before a
    /// parent whose children no longer fit, and a parent alone on a page
    /// with more children than the batch holds gets a child collection that
    /// is not `done`, with its own `nextRecordsUrl`. Returns the records
    /// and the offset of the next page.
    fn page(
        &mut self,
        bound: &Bound,
        ids: &[String],
        offset: usize,
        batch_size: usize,
        version: &str,
    ) -> (Vec<Value>, usize) {
        /// A child collection cut short: (record index, child index, all ids, ids shown).
        type Cut = (usize, usize, Vec<String>, usize);
        let mut records: Vec<Value> = Vec::new();
        let mut cuts: Vec<Cut> = Vec::new();
        let mut used = 0usize;
        let mut next = offset;
        if let Some(table) = self.tables.get(&bound.object) {
            while next < ids.len() && used < batch_size {
                let id = &ids[next];
                let Some(rec) = table.get(id) else {
                    next += 1;
                    continue;
                };
                let lists: Vec<Vec<String>> = (0..bound.children.len()).map(|c| bound.child_ids(self, c, id)).collect();
                let wanted: usize = lists.iter().map(Vec::len).sum();
                let room = batch_size - used;
                if used > 0 && 1 + wanted > room {
                    break;
                }
                let mut budget = room - 1;
                let mut row = bound.render(self, id, rec, version);
                for (c, list) in lists.into_iter().enumerate() {
                    let child = &bound.children[c];
                    let shown = list.len().min(budget);
                    budget -= shown;
                    used += shown;
                    let value = if list.is_empty() {
                        Value::Null
                    } else {
                        let child_table = self.tables.get(&child.bound.object);
                        let rows: Vec<Value> = list[..shown]
                            .iter()
                            .filter_map(|cid| {
                                child_table.and_then(|t| t.get(cid)).map(|r| child.bound.render(self, cid, r, version))
                            })
                            .collect();
                        json!({"totalSize": list.len(), "done": shown == list.len(), "records": rows})
                    };
                    if shown < list.len() {
                        cuts.push((records.len(), c, list, shown));
                    }
                    if let Value::Object(m) = &mut row {
                        m.insert(child.name.clone(), value);
                    }
                }
                used += 1;
                records.push(row);
                next += 1;
            }
        }
        for (at, c, list, shown) in cuts {
            let Some(child) = bound.children.get(c) else { continue };
            let name = child.name.clone();
            let loc = self.add_locator(Locator { bound: child.bound.clone(), ids: list, batch_size, seq: 0 });
            if let Some(Value::Object(m)) = records.get_mut(at).and_then(|r| r.get_mut(&name)) {
                m.insert("nextRecordsUrl".into(), json!(format!("/services/data/{version}/query/{loc}-{shown}")));
            }
        }
        (records, next)
    }

    fn evict_locators(&mut self) {
        while self.locators.len() > MAX_LOCATORS {
            let oldest = self.locators.iter().min_by_key(|(_, l)| l.seq).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.locators.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Follow a `nextRecordsUrl` (`{locator}-{offset}`).
    pub fn query_more(&mut self, locator: &str, version: &str) -> Result<QueryPage, ApiError> {
        let invalid = || ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "invalid query locator");
        let (loc_id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let loc = self.locators.remove(loc_id).ok_or_else(invalid)?;
        if offset > loc.ids.len() {
            self.locators.insert(loc_id.to_string(), loc);
            return Err(invalid());
        }
        let (records, end) = self.page(&loc.bound, &loc.ids, offset, loc.batch_size, version);
        let total = loc.ids.len();
        self.locators.insert(loc_id.to_string(), loc);
        let body = if end < total {
            json!({"totalSize": total, "done": false, "nextRecordsUrl": format!("/services/data/{version}/query/{loc_id}-{end}"), "records": records})
        } else {
            json!({"totalSize": total, "done": true, "records": records})
        };
        Ok(QueryPage { body })
    }

    /// `sobjects/X/updated` or `sobjects/X/deleted`.
    pub fn replication(
        &self,
        object: &str,
        deleted: bool,
        start: Option<&str>,
        end: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", m.to_string());
        let parse = |s: Option<&str>, name: &str| -> Result<DateTime<Utc>, ApiError> {
            let s = s.ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "MISSING_ARGUMENT", format!("{name} parameter is required"))
            })?;
            parse_datetime(s).ok_or_else(|| bad(&format!("{name} is not a valid dateTime: {s}")))
        };
        let minute = Duration::minutes(1);
        let start = parse(start, "start")?.duration_trunc(minute).unwrap_or_default();
        let end = parse(end, "end")?.duration_trunc(minute).unwrap_or_default();
        let horizon_days = if deleted { 15 } else { 30 };
        if start > end {
            return Err(bad("EndDate can not be before StartDate"));
        }
        if start < now - Duration::days(horizon_days) {
            return Err(bad(&format!("startDate cannot be more than {horizon_days} days ago")));
        }
        let end = end.min(now.duration_trunc(minute).unwrap_or(now));
        let table = self.tables.get(object).ok_or_else(ApiError::not_found)?;
        if deleted {
            let rows = table.deleted_between(start, end);
            if rows.len() > MAX_REPLICATION_IDS {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", "too many ids"));
            }
            let list: Vec<Value> =
                rows.iter().map(|(id, at)| json!({"id": id, "deletedDate": fmt_datetime(*at)})).collect();
            let earliest = (now - Duration::days(horizon_days)).duration_trunc(minute).unwrap_or(now);
            Ok(json!({
                "deletedRecords": list,
                "earliestDateAvailable": fmt_datetime(earliest),
                "latestDateCovered": fmt_datetime(end)
            }))
        } else {
            let ids: Vec<String> = table
                .ids_by_modstamp(Some(to_millis(start)), Some(to_millis(end) - 1))
                .into_iter()
                .filter(|id| table.get(id).is_some_and(|r| !is_true(r, "IsDeleted")))
                .collect();
            if ids.len() > MAX_REPLICATION_IDS {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", "too many ids"));
            }
            Ok(json!({"ids": ids, "latestDateCovered": fmt_datetime(end)}))
        }
    }

    /// Render one stored row for `GET sobjects/X/{id}` (all fields or `fields`).
    pub fn render_row(&self, object: &str, id: &str, fields: Option<&str>, version: &str) -> Option<Value> {
        let rec = self.get(object, id)?;
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{id}")}),
        );
        match fields {
            Some(list) => {
                for f in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    let key = self
                        .objects
                        .get(object)
                        .and_then(|d| d.field(f))
                        .map(|d| d.name.clone())
                        .or_else(|| rec.keys().find(|k| k.eq_ignore_ascii_case(f)).map(str::to_string))
                        .unwrap_or_else(|| f.to_string());
                    out.insert(key.clone(), rec.value(&key));
                }
            }
            None => {
                for (k, v) in self.full_row(object, rec) {
                    out.insert(k, v);
                }
            }
        }
        Some(Value::Object(out))
    }

    /// A stored row with every field of its object, nulls included (rows
    /// need not store their null fields).
    pub fn full_row(&self, object: &str, rec: &Record) -> Map<String, Value> {
        let mut out = rec.to_map();
        if let Some(def) = self.objects.get(object) {
            for f in &def.fields {
                out.entry(f.name.as_str()).or_insert(Value::Null);
            }
        }
        out
    }

    /// Whether `id` has the key prefix of `object`.
    pub fn id_matches_object(&self, object: &str, id: &str) -> bool {
        self.objects.get(object).is_some_and(|d| is_id_with_prefix(id, d.key_prefix))
    }
}

/// Defaults Salesforce fills on create.
fn apply_defaults(object: &str, rec: &mut Record, user_id: &str) {
    let mut default = |k: &str, v: Value| {
        if rec.get(k).is_none_or(FieldRef::is_null) {
            rec.insert(k, v);
        }
    };
    default("OwnerId", json!(user_id));
    match object {
        "Lead" => {
            default("Status", json!("Open - Not Contacted"));
            default("IsConverted", json!(false));
            default("IsUnreadByOwner", json!(true));
        }
        "Task" => {
            default("Status", json!("Not Started"));
            default("Priority", json!("Normal"));
            default("TaskSubtype", json!("Task"));
            default("IsArchived", json!(false));
            default("IsReminderSet", json!(false));
        }
        "Event" => {
            default("EventSubtype", json!("Event"));
            default("IsArchived", json!(false));
            default("IsAllDayEvent", json!(false));
        }
        _ => {}
    }
}

/// Fields Salesforce computes from others.
pub fn derive_fields(object: &str, rec: &mut Record, now: DateTime<Utc>) {
    match object {
        "Lead" => {
            let first = rec.get("FirstName").and_then(FieldRef::as_str).unwrap_or("").to_string();
            let last = rec.get("LastName").and_then(FieldRef::as_str).unwrap_or("").to_string();
            rec.insert("Name", json!(format!("{first} {last}").trim().to_string()));
        }
        "Task" => {
            let closed = rec.get("Status").and_then(FieldRef::as_str) == Some("Completed");
            let high = rec.get("Priority").and_then(FieldRef::as_str) == Some("High");
            rec.insert("IsClosed", json!(closed));
            rec.insert("IsHighPriority", json!(high));
            if closed && rec.get("CompletedDateTime").is_none_or(FieldRef::is_null) {
                rec.insert("CompletedDateTime", json!(fmt_datetime(now)));
            } else if !closed {
                rec.insert("CompletedDateTime", Value::Null);
            }
        }
        "Event" => {
            let start = rec.get("StartDateTime").and_then(FieldRef::as_str).and_then(parse_datetime);
            if let Some(start) = start {
                rec.insert("ActivityDateTime", json!(fmt_datetime(start)));
                rec.insert("ActivityDate", json!(fmt_date(start)));
                let minutes = rec.get("DurationInMinutes").and_then(FieldRef::as_i64);
                let end = rec.get("EndDateTime").and_then(FieldRef::as_str).and_then(parse_datetime);
                match (minutes, end) {
                    (Some(m), _) => {
                        rec.insert("EndDateTime", json!(fmt_datetime(start + Duration::minutes(m))));
                    }
                    (None, Some(end)) => {
                        rec.insert("DurationInMinutes", json!((end - start).num_minutes()));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{EventKind, OrgConfig, OwnerRef, SyntheticOrg};
    use crate::salesforce::materialise;

    fn app() -> AppConfig {
        AppConfig {
            client_id: "client".into(),
            client_secret: "secret".into(),
            username: "integration@example.com".into(),
            user_id: materialise::integration_user_id(),
            org_id: make_id("00D", ORG_POD, 1),
            jwt_public_key_pem: String::new(),
            audiences: Vec::new(),
            instance_url: "http://127.0.0.1:0".into(),
        }
    }

    fn org_state(leads: usize) -> (SfState, SyntheticOrg) {
        let org = crate::generate(&OrgConfig { leads, ..OrgConfig::default() });
        let mut st = SfState::new(app());
        materialise::seed(&mut st, &org);
        materialise::catch_up(&mut st, &org, org.config.end_at());
        (st, org)
    }

    fn history_of<'a>(st: &'a SfState, lead: &str) -> Vec<&'a Record> {
        st.child_rows("LeadHistory", "LeadId", lead).into_iter().map(|(_, r)| r).collect()
    }

    fn text<'a>(r: &'a Record, f: &str) -> &'a str {
        r.get_str(f).unwrap_or("")
    }

    const HISTORY_Q: &str = "SELECT Id, (SELECT Field, DataType, OldValue, NewValue, CreatedDate FROM Histories WHERE Field IN ('Owner','Status') ORDER BY CreatedDate) FROM Lead";

    fn owner_id(o: OwnerRef) -> String {
        match o {
            OwnerRef::User(i) => materialise::user_id(i),
            OwnerRef::Queue(i) => materialise::queue_id(i),
        }
    }

    #[test]
    fn the_timeline_leaves_created_owner_pairs_and_status_rows() {
        let (st, org) = org_state(200);
        let mut checked_owner_changes = 0;
        for lead in 0..org.leads.len() {
            let id = materialise::lead_id(lead);
            // Replay the lead's events: what history should say.
            let mut owner: Option<String> = None;
            let mut expected_owner_changes: Vec<(String, String)> = Vec::new();
            let mut expected_status = 0;
            let mut status = "Open - Not Contacted".to_string();
            for ev in &org.events {
                match &ev.kind {
                    EventKind::LeadCreated { lead: l, owner: o } if *l == lead => owner = Some(owner_id(*o)),
                    EventKind::Assigned { lead: l, owner: o } if *l == lead => {
                        let new = owner_id(*o);
                        if owner.as_deref() != Some(new.as_str()) {
                            expected_owner_changes.push((owner.clone().unwrap_or_default(), new.clone()));
                        }
                        owner = Some(new);
                    }
                    EventKind::StatusChanged { lead: l, status: s } if *l == lead => {
                        let new = materialise::lead_status(s);
                        if new != status {
                            expected_status += 1;
                        }
                        status = new.to_string();
                    }
                    _ => {}
                }
            }
            let rows = history_of(&st, &id);
            assert_eq!(rows.iter().filter(|r| text(r, "Field") == "created").count(), 1, "{id}");
            let id_rows: Vec<&&Record> =
                rows.iter().filter(|r| text(r, "Field") == "Owner" && text(r, "DataType") == "EntityId").collect();
            let name_rows: Vec<&&Record> =
                rows.iter().filter(|r| text(r, "Field") == "Owner" && text(r, "DataType") == "Text").collect();
            let got: Vec<(String, String)> =
                id_rows.iter().map(|r| (text(r, "OldValue").to_string(), text(r, "NewValue").to_string())).collect();
            assert_eq!(got, expected_owner_changes, "{id}");
            assert_eq!(name_rows.len(), id_rows.len(), "{id}: an owner change is an id row and a name row");
            for (ids, names) in id_rows.iter().zip(&name_rows) {
                assert_eq!(ids.get("CreatedDate"), names.get("CreatedDate"));
                let new_owner = st.lookup(text(ids, "NewValue")).map(|(_, r)| text(r, "Name").to_string());
                assert_eq!(Some(text(names, "NewValue").to_string()), new_owner);
                assert!(text(ids, "Id") < text(names, "Id"), "the id row comes first");
            }
            checked_owner_changes += got.len();
            assert_eq!(rows.iter().filter(|r| text(r, "Field") == "Status").count(), expected_status, "{id}");
            assert!(rows.iter().all(|r| text(r, "Id").starts_with("017")));
        }
        assert!(checked_owner_changes > 100, "routing reassigns most leads: {checked_owner_changes}");
    }

    #[test]
    fn api_writes_record_owner_and_status_changes_and_a_rollback_takes_them_back() {
        let (mut st, _) = org_state(20);
        let lead = materialise::lead_id(0);
        let current = st.get("Lead", &lead).unwrap().clone();
        let other = (5..9).map(materialise::user_id).find(|u| current.get_str("OwnerId") != Some(u.as_str())).unwrap();
        let status = ["Unqualified", "Qualified"].into_iter().find(|s| current.get_str("Status") != Some(*s)).unwrap();
        let before = history_of(&st, &lead).len();
        let now = parse_datetime("2026-04-02T10:00:00Z").unwrap();
        let user = materialise::user_id(1);
        let fields: Map<String, Value> = json!({"OwnerId": other, "Status": status}).as_object().unwrap().clone();
        let mut undo = Vec::new();
        st.write("Lead", WriteKind::Update, Some(&lead), &fields, &user, now, None, &mut undo).unwrap();
        let rows = history_of(&st, &lead);
        assert_eq!(rows.len(), before + 3);
        let new: Vec<&&Record> =
            rows.iter().filter(|r| r.get_str("CreatedDate") == Some("2026-04-02T10:00:00.000+0000")).collect();
        assert_eq!(new.len(), 3);
        assert!(new.iter().all(|r| text(r, "CreatedById") == user));
        assert!(new.iter().any(|r| text(r, "DataType") == "EntityId" && text(r, "NewValue") == other));
        assert!(new.iter().any(|r| text(r, "Field") == "Status" && text(r, "NewValue") == status));
        // Writing the same values again changes nothing, so records nothing.
        st.write("Lead", WriteKind::Update, Some(&lead), &fields, &user, now, None, &mut undo).unwrap();
        assert_eq!(history_of(&st, &lead).len(), before + 3);
        st.rollback(undo);
        assert_eq!(history_of(&st, &lead).len(), before, "an undone write leaves no history");

        let mut undo = Vec::new();
        let created = st
            .write(
                "Lead",
                WriteKind::Create,
                None,
                json!({"LastName": "New", "Company": "Co"}).as_object().unwrap(),
                &user,
                now,
                None,
                &mut undo,
            )
            .unwrap();
        let rows = history_of(&st, &created);
        assert_eq!(rows.len(), 1);
        assert_eq!(text(rows[0], "Field"), "created");
        assert_eq!(rows[0].value("OldValue"), Value::Null);
    }

    #[test]
    fn history_rows_are_immutable_through_the_api() {
        let (mut st, _) = org_state(5);
        let (hid, _) = st.child_rows("LeadHistory", "LeadId", &materialise::lead_id(0))[0];
        let hid = hid.to_string();
        let now = parse_datetime("2026-04-02T10:00:00Z").unwrap();
        let fields: Map<String, Value> = json!({"NewValue": "x"}).as_object().unwrap().clone();
        let err = st
            .write("LeadHistory", WriteKind::Update, Some(&hid), &fields, "005", now, None, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err[0].status_code, "INSUFFICIENT_ACCESS_OR_READONLY");
        let err =
            st.write("LeadHistory", WriteKind::Create, None, &fields, "005", now, None, &mut Vec::new()).unwrap_err();
        assert_eq!(err[0].status_code, "INSUFFICIENT_ACCESS_OR_READONLY");
        assert_eq!(st.delete("LeadHistory", &hid, now).unwrap_err().status_code, "INSUFFICIENT_ACCESS_OR_READONLY");
        let describe = st.objects["LeadHistory"].describe("v62.0");
        assert_eq!(
            (describe["createable"].clone(), describe["updateable"].clone(), describe["deletable"].clone()),
            (json!(false), json!(false), json!(false))
        );
        assert_eq!(describe["keyPrefix"], json!("017"));
        let lead = st.objects["Lead"].describe("v62.0");
        let rel = lead["childRelationships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["relationshipName"] == "Histories")
            .cloned()
            .unwrap();
        assert_eq!((rel["childSObject"].clone(), rel["field"].clone()), (json!("LeadHistory"), json!("LeadId")));
    }

    fn all_pages(st: &mut SfState, q: &str, all: bool, batch: usize) -> Vec<Vec<Value>> {
        let now = parse_datetime("2026-04-02T10:00:00Z").unwrap();
        let mut body = st.run_query(q, all, batch, "v62.0", now).unwrap().body;
        let mut pages = vec![body["records"].as_array().unwrap().clone()];
        while body["done"] == json!(false) {
            let next = body["nextRecordsUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
            body = st.query_more(&next, "v62.0").unwrap().body;
            pages.push(body["records"].as_array().unwrap().clone());
        }
        pages
    }

    fn children_of(row: &Value) -> usize {
        row["Histories"]["records"].as_array().map_or(0, Vec::len)
    }

    #[test]
    fn subqueries_nest_histories_and_child_rows_count_toward_the_batch() {
        let (mut st, org) = org_state(600);
        let pages = all_pages(&mut st, &format!("{HISTORY_Q} ORDER BY SystemModstamp, Id"), false, 200);
        assert!(pages.len() > 3, "{} pages", pages.len());
        for page in &pages {
            let used: usize = page.iter().map(|r| 1 + children_of(r)).sum();
            assert!(used <= 200, "a page holds at most 200 rows, children included: {used}");
        }
        let full = &pages[..pages.len() - 1];
        assert!(full.iter().all(|p| p.iter().map(|r| 1 + children_of(r)).sum::<usize>() > 190), "pages are filled");
        let rows: Vec<&Value> = pages.iter().flatten().collect();
        let live = st.table("Lead").unwrap().rows().filter(|(_, r)| !is_true(r, "IsDeleted")).count();
        assert_eq!(rows.len(), live);
        let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), live, "no lead twice");
        let with = rows.iter().find(|r| children_of(r) >= 2).expect("a lead with history");
        let hist = &with["Histories"];
        assert_eq!(hist["done"], json!(true));
        assert_eq!(hist["totalSize"], json!(children_of(with)));
        assert!(hist.get("nextRecordsUrl").is_none());
        let first = &hist["records"][0];
        assert_eq!(first["attributes"]["type"], json!("LeadHistory"));
        assert!(first["attributes"]["url"]
            .as_str()
            .unwrap()
            .starts_with("/services/data/v62.0/sobjects/LeadHistory/017"));
        let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["CreatedDate", "DataType", "Field", "NewValue", "OldValue", "attributes"]);
        let dates: Vec<&str> =
            hist["records"].as_array().unwrap().iter().map(|r| r["CreatedDate"].as_str().unwrap()).collect();
        assert!(dates.windows(2).all(|w| w[0] <= w[1]), "ORDER BY CreatedDate: {dates:?}");
        assert!(hist["records"].as_array().unwrap().iter().all(|r| r["Field"] != json!("created")), "WHERE applies");
        // A lead nobody reassigned and whose status never moved has none: null.
        let quiet = org.leads.iter().map(|l| materialise::lead_id(l.index)).find(|id| {
            history_of(&st, id).iter().all(|r| text(r, "Field") == "created")
                && st.get("Lead", id).is_some_and(|r| !is_true(r, "IsDeleted"))
        });
        if let Some(quiet) = quiet {
            let row = rows.iter().find(|r| r["Id"] == json!(quiet)).unwrap();
            assert_eq!(row["Histories"], Value::Null);
        }
    }

    #[test]
    fn a_parent_with_more_children_than_the_batch_pages_them_with_its_own_locator() {
        let (mut st, _) = org_state(10);
        // A converted lead takes no update: take one that is not.
        let lead = (0..10)
            .map(materialise::lead_id)
            .find(|id| st.get("Lead", id).is_some_and(|r| !is_true(r, "IsConverted")))
            .unwrap();
        let now = parse_datetime("2026-04-02T10:00:00Z").unwrap();
        for i in 0..130 {
            let owner = materialise::user_id(i % 2 + 5);
            let fields: Map<String, Value> = json!({"OwnerId": owner}).as_object().unwrap().clone();
            st.write(
                "Lead",
                WriteKind::Update,
                Some(&lead),
                &fields,
                "005",
                now + Duration::seconds(i as i64),
                None,
                &mut Vec::new(),
            )
            .unwrap();
        }
        let total = history_of(&st, &lead).len();
        assert!(total > 260);
        let q = format!("SELECT Id, (SELECT Id, Field FROM Histories) FROM Lead WHERE Id = '{lead}'");
        let body = st.run_query(&q, false, 200, "v62.0", now).unwrap().body;
        assert_eq!(body["done"], json!(true));
        let hist = &body["records"][0]["Histories"];
        assert_eq!(hist["done"], json!(false));
        assert_eq!(hist["totalSize"], json!(total));
        assert_eq!(hist["records"].as_array().unwrap().len(), 199, "the parent and 199 children fill the batch");
        let mut seen: Vec<String> =
            hist["records"].as_array().unwrap().iter().map(|r| r["Id"].as_str().unwrap().to_string()).collect();
        let mut next = hist["nextRecordsUrl"].as_str().unwrap().to_string();
        loop {
            let locator = next.rsplit('/').next().unwrap().to_string();
            let page = st.query_more(&locator, "v62.0").unwrap().body;
            seen.extend(page["records"].as_array().unwrap().iter().map(|r| r["Id"].as_str().unwrap().to_string()));
            assert_eq!(page["totalSize"], json!(total));
            if page["done"] == json!(true) {
                break;
            }
            next = page["nextRecordsUrl"].as_str().unwrap().to_string();
        }
        let want: Vec<String> = history_of(&st, &lead).iter().map(|r| text(r, "Id").to_string()).collect();
        assert_eq!(seen, want, "every child once, in order");
    }

    #[test]
    fn a_deleted_lead_takes_its_history_to_the_recycle_bin() {
        let (mut st, _) = org_state(10);
        let lead = materialise::lead_id(1);
        if st.get("Lead", &lead).is_some_and(|r| is_true(r, "IsDeleted")) {
            return;
        }
        let n = history_of(&st, &lead).len();
        st.delete("Lead", &lead, parse_datetime("2026-04-02T10:00:00Z").unwrap()).unwrap();
        let q = format!("SELECT Id FROM LeadHistory WHERE LeadId = '{lead}'");
        assert_eq!(all_pages(&mut st, &q, false, 2000).concat().len(), 0);
        assert_eq!(all_pages(&mut st, &q, true, 2000).concat().len(), n);
        let q = format!("SELECT Id, (SELECT Id, IsDeleted FROM Histories) FROM Lead WHERE Id = '{lead}'");
        let rows = all_pages(&mut st, &q, true, 2000).concat();
        assert_eq!(rows.len(), 1);
        let children = rows[0]["Histories"]["records"].as_array().unwrap();
        assert_eq!(children.len(), n);
        assert!(children.iter().all(|c| c["IsDeleted"] == json!(true)));
    }

    #[test]
    fn with_tracking_off_histories_is_an_unknown_relationship_and_nothing_is_recorded() {
        let (mut st, _) = org_state(5);
        st.set_field_history(false);
        let lead = materialise::lead_id(0);
        let before = history_of(&st, &lead).len();
        let fields: Map<String, Value> = json!({"Status": "Qualified"}).as_object().unwrap().clone();
        let now = parse_datetime("2026-04-02T10:00:00Z").unwrap();
        st.write("Lead", WriteKind::Update, Some(&lead), &fields, "005", now, None, &mut Vec::new()).unwrap();
        assert_eq!(history_of(&st, &lead).len(), before);
        let err = st.run_query(HISTORY_Q, false, 2000, "v62.0", now).err().unwrap();
        assert_eq!(err.error_code, "INVALID_TYPE");
        assert!(err.message.contains("Didn't understand relationship 'Histories'"), "{}", err.message);
        let describe = st.objects["Lead"].describe("v62.0");
        assert!(describe["childRelationships"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["relationshipName"] != "Histories"));
        st.set_field_history(true);
        assert!(st.run_query(HISTORY_Q, false, 2000, "v62.0", now).is_ok());
    }

    #[test]
    fn an_untracked_field_records_no_history_and_field_definitions_say_so() {
        let (mut st, _) = org_state(5);
        st.set_tracked_fields(["OwnerId".to_string()].into_iter().collect());
        let lead = materialise::lead_id(0);
        let before = history_of(&st, &lead).len();
        let fields: Map<String, Value> = json!({"Status": "Qualified"}).as_object().unwrap().clone();
        let now = parse_datetime("2026-04-02T10:00:00Z").unwrap();
        st.write("Lead", WriteKind::Update, Some(&lead), &fields, "005", now, None, &mut Vec::new()).unwrap();
        assert_eq!(history_of(&st, &lead).len(), before);
        let defs = st.field_definitions("Lead").unwrap();
        let tracked =
            |name: &str| defs.iter().find(|d| d["QualifiedApiName"] == name).unwrap()["IsFieldHistoryTracked"].clone();
        assert_eq!((tracked("OwnerId"), tracked("Status")), (json!(true), json!(false)));
        st.set_field_history(false);
        let defs = st.field_definitions("Lead").unwrap();
        assert!(defs.iter().all(|d| d["IsFieldHistoryTracked"] == json!(false)));
    }
}
