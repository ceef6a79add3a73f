//! Turning the CRM-neutral synthetic org into Salesforce records, lazily:
//! before each request every timeline event up to the simulated now that
//! has not been applied yet is applied, so advancing the clock makes new
//! leads and touches appear with the right `SystemModstamp`.

use chrono::{DateTime, Duration, Utc};
use handoff_model::ActivityKind;
use serde_json::{json, Value};

use super::state::{derive_fields, SfState, ORG_POD};
use super::store::{fmt_date, fmt_datetime, make_id, set, FieldRef, Record};
use crate::org::{EventKind, LeadStatus, OwnerRef, SyntheticOrg};

pub fn user_id(index: usize) -> String {
    make_id("005", ORG_POD, index as u64 + 1)
}

pub fn queue_id(index: usize) -> String {
    make_id("00G", ORG_POD, index as u64 + 1)
}

pub fn lead_id(index: usize) -> String {
    make_id("00Q", ORG_POD, index as u64 + 1)
}

/// The run-as user of the connected app (not one of the org's reps).
pub fn integration_user_id() -> String {
    make_id("005", ORG_POD, 0)
}

/// Who everyone else's changes are stamped with (`LastModifiedById`): the
/// web forms, assignment rules and people the generated timeline and the
/// admin routes stand for. Never the connected app's user, so what handoff
/// wrote can be told from what others did, as in a real org where the
/// integration has a user of its own.
pub fn automation_user_id() -> String {
    make_id("005", ORG_POD, 900_000)
}

fn owner_id(o: OwnerRef) -> String {
    match o {
        OwnerRef::User(i) => user_id(i),
        OwnerRef::Queue(i) => queue_id(i),
    }
}

/// Salesforce's `Status` value for a neutral status.
pub fn lead_status(s: &LeadStatus) -> &'static str {
    match s {
        LeadStatus::New => "Open - Not Contacted",
        LeadStatus::Working => "Working - Contacted",
        LeadStatus::Accepted => "Qualified",
        LeadStatus::Rejected { .. } => "Unqualified",
        LeadStatus::ClosedUnresponsive { .. } => "Closed - Not Converted",
        LeadStatus::Converted => "Closed - Converted",
    }
}

fn audit(rec: &mut Record, at: DateTime<Utc>, by: &str) {
    let ts = json!(fmt_datetime(at));
    set(rec, "CreatedDate", ts.clone());
    set(rec, "CreatedById", json!(by));
    set(rec, "LastModifiedDate", ts.clone());
    set(rec, "LastModifiedById", json!(by));
    set(rec, "SystemModstamp", ts);
}

fn touch(rec: &mut Record, at: DateTime<Utc>, by: &str) {
    let ts = json!(fmt_datetime(at));
    set(rec, "LastModifiedDate", ts.clone());
    set(rec, "LastModifiedById", json!(by));
    set(rec, "SystemModstamp", ts);
}

/// Just the fields Lead history tracks, to compare before and after.
fn tracked(rec: &Record) -> Record {
    ["OwnerId", "Status"].iter().filter_map(|f| rec.get(f).map(|v| (*f, v.to_value()))).collect()
}

/// Users, queues, business hours and holidays: the org as it stands
/// before the timeline starts.
pub fn seed(state: &mut SfState, org: &SyntheticOrg) {
    let created_at = org.config.start_at - Duration::days(90);
    let admin = integration_user_id();
    let mut integ = Record::new();
    integ.insert("Id", json!(admin));
    integ.insert("Username", json!(state.app.username));
    integ.insert("FirstName", json!("Integration"));
    integ.insert("LastName", json!("User"));
    integ.insert("Name", json!("Integration User"));
    integ.insert("Alias", json!("integ"));
    integ.insert("Email", json!(state.app.username));
    integ.insert("TimeZoneSidKey", json!("America/Los_Angeles"));
    integ.insert("IsActive", json!(true));
    integ.insert("UserType", json!("Standard"));
    audit(&mut integ, created_at, &admin);
    state.put_raw("User", &admin, integ);
    let automation = automation_user_id();
    let mut auto = Record::new();
    auto.insert("Id", json!(automation));
    auto.insert("Username", json!("automation@sandbox.example"));
    auto.insert("FirstName", json!("Marketing"));
    auto.insert("LastName", json!("Automation"));
    auto.insert("Name", json!("Marketing Automation"));
    auto.insert("Alias", json!("mauto"));
    auto.insert("Email", json!("automation@sandbox.example"));
    auto.insert("TimeZoneSidKey", json!("America/Los_Angeles"));
    auto.insert("IsActive", json!(true));
    auto.insert("UserType", json!("Standard"));
    audit(&mut auto, created_at, &admin);
    state.put_raw("User", &automation, auto);

    for u in &org.users {
        let id = user_id(u.index);
        let mut rec = Record::new();
        rec.insert("Id", json!(id));
        rec.insert("Username", json!(u.email));
        rec.insert("FirstName", json!(u.first_name));
        rec.insert("LastName", json!(u.last_name));
        rec.insert("Name", json!(format!("{} {}", u.first_name, u.last_name)));
        rec.insert(
            "Alias",
            json!(u.first_name.chars().take(1).chain(u.last_name.chars().take(4)).collect::<String>().to_lowercase()),
        );
        rec.insert("Email", json!(u.email));
        rec.insert("Department", json!(u.team));
        rec.insert("ManagerId", u.manager.map_or(Value::Null, |m| json!(user_id(m))));
        rec.insert("TimeZoneSidKey", json!(u.time_zone));
        rec.insert("IsActive", json!(true));
        rec.insert("UserType", json!("Standard"));
        audit(&mut rec, created_at, &admin);
        state.put_raw("User", &id, rec);
    }
    for q in &org.queues {
        let id = queue_id(q.index);
        let mut rec = Record::new();
        rec.insert("Id", json!(id));
        rec.insert("Name", json!(q.name));
        rec.insert("DeveloperName", json!(q.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
        rec.insert("Type", json!("Queue"));
        audit(&mut rec, created_at, &admin);
        state.put_raw("Group", &id, rec);
    }
    // Reps' leave, booked ahead in their calendars: an all-day Event shown
    // as out of office (at midnight GMT, as Salesforce stores all-day
    // entries), ending the midnight after its last day.
    for (rep, first, last) in &org.time_off {
        let owner = user_id(*rep);
        let id = state.new_id("Event");
        let days = (*last - *first).num_days() + 1;
        let start = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let mut rec = Record::new();
        rec.insert("Id", json!(id));
        rec.insert("IsDeleted", json!(false));
        rec.insert("IsArchived", json!(false));
        rec.insert("OwnerId", json!(owner));
        rec.insert("Subject", json!("Out of office"));
        rec.insert("Type", json!("Other"));
        rec.insert("EventSubtype", json!("Event"));
        rec.insert("ShowAs", json!("OutOfOffice"));
        rec.insert("IsAllDayEvent", json!(true));
        rec.insert("StartDateTime", json!(fmt_datetime(start)));
        rec.insert("DurationInMinutes", json!(days * 24 * 60));
        derive_fields("Event", &mut rec, created_at);
        audit(&mut rec, created_at, &owner);
        state.put_raw("Event", &id, rec);
    }
    let mut holiday_n = 0u64;
    for (i, cal) in org.calendars.iter().enumerate() {
        let id = make_id("01m", ORG_POD, i as u64 + 1);
        let mut rec = Record::new();
        rec.insert("Id", json!(id));
        rec.insert("Name", json!(cal.id));
        rec.insert("IsActive", json!(true));
        rec.insert("IsDefault", json!(i == 0));
        rec.insert("TimeZoneSidKey", json!(cal.time_zone));
        for w in &cal.weekly {
            let day = match w.weekday {
                chrono::Weekday::Mon => "Monday",
                chrono::Weekday::Tue => "Tuesday",
                chrono::Weekday::Wed => "Wednesday",
                chrono::Weekday::Thu => "Thursday",
                chrono::Weekday::Fri => "Friday",
                chrono::Weekday::Sat => "Saturday",
                chrono::Weekday::Sun => "Sunday",
            };
            rec.insert(&format!("{day}StartTime"), json!(w.start.format("%H:%M:%S%.3fZ").to_string()));
            rec.insert(&format!("{day}EndTime"), json!(w.end.format("%H:%M:%S%.3fZ").to_string()));
        }
        audit(&mut rec, created_at, &admin);
        state.put_raw("BusinessHours", &id, rec);
        for h in &cal.holidays {
            holiday_n += 1;
            let hid = make_id("0C0", ORG_POD, holiday_n);
            let mut rec = Record::new();
            rec.insert("Id", json!(hid));
            rec.insert("Name", json!(h.name.clone().unwrap_or_else(|| format!("Holiday {}", h.date))));
            rec.insert("Description", json!(format!("BusinessHours {}", cal.id)));
            rec.insert("ActivityDate", json!(h.date.format("%Y-%m-%d").to_string()));
            let all_day = h.start.is_none() && h.end.is_none();
            rec.insert("IsAllDay", json!(all_day));
            let minutes = |t: chrono::NaiveTime| {
                use chrono::Timelike;
                json!(t.hour() * 60 + t.minute())
            };
            rec.insert("StartTimeInMinutes", h.start.map_or(Value::Null, minutes));
            rec.insert("EndTimeInMinutes", h.end.map_or(Value::Null, minutes));
            rec.insert("IsRecurrence", json!(false));
            audit(&mut rec, created_at, &admin);
            state.put_raw("Holiday", &hid, rec);
        }
    }
}

/// Apply every event with `at <= now` not applied yet.
pub fn catch_up(state: &mut SfState, org: &SyntheticOrg, now: DateTime<Utc>) {
    let due = org.events.get(state.applied_events).is_some_and(|ev| ev.at <= now);
    if !due {
        return;
    }
    while let Some(ev) = org.events.get(state.applied_events) {
        if ev.at > now {
            break;
        }
        apply(state, org, ev.at, &ev.kind);
        state.applied_events += 1;
    }
}

/// Timeline rows are stored sparse: fields left null are not stored (a
/// missing field reads as null everywhere), which halves the memory and the
/// time a large org takes to materialise.
fn apply(state: &mut SfState, org: &SyntheticOrg, at: DateTime<Utc>, kind: &EventKind) {
    let admin = automation_user_id();
    match kind {
        EventKind::LeadCreated { lead, owner } => {
            let Some(l) = org.leads.get(*lead) else { return };
            let id = lead_id(*lead);
            let mut rec = Record::new();
            set(&mut rec, "Id", json!(id));
            set(&mut rec, "IsDeleted", json!(false));
            set(&mut rec, "FirstName", json!(l.first_name));
            set(&mut rec, "LastName", json!(l.last_name));
            set(&mut rec, "Company", json!(l.company));
            set(&mut rec, "Title", json!(l.title));
            set(&mut rec, "Email", json!(l.email));
            set(&mut rec, "Phone", json!(l.phone));
            set(&mut rec, "Country", json!(l.country));
            set(&mut rec, "Industry", json!(l.industry));
            set(&mut rec, "NumberOfEmployees", json!(l.employees));
            set(&mut rec, "LeadSource", json!(l.source));
            set(&mut rec, "Status", json!("Open - Not Contacted"));
            set(
                &mut rec,
                "Rating",
                json!(if l.score >= 80 {
                    "Hot"
                } else if l.score >= 50 {
                    "Warm"
                } else {
                    "Cold"
                }),
            );
            set(&mut rec, "OwnerId", json!(owner_id(*owner)));
            set(&mut rec, "IsConverted", json!(false));
            set(&mut rec, "IsUnreadByOwner", json!(true));
            set(&mut rec, "Lead_Score__c", json!(l.score as f64));
            set(&mut rec, "Intent_Action__c", json!(l.intent_action));
            set(&mut rec, "MQL_Date__c", json!(fmt_datetime(at)));
            derive_fields("Lead", &mut rec, at);
            audit(&mut rec, at, &admin);
            state.put_raw("Lead", &id, rec);
            state.history_on_create(&id, at, &admin);
        }
        EventKind::Assigned { lead, owner } => {
            let id = lead_id(*lead);
            let Some(before) = state.get("Lead", &id).map(tracked) else { return };
            state.modify("Lead", &id, |rec| {
                set(rec, "OwnerId", json!(owner_id(*owner)));
                touch(rec, at, &admin);
            });
            let after = state.get("Lead", &id).map(tracked).unwrap_or_default();
            state.history_on_update(&id, &before, &after, at, &admin);
        }
        EventKind::Touch { lead, by, kind, automated } => {
            let who = lead_id(*lead);
            let owner = user_id(*by);
            let object = if *kind == ActivityKind::Meeting { "Event" } else { "Task" };
            let id = state.new_id(object);
            let mut rec = Record::new();
            set(&mut rec, "Id", json!(id));
            set(&mut rec, "IsDeleted", json!(false));
            set(&mut rec, "IsArchived", json!(false));
            set(&mut rec, "WhoId", json!(who));
            set(&mut rec, "OwnerId", json!(owner));
            match kind {
                ActivityKind::Meeting => {
                    set(&mut rec, "Subject", json!("Meeting"));
                    set(&mut rec, "Type", json!("Meeting"));
                    set(&mut rec, "EventSubtype", json!("Event"));
                    set(&mut rec, "StartDateTime", json!(fmt_datetime(at)));
                    set(&mut rec, "DurationInMinutes", json!(30));
                    set(&mut rec, "IsAllDayEvent", json!(false));
                }
                ActivityKind::Call | ActivityKind::Email => {
                    let (subject, subtype) = match (kind, automated) {
                        (ActivityKind::Call, _) => ("Call", "Call"),
                        // A list email: how Salesforce marks mail automation sent.
                        (_, true) => ("Sequence email", "ListEmail"),
                        _ => ("Email", "Email"),
                    };
                    set(&mut rec, "Subject", json!(subject));
                    set(&mut rec, "Type", json!(subject));
                    set(&mut rec, "TaskSubtype", json!(subtype));
                    set(&mut rec, "Status", json!("Completed"));
                    set(&mut rec, "Priority", json!("Normal"));
                    set(&mut rec, "ActivityDate", json!(fmt_date(at)));
                    set(&mut rec, "CompletedDateTime", json!(fmt_datetime(at)));
                    set(&mut rec, "IsReminderSet", json!(false));
                    if *kind == ActivityKind::Call {
                        set(&mut rec, "CallType", json!("Outbound"));
                    }
                }
                ActivityKind::Task => {
                    set(&mut rec, "Subject", json!("Follow up"));
                    set(&mut rec, "TaskSubtype", json!("Task"));
                    set(&mut rec, "Status", json!("Not Started"));
                    set(&mut rec, "Priority", json!("Normal"));
                    set(&mut rec, "ActivityDate", json!(fmt_date(at)));
                    set(&mut rec, "IsReminderSet", json!(false));
                }
            }
            derive_fields(object, &mut rec, at);
            audit(&mut rec, at, &owner);
            state.put_raw(object, &id, rec);
            state.modify("Lead", &who, |lead_rec| {
                set(lead_rec, "LastActivityDate", json!(fmt_date(at)));
            });
        }
        EventKind::StatusChanged { lead, status } => {
            let id = lead_id(*lead);
            let Some(before) = state.get("Lead", &id).map(tracked) else { return };
            state.modify("Lead", &id, |rec| {
                set(rec, "Status", json!(lead_status(status)));
                match status {
                    LeadStatus::Rejected { reason } | LeadStatus::ClosedUnresponsive { reason } => {
                        set(rec, "Disqualification_Reason__c", json!(reason));
                    }
                    LeadStatus::Converted => {
                        set(rec, "IsConverted", json!(true));
                        set(rec, "ConvertedDate", json!(fmt_date(at)));
                    }
                    _ => {}
                }
                touch(rec, at, &admin);
            });
            let after = state.get("Lead", &id).map(tracked).unwrap_or_default();
            state.history_on_update(&id, &before, &after, at, &admin);
        }
        EventKind::Deleted { lead } => {
            let _ = state.delete("Lead", &lead_id(*lead), at);
        }
        EventKind::Merged { lead, into } => {
            let _ = state.merge("Lead", &lead_id(*into), &lead_id(*lead), at);
        }
        // The conversion's Opportunity, owned by the AE; the lead names it.
        EventKind::OpportunityCreated { lead, owner } => {
            let who = lead_id(*lead);
            let Some(l) = org.leads.get(*lead) else { return };
            if state.get("Lead", &who).is_none() {
                return;
            }
            let id = state.new_id("Opportunity");
            let ae = user_id(*owner);
            let mut rec = Record::new();
            set(&mut rec, "Id", json!(id));
            set(&mut rec, "IsDeleted", json!(false));
            let company = l.company.clone().unwrap_or_else(|| l.email.clone());
            set(&mut rec, "Name", json!(format!("{company} - New Business")));
            set(&mut rec, "StageName", json!("Prospecting"));
            set(&mut rec, "CloseDate", json!(fmt_date(at + Duration::days(30))));
            set(&mut rec, "Amount", json!(f64::from(l.employees.unwrap_or(50).min(5_000)) * 120.0));
            set(&mut rec, "LeadSource", json!(l.source));
            set(&mut rec, "OwnerId", json!(ae));
            set(&mut rec, "IsClosed", json!(false));
            set(&mut rec, "IsWon", json!(false));
            audit(&mut rec, at, &ae);
            state.put_raw("Opportunity", &id, rec);
            state.modify("Lead", &who, |lead_rec| {
                set(lead_rec, "ConvertedOpportunityId", json!(id));
                touch(lead_rec, at, &admin);
            });
        }
        // A meeting on the lead's Opportunity: the converted lead is read
        // only, so the Event names the Opportunity alone (`WhatId`).
        EventKind::OpportunityMeeting { lead, by } => {
            let opportunity = state
                .get("Lead", &lead_id(*lead))
                .and_then(|r| r.get("ConvertedOpportunityId"))
                .and_then(FieldRef::as_str)
                .map(str::to_string);
            let Some(what) = opportunity else { return };
            let owner = user_id(*by);
            let id = state.new_id("Event");
            let mut rec = Record::new();
            set(&mut rec, "Id", json!(id));
            set(&mut rec, "IsDeleted", json!(false));
            set(&mut rec, "IsArchived", json!(false));
            set(&mut rec, "WhatId", json!(what));
            set(&mut rec, "OwnerId", json!(owner));
            set(&mut rec, "Subject", json!("Discovery meeting"));
            set(&mut rec, "Type", json!("Meeting"));
            set(&mut rec, "EventSubtype", json!("Event"));
            set(&mut rec, "StartDateTime", json!(fmt_datetime(at)));
            set(&mut rec, "DurationInMinutes", json!(30));
            set(&mut rec, "IsAllDayEvent", json!(false));
            derive_fields("Event", &mut rec, at);
            audit(&mut rec, at, &owner);
            state.put_raw("Event", &id, rec);
        }
    }
}
