//! The opportunity stream against the in-process Salesforce sandbox: the
//! Opportunities conversions create, read only when `read_opportunities`
//! asks for them, with their owner, creation and the lead converted into
//! each; a later window picks up a changed and a deleted one; an Event
//! logged on an Opportunity alone names it and comes with no lead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use handoff_model::{Activity, Connector, CrmKind, Cursor, Opportunity, PullPage, Stream};
mod common;

use handoff_salesforce::{connect, SalesforceConnector};
use handoff_sandbox::org::{EventKind, OrgConfig};
use handoff_sandbox::salesforce::materialise::{lead_id, user_id};
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

async fn sandbox() -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads: 300, opportunities: true, ..OrgConfig::default() };
    start(opts).await.expect("sandbox starts")
}

async fn connector(sb: &RunningSandbox, read_opportunities: bool) -> SalesforceConnector {
    let mut s = common::sandbox_settings(sb);
    s.read_opportunities = read_opportunities;
    connect(s).await.expect("connects")
}

async fn pull_all(c: &SalesforceConnector, stream: Stream, cursor: &mut Option<Cursor>) -> Vec<PullPage> {
    let mut pages = Vec::new();
    loop {
        let page = c.pull(stream, cursor.as_ref()).await.expect("page");
        *cursor = page.cursor.clone().or(cursor.take());
        let more = page.has_more;
        pages.push(page);
        if !more {
            return pages;
        }
    }
}

fn opportunities(pages: &[PullPage]) -> BTreeMap<String, Opportunity> {
    pages.iter().flat_map(|p| &p.opportunities).map(|o| (o.id.clone(), o.clone())).collect()
}

fn activities(pages: &[PullPage]) -> Vec<Activity> {
    pages.iter().flat_map(|p| p.activities.clone()).collect()
}

async fn admin(sb: &RunningSandbox, method: reqwest::Method, path: &str, body: Option<Value>) {
    let url = format!("{}/salesforce/{path}", sb.admin_url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin call");
    assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
}

#[tokio::test]
async fn opportunities_come_with_owner_creation_and_lead_and_meetings_on_them_name_them() {
    let sb = sandbox().await;
    let org = &sb.shared.org;
    // What the timeline made: lead id → (created at, AE's user id).
    let made: BTreeMap<String, (DateTime<Utc>, String)> = org
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::OpportunityCreated { lead, owner } => Some((lead_id(lead), (e.at, user_id(owner)))),
            _ => None,
        })
        .collect();
    let meetings = org.events.iter().filter(|e| matches!(e.kind, EventKind::OpportunityMeeting { .. })).count();
    assert!(made.len() > 5 && meetings > 0, "the org converts leads: {} opportunities", made.len());

    // Off: the stream costs no call; no activity names an opportunity.
    let off = connector(&sb, false).await;
    let before = off.requests_sent();
    let pages = pull_all(&off, Stream::Opportunities, &mut None).await;
    assert_eq!(off.requests_sent(), before, "no call for the stream when off");
    assert!(opportunities(&pages).is_empty());
    let plain = activities(&pull_all(&off, Stream::Activities, &mut None).await);
    assert!(plain.iter().all(|a| a.opportunity_id.is_none() && !a.lead_id.is_empty()));

    // On: every opportunity, its owner, creation and lead.
    let on = connector(&sb, true).await;
    let mut cursor = None;
    let pages = pull_all(&on, Stream::Opportunities, &mut cursor).await;
    let got = opportunities(&pages);
    assert_eq!(got.len(), made.len());
    let mut by_lead = BTreeMap::new();
    for o in got.values() {
        assert_eq!(o.lead_ids.len(), 1, "{o:?}");
        let (created_at, owner) = &made[&o.lead_ids[0]];
        assert_eq!((&o.created_at, o.owner_id.as_ref()), (created_at, Some(owner)), "{o:?}");
        by_lead.insert(o.lead_ids[0].clone(), o.id.clone());
    }
    // Meetings on an opportunity alone: the opportunity named, no lead.
    let with = activities(&pull_all(&on, Stream::Activities, &mut None).await);
    let on_opportunities: Vec<&Activity> = with.iter().filter(|a| a.opportunity_id.is_some()).collect();
    assert_eq!(on_opportunities.len(), meetings);
    assert!(on_opportunities.iter().all(|a| a.lead_id.is_empty()));
    assert!(on_opportunities.iter().all(|a| got.contains_key(a.opportunity_id.as_deref().unwrap())));
    assert_eq!(with.len() - meetings, plain.len(), "the lead's own activities are as before");

    // A later window: one reassigned, one deleted; nothing else comes back.
    let mut ids = got.keys();
    let (moved, gone) = (ids.next().unwrap().clone(), ids.next().unwrap().clone());
    sb.shared.clock.advance(chrono::Duration::hours(1));
    let new_owner = user_id(1);
    admin(&sb, reqwest::Method::PATCH, &format!("records/Opportunity/{moved}"), Some(json!({"OwnerId": new_owner})))
        .await;
    admin(&sb, reqwest::Method::DELETE, &format!("records/Opportunity/{gone}"), None).await;
    sb.shared.clock.advance(chrono::Duration::minutes(10));
    let pages = pull_all(&on, Stream::Opportunities, &mut cursor).await;
    let again = opportunities(&pages);
    assert_eq!(again.keys().collect::<Vec<_>>(), [&moved], "{again:?}");
    assert_eq!(again[&moved].owner_id.as_deref(), Some(new_owner.as_str()));
    assert_eq!(again[&moved].lead_ids, got[&moved].lead_ids, "its lead is named again");
    let deletions: Vec<_> = pages.iter().flat_map(|p| &p.deletions).collect();
    assert_eq!(deletions.len(), 1);
    assert_eq!((deletions[0].stream, deletions[0].id.as_str()), (Stream::Opportunities, gone.as_str()));
    sb.stop().await;
}

/// A window that reads no Opportunity costs its one query and no lead-link
/// read; an unreadable Opportunity is quarantined naming the field and the
/// lead converted into it, so the daemon holds that lead.
#[tokio::test]
async fn an_idle_window_reads_no_links_and_an_unreadable_opportunity_holds_its_lead() {
    let sb = sandbox().await;
    let on = connector(&sb, true).await;
    let mut cursor = None;
    let got = opportunities(&pull_all(&on, Stream::Opportunities, &mut cursor).await);
    let (id, first) = got.iter().next().expect("an opportunity");
    assert_eq!(first.lead_ids.len(), 1);
    let links = |from: usize| {
        sb.shared.log.snapshot()[from..]
            .iter()
            .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("ConvertedOpportunityId")))
            .count()
    };

    sb.shared.clock.advance(chrono::Duration::hours(1));
    let (logged, sent) = (sb.shared.log.len(), on.requests_sent());
    let pages = pull_all(&on, Stream::Opportunities, &mut cursor).await;
    assert!(opportunities(&pages).is_empty() && pages.iter().all(|p| p.deletions.is_empty()));
    assert_eq!((on.requests_sent() - sent, links(logged)), (1, 0), "one window query, no link read");

    admin(&sb, reqwest::Method::PATCH, &format!("records/Opportunity/{id}"), Some(json!({"OwnerId": 42}))).await;
    sb.shared.clock.advance(chrono::Duration::minutes(10));
    let logged = sb.shared.log.len();
    let pages = pull_all(&on, Stream::Opportunities, &mut cursor).await;
    assert!(opportunities(&pages).is_empty());
    let quarantined: Vec<_> = pages.iter().flat_map(|p| &p.quarantined).collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let q = quarantined[0];
    assert_eq!((q.stream, q.id.as_deref()), (Stream::Opportunities, Some(id.as_str())));
    assert_eq!(q.lead_id.as_deref(), Some(first.lead_ids[0].as_str()), "the lead converted into it is held");
    assert!(q.reason.contains("OwnerId"), "{}", q.reason);
    assert_eq!(links(logged), 1, "its lead named by the page's one link read");
    sb.stop().await;
}
