//! A full backfill of a 100,000-contact portal with its activities, then
//! incremental pulls that must pick up exactly what changed: an edit, an
//! owner change, records sharing one timestamp, a write committed late with
//! an older timestamp, a bulk edit of 12,000 contacts in one instant (a
//! window past HubSpot's 10,000-result search cap), an archive, a merge, a
//! new and an archived activity. Nothing missed, nothing delivered twice,
//! and the API calls stay near the fewest possible.
//!
//! The portal's rate limits are raised (and the connector paced to match):
//! this test is about completeness and call counts; `limits.rs` tests the
//! pacing against HubSpot's real limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use common::*;
use handoff_model::{Activity, ActivityKind, Stream};
use serde_json::{json, Value};

const LEADS: usize = 100_000;
const BULK: usize = 12_000;
const ENGAGEMENTS: [(ActivityKind, &str); 4] = [
    (ActivityKind::Call, "calls"),
    (ActivityKind::Email, "emails"),
    (ActivityKind::Meeting, "meetings"),
    (ActivityKind::Task, "tasks"),
];

/// Activities delivered across pages, checking nothing is delivered twice.
fn collect_activities(pages: &[handoff_model::PullPage]) -> BTreeMap<(ActivityKind, String), Activity> {
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for a in pages.iter().flat_map(|p| &p.activities) {
        assert!(
            seen.insert((a.kind, a.id.clone(), a.modified_at)),
            "{:?} {} at {} delivered twice",
            a.kind,
            a.id,
            a.modified_at
        );
        out.insert((a.kind, a.id.clone()), a.clone());
    }
    out
}

fn deletions(pages: &[handoff_model::PullPage]) -> BTreeMap<String, Option<String>> {
    pages.iter().flat_map(|p| &p.deletions).map(|d| (d.id.clone(), d.merged_into.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_of_100k_contacts_and_their_activities_then_incremental_pulls_pick_up_exactly_the_changes() {
    let sb = sandbox(LEADS).await;
    let mut s = settings(&sb);
    raise_limits(&sb, &mut s).await;
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;

    // Backfill: leads with their history.
    let start = sb.shared.log.len();
    let (pages, leads_cursor) = drain(&c, Stream::Leads, None).await;
    let leads = collect_leads(&pages);
    let used_leads = counted_since(&sb, start).await;
    let contacts = dump(&sb, "contacts", &[], &[]).await;
    let live: BTreeMap<String, &Value> =
        contacts.iter().filter(|r| is_live(r)).map(|r| (r["id"].as_str().unwrap_or_default().to_string(), r)).collect();
    assert!(live.len() > 95_000, "the org holds about 100,000 live contacts: {}", live.len());
    assert_eq!(leads.keys().collect::<BTreeSet<_>>(), live.keys().collect::<BTreeSet<_>>(), "every live contact once");
    // Ownership and status history against the org's own timeline.
    assert_eq!(check_histories_against_timeline(&leads, &sb.shared.org), live.len());
    let archived_contacts = contacts.iter().filter(|r| r["archived"] == true).count();
    // The listing with history, and the owners listing once for the owner
    // kinds in the ownership history.
    let listings = list_pages(owner_count(&sb)) + list_pages(0);
    report(
        "backfill-100k-leads",
        used_leads,
        LowerBound { list_pages: listings, ..LowerBound::all_leads(live.len()) },
        1.05,
    );

    // Backfill: activities with their contact.
    let start = sb.shared.log.len();
    let (pages, activities_cursor) = drain(&c, Stream::Activities, None).await;
    let activities = collect_activities(&pages);
    let used_activities = counted_since(&sb, start).await;
    let mut bound = LowerBound::default();
    let mut live_engagements = 0;
    let mut archived_engagements = BTreeMap::new();
    for (kind, object) in ENGAGEMENTS {
        let held = dump_with_associations(&sb, object, &["hs_object_id"]).await;
        let mut archived = 0;
        for r in &held {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            if r["archived"] == true {
                archived += 1;
                continue;
            }
            live_engagements += 1;
            let got = activities.get(&(kind, id.clone())).unwrap_or_else(|| panic!("{object} {id} was not delivered"));
            assert_eq!(
                Some(got.lead_id.as_str()),
                r["associations"]["contacts"][0]["id"].as_str(),
                "{object} {id}: its contact"
            );
        }
        bound = bound + LowerBound::engagements(held.len() - archived);
        bound.list_pages += list_pages(archived);
        archived_engagements.insert(object, archived);
    }
    assert_eq!(activities.len(), live_engagements);
    assert!(live_engagements > 150_000, "the org logs activities: {live_engagements}");
    // One association read per 1,000 engagements: search cannot return them.
    report("backfill-100k-activities", used_activities, bound, 1.05);

    // Changes after the backfill.
    let now = sb.shared.clock.now();
    let ids: Vec<String> = live.keys().cloned().collect();
    let patch = |i: usize, body: Value| {
        let sb = &sb;
        let id = ids[i].clone();
        async move { admin_patch(sb, &format!("/__sandbox/hubspot/objects/contacts/{id}"), body).await }
    };
    // A plain edit, and an owner change on the same contact.
    patch(0, json!({"properties": {"jobtitle": "CTO", "hubspot_owner_id": "70000003"}})).await;
    // Three records sharing one timestamp, like a small bulk update.
    let shared_at = (now + Duration::seconds(1)).to_rfc3339();
    for i in 1..4 {
        patch(i, json!({"properties": {"hs_lead_status": "IN_PROGRESS"}, "updated_at": shared_at})).await;
    }
    // Committed late: indexed now, stamped before the last window's end.
    let late_at = now - Duration::seconds(120);
    patch(4, json!({"properties": {"company": "Late Inc"}, "updated_at": late_at.to_rfc3339()})).await;
    // A deletion and a merge.
    admin_post(&sb, &format!("/__sandbox/hubspot/objects/contacts/{}/archive", ids[5]), json!({})).await;
    admin_post(&sb, "/__sandbox/hubspot/contacts/merge", json!({"primary": ids[6], "merged": ids[7]})).await;
    // 12,000 contacts edited in one instant: one window past the 10,000 cap.
    let bulk_ids: Vec<String> = ids[10..10 + BULK].to_vec();
    let bulk_at = now + Duration::seconds(2);
    admin_post(
        &sb,
        "/__sandbox/hubspot/objects/contacts/bulk_update",
        json!({"ids": bulk_ids, "properties": {"hs_lead_status": "OPEN"}, "updated_at": bulk_at.to_rfc3339()}),
    )
    .await;
    // A new call on the first contact, and an archived one.
    let new_call = admin_post(
        &sb,
        "/__sandbox/hubspot/objects/calls",
        json!({"properties": {"hs_timestamp": now.to_rfc3339(), "hs_call_title": "Follow-up", "hubspot_owner_id": "70000003"},
               "associations": [{"to_type": "contacts", "to_id": ids[0]}]}),
    )
    .await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, old_call) =
        activities.keys().find(|(k, _)| *k == ActivityKind::Call).cloned().expect("a call was delivered");
    admin_post(&sb, &format!("/__sandbox/hubspot/objects/calls/{old_call}/archive"), json!({})).await;
    advance(&sb, 30).await;

    // Incremental: exactly the changes, each once.
    let start = sb.shared.log.len();
    let (pages, leads_cursor) = drain(&c, Stream::Leads, leads_cursor).await;
    let changed = collect_leads(&pages);
    let mut expected: BTreeSet<String> = [0, 1, 2, 3, 4, 6].iter().map(|i| ids[*i].clone()).collect();
    expected.extend(bulk_ids.iter().cloned());
    assert_eq!(changed.len(), expected.len());
    assert_eq!(changed.keys().cloned().collect::<BTreeSet<_>>(), expected, "exactly the changed contacts");
    assert_eq!(changed[&ids[4]].fields["company"], "Late Inc");
    assert_eq!(
        changed[&ids[4]].modified_at.timestamp_millis(),
        late_at.timestamp_millis(),
        "the late write keeps its own time"
    );
    assert_eq!(changed[&ids[0]].assignments.last().map(|a| a.owner_id.as_str()), Some("70000003"));
    // Each edited lead's history is its timeline's plus the edit.
    let truth = timeline_histories(&sb.shared.org);
    for id in &bulk_ids {
        let lead = &changed[id];
        let (_, statuses) = &truth[lead.field_str("email").unwrap_or_default()];
        let mut want = statuses.clone();
        want.push(("OPEN".to_string(), bulk_at.timestamp_millis()));
        let got: Vec<(String, i64)> =
            lead.status_changes.iter().map(|s| (s.status.clone(), s.at.timestamp_millis())).collect();
        assert_eq!(got, want, "lead {id}");
    }
    let gone = deletions(&pages);
    assert_eq!(gone.get(&ids[5]), Some(&None), "the archived contact is reported deleted");
    assert_eq!(gone.get(&ids[7]), Some(&Some(ids[6].clone())), "the merged contact points at its survivor");
    let log = log_since(&sb, start);
    assert!(log.iter().all(|r| r.status != 400), "no search ran into the 10,000-result cap");
    // The sweep lists the archived contacts again, one more now.
    report(
        "incremental-leads-12k-changed",
        log.iter().filter(|r| r.counted).count(),
        LowerBound { list_pages: list_pages(archived_contacts + 1), ..LowerBound::leads(changed.len()) },
        1.2,
    );

    let start = sb.shared.log.len();
    let (pages, activities_cursor) = drain(&c, Stream::Activities, activities_cursor).await;
    let changed_activities = collect_activities(&pages);
    assert_eq!(changed_activities.keys().cloned().collect::<Vec<_>>(), vec![(ActivityKind::Call, new_call.clone())]);
    assert_eq!(changed_activities[&(ActivityKind::Call, new_call)].lead_id, ids[0]);
    assert_eq!(deletions(&pages).get(&old_call), Some(&None), "the archived call is reported deleted");
    let mut bound = LowerBound { search_pages: ENGAGEMENTS.len(), ..LowerBound::default() };
    for (_, object) in ENGAGEMENTS {
        let one_more = usize::from(object == "calls");
        bound.list_pages += list_pages(archived_engagements[object] + one_more);
    }
    report("incremental-activities", counted_since(&sb, start).await, bound, 2.0);

    // Nothing changed since: nothing comes again.
    advance(&sb, 30).await;
    let (pages, _) = drain(&c, Stream::Leads, leads_cursor).await;
    assert!(pages.iter().all(|p| p.leads.is_empty()), "no lead is delivered twice");
    let (pages, _) = drain(&c, Stream::Activities, activities_cursor).await;
    assert!(pages.iter().all(|p| p.activities.is_empty()), "no activity is delivered twice");
    sb.stop().await;
}
