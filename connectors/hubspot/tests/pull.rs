//! Reading against the in-process HubSpot sandbox: backfill, incremental
//! windows (late commits, shared timestamps, deletions, merges), the
//! 10,000-result search cap, and owners with managers from the settings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use common::*;
use handoff_model::Stream;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_incremental_windows_pick_up_exactly_the_changes() {
    let sb = sandbox(1_000).await;
    let mut s = settings(&sb);
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;

    let start = requests(&sb, 0).await.len();
    let (pages, cursor) = drain(&c, Stream::Leads, None).await;
    let leads = collect_leads(&pages);
    let live = live_records(&sb, "contacts").await;
    let live_ids: BTreeSet<_> = live.keys().cloned().collect();
    let got_ids: BTreeSet<_> = leads.keys().cloned().collect();
    assert_eq!(got_ids, live_ids, "backfill must deliver every live contact once");
    for (id, lead) in &leads {
        assert_eq!(lead.owner_id.as_deref(), live[id]["properties"]["hubspot_owner_id"].as_str(), "owner of {id}");
    }
    let truth = dump(&sb, "contacts", &["hs_object_id"], &["hubspot_owner_id", "hs_lead_status"]).await;
    assert_eq!(check_histories(&leads, &truth, 2), live.len());
    assert!(leads.values().any(|l| l.assignments.len() > 1), "some leads were reassigned");
    assert!(
        leads.values().any(|l| l.assignments.first().is_some_and(|a| a.owner_kind == handoff_model::OwnerKind::Queue)),
        "some started in a queue"
    );
    let used = counted_since(&sb, start).await;
    // The listing with history, and the owners listing once (active, then
    // archived owners) for the owner kinds in the ownership history. No
    // archived sweep: nothing archived before the listing was delivered.
    let listings = list_pages(owner_count(&sb)) + list_pages(0);
    report("backfill-1k-leads", used, LowerBound { list_pages: listings, ..LowerBound::all_leads(live.len()) }, 1.05);

    // Changes after the backfill.
    let now = sb.shared.clock.now();
    let ids: Vec<String> = live.keys().cloned().collect();
    // A plain edit.
    admin_patch(
        &sb,
        &format!("/__sandbox/hubspot/objects/contacts/{}", ids[0]),
        json!({"properties": {"jobtitle": "CTO"}}),
    )
    .await;
    // Three records sharing one timestamp, like a bulk update.
    let shared_at = (now + Duration::seconds(1)).to_rfc3339();
    for id in &ids[1..4] {
        admin_patch(
            &sb,
            &format!("/__sandbox/hubspot/objects/contacts/{id}"),
            json!({"properties": {"hs_lead_status": "IN_PROGRESS"}, "updated_at": shared_at}),
        )
        .await;
    }
    // Committed late: indexed now, stamped before the last window's end.
    let late_at = (now - Duration::seconds(120)).to_rfc3339();
    admin_patch(
        &sb,
        &format!("/__sandbox/hubspot/objects/contacts/{}", ids[4]),
        json!({"properties": {"company": "Late Inc"}, "updated_at": late_at}),
    )
    .await;
    // A deletion and a merge.
    admin_post(&sb, &format!("/__sandbox/hubspot/objects/contacts/{}/archive", ids[5]), json!({})).await;
    admin_post(&sb, "/__sandbox/hubspot/contacts/merge", json!({"primary": ids[6], "merged": ids[7]})).await;
    advance(&sb, 30).await;

    let (pages, _) = drain(&c, Stream::Leads, cursor).await;
    let changed = collect_leads(&pages);
    let expected: BTreeSet<String> = [0, 1, 2, 3, 4, 6].iter().map(|i| ids[*i].clone()).collect();
    assert_eq!(changed.keys().cloned().collect::<BTreeSet<_>>(), expected, "exactly the changed contacts");
    assert_eq!(changed[&ids[4]].fields["company"], "Late Inc");
    let deletions: BTreeMap<String, Option<String>> =
        pages.iter().flat_map(|p| &p.deletions).map(|d| (d.id.clone(), d.merged_into.clone())).collect();
    assert_eq!(deletions.get(&ids[5]), Some(&None), "the archived contact is reported deleted");
    assert_eq!(deletions.get(&ids[7]), Some(&Some(ids[6].clone())), "the merged contact points at its survivor");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_with_more_than_10000_matches_is_read_whole() {
    let sb = sandbox(12_000).await;
    let mut s = settings(&sb);
    // A backfill from a date reads by search (a listing cannot filter by time).
    s.backfill_since = Some(chrono::DateTime::UNIX_EPOCH);
    let c = connector(s).await;
    advance(&sb, 60).await;
    let start = requests(&sb, 0).await.len();
    let (pages, _) = drain(&c, Stream::Leads, None).await;
    let leads = collect_leads(&pages);
    let live = live_records(&sb, "contacts").await;
    assert!(live.len() > 10_000, "the org must exceed the cap: {}", live.len());
    assert_eq!(leads.len(), live.len());
    let log = requests(&sb, start).await;
    assert!(log.iter().all(|r| r["status"] != 400), "no search hit the 10,000-result cap");
    let used = log.iter().filter(|r| r["counted"] == true).count();
    report("backfill-12k-leads-one-window", used, LowerBound::leads(live.len()), 1.25);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_come_with_their_contact_and_owners_with_their_manager() {
    let sb = sandbox(300).await;
    let mut s = settings(&sb);
    let org = admin_get(&sb, "/__sandbox/org").await;
    let owners = admin_get(&sb, "/__sandbox/hubspot/credentials").await;
    assert!(owners.is_object());
    let _ = org;
    s.managers.insert("x".into(), "y".into());
    let c = connector(s).await;
    advance(&sb, 60).await;

    let start = requests(&sb, 0).await.len();
    let (pages, _) = drain(&c, Stream::Activities, None).await;
    let mut delivered = BTreeMap::new();
    for a in pages.iter().flat_map(|p| &p.activities) {
        assert!(delivered.insert((a.kind, a.id.clone()), a.lead_id.clone()).is_none(), "{:?} {} twice", a.kind, a.id);
    }
    let mut expected = 0;
    let mut bound = LowerBound::default();
    for (kind, object) in [("call", "calls"), ("email", "emails"), ("meeting", "meetings"), ("task", "tasks")] {
        let live = live_records(&sb, object).await;
        let archived = dump(&sb, object, &["hs_object_id"], &[]).await.iter().filter(|r| r["archived"] == true).count();
        bound = bound + LowerBound::engagements(live.len());
        bound.list_pages += list_pages(archived);
        for (id, rec) in &live {
            let contact = rec["associations"]["contacts"][0]["id"].as_str().map(str::to_string);
            let got = delivered.iter().find(|((k, i), _)| k.as_str() == kind && i == id).map(|(_, l)| l.clone());
            assert_eq!(got, contact, "{kind} {id}: delivered with its contact");
            expected += 1;
        }
    }
    assert_eq!(delivered.len(), expected);
    let used = counted_since(&sb, start).await;
    // Search pages, and one association read per 1,000 engagements (search
    // cannot return associations).
    report("backfill-activities-300-leads", used, bound, 1.05);

    let (pages, _) = drain(&c, Stream::Owners, None).await;
    let owners: Vec<_> = pages.iter().flat_map(|p| &p.owners).collect();
    assert!(!owners.is_empty());
    assert!(owners.iter().all(|o| o.manager_id.is_none()), "no manager unless the settings name one");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_history_scope_leads_come_without_history_and_history_is_asked_for_once() {
    let sb = sandbox(600).await;
    admin_post(&sb, "/__sandbox/hubspot/history", json!({"readable": false})).await;
    let mut s = settings(&sb);
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;
    let start = sb.shared.log.len();
    let (pages, _) = drain(&c, Stream::Leads, None).await;
    let leads = collect_leads(&pages);
    let live = live_records(&sb, "contacts").await;
    assert_eq!(leads.len(), live.len(), "the pull completes without history");
    assert!(
        leads.values().all(|l| l.assignments.is_empty() && l.status_changes.is_empty()),
        "no partial history: the daemon keeps its own"
    );
    assert!(leads.values().all(|l| l.owner_id.is_some()), "the current owner still comes");
    let log = log_since(&sb, start);
    let refused: Vec<_> = log.iter().filter(|r| r.status == 403).collect();
    assert_eq!(refused.len(), 1, "history is asked for once, then not again: {refused:?}");
    // The one listing page refused for its history, then the plain listing.
    let bound = LowerBound { history_batches: 1, list_pages: list_pages(live.len()), ..LowerBound::default() };
    report("leads-without-history-scope", log.iter().filter(|r| r.counted).count(), bound, 1.2);
    sb.stop().await;
}

/// The two routes to a whole portal's contacts with their history, on one
/// org: the listing with `propertiesWithHistory` (50 a page) against search
/// pages of 200 followed by batch reads of 50. The backfill takes the
/// cheaper, and both deliver the same leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_takes_the_cheaper_route_to_contacts_with_history() {
    let sb = sandbox(2_000).await;
    advance(&sb, 60).await;
    let mut routes = Vec::new();
    for search in [false, true] {
        let mut s = settings(&sb);
        // A date makes the backfill search (a listing cannot filter by time).
        s.backfill_since = search.then_some(chrono::DateTime::UNIX_EPOCH);
        let c = connector(s).await;
        let start = sb.shared.log.len();
        let (pages, _) = drain(&c, Stream::Leads, None).await;
        let leads = collect_leads(&pages);
        // Owners and the archived sweep are the same either way.
        let calls = log_since(&sb, start)
            .iter()
            .filter(|r| r.counted && !r.path.starts_with("/crm/v3/owners"))
            .filter(|r| !r.query.as_deref().unwrap_or("").contains("archived=true"))
            .count();
        println!("api-calls scenario=backfill-2k-leads-{} used={calls}", if search { "search" } else { "listing" });
        routes.push((calls, leads));
    }
    let (listing, search) = (&routes[0], &routes[1]);
    let live = live_records(&sb, "contacts").await.len();
    assert_eq!(listing.1.len(), live);
    assert_eq!(listing.1.keys().collect::<BTreeSet<_>>(), search.1.keys().collect::<BTreeSet<_>>());
    for (id, lead) in &listing.1 {
        let other = &search.1[id];
        assert_eq!((&lead.assignments, &lead.status_changes), (&other.assignments, &other.status_changes), "{id}");
    }
    assert_eq!(listing.0, common::pages(live, 50), "the listing: one call per 50 contacts");
    assert_eq!(
        search.0,
        common::pages(live, 200) + live.div_ceil(50),
        "search: pages of 200, then history 50 at a time"
    );
    assert!(listing.0 < search.0);
    sb.stop().await;
}
