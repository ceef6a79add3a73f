//! HubSpot records → handoff's CRM-neutral model. Pure.

use std::collections::BTreeMap;

use handoff_model::{
    Activity, ActivityKind, Assignment, Deletion, Direction, FieldChange, Lead, Opportunity, Owner, OwnerKind,
    StatusChange, Stream, Timestamp,
};

use crate::wire::{parse_time, ApiObject, ApiOwner, HistoryValue};

/// The contact properties handoff always reads.
pub const CONTACT_PROPERTIES: &[&str] = &[
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "firstname",
    "lastname",
    "email",
    "company",
    "jobtitle",
    "numemployees",
    "industry",
    "country",
    "phone",
    "hs_analytics_source",
    "hs_lead_status",
    "lifecyclestage",
    "hubspotscore",
    "hubspot_owner_id",
    "hs_merged_object_ids",
    "hs_lifecyclestage_opportunity_date",
    "intent_action",
    "disqualification_reason",
    "handoff_sla_grade",
    "handoff_sla_due",
    "handoff_sla_status",
    "handoff_sla_breach_count",
];

/// The contact properties whose history fills [`Lead::assignments`] and
/// [`Lead::status_changes`].
pub const OWNER_PROPERTY: &str = "hubspot_owner_id";
pub const STATUS_PROPERTY: &str = "hs_lead_status";

/// The properties read with history: owner, status and `extra` (the ones
/// the policy judges leads by).
pub fn history_properties(extra: &[String]) -> Vec<String> {
    history_properties_with(STATUS_PROPERTY, extra)
}

/// [`history_properties`] with another status property (a lead record's stage).
pub fn history_properties_with(status_property: &str, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![OWNER_PROPERTY.to_string(), status_property.to_string()];
    for p in extra {
        if !p.trim().is_empty() && !out.iter().any(|o| o == p.trim()) {
            out.push(p.trim().to_string());
        }
    }
    out
}

/// The custom task property carrying handoff's action key.
pub const TASK_KEY_PROPERTY: &str = "handoff_key";

/// The engagement types the activities stream reads, in order.
pub const ENGAGEMENTS: [ActivityKind; 4] =
    [ActivityKind::Call, ActivityKind::Email, ActivityKind::Meeting, ActivityKind::Task];

/// The object type's path name.
pub fn object_type(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Call => "calls",
        ActivityKind::Email => "emails",
        ActivityKind::Meeting => "meetings",
        ActivityKind::Task => "tasks",
    }
}

/// Set on an email a sequence sent (its sequence's id).
pub const SEQUENCE_PROPERTY: &str = "hs_sequence_id";

/// The properties read for an engagement type.
pub fn engagement_properties(kind: ActivityKind) -> &'static [&'static str] {
    match kind {
        ActivityKind::Call => &[
            "hs_object_id",
            "hs_timestamp",
            "hs_lastmodifieddate",
            "hubspot_owner_id",
            "hs_call_title",
            "hs_call_direction",
            "hs_call_status",
            "hs_call_disposition",
        ],
        ActivityKind::Email => &[
            "hs_object_id",
            "hs_timestamp",
            "hs_lastmodifieddate",
            "hubspot_owner_id",
            "hs_email_subject",
            "hs_email_direction",
            "hs_email_status",
            // Set on emails a sequence sent: automated, not a rep's own touch.
            SEQUENCE_PROPERTY,
        ],
        ActivityKind::Meeting => &[
            "hs_object_id",
            "hs_timestamp",
            "hs_lastmodifieddate",
            "hubspot_owner_id",
            "hs_meeting_title",
            "hs_meeting_start_time",
            "hs_meeting_outcome",
        ],
        ActivityKind::Task => &[
            "hs_object_id",
            "hs_timestamp",
            "hs_lastmodifieddate",
            "hubspot_owner_id",
            "hs_task_subject",
            "hs_task_status",
            "hs_task_completion_date",
            TASK_KEY_PROPERTY,
        ],
    }
}

/// The deal properties the opportunity stream reads: what
/// [`opportunity`] maps (owner, times) and what says where the deal
/// stands (stage, pipeline, amount, close date), kept for the daemon's
/// quarantine and logs.
pub const DEAL_PROPERTIES: &[&str] = &[
    "hs_object_id",
    "createdate",
    "hs_lastmodifieddate",
    OWNER_PROPERTY,
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "closedate",
];

/// The creation-time property: `createdate` on contacts and deals,
/// `hs_createdate` on every other object.
pub fn created_property(object_type: &str) -> &'static str {
    if object_type == "contacts" || object_type == "deals" {
        "createdate"
    } else {
        "hs_createdate"
    }
}

/// The lead record properties handoff always reads in leads mode (the
/// stage is the lead's status; `hs_lead_disqualification_reason` is
/// HubSpot's own reason property).
pub const LEAD_RECORD_PROPERTIES: &[&str] = &[
    "hs_object_id",
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_lead_name",
    "hs_pipeline",
    LEAD_STAGE_PROPERTY,
    OWNER_PROPERTY,
    "hs_lead_disqualification_reason",
    "hs_merged_object_ids",
];

/// The lead record's status: its pipeline stage (a stage id).
pub const LEAD_STAGE_PROPERTY: &str = "hs_pipeline_stage";

/// A contact's properties that describe the contact record itself, never
/// the lead joined with it (its id, times, owner, merges).
const CONTACT_OWN_PROPERTIES: [&str; 5] =
    ["hs_object_id", "createdate", "lastmodifieddate", OWNER_PROPERTY, "hs_merged_object_ids"];

/// A lead record joined with its primary contact, as one record for
/// [`lead`] (with `object = "leads"`) and [`add_history`]: the lead's id,
/// times and every property the Leads object defines (`lead_properties`:
/// its stage, owner, reason, the SLA fields), and from the contact every
/// other property (what the policy qualifies leads by: fit, intent,
/// score). The modified time is the later of the two records', so a
/// change to the contact is a new version of the lead. Property history
/// follows the same split.
pub fn join_lead_record(
    lead: &ApiObject,
    contact: Option<&ApiObject>,
    lead_properties: &dyn Fn(&str) -> bool,
) -> ApiObject {
    let mut joined = lead.clone();
    let Some(contact) = contact else { return joined };
    for (name, value) in &contact.properties {
        if !lead_properties(name) && !CONTACT_OWN_PROPERTIES.contains(&name.as_str()) {
            joined.properties.insert(name.clone(), value.clone());
        }
    }
    for (name, entries) in &contact.properties_with_history {
        if !lead_properties(name) && !CONTACT_OWN_PROPERTIES.contains(&name.as_str()) {
            joined.properties_with_history.insert(name.clone(), entries.clone());
        }
    }
    let lead_modified = time_of(lead, &["hs_lastmodifieddate"], lead.updated_at.as_deref());
    let contact_modified = time_of(contact, &["lastmodifieddate"], contact.updated_at.as_deref());
    if let (Some(l), Some(c)) = (lead_modified, contact_modified) {
        if c > l {
            let at = serde_json::Value::String(c.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            joined.properties.insert("hs_lastmodifieddate".into(), at);
        }
    }
    joined
}

/// The last-modified property searches filter on: `lastmodifieddate` for
/// contacts (filtering them on `hs_lastmodifieddate` silently matches
/// nothing), `hs_lastmodifieddate` for everything else.
pub fn modified_property(object_type: &str) -> &'static str {
    if object_type == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

fn time_of(o: &ApiObject, props: &[&str], fallback: Option<&str>) -> Option<Timestamp> {
    props.iter().find_map(|p| o.prop(p).and_then(parse_time)).or_else(|| fallback.and_then(parse_time))
}

/// A mapping failure: the record is unusable (the connector quarantines
/// it), with this reason.
pub type Skip = String;

/// Every time the mapping reads must be readable when present: falling
/// back on another would alter the record.
fn check_times(o: &ApiObject, props: &[&str]) -> Result<(), Skip> {
    for p in props {
        if let Some(v) = o.prop(p) {
            if parse_time(v).is_none() {
                return Err(format!("{p} {v:?} is not a time"));
            }
        }
    }
    for (name, v) in [("createdAt", &o.created_at), ("updatedAt", &o.updated_at)] {
        if let Some(v) = v.as_deref().filter(|s| !s.is_empty()) {
            if parse_time(v).is_none() {
                return Err(format!("{name} {v:?} is not a time"));
            }
        }
    }
    Ok(())
}

/// The record's numeric id (the key-set pagination position).
pub fn numeric_id(o: &ApiObject) -> Result<u64, Skip> {
    o.id.parse().map_err(|_| format!("record id {:?} is not numeric", o.id))
}

/// The modified instant a search window compares.
pub fn modified_at(o: &ApiObject, object_type: &str) -> Result<Timestamp, Skip> {
    time_of(o, &[modified_property(object_type)], o.updated_at.as_deref())
        .ok_or_else(|| format!("{object_type} {} has no readable modified time", o.id))
}

/// A contact (or, in leads mode, a lead record joined with its contact:
/// see [`join_lead_record`]) as a lead, plus the merges it records
/// (`hs_merged_object_ids` lists records merged into it; they are gone as
/// separate records). `object` is the record's type.
pub fn lead(o: &ApiObject, object: &str) -> Result<(Lead, Vec<Deletion>), Skip> {
    let created_property = created_property(object);
    check_times(o, &[modified_property(object), created_property, "hs_lifecyclestage_opportunity_date"])?;
    let modified = modified_at(o, object)?;
    let created = time_of(o, &[created_property], o.created_at.as_deref()).unwrap_or(modified);
    let converted_at = match o.prop("lifecyclestage") {
        Some("opportunity" | "customer" | "evangelist") => {
            Some(time_of(o, &["hs_lifecyclestage_opportunity_date"], None).unwrap_or(modified))
        }
        _ => None,
    };
    let merges = o
        .prop("hs_merged_object_ids")
        .map(|ids| {
            ids.split(';')
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != o.id)
                .map(|id| Deletion {
                    stream: Stream::Leads,
                    id: id.to_string(),
                    merged_into: Some(o.id.clone()),
                    deleted_at: modified,
                })
                .collect()
        })
        .unwrap_or_default();
    let fields: BTreeMap<String, serde_json::Value> = o.properties.clone();
    let lead = Lead {
        id: o.id.clone(),
        owner_id: o.prop("hubspot_owner_id").map(str::to_string),
        fields,
        created_at: created,
        modified_at: modified,
        assignments: Vec::new(),
        status_changes: Vec::new(),
        field_history: BTreeMap::new(),
        converted_at,
        deleted: o.archived,
        merged_into: None,
        opportunities: Vec::new(),
        read_only: false,
    };
    Ok((lead, merges))
}

/// The values a property took up to `until` (the version of the record
/// being delivered), oldest first, each with the instant it was set.
///
/// HubSpot lists history newest first; entries sharing a timestamp keep
/// that order reversed (the later write last). Cleared values and entries
/// with an unreadable time are dropped, and a value repeated without a
/// change in between counts once.
pub fn history_values(entries: &[HistoryValue], until: Timestamp) -> Vec<(String, Timestamp)> {
    let mut timed: Vec<(String, Timestamp)> = entries
        .iter()
        .rev()
        .filter_map(|e| {
            let value = e.value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
            let at = parse_time(&e.timestamp)?;
            (at <= until).then(|| (value.to_string(), at))
        })
        .collect();
    // Stable: equal timestamps stay oldest first.
    timed.sort_by_key(|(_, at)| *at);
    timed.dedup_by(|later, earlier| later.0 == earlier.0);
    timed
}

/// A lead's ownership history from the `hubspot_owner_id` history: oldest
/// first, starting with the first owner. `kind_of` says whether an owner id
/// is a user or a queue (HubSpot's owner `type`).
pub fn assignments(o: &ApiObject, until: Timestamp, kind_of: &dyn Fn(&str) -> OwnerKind) -> Vec<Assignment> {
    let entries = o.properties_with_history.get(OWNER_PROPERTY).map(Vec::as_slice).unwrap_or_default();
    history_values(entries, until)
        .into_iter()
        .map(|(owner_id, at)| Assignment { owner_kind: kind_of(&owner_id), owner_id, at })
        .collect()
}

/// A lead's status history from the history of `status_property`
/// (`hs_lead_status`, or a lead record's stage), oldest first.
pub fn status_changes(o: &ApiObject, until: Timestamp, status_property: &str) -> Vec<StatusChange> {
    let entries = o.properties_with_history.get(status_property).map(Vec::as_slice).unwrap_or_default();
    history_values(entries, until).into_iter().map(|(status, at)| StatusChange { status, at }).collect()
}

/// Fill a lead's ownership and status history from `history` (the same
/// contact read with `propertiesWithHistory`), up to the lead's own
/// modification time: a change made after the search read the lead belongs
/// to its next version.
///
/// `status_property` holds the status: `hs_lead_status` on contacts, the
/// pipeline stage on lead records.
pub fn add_history(lead: &mut Lead, history: &ApiObject, kind_of: &dyn Fn(&str) -> OwnerKind, status_property: &str) {
    lead.assignments = assignments(history, lead.modified_at, kind_of);
    lead.status_changes = status_changes(history, lead.modified_at, status_property);
    for (property, entries) in &history.properties_with_history {
        if property == OWNER_PROPERTY || property == status_property {
            continue;
        }
        let values = history_values(entries, lead.modified_at);
        // A form or import sets its values a moment after the contact is
        // created: that is the value it was created with.
        let created_with = lead.created_at + chrono::Duration::minutes(1);
        let at_of = |at: Timestamp| if at <= created_with { lead.created_at } else { at };
        // HubSpot lists set values only: one first set later was empty before.
        let mut changes: Vec<FieldChange> = Vec::new();
        if values.first().is_none_or(|(_, at)| at_of(*at) > lead.created_at) {
            changes.push(FieldChange { value: serde_json::Value::Null, at: lead.created_at });
        }
        changes.extend(
            values.into_iter().map(|(v, at)| FieldChange { value: serde_json::Value::String(v), at: at_of(at) }),
        );
        lead.field_history.insert(property.clone(), changes);
    }
}

/// The owner ids named in a record's owner history.
pub fn history_owner_ids(o: &ApiObject) -> impl Iterator<Item = &str> {
    o.properties_with_history
        .get(OWNER_PROPERTY)
        .into_iter()
        .flatten()
        .filter_map(|e| e.value.as_deref().map(str::trim).filter(|v| !v.is_empty()))
}

/// A deal as an opportunity of the leads it is associated with
/// (`lead_ids`: its contacts, or in leads mode their lead records; empty
/// when it has none). Its owner is the AE who answers for it.
pub fn opportunity(o: &ApiObject, lead_ids: &[String]) -> Result<Opportunity, Skip> {
    let created_property = created_property("deals");
    check_times(o, &[modified_property("deals"), created_property])?;
    let modified = modified_at(o, "deals")?;
    let created = time_of(o, &[created_property], o.created_at.as_deref())
        .ok_or_else(|| format!("deal {} has no readable {created_property}", o.id))?;
    Ok(Opportunity {
        id: o.id.clone(),
        lead_ids: lead_ids.to_vec(),
        owner_id: o.prop(OWNER_PROPERTY).map(str::to_string),
        created_at: created,
        modified_at: modified,
        deleted: o.archived,
    })
}

/// An engagement as an activity of the contact it is associated with (the
/// lowest contact id when there are several), and of the deal it is
/// associated with (`deal_id`, the lowest when several; given only when the
/// connector reads opportunities). One logged on a deal alone has the empty
/// lead id: the daemon finds the lead through the deal. With neither it is
/// not a lead's activity (the caller skips it; here it is an error).
pub fn activity(
    o: &ApiObject,
    kind: ActivityKind,
    contact_id: Option<&str>,
    deal_id: Option<&str>,
) -> Result<Activity, Skip> {
    let ty = object_type(kind);
    let lead_id = match (contact_id, deal_id) {
        (Some(contact), _) => contact,
        (None, Some(_)) => "",
        (None, None) => return Err(format!("{ty} {} is not associated with a contact or a deal", o.id)),
    };
    check_times(o, &["hs_lastmodifieddate", "hs_timestamp", "hs_meeting_start_time", "hs_task_completion_date"])?;
    let modified = modified_at(o, ty)?;
    let completed = kind == ActivityKind::Task && o.prop("hs_task_status") == Some("COMPLETED");
    let occurred_props: &[&str] = match kind {
        ActivityKind::Meeting => &["hs_meeting_start_time", "hs_timestamp"],
        ActivityKind::Task if completed => &["hs_task_completion_date", "hs_timestamp"],
        _ => &["hs_timestamp"],
    };
    let occurred_at = time_of(o, occurred_props, o.created_at.as_deref()).unwrap_or(modified);
    let subject = match kind {
        ActivityKind::Call => o.prop("hs_call_title"),
        ActivityKind::Email => o.prop("hs_email_subject"),
        ActivityKind::Meeting => o.prop("hs_meeting_title"),
        ActivityKind::Task => o.prop("hs_task_subject"),
    };
    let direction = match (kind, o.prop("hs_call_direction"), o.prop("hs_email_direction")) {
        (ActivityKind::Call, Some("INBOUND"), _) => Some(Direction::Inbound),
        (ActivityKind::Call, Some("OUTBOUND"), _) => Some(Direction::Outbound),
        (ActivityKind::Email, _, Some("INCOMING_EMAIL")) => Some(Direction::Inbound),
        (ActivityKind::Email, _, Some("EMAIL" | "FORWARDED_EMAIL")) => Some(Direction::Outbound),
        _ => None,
    };
    Ok(Activity {
        id: o.id.clone(),
        kind,
        lead_id: lead_id.to_string(),
        owner_id: o.prop("hubspot_owner_id").map(str::to_string),
        occurred_at,
        modified_at: modified,
        subject: subject.map(str::to_string),
        direction,
        completed,
        handoff_key: if kind == ActivityKind::Task { o.prop(TASK_KEY_PROPERTY).map(str::to_string) } else { None },
        automated: kind == ActivityKind::Email && o.prop(SEQUENCE_PROPERTY).is_some_and(|s| !s.trim().is_empty()),
        deleted: o.archived,
        opportunity_id: deal_id.map(str::to_string),
    })
}

/// A user or a queue, from the owner's `type` (`PERSON` / `QUEUE`).
pub fn owner_kind(o: &ApiOwner) -> OwnerKind {
    if o.kind.as_deref() == Some("QUEUE") {
        OwnerKind::Queue
    } else {
        OwnerKind::User
    }
}

/// An owner, with the manager and zone from the settings.
pub fn owner(o: &ApiOwner, managers: &BTreeMap<String, String>, zones: &BTreeMap<String, String>) -> Owner {
    let name = match (o.first_name.as_deref(), o.last_name.as_deref()) {
        (Some(f), Some(l)) if !f.is_empty() || !l.is_empty() => Some(format!("{f} {l}").trim().to_string()),
        (Some(f), None) if !f.is_empty() => Some(f.to_string()),
        (None, Some(l)) if !l.is_empty() => Some(l.to_string()),
        _ => None,
    };
    Owner {
        id: o.id.clone(),
        kind: owner_kind(o),
        name,
        email: o.email.clone().filter(|e| !e.is_empty()),
        manager_id: managers.get(&o.id).cloned(),
        time_zone: zones.get(&o.id).cloned(),
        active: !o.archived,
        modified_at: o.updated_at.as_deref().and_then(parse_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> ApiObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn contact_with_nulls_merges_and_opportunity_stage() {
        let o = obj(json!({
            "id": "501",
            "properties": {"hs_object_id": "501", "lastmodifieddate": "2025-01-27T19:53:15.581Z", "createdate": "2023-12-14T23:31:55.758Z",
                           "hubspot_owner_id": "77", "company": null, "lifecyclestage": "opportunity", "hs_merged_object_ids": "12;501;13"},
            "createdAt": "2023-12-14T23:31:55.758Z", "updatedAt": "2025-01-27T19:53:15.581Z", "archived": false
        }));
        let (lead, merges) = lead(&o, "contacts").unwrap();
        assert_eq!(lead.owner_id.as_deref(), Some("77"));
        assert_eq!(lead.fields["company"], serde_json::Value::Null);
        assert_eq!(lead.modified_at.timestamp_millis(), 1_738_007_595_581);
        assert_eq!(lead.converted_at, Some(lead.modified_at));
        let ids: Vec<_> = merges.iter().map(|d| (d.id.as_str(), d.merged_into.as_deref())).collect();
        assert_eq!(ids, vec![("12", Some("501")), ("13", Some("501"))]);
    }

    #[test]
    fn engagements_need_a_contact_and_tasks_carry_their_key() {
        let o = obj(
            json!({"id": "9", "properties": {"hs_timestamp": "2026-03-02T10:00:00Z", "hs_lastmodifieddate": "2026-03-02T10:00:01Z",
                                                     "hs_task_status": "COMPLETED", "hs_task_completion_date": "1772445600000", "handoff_key": "k1"}}),
        );
        assert!(activity(&o, ActivityKind::Task, None, None).is_err());
        let a = activity(&o, ActivityKind::Task, Some("501"), None).unwrap();
        assert!(a.completed);
        assert_eq!(a.handoff_key.as_deref(), Some("k1"));
        assert_eq!(a.occurred_at.timestamp_millis(), 1_772_445_600_000);
        let call = obj(
            json!({"id": "10", "properties": {"hs_timestamp": "2026-03-02T10:00:00Z", "hs_lastmodifieddate": "2026-03-02T10:00:01Z", "hs_call_direction": "INBOUND", "handoff_key": "x"}}),
        );
        let a = activity(&call, ActivityKind::Call, Some("501"), None).unwrap();
        assert_eq!(a.direction, Some(Direction::Inbound));
        assert_eq!(a.handoff_key, None);
        assert!(!a.automated);
    }

    #[test]
    fn an_email_a_sequence_sent_is_automated() {
        let email = |extra: serde_json::Value| {
            let mut props = json!({"hs_timestamp": "2026-03-02T10:00:00Z", "hs_lastmodifieddate": "2026-03-02T10:00:01Z", "hs_email_direction": "EMAIL"});
            props.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            activity(&obj(json!({"id": "11", "properties": props})), ActivityKind::Email, Some("501"), None).unwrap()
        };
        assert!(email(json!({"hs_sequence_id": "4242"})).automated);
        assert!(!email(json!({})).automated, "a rep's own email");
        assert!(!email(json!({"hs_sequence_id": ""})).automated);
    }

    fn lead_at(modified: &str) -> Lead {
        let (lead, _) = lead(
            &obj(json!({"id": "7", "properties": {"lastmodifieddate": modified, "hubspot_owner_id": "80000000"}})),
            "contacts",
        )
        .unwrap();
        lead
    }

    fn entry(value: &str, at: &str) -> serde_json::Value {
        json!({"value": value, "timestamp": at, "sourceType": "CRM_UI"})
    }

    #[test]
    fn the_policys_properties_get_their_history_from_creation_on() {
        let (mut lead, _) = lead(
            &obj(json!({"id": "7", "properties": {
            "createdate": "2026-03-02T09:00:00.000Z", "lastmodifieddate": "2026-03-06T09:00:00.000Z",
            "phone": "+1 415 555 0101", "company": "Acme"}})),
            "contacts",
        )
        .unwrap();
        let history = obj(json!({"id": "7", "propertiesWithHistory": {
            // Set by the form a moment after the contact was created.
            "phone": [entry("+1 415 555 0101", "2026-03-02T09:00:00.040Z")],
            // Filled in by marketing three days later.
            "company": [entry("Acme", "2026-03-05T10:00:00.000Z")],
            "hs_lead_status": [entry("NEW", "2026-03-02T09:00:00.000Z")]
        }}));
        add_history(&mut lead, &history, &|_| OwnerKind::User, STATUS_PROPERTY);
        let at = |s: &str| parse_time(s).unwrap();
        let phone: Vec<_> = lead.field_history["phone"].iter().map(|c| (c.value.clone(), c.at)).collect();
        assert_eq!(phone, [(json!("+1 415 555 0101"), at("2026-03-02T09:00:00.000Z"))]);
        let company: Vec<_> = lead.field_history["company"].iter().map(|c| (c.value.clone(), c.at)).collect();
        assert_eq!(
            company,
            [
                (serde_json::Value::Null, at("2026-03-02T09:00:00.000Z")),
                (json!("Acme"), at("2026-03-05T10:00:00.000Z"))
            ]
        );
        assert!(!lead.field_history.contains_key("hs_lead_status"), "status history is the status changes'");
        assert_eq!(
            history_properties(&["phone".to_string(), "hs_lead_status".to_string()]),
            ["hubspot_owner_id", "hs_lead_status", "phone"]
        );
    }

    #[test]
    fn history_becomes_assignments_and_status_changes_oldest_first() {
        let history = obj(json!({"id": "7", "propertiesWithHistory": {
        "hubspot_owner_id": [
            entry("70000002", "2026-03-04T09:00:00.000Z"),
            entry("70000001", "2026-03-02T09:05:00.000Z"),
            entry("80000000", "2026-03-02T09:00:00.000Z")
        ],
        "hs_lead_status": [
            entry("CONNECTED", "2026-03-05T10:00:00.000Z"),
            entry("", "2026-03-03T12:00:00.000Z"),
            entry("IN_PROGRESS", "2026-03-03T11:00:00.000Z"),
            entry("NEW", "2026-03-02T09:00:00.000Z")
        ]}}));
        let queue = |id: &str| if id.starts_with('8') { OwnerKind::Queue } else { OwnerKind::User };
        let mut lead = lead_at("2026-03-05T10:00:00.000Z");
        add_history(&mut lead, &history, &queue, STATUS_PROPERTY);
        let owners: Vec<(&str, OwnerKind, i64)> =
            lead.assignments.iter().map(|a| (a.owner_id.as_str(), a.owner_kind, a.at.timestamp())).collect();
        assert_eq!(
            owners,
            vec![
                ("80000000", OwnerKind::Queue, 1_772_442_000),
                ("70000001", OwnerKind::User, 1_772_442_300),
                ("70000002", OwnerKind::User, 1_772_614_800)
            ]
        );
        let statuses: Vec<&str> = lead.status_changes.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, vec!["NEW", "IN_PROGRESS", "CONNECTED"], "a clear is not a status");
        assert!(lead.status_changes.windows(2).all(|w| w[0].at < w[1].at));

        // The version delivered was modified before the last changes: they
        // belong to the next version.
        let mut earlier = lead_at("2026-03-03T11:00:00.000Z");
        add_history(&mut earlier, &history, &queue, STATUS_PROPERTY);
        assert_eq!(earlier.assignments.len(), 2);
        assert_eq!(
            earlier.status_changes.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
            vec!["NEW", "IN_PROGRESS"]
        );
    }

    #[test]
    fn history_ties_keep_write_order_and_repeats_and_bad_times_drop() {
        // Newest first, two writes in the same millisecond: the first listed is the later one.
        let entries: Vec<HistoryValue> = serde_json::from_value(json!([
            entry("B", "2026-03-02T09:00:00.000Z"),
            entry("A", "2026-03-02T09:00:00.000Z"),
            entry("A", "2026-03-01T09:00:00.000Z"),
            entry("X", "yesterday")
        ]))
        .unwrap();
        let until = parse_time("2026-03-09T00:00:00Z").unwrap();
        let values: Vec<String> = history_values(&entries, until).into_iter().map(|(v, _)| v).collect();
        assert_eq!(values, vec!["A".to_string(), "B".to_string()]);
        let none = obj(json!({"id": "1"}));
        assert!(assignments(&none, until, &|_| OwnerKind::User).is_empty());
        assert_eq!(history_owner_ids(&obj(json!({"id": "1", "propertiesWithHistory": {"hubspot_owner_id": [entry("5", "2026-03-02T09:00:00Z"), entry("", "2026-03-02T09:00:00Z")]}}))).collect::<Vec<_>>(), vec!["5"]);
    }

    #[test]
    fn an_unreadable_time_is_never_replaced_by_a_fallback() {
        let contact = obj(
            json!({"id": "7", "properties": {"lastmodifieddate": "02.03.2026 10:00"}, "updatedAt": "2026-03-02T10:00:00Z"}),
        );
        assert!(lead(&contact, "contacts").unwrap_err().contains("lastmodifieddate"));
        let call = obj(
            json!({"id": "9", "properties": {"hs_timestamp": "soon", "hs_lastmodifieddate": "2026-03-02T10:00:01Z"}}),
        );
        assert!(activity(&call, ActivityKind::Call, Some("7"), None).unwrap_err().contains("hs_timestamp"));
    }

    #[test]
    fn a_deal_is_an_opportunity_of_its_leads_owned_by_its_owner() {
        let deal = obj(json!({
            "id": "9001",
            "properties": {"hs_object_id": "9001", "createdate": "2026-03-02T15:00:00.000Z", "hs_lastmodifieddate": "2026-03-04T09:30:00.000Z",
                           "hubspot_owner_id": "70000012", "dealname": "Acme - new business", "dealstage": "appointmentscheduled",
                           "pipeline": "default", "amount": null, "closedate": null},
            "createdAt": "2026-03-02T15:00:00.000Z", "updatedAt": "2026-03-04T09:30:00.000Z", "archived": false
        }));
        let o = opportunity(&deal, &["501".to_string(), "502".to_string()]).unwrap();
        assert_eq!(o.id, "9001");
        assert_eq!(o.lead_ids, vec!["501".to_string(), "502".to_string()]);
        assert_eq!(o.owner_id.as_deref(), Some("70000012"));
        assert_eq!(o.created_at, parse_time("2026-03-02T15:00:00Z").unwrap());
        assert_eq!(o.modified_at, parse_time("2026-03-04T09:30:00Z").unwrap());
        assert!(!o.deleted);

        // Unowned, with no contact, and the creation time only in `createdAt`.
        let bare =
            obj(json!({"id": "9002", "properties": {"hs_lastmodifieddate": "1772443800000", "hubspot_owner_id": ""},
                              "createdAt": "2026-03-02T09:00:00Z"}));
        let o = opportunity(&bare, &[]).unwrap();
        assert_eq!((o.owner_id, o.lead_ids.len()), (None, 0));
        assert_eq!(o.created_at, parse_time("2026-03-02T09:00:00Z").unwrap());
        assert_eq!(o.modified_at.timestamp_millis(), 1_772_443_800_000);
    }

    #[test]
    fn a_deal_with_an_unreadable_time_is_a_bad_row_naming_the_field() {
        let deal = |props: serde_json::Value| obj(json!({"id": "9003", "properties": props}));
        let e = opportunity(
            &deal(json!({"createdate": "02.03.2026", "hs_lastmodifieddate": "2026-03-04T09:30:00Z"})),
            &["501".to_string()],
        )
        .unwrap_err();
        assert!(e.contains("createdate") && e.contains("02.03.2026"), "{e}");
        let e = opportunity(&deal(json!({"createdate": "2026-03-02T15:00:00Z", "hs_lastmodifieddate": "soon"})), &[])
            .unwrap_err();
        assert!(e.contains("hs_lastmodifieddate"), "{e}");
        let e = opportunity(&deal(json!({"hs_lastmodifieddate": "2026-03-04T09:30:00Z"})), &[]).unwrap_err();
        assert!(e.contains("createdate"), "no creation time at all: {e}");
    }

    #[test]
    fn an_engagement_logged_on_a_deal_names_it_and_without_a_contact_has_no_lead() {
        let meeting = obj(
            json!({"id": "12", "properties": {"hs_timestamp": "2026-03-05T14:00:00Z", "hs_lastmodifieddate": "2026-03-05T14:00:01Z",
                                                             "hs_meeting_start_time": "2026-03-05T14:00:00Z", "hubspot_owner_id": "70000012",
                                                             "hs_meeting_title": "Discovery meeting"}}),
        );
        let on_deal = activity(&meeting, ActivityKind::Meeting, None, Some("9001")).unwrap();
        assert_eq!(on_deal.lead_id, "", "the daemon finds the lead through the deal");
        assert_eq!(on_deal.opportunity_id.as_deref(), Some("9001"));
        assert_eq!(on_deal.owner_id.as_deref(), Some("70000012"));
        assert_eq!(on_deal.occurred_at, parse_time("2026-03-05T14:00:00Z").unwrap());

        let on_both = activity(&meeting, ActivityKind::Meeting, Some("501"), Some("9001")).unwrap();
        assert_eq!((on_both.lead_id.as_str(), on_both.opportunity_id.as_deref()), ("501", Some("9001")));

        let on_contact = activity(&meeting, ActivityKind::Meeting, Some("501"), None).unwrap();
        assert_eq!(on_contact.opportunity_id, None);
        let e = activity(&meeting, ActivityKind::Meeting, None, None).unwrap_err();
        assert!(e.contains("contact or a deal"), "{e}");
    }

    #[test]
    fn owners_get_their_manager_from_the_settings() {
        let o: ApiOwner = serde_json::from_value(json!({"id": "5", "email": "a@b.c", "firstName": "Ann", "lastName": "Lee", "type": "PERSON", "archived": false, "userId": 1})).unwrap();
        let managers = BTreeMap::from([("5".to_string(), "9".to_string())]);
        let ow = owner(&o, &managers, &BTreeMap::new());
        assert_eq!(ow.manager_id.as_deref(), Some("9"));
        assert_eq!(ow.name.as_deref(), Some("Ann Lee"));
        assert!(ow.active);
    }
}
