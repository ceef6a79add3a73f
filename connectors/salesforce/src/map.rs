//! Salesforce rows → handoff's CRM-neutral records. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use handoff_model::{
    Activity, ActivityKind, BusinessCalendar, Deletion, Direction, Holiday, Lead, Owner, OwnerKind, Stream, Timestamp,
    WeeklyWindow,
};
use serde_json::{Map, Value};

/// Key prefixes Salesforce gives ids: they tell a lead from a contact and a
/// user from a queue without another call.
pub const LEAD_PREFIX: &str = "00Q";
pub const QUEUE_PREFIX: &str = "00G";

/// A row that could not be mapped, with the reason (the field and the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub sobject: &'static str,
    pub id: String,
    pub message: String,
}

/// What one page of rows turned into.
#[derive(Debug, Default)]
pub struct Mapped {
    pub leads: Vec<Lead>,
    pub activities: Vec<Activity>,
    pub owners: Vec<Owner>,
    pub deletions: Vec<Deletion>,
}

type Row = Map<String, Value>;

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
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
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

fn bad(row: &Row, sobject: &'static str, message: String) -> BadRow {
    BadRow { sobject, id: text(row, "Id").unwrap_or("?").to_string(), message }
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
pub fn map_leads(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_lead(row) {
            Ok(LeadOrDeletion::Lead(l)) => out.leads.push(*l),
            Ok(LeadOrDeletion::Deletion(d)) => out.deletions.push(d),
            Err(e) => errors.push(e),
        }
    }
    errors
}

enum LeadOrDeletion {
    Lead(Box<Lead>),
    Deletion(Deletion),
}

fn map_lead(row: &Row) -> Result<LeadOrDeletion, BadRow> {
    const SO: &str = "Lead";
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    let merged_into = text(row, "MasterRecordId").map(str::to_string);
    if flag(row, "IsDeleted") {
        return Ok(LeadOrDeletion::Deletion(Deletion { stream: Stream::Leads, id, merged_into, deleted_at: modified_at }));
    }
    let created_at = match text(row, "CreatedDate") {
        Some(_) => stamp(row, "CreatedDate", SO)?,
        None => modified_at,
    };
    let converted_at = if flag(row, "IsConverted") {
        Some(text(row, "ConvertedDate").and_then(date_at_midnight).unwrap_or(modified_at))
    } else {
        None
    };
    Ok(LeadOrDeletion::Lead(Box::new(Lead {
        id,
        owner_id: text(row, "OwnerId").map(str::to_string),
        fields: fields_of(row),
        created_at,
        modified_at,
        assignments: Vec::new(),
        status_changes: Vec::new(),
        converted_at,
        deleted: false,
        merged_into: None,
    })))
}

/// Map `Task` rows. Calls and emails are tasks in Salesforce, told apart by
/// `TaskSubtype` (or `Type` where an org uses it). Rows not about a lead
/// (`WhoId` empty or a contact) are skipped; handoff's own tasks carry the
/// action key in `key_field`, which marks them as echoes.
pub fn map_tasks(rows: &[Row], key_field: &str, out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_task(row, key_field) {
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

fn map_task(row: &Row, key_field: &str) -> Result<Option<Result<Activity, Deletion>>, BadRow> {
    const SO: &str = "Task";
    if flag(row, "IsDeleted") {
        return deleted_activity(row, SO);
    }
    let Some(lead_id) = text(row, "WhoId").filter(|w| w.starts_with(LEAD_PREFIX)) else { return Ok(None) };
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    let subtype = text(row, "TaskSubtype").or_else(|| text(row, "Type")).unwrap_or("Task");
    let kind = match subtype {
        "Call" => ActivityKind::Call,
        "Email" | "ListEmail" => ActivityKind::Email,
        _ => ActivityKind::Task,
    };
    let occurred_at = text(row, "CompletedDateTime")
        .and_then(parse_datetime)
        .or_else(|| text(row, "ActivityDate").and_then(date_at_midnight))
        .or_else(|| text(row, "CreatedDate").and_then(parse_datetime))
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
        deleted: false,
    })))
}

/// Map `Event` rows (meetings) linked to leads by `WhoId`.
pub fn map_events(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        match map_event(row) {
            Ok(Some(item)) => push_activity(item, out),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

fn map_event(row: &Row) -> Result<Option<Result<Activity, Deletion>>, BadRow> {
    const SO: &str = "Event";
    if flag(row, "IsDeleted") {
        return deleted_activity(row, SO);
    }
    let Some(lead_id) = text(row, "WhoId").filter(|w| w.starts_with(LEAD_PREFIX)) else { return Ok(None) };
    let id = text(row, "Id").ok_or_else(|| bad(row, SO, "Id is missing".into()))?.to_string();
    let modified_at = stamp(row, "SystemModstamp", SO)?;
    let occurred_at = text(row, "StartDateTime")
        .or_else(|| text(row, "ActivityDateTime"))
        .and_then(parse_datetime)
        .unwrap_or(modified_at);
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
        deleted: false,
    })))
}

/// Map `User` rows: manager and time zone come straight from the user.
pub fn map_users(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        let Some(id) = text(row, "Id") else {
            errors.push(bad(row, "User", "Id is missing".into()));
            continue;
        };
        out.owners.push(Owner {
            id: id.to_string(),
            kind: OwnerKind::User,
            name: text(row, "Name").map(str::to_string),
            email: text(row, "Email").map(str::to_string),
            manager_id: text(row, "ManagerId").map(str::to_string),
            time_zone: text(row, "TimeZoneSidKey").map(str::to_string),
            active: row.get("IsActive").and_then(Value::as_bool).unwrap_or(true),
            modified_at: text(row, "SystemModstamp").and_then(parse_datetime),
        });
    }
    errors
}

/// Map queue rows (`Group` with `Type = 'Queue'`, ids `00G…`), which can own leads.
pub fn map_queues(rows: &[Row], out: &mut Mapped) -> Vec<BadRow> {
    let mut errors = Vec::new();
    for row in rows {
        let Some(id) = text(row, "Id") else {
            errors.push(bad(row, "Group", "Id is missing".into()));
            continue;
        };
        out.owners.push(Owner {
            id: id.to_string(),
            kind: OwnerKind::Queue,
            name: text(row, "Name").map(str::to_string),
            email: text(row, "Email").map(str::to_string),
            manager_id: None,
            time_zone: None,
            active: true,
            modified_at: text(row, "SystemModstamp").and_then(parse_datetime),
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
pub fn map_calendars(hours: &[Row], holidays: &[Row]) -> Result<Vec<BusinessCalendar>, BadRow> {
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
        let time_zone = text(row, "TimeZoneSidKey")
            .ok_or_else(|| bad(row, "BusinessHours", "TimeZoneSidKey is missing".into()))?;
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
            row(json!({"attributes": {"type": "Lead"}, "Id": "00Q1", "OwnerId": "00G1", "CreatedDate": "2026-01-01T00:00:00.000+0000",
                "SystemModstamp": "2026-01-02T00:00:00.000+0000", "IsDeleted": false, "IsConverted": true, "ConvertedDate": "2026-01-03",
                "Status": "Closed - Converted", "Lead_Score__c": 71.0})),
            row(json!({"Id": "00Q2", "SystemModstamp": "2026-01-02T00:00:01.000+0000", "IsDeleted": true, "MasterRecordId": "00Q1"})),
            row(json!({"Id": "00Q3", "SystemModstamp": "not a time", "IsDeleted": false})),
        ];
        let mut out = Mapped::default();
        let errors = map_leads(&rows, &mut out);
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
    fn tasks_by_subtype_with_echo_keys_and_events_as_meetings() {
        let tasks = vec![
            row(json!({"Id": "00T1", "WhoId": "00Q1", "TaskSubtype": "Call", "CallType": "Outbound", "IsClosed": true,
                "CompletedDateTime": "2026-02-01T10:00:00.000+0000", "SystemModstamp": "2026-02-01T10:00:05.000+0000"})),
            row(json!({"Id": "00T2", "WhoId": "00Q1", "Type": "Other", "Handoff_Key__c": "k1", "ActivityDate": "2026-02-03",
                "SystemModstamp": "2026-02-01T10:00:05.000+0000"})),
            row(json!({"Id": "00T3", "WhoId": "0031", "TaskSubtype": "Call", "SystemModstamp": "2026-02-01T10:00:05.000+0000"})),
            row(json!({"Id": "00T4", "IsDeleted": true, "SystemModstamp": "2026-02-01T10:00:06.000+0000"})),
        ];
        let mut out = Mapped::default();
        assert!(map_tasks(&tasks, "Handoff_Key__c", &mut out).is_empty());
        assert_eq!(out.activities.len(), 2);
        assert_eq!(out.activities[0].kind, ActivityKind::Call);
        assert_eq!(out.activities[0].direction, Some(Direction::Outbound));
        assert_eq!(out.activities[1].kind, ActivityKind::Task);
        assert_eq!(out.activities[1].handoff_key.as_deref(), Some("k1"));
        assert_eq!(out.activities[1].occurred_at, parse_datetime("2026-02-03T00:00:00Z").unwrap_or_default());
        assert_eq!(out.deletions.len(), 1);
        let events = vec![row(json!({"Id": "00U1", "WhoId": "00Q9", "StartDateTime": "2026-02-05T15:00:00.000+0000",
            "SystemModstamp": "2026-02-01T10:00:05.000+0000"}))];
        assert!(map_events(&events, &mut out).is_empty());
        assert_eq!(out.activities[2].kind, ActivityKind::Meeting);
        assert_eq!(out.activities[2].lead_id, "00Q9");
    }

    #[test]
    fn users_carry_manager_and_zone_and_queues_are_owners() {
        let mut out = Mapped::default();
        map_users(&[row(json!({"Id": "0051", "Name": "Ana", "ManagerId": "0052", "TimeZoneSidKey": "Europe/Berlin", "IsActive": false}))], &mut out);
        map_queues(&[row(json!({"Id": "00G1", "Name": "Inbound queue"}))], &mut out);
        assert_eq!(out.owners[0].manager_id.as_deref(), Some("0052"));
        assert_eq!(out.owners[0].time_zone.as_deref(), Some("Europe/Berlin"));
        assert!(!out.owners[0].active);
        assert_eq!(out.owners[1].kind, OwnerKind::Queue);
    }

    #[test]
    fn business_hours_and_holidays() {
        let hours = vec![row(json!({"Id": "01m1", "IsActive": true, "TimeZoneSidKey": "America/New_York",
            "MondayStartTime": "08:00:00.000Z", "MondayEndTime": "17:30:00.000Z",
            "SundayStartTime": "00:00:00.000Z", "SundayEndTime": "00:00:00.000Z",
            "TuesdayStartTime": null, "TuesdayEndTime": null}))];
        let holidays = vec![
            row(json!({"Name": "New Year", "ActivityDate": "2026-01-01", "IsAllDay": true})),
            row(json!({"Name": "Half day", "ActivityDate": "2026-12-24", "IsAllDay": false, "StartTimeInMinutes": 720, "EndTimeInMinutes": 1440})),
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
