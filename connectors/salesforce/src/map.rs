//! Salesforce rows → handoff's CRM-neutral records. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use handoff_model::{
    Absence, Activity, ActivityKind, Assignment, BusinessCalendar, Deletion, Direction, FieldChange, Holiday, Lead,
    Opportunity, Owner, OwnerKind, StatusChange, Stream, Timestamp, WeeklyWindow,
};
use serde_json::{Map, Value};

/// Key prefixes Salesforce gives ids: they tell a lead from a contact and a
/// user from a queue without another call.
pub const LEAD_PREFIX: &str = "00Q";
pub const OPPORTUNITY_PREFIX: &str = "006";
pub const QUEUE_PREFIX: &str = "00G";
pub const USER_PREFIX: &str = "005";

/// Lead's child relationship to `LeadHistory`, listed in Lead's describe
/// when the org tracks field history.
pub const HISTORIES: &str = "Histories";

/// The subquery the lead query carries when Lead has [`HISTORIES`]: status
/// changes and the id-valued owner rows (Salesforce writes every owner
/// change twice, once with ids and once with names; the name rows would
/// only take room in the batch, which child rows count toward), oldest first.
pub const HISTORY_SUBQUERY: &str = "(SELECT Field, DataType, OldValue, NewValue, CreatedDate FROM Histories \
    WHERE Field = 'Status' OR (Field = 'Owner' AND DataType = 'EntityId') ORDER BY CreatedDate, Id)";

/// [`HISTORY_SUBQUERY`], also reading the rows of the other tracked fields
/// the policy judges leads by ([`TrackedHistory::fields`]).
pub fn history_subquery(tracked: &TrackedHistory) -> String {
    let fields: Vec<String> = tracked
        .fields
        .iter()
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|f| format!("'{f}'"))
        .collect();
    if fields.is_empty() {
        return HISTORY_SUBQUERY.to_string();
    }
    format!(
        "(SELECT Field, DataType, OldValue, NewValue, CreatedDate FROM Histories \
         WHERE Field = 'Status' OR (Field = 'Owner' AND DataType = 'EntityId') OR Field IN ({}) ORDER BY CreatedDate, Id)",
        fields.join(", ")
    )
}

/// A row that could not be mapped, with the reason (the field and the
/// value); the connector quarantines it.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub sobject: &'static str,
    /// `?` when the row has no readable id.
    pub id: String,
    /// The lead the row belongs to (a lead's own id, an activity's `WhoId`).
    pub lead_id: Option<String>,
    pub message: String,
    /// The row as Salesforce sent it.
    pub raw: Value,
}

/// What one page of rows turned into.
#[derive(Debug, Default)]
pub struct Mapped {
    pub leads: Vec<Lead>,
    pub activities: Vec<Activity>,
    /// Their leads not named yet (the connector reads them per page).
    pub opportunities: Vec<Opportunity>,
    /// Events marked out of office.
    pub absences: Vec<Absence>,
    pub owners: Vec<Owner>,
    pub deletions: Vec<Deletion>,
    /// Leads whose history came back but could not be trusted (lead id,
    /// why); they carry no history, so the daemon keeps its own.
    pub incomplete_histories: Vec<(String, String)>,
}

type Row = Map<String, Value>;

/// Which Lead fields the org keeps field history for (Setup → Object
/// Manager → Lead → Fields & Relationships → Set History Tracking). Only a
/// tracked field's history is taken from `LeadHistory`: for an untracked
/// one the rows are simply absent, which would read as "never changed".
/// The daemon keeps its own observed history for what is not taken here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedHistory {
    pub owner: bool,
    pub status: bool,
    /// Other tracked fields whose history the policy reads (what decides
    /// qualification, the reason code): they fill [`Lead::field_history`].
    pub fields: Vec<String>,
}

impl Default for TrackedHistory {
    /// Owner and Status: the usual setup of an org that routes leads.
    fn default() -> Self {
        TrackedHistory { owner: true, status: true, fields: Vec::new() }
    }
}

impl TrackedHistory {
    /// Whether any history is worth asking for.
    pub fn any(&self) -> bool {
        self.owner || self.status || !self.fields.is_empty()
    }
}

/// Parse a Salesforce datetime: REST gives `2013-05-20T20:49:32.000+0000`,
/// Bulk and some tools give RFC 3339 with `Z`.
pub fn parse_datetime(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A SOQL dateTime literal (unquoted, UTC, whole seconds).
pub fn soql_datetime(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn text<'a>(row: &'a Row, field: &str) -> Option<&'a str> {
    row.get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn flag(row: &Row, field: &str) -> bool {
    row.get(field).and_then(Value::as_bool).unwrap_or(false)
}

fn stamp(row: &Row, field: &str, sobject: &'static str) -> Result<Timestamp, BadRow> {
    let raw = text(row, field).ok_or_else(|| bad(row, sobject, format!("{field} is missing")))?;
    parse_datetime(raw).ok_or_else(|| bad(row, sobject, format!("{field} {raw:?} is not a datetime")))
}

/// A datetime field that may be absent: absent or empty is `None`; present
/// but unreadable makes the row bad (a fallback would alter the record).
fn opt_stamp(row: &Row, field: &str, sobject: &'static str) -> Result<Option<Timestamp>, BadRow> {
    match text(row, field) {
        None => Ok(None),
        Some(raw) => {
            parse_datetime(raw).map(Some).ok_or_else(|| bad(row, sobject, format!("{field} {raw:?} is not a datetime")))
        }
    }
}

/// A date field that may be absent, as midnight UTC; unreadable makes the row bad.
fn opt_date(row: &Row, field: &str, sobject: &'static str) -> Result<Option<Timestamp>, BadRow> {
    match text(row, field) {
        None => Ok(None),
        Some(raw) => {
            date_at_midnight(raw).map(Some).ok_or_else(|| bad(row, sobject, format!("{field} {raw:?} is not a date")))
        }
    }
}

fn bad(row: &Row, sobject: &'static str, message: String) -> BadRow {
    let lead_id = match sobject {
        "Lead" => text(row, "Id"),
        "Task" | "Event" => text(row, "WhoId").filter(|w| w.starts_with(LEAD_PREFIX)),
        _ => None,
    };
    BadRow {
        sobject,
        id: text(row, "Id").unwrap_or("?").to_string(),
        lead_id: lead_id.map(str::to_string),
        message,
        raw: Value::Object(row.clone()),
    }
}

/// Fields the mapping reads as text (ids, picklists, datetimes) and as
/// checkboxes. A value of another type is not guessed at: the row is bad.
const TEXT_FIELDS: &[&str] = &[
    "Id",
    "OwnerId",
    "CreatedDate",
    "SystemModstamp",
    "MasterRecordId",
    "ConvertedDate",
    "Status",
    "WhoId",
    "WhatId",
    "Subject",
    "ActivityDate",
    "CompletedDateTime",
    "TaskSubtype",
    "Type",
    "CallType",
    "StartDateTime",
    "ActivityDateTime",
    "EndDateTime",
    "ShowAs",
    "Name",
    "Email",
    "ManagerId",
    "TimeZoneSidKey",
];
const FLAG_FIELDS: &[&str] = &["IsDeleted", "IsConverted", "IsClosed", "IsActive", "IsAllDayEvent"];

/// Refuse a row whose known fields have the wrong JSON type (a number
/// where Salesforce sends text, a string where it sends a checkbox).
fn check_types(row: &Row, sobject: &'static str) -> Result<(), BadRow> {
    for (field, value) in row {
        let wrong = if TEXT_FIELDS.contains(&field.as_str()) {
            !(value.is_string() || value.is_null())
        } else if FLAG_FIELDS.contains(&field.as_str()) {
            !(value.is_boolean() || value.is_null())
        } else {
            false
        };
        if wrong {
            let want = if FLAG_FIELDS.contains(&field.as_str()) { "a checkbox (true/false)" } else { "text" };
            return Err(bad(row, sobject, format!("{field} is {value}, not {want}")));
        }
    }
    Ok(())
}

fn date_at_midnight(s: &str) -> Option<Timestamp> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc())
}

fn fields_of(row: &Row) -> BTreeMap<String, Value> {
    row.iter().filter(|(k, _)| k.as_str() != "attributes").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Map a page of `Lead` rows from `queryAll`: live rows become leads;
/// deleted rows (in the recycle bin, or merged away — `MasterRecordId`
/// names the survivor) become deletions.
pub fn map_leads(rows: &[Row], tracked: &TrackedHistory, out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_lead(row, tracked) {
            Ok(LeadOrDeletion::Lead(l, None)) => out.leads.push(*l),
            Ok(LeadOrDeletion::Lead(l, Some(why))) => {
                out.incomplete_histories.push((l.id.clone(), why));
                out.leads.push(*l)
            }
            Ok(LeadOrDeletion::Deletion(d)) => out.deletions.push(d),
            Err(e) => errors.push(e),
        }
    }
    errors
}

enum LeadOrDeletion {
    /// The lead, and why its history was left out if it came incomplete.
    Lead(Box<Lead>, Option<String>),
    Deletion(Deletion),
}

fn map_lead(row: &Row, tracked: &TrackedHistory) -> Result<LeadOrDeletion, BadRow> {
    const SO: &str = "Lead";
    check_types(row, SO)?;
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    let merged_into = text(row, "MasterRecordId").map(str::to_string);
    if flag(row, "IsDeleted") {
        return Ok(LeadOrDeletion::Deletion(Deletion {
            stream: Stream::Leads,
            id,
            merged_into,
            deleted_at: modified_at,
        }));
    }
    let created_at = match text(row, "CreatedDate") {
        Some(_) => stamp(row, "CreatedDate", SO)?,
        None => modified_at,
    };
    let converted_at =
        if flag(row, "IsConverted") { Some(opt_date(row, "ConvertedDate", SO)?.unwrap_or(modified_at)) } else { None };
    let owner_id = text(row, "OwnerId").map(str::to_string);
    let (assignments, status_changes, incomplete) =
        match lead_history(row, tracked, created_at, owner_id.as_deref(), text(row, "Status"))? {
            History::NotTracked => (Vec::new(), Vec::new(), None),
            History::Incomplete(why) => (Vec::new(), Vec::new(), Some(why)),
            History::Complete { assignments, status_changes } => (assignments, status_changes, None),
        };
    let field_history = if incomplete.is_none() { tracked_fields(row, tracked, created_at)? } else { BTreeMap::new() };
    let mut fields = fields_of(row);
    fields.remove(HISTORIES);
    Ok(LeadOrDeletion::Lead(
        Box::new(Lead {
            id,
            owner_id,
            fields,
            created_at,
            modified_at,
            assignments,
            status_changes,
            field_history,
            converted_at,
            deleted: false,
            merged_into: None,
            opportunities: Vec::new(),
            // A converted lead is read-only in Salesforce.
            read_only: converted_at.is_some(),
        }),
        incomplete,
    ))
}

/// What a lead row's `Histories` says.
#[derive(Debug, Clone, PartialEq)]
pub enum History {
    /// The row has no `Histories` (the org does not track field history).
    NotTracked,
    /// History came back but cannot be taken as the whole truth: a child
    /// page was not followed to its end, or the rows do not end at the
    /// lead's current owner and status (tracking was off for a while,
    /// rows aged out). The reason says which.
    Incomplete(String),
    /// Ownership and status from creation on, oldest first.
    Complete { assignments: Vec<Assignment>, status_changes: Vec<StatusChange> },
}

/// The same Salesforce id, whether written with 15 or 18 characters.
fn same_id(a: &str, b: &str) -> bool {
    a == b || (a.len() >= 15 && b.len() >= 15 && a[..15] == b[..15])
}

fn looks_like_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| (s.len() == 15 || s.len() == 18) && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn owner_kind(id: &str, row: &Row) -> Result<OwnerKind, BadRow> {
    if id.starts_with(QUEUE_PREFIX) {
        Ok(OwnerKind::Queue)
    } else if id.starts_with(USER_PREFIX) {
        Ok(OwnerKind::User)
    } else {
        Err(bad(row, "Lead", format!("owner {id:?} in the lead's history is neither a user (005…) nor a queue (00G…)")))
    }
}

/// One `LeadHistory` row: (field, old value, new value, when).
type Change = (String, Value, Value, Timestamp);

/// Read a lead row's `Histories` into its ownership and status history,
/// each starting with what the lead was created with (the first change's
/// old value, or the current value when it never changed) at `created_at`,
/// then every change at its `CreatedDate`. Owner changes come from the
/// id-valued rows (`DataType = 'EntityId'`); the name rows are ignored.
/// A field the org does not track gives an empty history (`tracked`).
pub fn lead_history(
    row: &Row,
    tracked: &TrackedHistory,
    created_at: Timestamp,
    owner_id: Option<&str>,
    status: Option<&str>,
) -> Result<History, BadRow> {
    const SO: &str = "Lead";
    let records: &[Value] = match row.get(HISTORIES) {
        None => return Ok(History::NotTracked),
        Some(Value::Null) => &[],
        Some(Value::Object(c)) => {
            if c.get("done").and_then(Value::as_bool) == Some(false) {
                return Ok(History::Incomplete("its Histories page was not read to the end".into()));
            }
            c.get("records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
        }
        Some(other) => return Err(bad(row, SO, format!("Histories is {other}, not a query result"))),
    };
    let mut changes: Vec<Change> = Vec::new();
    for h in records {
        let Some(h) = h.as_object() else {
            return Err(bad(row, SO, format!("a Histories record is {h}, not an object")));
        };
        let field = text(h, "Field").unwrap_or_default();
        let old = h.get("OldValue").cloned().unwrap_or(Value::Null);
        let new = h.get("NewValue").cloned().unwrap_or(Value::Null);
        let is_id_row = match text(h, "DataType") {
            Some(t) => t == "EntityId",
            None => looks_like_id(&old) || looks_like_id(&new),
        };
        if (field == "Status" && tracked.status) || (field == "Owner" && is_id_row && tracked.owner) {
            let raw = text(h, "CreatedDate")
                .ok_or_else(|| bad(row, SO, format!("a {field} history row has no CreatedDate")))?;
            let at = parse_datetime(raw).ok_or_else(|| {
                bad(row, SO, format!("a {field} history row's CreatedDate {raw:?} is not a datetime"))
            })?;
            changes.push((field.to_string(), old, new, at));
        }
    }
    changes.sort_by_key(|c| c.3);

    // An untracked field's rows are absent (or stale, from before tracking
    // was turned off), so its history would claim the lead was created as
    // it is now: leave it empty instead.
    let owner_id = owner_id.filter(|_| tracked.owner);
    let status = status.filter(|_| tracked.status);

    let mut assignments = Vec::new();
    let owners: Vec<&Change> = changes.iter().filter(|c| c.0 == "Owner").collect();
    let first_owner = match owners.first() {
        Some(c) => match c.1.as_str() {
            Some(o) => Some(o.to_string()),
            None => return Ok(History::Incomplete("its first Owner change has no old owner".into())),
        },
        None => owner_id.map(str::to_string),
    };
    if let Some(first) = first_owner {
        assignments.push(Assignment { owner_kind: owner_kind(&first, row)?, owner_id: first, at: created_at });
    }
    for c in &owners {
        let Some(new) = c.2.as_str() else {
            return Ok(History::Incomplete("an Owner change has no new owner".into()));
        };
        assignments.push(Assignment { owner_id: new.to_string(), owner_kind: owner_kind(new, row)?, at: c.3 });
    }
    let last_owner = assignments.last().map(|a| a.owner_id.as_str());
    if let (Some(last), Some(current)) = (last_owner, owner_id) {
        if !same_id(last, current) {
            return Ok(History::Incomplete(format!(
                "its Owner history ends at {last}, but the lead is owned by {current}"
            )));
        }
    }

    let mut status_changes = Vec::new();
    let statuses: Vec<&Change> = changes.iter().filter(|c| c.0 == "Status").collect();
    let first_status = match statuses.first() {
        Some(c) => match c.1.as_str() {
            Some(s) => Some(s.to_string()),
            None => return Ok(History::Incomplete("its first Status change has no old status".into())),
        },
        None => status.map(str::to_string),
    };
    if let Some(first) = first_status {
        status_changes.push(StatusChange { status: first, at: created_at });
    }
    for c in &statuses {
        let Some(new) = c.2.as_str() else {
            return Ok(History::Incomplete("a Status change has no new status".into()));
        };
        status_changes.push(StatusChange { status: new.to_string(), at: c.3 });
    }
    if let (Some(last), Some(current)) = (status_changes.last(), status) {
        if last.status != current {
            return Ok(History::Incomplete(format!(
                "its Status history ends at {:?}, but the lead is {current:?}",
                last.status
            )));
        }
    }
    Ok(History::Complete { assignments, status_changes })
}

/// The history of the other tracked fields ([`TrackedHistory::fields`]) from
/// a lead row's `Histories`: each starting with what the lead was created
/// with (the first change's old value, or the current value when it never
/// changed) at `created_at`, then every change at its `CreatedDate`. Empty
/// when the row carries no `Histories` (the org tracks nothing).
pub fn tracked_fields(
    row: &Row,
    tracked: &TrackedHistory,
    created_at: Timestamp,
) -> Result<BTreeMap<String, Vec<FieldChange>>, BadRow> {
    const SO: &str = "Lead";
    let mut out = BTreeMap::new();
    let records: &[Value] = match row.get(HISTORIES) {
        Some(Value::Object(c)) => c.get("records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]),
        Some(Value::Null) => &[],
        _ => return Ok(out),
    };
    for field in &tracked.fields {
        let mut changes: Vec<(Timestamp, Value, Value)> = Vec::new();
        for h in records.iter().filter_map(Value::as_object).filter(|h| text(h, "Field") == Some(field.as_str())) {
            let raw = text(h, "CreatedDate")
                .ok_or_else(|| bad(row, SO, format!("a {field} history row has no CreatedDate")))?;
            let at = parse_datetime(raw).ok_or_else(|| {
                bad(row, SO, format!("a {field} history row's CreatedDate {raw:?} is not a datetime"))
            })?;
            let value = |k: &str| h.get(k).cloned().unwrap_or(Value::Null);
            changes.push((at, value("OldValue"), value("NewValue")));
        }
        changes.sort_by_key(|c| c.0);
        let first = match changes.first() {
            Some((_, old, _)) => old.clone(),
            None => row.get(field).cloned().unwrap_or(Value::Null),
        };
        let mut history = vec![FieldChange { value: first, at: created_at }];
        history.extend(changes.into_iter().map(|(at, _, new)| FieldChange { value: new, at }));
        out.insert(field.clone(), history);
    }
    Ok(out)
}

/// The lead and the opportunity an activity row is about: the lead its
/// `WhoId` names, and with `opportunities` the Opportunity its `WhatId`
/// names (then a row on an Opportunity alone, its `WhoId` empty or a
/// contact, comes with the empty lead id: the daemon finds the lead
/// through the Opportunity). `None`: about no lead handoff follows.
fn about(row: &Row, opportunities: bool) -> Option<(String, Option<String>)> {
    let lead = text(row, "WhoId").filter(|w| w.starts_with(LEAD_PREFIX));
    let opportunity = text(row, "WhatId").filter(|w| opportunities && w.starts_with(OPPORTUNITY_PREFIX));
    match (lead, opportunity) {
        (None, None) => None,
        (lead, opportunity) => Some((lead.unwrap_or_default().to_string(), opportunity.map(str::to_string))),
    }
}

/// Map `Task` rows. Calls and emails are tasks in Salesforce, told apart by
/// `TaskSubtype` (or `Type` where an org uses it). Rows about no lead
/// (`WhoId` empty or a contact, and not on an Opportunity when those are
/// read, see [`about`]) are skipped; handoff's own tasks carry the action
/// key in `key_field`, which marks them as echoes.
pub fn map_tasks(rows: &[Row], key_field: &str, opportunities: bool, out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_task(row, key_field, opportunities) {
            Ok(Some(item)) => push_activity(item, out),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

fn push_activity(item: Result<Activity, Deletion>, out: &mut Mapped) {
    match item {
        Ok(a) => out.activities.push(a),
        Err(d) => out.deletions.push(d),
    }
}

fn deleted_activity(row: &Row, so: &'static str) -> Result<Option<Result<Activity, Deletion>>, BadRow> {
    let id = text(row, "Id").ok_or_else(|| bad(row, so, "Id is missing".into()))?.to_string();
    let deleted_at = stamp(row, "SystemModstamp", so)?;
    Ok(Some(Err(Deletion { stream: Stream::Activities, id, merged_into: None, deleted_at })))
}

fn map_task(row: &Row, key_field: &str, opportunities: bool) -> Result<Option<Result<Activity, Deletion>>, BadRow> {
    const SO: &str = "Task";
    check_types(row, SO)?;
    if flag(row, "IsDeleted") {
        return deleted_activity(row, SO);
    }
    let Some((lead_id, opportunity_id)) = about(row, opportunities) else { return Ok(None) };
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    let subtype = text(row, "TaskSubtype").or_else(|| text(row, "Type")).unwrap_or("Task");
    let kind = match subtype {
        "Call" => ActivityKind::Call,
        "Email" | "ListEmail" | "Cadence" => ActivityKind::Email,
        _ => ActivityKind::Task,
    };
    // A list email goes to many leads at once and a cadence step is sent by
    // Sales Engagement: automation, not a rep's own touch.
    let automated = matches!(subtype, "ListEmail" | "Cadence");
    let occurred_at = opt_stamp(row, "CompletedDateTime", SO)?
        .or(opt_date(row, "ActivityDate", SO)?)
        .or(opt_stamp(row, "CreatedDate", SO)?)
        .unwrap_or(modified_at);
    let direction = match text(row, "CallType") {
        Some("Inbound") => Some(Direction::Inbound),
        Some("Outbound") => Some(Direction::Outbound),
        _ if kind == ActivityKind::Email => Some(Direction::Outbound),
        _ => None,
    };
    Ok(Some(Ok(Activity {
        id,
        kind,
        lead_id: lead_id.to_string(),
        owner_id: text(row, "OwnerId").map(str::to_string),
        occurred_at,
        modified_at,
        subject: text(row, "Subject").map(str::to_string),
        direction,
        completed: flag(row, "IsClosed"),
        handoff_key: text(row, key_field).map(str::to_string),
        automated,
        deleted: false,
        opportunity_id,
    })))
}

/// Map `Event` rows (meetings) linked to leads by `WhoId` (or, with
/// `opportunities`, logged on an Opportunity: see [`about`]); those marked
/// out of office are their owner's absences. A deleted Event is a deletion
/// of the activity stream either way (the daemon drops an absence with it).
pub fn map_events(rows: &[Row], opportunities: bool, out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_event(row, opportunities, &mut out.absences) {
            Ok(Some(item)) => push_activity(item, out),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// An Event a user marked out of office (`ShowAs`), their time away; not
/// a meeting with anyone.
fn absence(row: &Row) -> Result<Option<Absence>, BadRow> {
    const SO: &str = "Event";
    if text(row, "ShowAs") != Some("OutOfOffice") {
        return Ok(None);
    }
    let Some(owner_id) = text(row, "OwnerId").filter(|o| o.starts_with(USER_PREFIX)) else { return Ok(None) };
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let starts_at = opt_stamp(row, "StartDateTime", SO)?
        .ok_or_else(|| bad(row, SO, "an out-of-office Event has no StartDateTime".into()))?;
    let ends_at = opt_stamp(row, "EndDateTime", SO)?.unwrap_or(starts_at);
    Ok(Some(Absence {
        id,
        owner_id: owner_id.to_string(),
        starts_at,
        ends_at: ends_at.max(starts_at),
        all_day: flag(row, "IsAllDayEvent"),
        modified_at: stamp(row, "SystemModstamp", SO)?,
    }))
}

fn map_event(
    row: &Row,
    opportunities: bool,
    absences: &mut Vec<Absence>,
) -> Result<Option<Result<Activity, Deletion>>, BadRow> {
    const SO: &str = "Event";
    check_types(row, SO)?;
    if flag(row, "IsDeleted") {
        return deleted_activity(row, SO);
    }
    if let Some(away) = absence(row)? {
        absences.push(away);
        return Ok(None);
    }
    let Some((lead_id, opportunity_id)) = about(row, opportunities) else { return Ok(None) };
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    let occurred_at =
        opt_stamp(row, "StartDateTime", SO)?.or(opt_stamp(row, "ActivityDateTime", SO)?).unwrap_or(modified_at);
    Ok(Some(Ok(Activity {
        id,
        kind: ActivityKind::Meeting,
        lead_id: lead_id.to_string(),
        owner_id: text(row, "OwnerId").map(str::to_string),
        occurred_at,
        modified_at,
        subject: text(row, "Subject").map(str::to_string),
        direction: None,
        completed: false,
        handoff_key: None,
        automated: false,
        deleted: false,
        opportunity_id,
    })))
}

/// Map `Opportunity` rows: owner and creation (the leads they came from
/// are read by the connector, [`Opportunity::lead_ids`] is left empty);
/// a deleted one is a deletion of the opportunity stream.
pub fn map_opportunities(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_opportunity(row) {
            Ok(Ok(o)) => out.opportunities.push(o),
            Ok(Err(d)) => out.deletions.push(d),
            Err(e) => errors.push(e),
        }
    }
    errors
}

fn map_opportunity(row: &Row) -> Result<Result<Opportunity, Deletion>, BadRow> {
    const SO: &str = "Opportunity";
    check_types(row, SO)?;
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    if flag(row, "IsDeleted") {
        return Ok(Err(Deletion { stream: Stream::Opportunities, id, merged_into: None, deleted_at: modified_at }));
    }
    Ok(Ok(Opportunity {
        id,
        lead_ids: Vec::new(),
        owner_id: text(row, "OwnerId").map(str::to_string),
        created_at: stamp(row, "CreatedDate", SO)?,
        modified_at,
        deleted: false,
    }))
}

/// Map `User` rows: manager and time zone come straight from the user.
pub fn map_users(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        if let Err(e) = check_types(row, "User") {
            errors.push(e);
            continue;
        }
        let Some(id) = text(row, "Id") else {
            errors.push(bad(row, "User", "Id is missing".into()));
            continue;
        };
        let modified_at = match opt_stamp(row, "SystemModstamp", "User") {
            Ok(m) => m,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        out.owners.push(Owner {
            id: id.to_string(),
            kind: OwnerKind::User,
            name: text(row, "Name").map(str::to_string),
            email: text(row, "Email").map(str::to_string),
            manager_id: text(row, "ManagerId").map(str::to_string),
            time_zone: text(row, "TimeZoneSidKey").map(str::to_string),
            active: row.get("IsActive").and_then(Value::as_bool).unwrap_or(true),
            modified_at,
        });
    }
    errors
}

/// Map queue rows (`Group` with `Type = 'Queue'`, ids `00G…`), which can own leads.
pub fn map_queues(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        if let Err(e) = check_types(row, "Group") {
            errors.push(e);
            continue;
        }
        let Some(id) = text(row, "Id") else {
            errors.push(bad(row, "Group", "Id is missing".into()));
            continue;
        };
        let modified_at = match opt_stamp(row, "SystemModstamp", "Group") {
            Ok(m) => m,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        out.owners.push(Owner {
            id: id.to_string(),
            kind: OwnerKind::Queue,
            name: text(row, "Name").map(str::to_string),
            email: text(row, "Email").map(str::to_string),
            manager_id: None,
            time_zone: None,
            active: true,
            modified_at,
        });
    }
    errors
}

/// Whether an owner id names a queue rather than a user.
pub fn is_queue_id(id: &str) -> bool {
    id.starts_with(QUEUE_PREFIX)
}

/// A `BusinessHours` time value (`08:00:00.000Z`).
fn parse_time(s: &str) -> Option<NaiveTime> {
    let trimmed = s.trim_end_matches('Z');
    NaiveTime::parse_from_str(trimmed, "%H:%M:%S%.f").ok()
}

const DAYS: [(Weekday, &str); 7] = [
    (Weekday::Mon, "Monday"),
    (Weekday::Tue, "Tuesday"),
    (Weekday::Wed, "Wednesday"),
    (Weekday::Thu, "Thursday"),
    (Weekday::Fri, "Friday"),
    (Weekday::Sat, "Saturday"),
    (Weekday::Sun, "Sunday"),
];

/// Build calendars from active `BusinessHours` rows and the org's one-off
/// `Holiday` rows. A day with null times is closed; `00:00`–`00:00` is
/// open all day, as Salesforce's "24 hours" checkbox stores it.
///
/// Every calendar carries every holiday (the API does not say which apply
/// where), so the rows are bounded: at most [`handoff_model::MAX_CALENDARS`]
/// active business hours and [`handoff_model::MAX_HOLIDAYS`] holidays, or
/// the page is refused with the counts (4,000 of each would hold 16 million
/// holiday copies).
pub fn map_calendars(hours: &[Row], holidays: &[Row]) -> Result<Vec<BusinessCalendar>, BadRow> {
    let active = hours.iter().filter(|r| r.get("IsActive").and_then(Value::as_bool) != Some(false)).count();
    let one_off = holidays.iter().filter(|r| !flag(r, "IsRecurrence")).count();
    if active > handoff_model::MAX_CALENDARS || one_off > handoff_model::MAX_HOLIDAYS {
        return Err(BadRow {
            sobject: "BusinessHours",
            id: "*".to_string(),
            lead_id: None,
            raw: Value::Null,
            message: format!(
                "the org has {active} active BusinessHours rows and {one_off} Holiday rows; handoff reads at most {} and {}. Fix: deactivate unused business hours and delete past holidays in Setup",
                handoff_model::MAX_CALENDARS,
                handoff_model::MAX_HOLIDAYS
            ),
        });
    }
    let mut closed = Vec::new();
    for row in holidays {
        if flag(row, "IsRecurrence") {
            continue;
        }
        let Some(date) = text(row, "ActivityDate").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) else {
            return Err(bad(row, "Holiday", "ActivityDate is missing or not a date".into()));
        };
        let minutes = |f: &str| {
            row.get(f)
                .and_then(Value::as_f64)
                .and_then(|m| NaiveTime::from_num_seconds_from_midnight_opt((m as u32).min(1439) * 60, 0))
        };
        let (start, end) = if flag(row, "IsAllDay") {
            (None, None)
        } else {
            (minutes("StartTimeInMinutes"), minutes("EndTimeInMinutes"))
        };
        closed.push(Holiday { date, name: text(row, "Name").map(str::to_string), start, end });
    }
    let mut calendars = Vec::new();
    for row in hours {
        if row.get("IsActive").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let id = text(row, "Id").ok_or_else(|| bad(row, "BusinessHours", "Id is missing".into()))?;
        let time_zone =
            text(row, "TimeZoneSidKey").ok_or_else(|| bad(row, "BusinessHours", "TimeZoneSidKey is missing".into()))?;
        let mut weekly = Vec::new();
        for (weekday, day) in DAYS {
            let start = text(row, &format!("{day}StartTime")).and_then(parse_time);
            let end = text(row, &format!("{day}EndTime")).and_then(parse_time);
            if let (Some(start), Some(end)) = (start, end) {
                weekly.push(WeeklyWindow { weekday, start, end });
            }
        }
        calendars.push(BusinessCalendar {
            id: id.to_string(),
            time_zone: time_zone.to_string(),
            weekly,
            holidays: closed.clone(),
        });
    }
    Ok(calendars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn datetimes_in_both_formats() {
        let rest = parse_datetime("2013-05-20T20:49:32.000+0000");
        assert_eq!(rest, parse_datetime("2013-05-20T20:49:32Z"));
        assert_eq!(rest.map(|t| t.timestamp()), Some(1_369_082_972));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(soql_datetime(1_369_082_972_999), "2013-05-20T20:49:32Z");
    }

    #[test]
    fn leads_deletions_and_merges() {
        let rows = vec![
            row(
                json!({"attributes": {"type": "Lead"}, "Id": "00Q1", "OwnerId": "00G1", "CreatedDate": "2026-01-01T00:00:00.000+0000",
                "SystemModstamp": "2026-01-02T00:00:00.000+0000", "IsDeleted": false, "IsConverted": true, "ConvertedDate": "2026-01-03",
                "Status": "Closed - Converted", "Lead_Score__c": 71.0}),
            ),
            row(
                json!({"Id": "00Q2", "SystemModstamp": "2026-01-02T00:00:01.000+0000", "IsDeleted": true, "MasterRecordId": "00Q1"}),
            ),
            row(json!({"Id": "00Q3", "SystemModstamp": "not a time", "IsDeleted": false})),
        ];
        let mut out = Mapped::default();
        let errors = map_leads(&rows, &TrackedHistory::default(), &mut out);
        assert_eq!(out.leads.len(), 1);
        let lead = &out.leads[0];
        assert_eq!(lead.owner_id.as_deref(), Some("00G1"));
        assert!(is_queue_id("00G1"));
        assert_eq!(lead.fields.get("Lead_Score__c"), Some(&json!(71.0)));
        assert!(!lead.fields.contains_key("attributes"));
        assert_eq!(lead.converted_at, parse_datetime("2026-01-03T00:00:00Z"));
        assert_eq!(out.deletions.len(), 1);
        assert_eq!(out.deletions[0].merged_into.as_deref(), Some("00Q1"));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("SystemModstamp"), "{:?}", errors[0]);
    }

    #[test]
    fn list_emails_and_cadence_steps_are_automated_emails() {
        let rows: Vec<Row> = ["Email", "ListEmail", "Cadence"]
            .iter()
            .enumerate()
            .map(|(i, subtype)| {
                row(json!({"Id": format!("00T{i}"), "WhoId": "00Q1", "TaskSubtype": subtype, "IsClosed": true,
                    "CompletedDateTime": "2026-02-01T10:00:00.000+0000", "SystemModstamp": "2026-02-01T10:00:05.000+0000"}))
            })
            .collect();
        let mut out = Mapped::default();
        assert!(map_tasks(&rows, "Handoff_Key__c", false, &mut out).is_empty());
        let got: Vec<(ActivityKind, bool)> = out.activities.iter().map(|a| (a.kind, a.automated)).collect();
        assert_eq!(got, [(ActivityKind::Email, false), (ActivityKind::Email, true), (ActivityKind::Email, true)]);
    }

    /// An Event marked out of office is its owner's absence (all day or
    /// timed), never a meeting; one without a start is a bad row.
    #[test]
    fn out_of_office_events_are_absences() {
        let stamp = "2026-02-01T10:00:05.000+0000";
        let events = vec![
            row(json!({"Id": "00U1", "OwnerId": "005A", "ShowAs": "OutOfOffice", "IsAllDayEvent": true,
                "StartDateTime": "2026-03-03T00:00:00.000+0000", "EndDateTime": "2026-03-05T00:00:00.000+0000", "SystemModstamp": stamp})),
            row(
                json!({"Id": "00U2", "OwnerId": "005B", "WhoId": "00Q1", "ShowAs": "OutOfOffice", "IsAllDayEvent": false,
                "StartDateTime": "2026-03-03T13:00:00.000+0000", "EndDateTime": "2026-03-03T17:00:00.000+0000", "SystemModstamp": stamp}),
            ),
            row(json!({"Id": "00U3", "OwnerId": "005A", "ShowAs": "Busy", "WhoId": "00Q1",
                "StartDateTime": "2026-03-03T13:00:00.000+0000", "SystemModstamp": stamp})),
            row(json!({"Id": "00U4", "OwnerId": "005A", "ShowAs": "OutOfOffice", "SystemModstamp": stamp})),
        ];
        let mut out = Mapped::default();
        let bad = map_events(&events, false, &mut out);
        let got: Vec<(&str, &str, bool)> =
            out.absences.iter().map(|a| (a.id.as_str(), a.owner_id.as_str(), a.all_day)).collect();
        assert_eq!(got, [("00U1", "005A", true), ("00U2", "005B", false)]);
        assert_eq!(out.absences[0].ends_at, parse_datetime("2026-03-05T00:00:00Z").unwrap_or_default());
        assert_eq!(out.activities.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["00U3"]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].message.contains("StartDateTime"), "{:?}", bad[0].message);
    }

    /// With opportunities read, an activity on an Opportunity names it:
    /// with the lead's `WhoId` it stays the lead's, on the Opportunity
    /// alone (no `WhoId`, or a contact) its lead id is empty; without the
    /// setting such rows are about no lead. An Opportunity maps to its
    /// owner and creation, a deleted one to a deletion, a bad one to a
    /// bad row naming the field.
    #[test]
    fn activities_on_opportunities_and_opportunity_rows() {
        let stamp = "2026-02-01T10:00:05.000+0000";
        let events = vec![
            row(
                json!({"Id": "00U1", "WhatId": "006A", "StartDateTime": "2026-02-05T15:00:00.000+0000", "SystemModstamp": stamp}),
            ),
            row(json!({"Id": "00U2", "WhoId": "00Q9", "WhatId": "006A", "SystemModstamp": stamp})),
            row(json!({"Id": "00U3", "WhoId": "0031", "WhatId": "006B", "SystemModstamp": stamp})),
            row(json!({"Id": "00U4", "WhoId": "0031", "WhatId": "001X", "SystemModstamp": stamp})),
        ];
        let mut out = Mapped::default();
        assert!(map_events(&events, true, &mut out).is_empty());
        let got: Vec<(&str, &str, Option<&str>)> =
            out.activities.iter().map(|a| (a.id.as_str(), a.lead_id.as_str(), a.opportunity_id.as_deref())).collect();
        assert_eq!(got, [("00U1", "", Some("006A")), ("00U2", "00Q9", Some("006A")), ("00U3", "", Some("006B"))]);
        let mut off = Mapped::default();
        assert!(map_events(&events, false, &mut off).is_empty());
        let got: Vec<(&str, Option<&str>)> =
            off.activities.iter().map(|a| (a.lead_id.as_str(), a.opportunity_id.as_deref())).collect();
        assert_eq!(got, [("00Q9", None)]);
        let task = row(json!({"Id": "00T1", "WhatId": "006A", "TaskSubtype": "Call", "SystemModstamp": stamp}));
        assert!(map_tasks(&[task], "Handoff_Key__c", true, &mut out).is_empty());
        assert_eq!(out.activities.last().map(|a| a.opportunity_id.as_deref()), Some(Some("006A")));

        let rows = vec![
            row(
                json!({"Id": "006A", "OwnerId": "005AE", "CreatedDate": "2026-02-01T09:00:00.000+0000", "SystemModstamp": stamp}),
            ),
            row(json!({"Id": "006B", "IsDeleted": true, "SystemModstamp": stamp})),
            row(json!({"Id": "006C", "OwnerId": "005AE", "CreatedDate": "yesterday", "SystemModstamp": stamp})),
        ];
        let mut out = Mapped::default();
        let bad = map_opportunities(&rows, &mut out);
        assert_eq!(out.opportunities.len(), 1);
        let o = &out.opportunities[0];
        assert_eq!((o.id.as_str(), o.owner_id.as_deref()), ("006A", Some("005AE")));
        assert_eq!(o.created_at, parse_datetime("2026-02-01T09:00:00Z").unwrap_or_default());
        assert!(o.lead_ids.is_empty(), "the connector names the leads");
        assert_eq!(out.deletions.len(), 1);
        assert_eq!((out.deletions[0].stream, out.deletions[0].id.as_str()), (Stream::Opportunities, "006B"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].id, "006C");
        assert!(bad[0].message.contains("CreatedDate"), "{:?}", bad[0].message);
    }

    #[test]
    fn tasks_by_subtype_with_echo_keys_and_events_as_meetings() {
        let tasks = vec![
            row(json!({"Id": "00T1", "WhoId": "00Q1", "TaskSubtype": "Call", "CallType": "Outbound", "IsClosed": true,
                "CompletedDateTime": "2026-02-01T10:00:00.000+0000", "SystemModstamp": "2026-02-01T10:00:05.000+0000"})),
            row(
                json!({"Id": "00T2", "WhoId": "00Q1", "Type": "Other", "Handoff_Key__c": "k1", "ActivityDate": "2026-02-03",
                "SystemModstamp": "2026-02-01T10:00:05.000+0000"}),
            ),
            row(
                json!({"Id": "00T3", "WhoId": "0031", "TaskSubtype": "Call", "SystemModstamp": "2026-02-01T10:00:05.000+0000"}),
            ),
            row(json!({"Id": "00T4", "IsDeleted": true, "SystemModstamp": "2026-02-01T10:00:06.000+0000"})),
        ];
        let mut out = Mapped::default();
        assert!(map_tasks(&tasks, "Handoff_Key__c", false, &mut out).is_empty());
        assert_eq!(out.activities.len(), 2);
        assert_eq!(out.activities[0].kind, ActivityKind::Call);
        assert_eq!(out.activities[0].direction, Some(Direction::Outbound));
        assert_eq!(out.activities[1].kind, ActivityKind::Task);
        assert_eq!(out.activities[1].handoff_key.as_deref(), Some("k1"));
        assert_eq!(out.activities[1].occurred_at, parse_datetime("2026-02-03T00:00:00Z").unwrap_or_default());
        assert_eq!(out.deletions.len(), 1);
        let events = vec![row(json!({"Id": "00U1", "WhoId": "00Q9", "StartDateTime": "2026-02-05T15:00:00.000+0000",
            "SystemModstamp": "2026-02-01T10:00:05.000+0000"}))];
        assert!(map_events(&events, false, &mut out).is_empty());
        assert_eq!(out.activities[2].kind, ActivityKind::Meeting);
        assert_eq!(out.activities[2].lead_id, "00Q9");
    }

    fn lead_row(owner: &str, status: &str, histories: Option<Value>) -> Row {
        let mut r = row(json!({"Id": "00Q1", "OwnerId": owner, "Status": status, "IsDeleted": false,
            "CreatedDate": "2026-01-01T09:00:00.000+0000", "SystemModstamp": "2026-01-03T00:00:00.000+0000"}));
        if let Some(h) = histories {
            r.insert(HISTORIES.into(), h);
        }
        r
    }

    fn hist(field: &str, data_type: Option<&str>, old: Value, new: Value, at: &str) -> Value {
        let mut h = json!({"attributes": {"type": "LeadHistory", "url": "/services/data/v62.0/sobjects/LeadHistory/017x"},
            "Field": field, "OldValue": old, "NewValue": new, "CreatedDate": at});
        if let Some(t) = data_type {
            h["DataType"] = json!(t);
        }
        h
    }

    fn at(s: &str) -> Timestamp {
        parse_datetime(s).unwrap_or_default()
    }

    fn one_lead(r: Row) -> (Lead, Vec<(String, String)>) {
        let mut out = Mapped::default();
        assert!(map_leads(&[r], &TrackedHistory::default(), &mut out).is_empty());
        assert_eq!(out.leads.len(), 1);
        (out.leads.remove(0), out.incomplete_histories)
    }

    #[test]
    fn tracked_policy_fields_give_their_history_from_creation_on() {
        // The phone came in a day after the lead: a late qualification the
        // engine must date from LeadHistory, not from the MQL time.
        let rows = json!({"totalSize": 2, "done": true, "records": [
            hist("Phone", Some("Phone"), Value::Null, json!("+1 415 555 0101"), "2026-01-02T10:00:00.000+0000"),
            hist("Status", Some("DynamicEnum"), json!("Open - Not Contacted"), json!("Qualified"), "2026-01-02T11:00:00.000+0000"),
        ]});
        let mut r = lead_row("005000000000003AAA", "Qualified", Some(rows));
        r.insert("Phone".into(), json!("+1 415 555 0101"));
        r.insert("Title".into(), json!("VP"));
        let tracked =
            TrackedHistory { fields: vec!["Phone".to_string(), "Title".to_string()], ..TrackedHistory::default() };
        let mut out = Mapped::default();
        assert!(map_leads(&[r], &tracked, &mut out).is_empty());
        let h = &out.leads[0].field_history;
        let phone: Vec<(Value, Timestamp)> = h["Phone"].iter().map(|c| (c.value.clone(), c.at)).collect();
        assert_eq!(
            phone,
            [(Value::Null, at("2026-01-01T09:00:00Z")), (json!("+1 415 555 0101"), at("2026-01-02T10:00:00Z"))]
        );
        // Tracked and never changed: held since creation.
        assert_eq!(h["Title"].len(), 1);
        assert_eq!((h["Title"][0].value.clone(), h["Title"][0].at), (json!("VP"), at("2026-01-01T09:00:00Z")));
        assert!(history_subquery(&tracked).contains("Field IN ('Phone', 'Title')"));
        assert_eq!(history_subquery(&TrackedHistory::default()), HISTORY_SUBQUERY);
        // Not tracked at all: no history, the daemon keeps its own.
        let (lead, _) = one_lead(lead_row("005000000000003AAA", "Qualified", None));
        assert!(lead.field_history.is_empty());
    }

    #[test]
    fn history_rows_give_ownership_and_status_from_creation_on() {
        // Out of order on purpose; name rows (Text) are ignored.
        let rows = json!({"totalSize": 5, "done": true, "records": [
            hist("Owner", Some("EntityId"), json!("005000000000002AAA"), json!("005000000000003AAA"), "2026-01-02T12:00:00.000+0000"),
            hist("Owner", Some("EntityId"), json!("00G000000000001AAA"), json!("005000000000002AAA"), "2026-01-01T09:05:00.000+0000"),
            hist("Owner", Some("Text"), json!("Inbound Queue"), json!("Ana Rep"), "2026-01-01T09:05:00.000+0000"),
            hist("Status", Some("DynamicEnum"), json!("Open - Not Contacted"), json!("Working - Contacted"), "2026-01-01T10:00:00.000+0000"),
            hist("Rating", Some("DynamicEnum"), json!("Cold"), json!("Hot"), "2026-01-01T10:00:00.000+0000"),
        ]});
        let (lead, incomplete) = one_lead(lead_row("005000000000003AAA", "Working - Contacted", Some(rows)));
        assert!(incomplete.is_empty());
        let owners: Vec<(&str, OwnerKind, Timestamp)> =
            lead.assignments.iter().map(|a| (a.owner_id.as_str(), a.owner_kind, a.at)).collect();
        assert_eq!(
            owners,
            vec![
                ("00G000000000001AAA", OwnerKind::Queue, at("2026-01-01T09:00:00Z")),
                ("005000000000002AAA", OwnerKind::User, at("2026-01-01T09:05:00Z")),
                ("005000000000003AAA", OwnerKind::User, at("2026-01-02T12:00:00Z")),
            ]
        );
        let statuses: Vec<(&str, Timestamp)> = lead.status_changes.iter().map(|s| (s.status.as_str(), s.at)).collect();
        assert_eq!(
            statuses,
            vec![
                ("Open - Not Contacted", at("2026-01-01T09:00:00Z")),
                ("Working - Contacted", at("2026-01-01T10:00:00Z"))
            ]
        );
        assert!(!lead.fields.contains_key(HISTORIES), "the nested result is not a lead field");
    }

    #[test]
    fn no_history_rows_mean_the_lead_kept_its_first_owner_and_status() {
        let (lead, _) = one_lead(lead_row("00G000000000001AAA", "Open - Not Contacted", Some(Value::Null)));
        assert_eq!(lead.assignments.len(), 1);
        assert_eq!(lead.assignments[0].owner_kind, OwnerKind::Queue);
        assert_eq!(lead.assignments[0].at, lead.created_at);
        assert_eq!(
            lead.status_changes,
            vec![StatusChange { status: "Open - Not Contacted".into(), at: lead.created_at }]
        );
    }

    #[test]
    fn an_untracked_field_gives_no_history_rather_than_a_made_up_one() {
        // The org tracks Status only: no Owner rows come back, which must not
        // read as "owned by the current owner since creation".
        let rows = json!({"totalSize": 2, "done": true, "records": [
            hist("Status", Some("DynamicEnum"), json!("Open - Not Contacted"), json!("Working - Contacted"), "2026-01-01T10:00:00.000+0000"),
            // A stale row from before Owner tracking was turned off is not taken either.
            hist("Owner", Some("EntityId"), json!("00G000000000001AAA"), json!("005000000000002AAA"), "2025-06-01T09:05:00.000+0000"),
        ]});
        let status_only = TrackedHistory { owner: false, status: true, fields: Vec::new() };
        let mut out = Mapped::default();
        assert!(map_leads(
            &[lead_row("005000000000003AAA", "Working - Contacted", Some(rows.clone()))],
            &status_only,
            &mut out
        )
        .is_empty());
        let lead = &out.leads[0];
        assert!(out.incomplete_histories.is_empty(), "{:?}", out.incomplete_histories);
        assert!(lead.assignments.is_empty(), "{:?}", lead.assignments);
        assert_eq!(
            lead.status_changes.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
            ["Open - Not Contacted", "Working - Contacted"]
        );

        let owner_only = TrackedHistory { owner: true, status: false, fields: Vec::new() };
        let mut out = Mapped::default();
        let row = lead_row("005000000000002AAA", "Working - Contacted", Some(rows));
        assert!(map_leads(&[row], &owner_only, &mut out).is_empty());
        assert!(out.leads[0].status_changes.is_empty());
        assert_eq!(out.leads[0].assignments.len(), 2);
    }

    #[test]
    fn without_field_history_both_stay_empty() {
        let (lead, incomplete) = one_lead(lead_row("005000000000003AAA", "Qualified", None));
        assert!(lead.assignments.is_empty() && lead.status_changes.is_empty());
        assert!(incomplete.is_empty());
    }

    #[test]
    fn history_that_cannot_be_the_whole_truth_is_left_out_and_reported() {
        let cut = json!({"totalSize": 300, "done": false, "nextRecordsUrl": "/services/data/v62.0/query/01gx-199", "records": [
            hist("Status", Some("DynamicEnum"), json!("Open - Not Contacted"), json!("Qualified"), "2026-01-01T10:00:00.000+0000"),
        ]});
        let stale = json!({"totalSize": 1, "done": true, "records": [
            hist("Owner", Some("EntityId"), json!("00G000000000001AAA"), json!("005000000000002AAA"), "2026-01-01T09:05:00.000+0000"),
        ]});
        for (histories, reason) in [(cut, "not read to the end"), (stale, "owned by 005000000000003AAA")] {
            let (lead, incomplete) = one_lead(lead_row("005000000000003AAA", "Qualified", Some(histories)));
            assert!(lead.assignments.is_empty() && lead.status_changes.is_empty());
            assert_eq!(incomplete.len(), 1);
            assert!(incomplete[0].1.contains(reason), "{incomplete:?}");
        }
        // The 15-character form of the current owner is the same owner.
        let short = json!({"totalSize": 1, "done": true, "records": [
            hist("Owner", Some("EntityId"), json!("00G000000000001"), json!("005000000000003"), "2026-01-01T09:05:00.000+0000"),
        ]});
        let (lead, incomplete) = one_lead(lead_row("005000000000003AAA", "Qualified", Some(short)));
        assert!(incomplete.is_empty(), "{incomplete:?}");
        assert_eq!(lead.assignments.len(), 2);
    }

    #[test]
    fn id_rows_are_recognised_without_a_data_type_and_bad_rows_are_named() {
        let untyped = json!({"totalSize": 2, "done": true, "records": [
            hist("Owner", None, json!("00G000000000001AAA"), json!("005000000000003AAA"), "2026-01-01T09:05:00.000+0000"),
            hist("Owner", None, json!("Inbound Queue"), json!("Cy Rep"), "2026-01-01T09:05:00.000+0000"),
        ]});
        let (lead, _) = one_lead(lead_row("005000000000003AAA", "Qualified", Some(untyped)));
        assert_eq!(
            lead.assignments.iter().map(|a| a.owner_id.as_str()).collect::<Vec<_>>(),
            ["00G000000000001AAA", "005000000000003AAA"]
        );

        let foreign = json!({"totalSize": 1, "done": true, "records": [
            hist("Owner", Some("EntityId"), json!("0DF000000000001AAA"), json!("005000000000003AAA"), "2026-01-01T09:05:00.000+0000"),
        ]});
        let undated = json!({"totalSize": 1, "done": true, "records": [
            hist("Status", Some("DynamicEnum"), json!("Open - Not Contacted"), json!("Qualified"), "yesterday"),
        ]});
        for (histories, needle) in [(foreign, "neither a user"), (undated, "CreatedDate")] {
            let mut out = Mapped::default();
            let errors = map_leads(
                &[lead_row("005000000000003AAA", "Qualified", Some(histories))],
                &TrackedHistory::default(),
                &mut out,
            );
            assert!(out.leads.is_empty());
            assert_eq!(errors.len(), 1);
            assert!(errors[0].message.contains(needle) && errors[0].id == "00Q1", "{:?}", errors[0]);
        }
    }

    #[test]
    fn fields_of_the_wrong_type_make_the_row_bad_and_name_the_field() {
        for (field, value, needle) in [
            ("IsDeleted", json!("false"), "IsDeleted is \"false\", not a checkbox"),
            ("SystemModstamp", json!(1767225600000u64), "SystemModstamp is 1767225600000, not text"),
            ("OwnerId", json!({"id": "005"}), "OwnerId is"),
        ] {
            let mut r = lead_row("005000000000003AAA", "Qualified", None);
            r.insert(field.into(), value);
            let mut out = Mapped::default();
            let errors = map_leads(&[r], &TrackedHistory::default(), &mut out);
            assert!(out.leads.is_empty() && out.deletions.is_empty());
            assert!(errors[0].message.contains(needle), "{:?}", errors[0].message);
            assert_eq!(errors[0].lead_id.as_deref(), Some("00Q1"), "the lead it belongs to is named");
        }
        let mut task = row(json!({"Id": "00T1", "WhoId": "00Q7", "SystemModstamp": "soon"}));
        let mut out = Mapped::default();
        let errors = map_tasks(&[task.clone()], "Handoff_Key__c", false, &mut out);
        assert_eq!(errors[0].lead_id.as_deref(), Some("00Q7"));
        task.remove("Id");
        let errors = map_tasks(&[task], "Handoff_Key__c", false, &mut out);
        assert_eq!(errors[0].id, "?");
        assert!(errors[0].message.contains("Id is missing"));
    }

    #[test]
    fn an_unreadable_date_is_never_replaced_by_a_fallback() {
        let mut out = Mapped::default();
        let task = row(json!({"Id": "00T1", "WhoId": "00Q7", "SystemModstamp": "2026-01-03T00:00:00.000+0000",
            "CompletedDateTime": "03/01/2026 10:00", "CreatedDate": "2026-01-02T00:00:00.000+0000"}));
        let errors = map_tasks(&[task], "Handoff_Key__c", false, &mut out);
        assert!(out.activities.is_empty());
        assert!(errors[0].message.contains("CompletedDateTime"), "{:?}", errors[0]);
        let user = row(json!({"Id": "005A", "Name": "Ann", "SystemModstamp": "yesterday"}));
        let errors = map_users(&[user], &mut out);
        assert!(out.owners.is_empty());
        assert!(errors[0].message.contains("SystemModstamp"), "{:?}", errors[0]);
        let mut lead = lead_row("005000000000003AAA", "Qualified", None);
        lead.insert("IsConverted".into(), json!(true));
        lead.insert("ConvertedDate".into(), json!("1/3/26"));
        let errors = map_leads(&[lead], &TrackedHistory::default(), &mut out);
        assert!(errors[0].message.contains("ConvertedDate"), "{:?}", errors[0]);
    }

    #[test]
    fn users_carry_manager_and_zone_and_queues_are_owners() {
        let mut out = Mapped::default();
        map_users(
            &[row(
                json!({"Id": "0051", "Name": "Ana", "ManagerId": "0052", "TimeZoneSidKey": "Europe/Berlin", "IsActive": false}),
            )],
            &mut out,
        );
        map_queues(&[row(json!({"Id": "00G1", "Name": "Inbound queue"}))], &mut out);
        assert_eq!(out.owners[0].manager_id.as_deref(), Some("0052"));
        assert_eq!(out.owners[0].time_zone.as_deref(), Some("Europe/Berlin"));
        assert!(!out.owners[0].active);
        assert_eq!(out.owners[1].kind, OwnerKind::Queue);
    }

    #[test]
    fn too_many_calendar_rows_are_refused_with_the_counts() {
        let hours: Vec<Row> = (0..handoff_model::MAX_CALENDARS + 1)
            .map(|i| row(json!({"Id": format!("01m{i}"), "IsActive": true, "TimeZoneSidKey": "UTC"})))
            .collect();
        let err = map_calendars(&hours, &[]).unwrap_err();
        assert!(
            err.message.contains(&format!("{} active BusinessHours", handoff_model::MAX_CALENDARS + 1)),
            "{}",
            err.message
        );
        let holidays: Vec<Row> = (0..handoff_model::MAX_HOLIDAYS + 1)
            .map(|i| row(json!({"Id": format!("0C0{i}"), "ActivityDate": "2026-12-25", "IsAllDay": true})))
            .collect();
        assert!(map_calendars(&hours[..1], &holidays).is_err());
        assert_eq!(map_calendars(&hours[..1], &holidays[..10]).map(|c| c.len()).ok(), Some(1));
    }

    #[test]
    fn business_hours_and_holidays() {
        let hours = vec![row(json!({"Id": "01m1", "IsActive": true, "TimeZoneSidKey": "America/New_York",
            "MondayStartTime": "08:00:00.000Z", "MondayEndTime": "17:30:00.000Z",
            "SundayStartTime": "00:00:00.000Z", "SundayEndTime": "00:00:00.000Z",
            "TuesdayStartTime": null, "TuesdayEndTime": null}))];
        let holidays = vec![
            row(json!({"Name": "New Year", "ActivityDate": "2026-01-01", "IsAllDay": true})),
            row(
                json!({"Name": "Half day", "ActivityDate": "2026-12-24", "IsAllDay": false, "StartTimeInMinutes": 720, "EndTimeInMinutes": 1440}),
            ),
        ];
        let cals = map_calendars(&hours, &holidays).unwrap_or_default();
        assert_eq!(cals.len(), 1);
        assert_eq!(cals[0].weekly.len(), 2);
        assert_eq!(cals[0].weekly[0].end, NaiveTime::from_hms_opt(17, 30, 0).unwrap_or_default());
        assert_eq!(cals[0].weekly[1].start, cals[0].weekly[1].end);
        assert_eq!(cals[0].holidays.len(), 2);
        assert_eq!(cals[0].holidays[1].start, NaiveTime::from_hms_opt(12, 0, 0));
    }
}
