//! Leads mode (`lead_object = "leads"`) against the in-process HubSpot
//! sandbox: the SLA's lead is the lead record, joined with its primary
//! contact. The edge cases of the contacts mode's pull, on lead records:
//! backfill, incremental windows (late commits, shared timestamps, a
//! contact's change, deletions, merges), the 10,000-result search cap,
//! activities found through the lead, and writes onto the lead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use common::*;
use handoff_hubspot::{HubspotSettings, LeadObject};
use handoff_model::{Action, ActionKey, ActionKind, Connector, Stream, TaskPriority, TaskPurpose};
use handoff_sandbox::RunningSandbox;
use serde_json::{json, Value};

fn leads_settings(sb: &RunningSandbox) -> HubspotSettings {
    let mut s = settings(sb);
    s.lead_object = LeadObject::Leads;
    s
}

/// Live lead records by id, with their primary contact's id.
async fn lead_records(sb: &RunningSandbox) -> BTreeMap<String, (Value, String)> {
    live_records(sb, "leads")
        .await
        .into_iter()
        .map(|(id, r)| {
            let contact = r["associations"]["contacts"][0]["id"].as_str().expect("a lead has a contact").to_string();
            (id, (r, contact))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_records_are_read_with_their_contact_and_incremental_windows_pick_up_exactly_the_changes() {
    let sb = sandbox(600).await;
    let mut s = leads_settings(&sb);
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    c.authenticate().await.expect("a portal with the Leads object");
    advance(&sb, 60).await;

    let (pages, cursor) = drain(&c, Stream::Leads, None).await;
    let leads = collect_leads(&pages);
    let live = lead_records(&sb).await;
    let contacts = live_records(&sb, "contacts").await;
    assert_eq!(
        leads.keys().collect::<BTreeSet<_>>(),
        live.keys().collect::<BTreeSet<_>>(),
        "every live lead record once"
    );
    for (id, lead) in &leads {
        let (record, contact) = &live[id];
        assert_eq!(lead.owner_id.as_deref(), record["properties"]["hubspot_owner_id"].as_str(), "owner of {id}");
        assert_eq!(lead.fields["hs_pipeline_stage"], record["properties"]["hs_pipeline_stage"], "stage of {id}");
        // What the policy qualifies leads by comes from the contact.
        for p in ["email", "jobtitle", "hubspotscore", "intent_action"] {
            let set = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
            assert_eq!(set(lead.fields.get(p)), set(contacts[contact]["properties"].get(p)), "{p} of lead {id}");
        }
        // The contact's own id and owner never stand for the lead's.
        assert_eq!(lead.fields["hs_object_id"], json!(id), "lead {id}");
    }
    let truth = dump(&sb, "leads", &["hs_object_id"], &["hubspot_owner_id", "hs_pipeline_stage"]).await;
    assert_eq!(check_histories_of(&leads, &truth, 2, "hs_pipeline_stage"), live.len());
    assert!(leads.values().any(|l| l.status_changes.len() > 1), "some leads moved through the pipeline");
    assert!(
        leads.values().any(|l| l.fields.get("hs_lead_disqualification_reason").is_some_and(|v| !v.is_null())),
        "disqualified leads carry HubSpot's own reason"
    );

    // Changes after the backfill.
    let now = sb.shared.clock.now();
    let ids: Vec<String> = live.keys().cloned().collect();
    let patch = |id: &str| format!("/__sandbox/hubspot/objects/leads/{id}");
    admin_patch(&sb, &patch(&ids[0]), json!({"properties": {"hs_lead_name": "Hot lead"}})).await;
    // Three lead records sharing one timestamp, like a bulk update.
    let shared_at = (now + Duration::seconds(1)).to_rfc3339();
    for id in &ids[1..4] {
        admin_patch(
            &sb,
            &patch(id),
            json!({"properties": {"hs_pipeline_stage": "attempting-stage-id"}, "updated_at": shared_at}),
        )
        .await;
    }
    // Committed late: indexed now, stamped before the last window's end.
    let late_at = (now - Duration::seconds(120)).to_rfc3339();
    admin_patch(&sb, &patch(&ids[4]), json!({"properties": {"hs_lead_name": "Late lead"}, "updated_at": late_at}))
        .await;
    // The contact of another lead changes: the lead is a new version.
    let contact_of_8 = live[&ids[8]].1.clone();
    admin_patch(
        &sb,
        &format!("/__sandbox/hubspot/objects/contacts/{contact_of_8}"),
        json!({"properties": {"jobtitle": "Chief Revenue Officer"}}),
    )
    .await;
    // A deletion and a merge of lead records.
    admin_post(&sb, &format!("/__sandbox/hubspot/objects/leads/{}/archive", ids[5]), json!({})).await;
    admin_post(&sb, "/__sandbox/hubspot/leads/merge", json!({"primary": ids[6], "merged": ids[7]})).await;
    advance(&sb, 30).await;

    let (pages, cursor) = drain(&c, Stream::Leads, cursor).await;
    let changed = collect_leads(&pages);
    let expected: BTreeSet<String> = [0, 1, 2, 3, 4, 6, 8].iter().map(|i| ids[*i].clone()).collect();
    assert_eq!(changed.keys().cloned().collect::<BTreeSet<_>>(), expected, "exactly the changed leads");
    assert_eq!(changed[&ids[4]].fields["hs_lead_name"], "Late lead");
    assert_eq!(changed[&ids[8]].fields["jobtitle"], "Chief Revenue Officer");
    assert!(changed[&ids[8]].modified_at > leads[&ids[8]].modified_at, "the contact's change is a newer version");
    for id in &ids[1..4] {
        assert_eq!(changed[id].status_changes.last().map(|s| s.status.as_str()), Some("attempting-stage-id"), "{id}");
    }
    let deletions: BTreeMap<String, Option<String>> =
        pages.iter().flat_map(|p| &p.deletions).map(|d| (d.id.clone(), d.merged_into.clone())).collect();
    assert_eq!(deletions.get(&ids[5]), Some(&None), "the archived lead record is reported deleted");
    assert_eq!(deletions.get(&ids[7]), Some(&Some(ids[6].clone())), "the merged lead points at its survivor");

    // A lead record the last window delivered (so in the next one's
    // overlap, already seen) whose contact changes afterwards.
    let contact_of_1 = live[&ids[1]].1.clone();
    admin_patch(
        &sb,
        &format!("/__sandbox/hubspot/objects/contacts/{contact_of_1}"),
        json!({"properties": {"company": "Renamed Corp"}}),
    )
    .await;
    advance(&sb, 30).await;
    let (pages, _) = drain(&c, Stream::Leads, cursor).await;
    let again = collect_leads(&pages);
    assert_eq!(again.keys().cloned().collect::<BTreeSet<_>>(), BTreeSet::from([ids[1].clone()]), "only that lead");
    assert_eq!(again[&ids[1]].fields["company"], "Renamed Corp");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_with_more_than_10000_lead_records_is_read_whole() {
    let sb = sandbox(12_000).await;
    let mut s = leads_settings(&sb);
    s.backfill_since = Some(chrono::DateTime::UNIX_EPOCH);
    raise_limits(&sb, &mut s).await;
    let c = connector(s).await;
    advance(&sb, 60).await;
    let start = requests(&sb, 0).await.len();
    let (pages, _) = drain(&c, Stream::Leads, None).await;
    let leads = collect_leads(&pages);
    let live = live_records(&sb, "leads").await;
    assert!(live.len() > 10_000, "the org must exceed the cap: {}", live.len());
    assert_eq!(leads.keys().collect::<BTreeSet<_>>(), live.keys().collect::<BTreeSet<_>>());
    let log = requests(&sb, start).await;
    assert!(log.iter().all(|r| r["status"] != 400), "no search hit the 10,000-result cap");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_belong_to_the_lead_record_they_or_their_contact_are_associated_with() {
    let sb = sandbox(300).await;
    let c = connector(leads_settings(&sb)).await;
    advance(&sb, 60).await;
    // A call logged on the contact only (a rep's dialer knows no leads).
    let live = lead_records(&sb).await;
    let (lead, (_, contact)) = live.iter().next().map(|(l, r)| (l.clone(), r.clone())).unwrap();
    let call = admin_post(
        &sb,
        "/__sandbox/hubspot/objects/calls",
        json!({"properties": {"hs_timestamp": sb.shared.clock.now().to_rfc3339(), "hs_call_title": "Dialer call"},
               "associations": [{"to_type": "contacts", "to_id": contact}]}),
    )
    .await;
    let call_id = call["id"].as_str().expect("the call's id").to_string();
    advance(&sb, 60).await;

    let (pages, _) = drain(&c, Stream::Activities, None).await;
    let delivered: BTreeMap<(String, String), String> = pages
        .iter()
        .flat_map(|p| &p.activities)
        .map(|a| ((format!("{:?}", a.kind), a.id.clone()), a.lead_id.clone()))
        .collect();
    let mut checked = 0;
    for (kind, object) in [("Call", "calls"), ("Email", "emails"), ("Meeting", "meetings"), ("Task", "tasks")] {
        for (id, rec) in live_records(&sb, object).await {
            let Some(want) = rec["associations"]["leads"][0]["id"].as_str() else { continue };
            assert_eq!(delivered.get(&(kind.to_string(), id.clone())).map(String::as_str), Some(want), "{object} {id}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} engagements checked");
    assert_eq!(delivered.get(&("Call".to_string(), call_id)), Some(&lead), "a contact's call is its lead's");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_fields_go_onto_the_lead_and_tasks_onto_the_lead_and_its_contact() {
    let sb = sandbox(60).await;
    let c = connector(leads_settings(&sb)).await;
    c.authenticate().await.expect("authenticates");
    let live = lead_records(&sb).await;
    let (lead, (record, contact)) = live
        .iter()
        .find(|(_, (r, _))| r["properties"]["hubspot_owner_id"].as_str().is_some_and(|o| o.starts_with('7')))
        .map(|(l, r)| (l.clone(), r.clone()))
        .unwrap();
    let owner = record["properties"]["hubspot_owner_id"].as_str().unwrap().to_string();
    let actions = vec![
        Action {
            key: ActionKey("lead-fields".into()),
            lead_id: lead.clone(),
            kind: ActionKind::UpdateLead { fields: BTreeMap::from([("handoff_sla_status".to_string(), json!("due"))]) },
        },
        Action {
            key: ActionKey("lead-task".into()),
            lead_id: lead.clone(),
            kind: ActionKind::CreateTask {
                assignee_id: owner,
                subject: "First touch due".into(),
                body: "Call within the SLA".into(),
                due_at: Utc::now(),
                priority: TaskPriority::High,
                purpose: TaskPurpose::Reminder,
                on_opportunity: None,
            },
        },
    ];
    let outcomes = c.write(&actions).await.expect("the write runs");
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    let after = live_records(&sb, "leads").await;
    assert_eq!(after[&lead]["properties"]["handoff_sla_status"], "due", "the SLA field is on the lead record");
    let contact_now = live_records(&sb, "contacts").await;
    assert!(
        contact_now[&contact]["properties"].get("handoff_sla_status").is_none_or(Value::is_null),
        "not on the contact"
    );
    let task_id = outcomes[1].result.clone().unwrap();
    let tasks = live_records(&sb, "tasks").await;
    let task = &tasks[&task_id];
    assert_eq!(task["associations"]["leads"][0]["id"], json!(lead), "the task is on the lead: {task}");
    assert_eq!(task["associations"]["contacts"][0]["id"], json!(contact), "and on its contact: {task}");
    let body = task["properties"]["hs_task_body"].as_str().unwrap_or_default();
    assert!(body.contains("/record/0-136/"), "the link opens the lead record: {body}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_without_the_leads_object_is_refused_with_the_way_out() {
    let sb = sandbox(20).await;
    admin_post(&sb, "/__sandbox/hubspot/portal", json!({"leads_object": false})).await;
    let c = connector(leads_settings(&sb)).await;
    let e = c.authenticate().await.expect_err("no Leads object");
    let text = e.to_string();
    assert!(text.contains("lead_object") && text.contains("crm.objects.leads.read"), "{text}");
    sb.stop().await;
}
