//! The org's data and server-side state, and the operations on it that do
//! not touch HTTP: validated writes, query execution with server-side
//! cursors, `updated`/`deleted` windows.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Map, Value};

use super::errors::{ApiError, RecordError};
use super::limits::ApiUsage;
use super::oauth::{AppConfig, TokenStore};
use super::schema::{standard_objects, FieldType, SObjectDef};
use super::soql::{self, Bound, Db};
use super::store::{
    fmt_date, fmt_datetime, is_id_with_prefix, make_id, normalise_id, parse_date, parse_datetime, to_millis, Record, Table,
};

/// Default and bounds of `Sforce-Query-Options: batchSize`.
pub const DEFAULT_BATCH_SIZE: usize = 2000;
pub const MIN_BATCH_SIZE: usize = 200;
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
    pub app: AppConfig,
    /// How many timeline events have been applied.
    pub applied_events: usize,
    locators: HashMap<String, Locator>,
    counter: u64,
    locator_seq: u64,
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
    rec.get(field).and_then(Value::as_bool).unwrap_or(false)
}

impl SfState {
    pub fn new(app: AppConfig) -> Self {
        let objects = standard_objects();
        let tables = objects.keys().map(|k| (k.clone(), Table::default())).collect();
        SfState {
            objects,
            tables,
            tokens: TokenStore::default(),
            usage: ApiUsage::default(),
            app,
            applied_events: 0,
            locators: HashMap::new(),
            counter: 0,
            locator_seq: 0,
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
        if let Some(t) = self.tables.get_mut(object) {
            t.put(id, rec);
        }
    }

    pub fn get(&self, object: &str, id: &str) -> Option<&Record> {
        self.tables.get(object)?.get(&normalise_id(id))
    }

    /// Check and convert one field value to the stored form.
    fn convert(def: &SObjectDef, name: &str, v: &Value) -> Result<(String, Value), RecordError> {
        let f = def.field(name).ok_or_else(|| {
            RecordError::new("INVALID_FIELD", format!("No such column '{name}' on sobject of type {}", def.name), vec![])
        })?;
        let bad = |what: &str| {
            RecordError::new(
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize instance of {what} from {v} value or request may be missing a required field"),
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
                        format!("{}: id value of incorrect type: {s}", f.label.clone().unwrap_or_else(|| f.name.clone())),
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
        let mut changes = Record::new();
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
                for f in &def.fields {
                    rec.insert(f.name.clone(), Value::Null);
                }
                rec.insert("Id".into(), json!(id));
                rec.insert("CreatedDate".into(), json!(fmt_datetime(now)));
                rec.insert("CreatedById".into(), json!(user_id));
                if def.soft_delete {
                    rec.insert("IsDeleted".into(), json!(false));
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
                (id, Some(existing.clone()), existing)
            }
        };
        for (k, v) in changes {
            rec.insert(k, v);
        }
        derive_fields(def.name, &mut rec, now);
        if kind == WriteKind::Create {
            let missing: Vec<String> = def
                .fields
                .iter()
                .filter(|f| f.required && rec.get(&f.name).is_none_or(|v| v.is_null() || v == &json!("")))
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
                && rec.get("DurationInMinutes").is_none_or(Value::is_null)
                && rec.get("EndDateTime").is_none_or(Value::is_null)
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
            let Some(val) = rec.get(&f.name).and_then(Value::as_str).map(str::to_lowercase) else { continue };
            let clash = self.tables.get(def.name).and_then(|t| {
                t.rows()
                    .find(|(other, r)| {
                        **other != id
                            && !is_true(r, "IsDeleted")
                            && r.get(&f.name).and_then(Value::as_str).is_some_and(|s| s.to_lowercase() == val)
                    })
                    .map(|(other, _)| other.clone())
            });
            if let Some(other) = clash {
                return Err(vec![RecordError::new(
                    "DUPLICATE_VALUE",
                    format!("duplicate value found: {} duplicates value on record with id: {other}", f.name),
                    vec![],
                )]);
            }
        }
        rec.insert("LastModifiedDate".into(), json!(fmt_datetime(now)));
        rec.insert("LastModifiedById".into(), json!(user_id));
        rec.insert("SystemModstamp".into(), json!(fmt_datetime(now)));
        undo.push(Undo { object: def.name.to_string(), id: id.clone(), before });
        self.put_raw(def.name, &id, rec);
        Ok(id)
    }

    /// Undo applied writes, newest first (an `allOrNone` batch that failed).
    pub fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            if let Some(t) = self.tables.get_mut(&u.object) {
                match u.before {
                    Some(before) => t.put(&u.id, before),
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
            return Err(RecordError::new("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", vec![]));
        }
        if is_true(&rec, "IsDeleted") {
            return Err(RecordError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]));
        }
        rec.insert("IsDeleted".into(), json!(true));
        rec.insert("SystemModstamp".into(), json!(fmt_datetime(now)));
        if let Some(t) = self.tables.get_mut(object) {
            t.put(&id, rec);
            t.mark_deleted(&id, now);
        }
        Ok(())
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
            rec.insert("MasterRecordId".into(), json!(master));
            self.put_raw(object, &loser, rec);
        }
        if let Some(mut rec) = self.get(object, &master).cloned() {
            rec.insert("SystemModstamp".into(), json!(fmt_datetime(now)));
            rec.insert("LastModifiedDate".into(), json!(fmt_datetime(now)));
            self.put_raw(object, &master, rec);
        }
        for activity in ["Task", "Event"] {
            let moved: Vec<(String, Record)> = self
                .tables
                .get(activity)
                .map(|t| {
                    t.rows()
                        .filter(|(_, r)| r.get("WhoId").and_then(Value::as_str) == Some(loser.as_str()))
                        .map(|(id, r)| (id.clone(), r.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (id, mut r) in moved {
                r.insert("WhoId".into(), json!(master));
                r.insert("SystemModstamp".into(), json!(fmt_datetime(now)));
                self.put_raw(activity, &id, r);
            }
        }
        Ok(())
    }

    /// Live rows whose `field` equals `value` (case-insensitive), for upsert.
    pub fn find_by_field(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        let want = value.to_lowercase();
        self.tables
            .get(object)
            .map(|t| {
                t.rows()
                    .filter(|(_, r)| !is_true(r, "IsDeleted"))
                    .filter(|(_, r)| r.get(field).and_then(Value::as_str).is_some_and(|s| s.to_lowercase() == want))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
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
        let bound = soql::bind(self, parsed, now)?;
        let def = self.objects.get(&bound.object).cloned().ok_or_else(|| ApiError::invalid_type("unknown object"))?;
        let Some(table) = self.tables.get(&bound.object) else {
            return Err(ApiError::invalid_type("unknown object"));
        };
        let visible = |r: &Record| {
            include_deleted || !(is_true(r, "IsDeleted") || (def.archivable && is_true(r, "IsArchived")))
        };
        let (lo, hi) = bound.modstamp_range();
        let use_index = lo.is_some() || hi.is_some() || bound.ordered_by_modstamp();
        let mut hits: Vec<(String, &Record)> = if use_index {
            table
                .ids_by_modstamp(lo, hi)
                .into_iter()
                .filter_map(|id| table.get(&id).map(|r| (id, r)))
                .filter(|(_, r)| visible(r) && bound.matches(self, r))
                .collect()
        } else {
            table.rows().filter(|(_, r)| visible(r) && bound.matches(self, r)).map(|(id, r)| (id.clone(), r)).collect()
        };
        if !(use_index && bound.ordered_by_modstamp()) {
            bound.sort(self, &mut hits);
        }
        let offset = bound.query.offset.unwrap_or(0) as usize;
        let limit = bound.query.limit.map_or(usize::MAX, |l| l as usize);
        let ids: Vec<String> = hits.into_iter().skip(offset).take(limit).map(|(id, _)| id).collect();
        if bound.query.is_count() {
            return Ok(QueryPage { body: json!({"totalSize": ids.len(), "done": true, "records": []}) });
        }
        let total = ids.len();
        let first: Vec<Value> = ids
            .iter()
            .take(batch_size)
            .filter_map(|id| table.get(id).map(|r| bound.render(self, id, r, version)))
            .collect();
        if total <= batch_size {
            return Ok(QueryPage { body: json!({"totalSize": total, "done": true, "records": first}) });
        }
        self.locator_seq += 1;
        let locator_id = make_id("01g", "Hs2", self.locator_seq);
        let next = format!("/services/data/{version}/query/{locator_id}-{batch_size}");
        let seq = self.locator_seq;
        self.locators.insert(locator_id, Locator { bound, ids, batch_size, seq });
        self.evict_locators();
        Ok(QueryPage { body: json!({"totalSize": total, "done": false, "nextRecordsUrl": next, "records": first}) })
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
        let loc = self.locators.get(loc_id).ok_or_else(invalid)?;
        if offset > loc.ids.len() {
            return Err(invalid());
        }
        let table = self.tables.get(&loc.bound.object).ok_or_else(invalid)?;
        let end = (offset + loc.batch_size).min(loc.ids.len());
        let records: Vec<Value> = loc.ids[offset..end]
            .iter()
            .filter_map(|id| table.get(id).map(|r| loc.bound.render(self, id, r, version)))
            .collect();
        let total = loc.ids.len();
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
            let s = s.ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "MISSING_ARGUMENT", format!("{name} parameter is required")))?;
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
        out.insert("attributes".into(), json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{id}")}));
        match fields {
            Some(list) => {
                for f in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    let key = rec.keys().find(|k| k.eq_ignore_ascii_case(f)).cloned().unwrap_or_else(|| f.to_string());
                    out.insert(key.clone(), rec.get(&key).cloned().unwrap_or(Value::Null));
                }
            }
            None => {
                for (k, v) in rec {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Some(Value::Object(out))
    }

    /// Whether `id` has the key prefix of `object`.
    pub fn id_matches_object(&self, object: &str, id: &str) -> bool {
        self.objects.get(object).is_some_and(|d| is_id_with_prefix(id, d.key_prefix))
    }
}

/// Defaults Salesforce fills on create.
fn apply_defaults(object: &str, rec: &mut Record, user_id: &str) {
    let mut default = |k: &str, v: Value| {
        if rec.get(k).is_none_or(Value::is_null) {
            rec.insert(k.into(), v);
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
            let first = rec.get("FirstName").and_then(Value::as_str).unwrap_or("").to_string();
            let last = rec.get("LastName").and_then(Value::as_str).unwrap_or("").to_string();
            rec.insert("Name".into(), json!(format!("{first} {last}").trim().to_string()));
        }
        "Task" => {
            let closed = rec.get("Status").and_then(Value::as_str) == Some("Completed");
            let high = rec.get("Priority").and_then(Value::as_str) == Some("High");
            rec.insert("IsClosed".into(), json!(closed));
            rec.insert("IsHighPriority".into(), json!(high));
            if closed && rec.get("CompletedDateTime").is_none_or(Value::is_null) {
                rec.insert("CompletedDateTime".into(), json!(fmt_datetime(now)));
            } else if !closed {
                rec.insert("CompletedDateTime".into(), Value::Null);
            }
        }
        "Event" => {
            let start = rec.get("StartDateTime").and_then(Value::as_str).and_then(parse_datetime);
            if let Some(start) = start {
                rec.insert("ActivityDateTime".into(), json!(fmt_datetime(start)));
                rec.insert("ActivityDate".into(), json!(fmt_date(start)));
                let minutes = rec.get("DurationInMinutes").and_then(Value::as_i64);
                let end = rec.get("EndDateTime").and_then(Value::as_str).and_then(parse_datetime);
                match (minutes, end) {
                    (Some(m), _) => {
                        rec.insert("EndDateTime".into(), json!(fmt_datetime(start + Duration::minutes(m))));
                    }
                    (None, Some(end)) => {
                        rec.insert("DurationInMinutes".into(), json!((end - start).num_minutes()));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}
