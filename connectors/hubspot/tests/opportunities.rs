//! The opportunity stream against the in-process HubSpot sandbox: deals
//! read only when `read_opportunities` asks for them, with their owner,
//! creation and leads; later windows pick up a changed and an archived
//! deal; engagements logged on a deal name it, and one on the deal alone
//! comes with no lead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use common::*;
use handoff_hubspot::LeadObject;
use handoff_model::{Activity, ActivityKind, Connector, CrmKind, Opportunity, PullPage, Stream};
use handoff_sandbox::org::{EventKind, LeadStatus, OrgConfig, OrgEvent, SyntheticOrg};
use handoff_sandbox::{ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

/// A generated org with the AE's side added by hand (what
/// `OrgConfig::opportunities` generates): every conversion creates a deal
/// owned by the last user, and every other one gets a meeting logged on the
/// deal two hours later.
fn org_with_deals() -> (SyntheticOrg, usize) {
    let mut org = handoff_sandbox::generate(&OrgConfig { leads: 120, days: 20, ..OrgConfig::default() });
    let ae = org.users.len() - 1;
    let converted: Vec<(usize, DateTime<Utc>)> = org
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StatusChanged { lead, status: LeadStatus::Converted } => Some((*lead, e.at)),
            _ => None,
        })
        .collect();
    for (i, (lead, at)) in converted.into_iter().enumerate() {
        org.events.push(OrgEvent { at, kind: EventKind::OpportunityCreated { lead, owner: ae } });
        if i % 2 == 0 {
            let met_at = at + Duration::hours(2);
            org.events.push(OrgEvent { at: met_at, kind: EventKind::OpportunityMeeting { lead, by: ae } });
        }
    }
    // Stable: each deal stays after its conversion.
    org.events.sort_by_key(|e| e.at);
    (org, ae)
}

async fn sandbox_with_deals() -> (RunningSandbox, usize) {
    let (org, ae) = org_with_deals();
    let mut opts = SandboxOptions::new(CrmKind::Hubspot);
    opts.org = org.config.clone();
    opts.clock = ClockMode::Ticking;
    (handoff_sandbox::start_with_org(opts, org).await.expect("sandbox starts"), ae)
}

fn ae_owner(ae: usize) -> String {
    (70_000_000 + ae).to_string()
}

fn opportunities(pages: &[PullPage]) -> BTreeMap<String, Opportunity> {
    let mut out = BTreeMap::new();
    for o in pages.iter().flat_map(|p| &p.opportunities) {
        assert!(out.insert(o.id.clone(), o.clone()).is_none(), "deal {} delivered twice", o.id);
    }
    out
}

fn activities(pages: &[PullPage]) -> BTreeMap<String, Activity> {
    pages.iter().flat_map(|p| &p.activities).map(|a| (a.id.clone(), a.clone())).collect()
}

/// The ids of a dumped record's associations to `to`.
fn ends(record: &Value, to: &str) -> Vec<String> {
    record["associations"][to]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

/// Served API requests (not admin routes) from index `since` whose path contains `part`.
fn calls_to(sb: &RunningSandbox, since: usize, part: &str) -> usize {
    log_since(sb, since).iter().filter(|r| r.counted && r.path.contains(part)).count()
}

/// An API call with the private app's token, as another integration would make it.
async fn api(sb: &RunningSandbox, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", sb.base_url))
        .bearer_auth(cred(sb, "access_token"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("API call");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_are_read_only_when_asked_with_their_owner_and_leads_and_windows_pick_up_changes() {
    let (sb, ae) = sandbox_with_deals().await;
    advance(&sb, 60).await;

    // Off (the default): no call for the stream, no deal, and engagements as before.
    let off = connector(settings(&sb)).await;
    let since = sb.shared.log.snapshot().len();
    let page = off.pull(Stream::Opportunities, None).await.expect("pull");
    assert!(page.opportunities.is_empty() && !page.has_more && page.cursor.is_none());
    assert_eq!(log_since(&sb, since).len(), 0, "not one request for the opportunity stream");
    let (pages, _) = drain(&off, Stream::Activities, None).await;
    let before = activities(&pages);
    assert!(before.values().all(|a| a.opportunity_id.is_none() && !a.lead_id.is_empty()));
    assert_eq!(calls_to(&sb, since, "/deals/"), 0, "no association read to deals");

    // On: every deal, once, with its owner, creation and contacts.
    let mut s = settings(&sb);
    s.read_opportunities = true;
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    let since = sb.shared.log.snapshot().len();
    let (pages, cursor) = drain(&c, Stream::Opportunities, None).await;
    let got = opportunities(&pages);
    let truth: BTreeMap<String, Value> = dump_with_associations(&sb, "deals", &["hubspot_owner_id", "createdate"])
        .await
        .into_iter()
        .filter(is_live)
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    assert!(truth.len() >= 2, "the org converts some leads: {}", truth.len());
    assert_eq!(got.keys().collect::<BTreeSet<_>>(), truth.keys().collect::<BTreeSet<_>>(), "every live deal");
    for (id, o) in &got {
        let deal = &truth[id];
        assert_eq!(o.owner_id.as_deref(), Some(ae_owner(ae).as_str()), "deal {id} is the AE's");
        assert_eq!(o.created_at.timestamp_millis(), ms(deal["properties"]["createdate"].as_str().unwrap()));
        assert_eq!(o.lead_ids, ends(deal, "contacts"), "deal {id}: the contact it was created from");
        assert_eq!(o.lead_ids.len(), 1);
        assert!(!o.deleted);
    }
    // A search page and one association read name them all; no history, no contacts read.
    assert_eq!(calls_to(&sb, since, "/crm/v3/objects/deals/search"), 1);
    assert_eq!(calls_to(&sb, since, "/crm/v4/associations/deals/contacts/batch/read"), 1);
    assert_eq!(calls_to(&sb, since, "/crm/v3/objects/contacts"), 0);

    // Another rep takes one deal over, another deal is deleted.
    let mut ids = got.keys();
    let (changed, archived) = (ids.next().unwrap().clone(), ids.next().unwrap().clone());
    let new_owner = (70_000_000 + ae - 1).to_string();
    api(
        &sb,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/deals/{changed}"),
        Some(json!({"properties": {"hubspot_owner_id": new_owner}})),
    )
    .await;
    api(&sb, reqwest::Method::DELETE, &format!("/crm/v3/objects/deals/{archived}"), None).await;
    advance(&sb, 60).await;
    let (pages, _) = drain(&c, Stream::Opportunities, cursor).await;
    let later = opportunities(&pages);
    assert_eq!(later.keys().cloned().collect::<Vec<_>>(), vec![changed.clone()], "only the changed deal");
    assert_eq!(later[&changed].owner_id.as_deref(), Some(new_owner.as_str()));
    assert_eq!(later[&changed].lead_ids, got[&changed].lead_ids);
    let deletions: Vec<(Stream, &str)> =
        pages.iter().flat_map(|p| &p.deletions).map(|d| (d.stream, d.id.as_str())).collect();
    assert_eq!(deletions, vec![(Stream::Opportunities, archived.as_str())], "the archived deal, once");

    // A meeting logged on a deal and its contact (another integration's).
    let both_deal = changed.clone();
    let both_contact = got[&both_deal].lead_ids[0].clone();
    let created = api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/meetings",
        Some(json!({
            "properties": {"hs_timestamp": "2026-03-20T15:00:00Z", "hs_meeting_title": "Pricing call", "hubspot_owner_id": ae_owner(ae)},
            "associations": [
                {"to": {"id": both_contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 200}]},
                {"to": {"id": both_deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 212}]}
            ]
        })),
    )
    .await;
    let both_meeting = created["id"].as_str().unwrap().to_string();
    advance(&sb, 60).await;

    // Engagements: the deal's meetings arrive, naming the deal.
    let since = sb.shared.log.snapshot().len();
    let (pages, _) = drain(&c, Stream::Activities, None).await;
    let after = activities(&pages);
    let meetings: BTreeMap<String, Value> = dump_with_associations(&sb, "meetings", &["hs_meeting_title"])
        .await
        .into_iter()
        .filter(is_live)
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    let deal_only: Vec<&String> = meetings
        .iter()
        .filter(|(_, m)| ends(m, "contacts").is_empty() && !ends(m, "deals").is_empty())
        .map(|(id, _)| id)
        .collect();
    assert!(!deal_only.is_empty(), "the org logs meetings on deals");
    for id in &deal_only {
        let a = after.get(*id).unwrap_or_else(|| panic!("deal-only meeting {id} is delivered"));
        assert_eq!(a.kind, ActivityKind::Meeting);
        assert_eq!(a.lead_id, "", "meeting {id}: the daemon finds the lead through the deal");
        assert_eq!(a.opportunity_id.as_ref(), ends(&meetings[*id], "deals").first(), "meeting {id}");
        assert_eq!(a.owner_id.as_deref(), Some(ae_owner(ae).as_str()));
        assert!(!before.contains_key(*id), "without the setting it was left out");
    }
    let both = &after[&both_meeting];
    assert_eq!(
        (both.lead_id.as_str(), both.opportunity_id.as_deref()),
        (both_contact.as_str(), Some(both_deal.as_str()))
    );
    // Everything read before is read the same, now with no deal.
    for (id, a) in &before {
        assert_eq!(after.get(id).map(|x| (&x.lead_id, &x.opportunity_id)), Some((&a.lead_id, &None)), "{id}");
    }
    assert_eq!(after.len(), before.len() + deal_only.len() + 1);
    // One association read to deals beside each one to contacts.
    let to_contacts: usize = ["calls", "emails", "meetings", "tasks"]
        .iter()
        .map(|t| calls_to(&sb, since, &format!("/crm/v4/associations/{t}/contacts/batch/read")))
        .sum();
    let to_deals: usize = ["calls", "emails", "meetings", "tasks"]
        .iter()
        .map(|t| calls_to(&sb, since, &format!("/crm/v4/associations/{t}/deals/batch/read")))
        .sum();
    assert!(to_contacts >= 1, "{to_contacts} association reads to contacts");
    assert_eq!(to_deals, to_contacts, "one read to deals per page, as to contacts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_leads_mode_a_deal_names_the_lead_records_of_its_contacts() {
    let (sb, ae) = sandbox_with_deals().await;
    advance(&sb, 60).await;
    let mut s = settings(&sb);
    s.lead_object = LeadObject::Leads;
    s.read_opportunities = true;
    let c = connector(s).await;
    c.authenticate().await.expect("a portal with the Leads object");

    let since = sb.shared.log.snapshot().len();
    let (pages, _) = drain(&c, Stream::Opportunities, None).await;
    let got = opportunities(&pages);
    let deals = dump_with_associations(&sb, "deals", &["hubspot_owner_id"]).await;
    let leads = dump_with_associations(&sb, "leads", &["hs_lead_name"]).await;
    // Contact → its lead records.
    let mut lead_of_contact: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &leads {
        for contact in ends(l, "contacts") {
            lead_of_contact.entry(contact).or_default().push(l["id"].as_str().unwrap().to_string());
        }
    }
    assert!(!got.is_empty());
    for deal in deals.iter().filter(|d| is_live(d)) {
        let id = deal["id"].as_str().unwrap();
        let want: Vec<String> =
            ends(deal, "contacts").iter().flat_map(|c| lead_of_contact.get(c).cloned().unwrap_or_default()).collect();
        assert!(!want.is_empty());
        assert_eq!(got[id].lead_ids, want, "deal {id}: the lead records of its contact");
        assert_eq!(got[id].owner_id.as_deref(), Some(ae_owner(ae).as_str()));
    }
    assert_eq!(calls_to(&sb, since, "/crm/v4/associations/deals/contacts/batch/read"), 1);
    assert_eq!(calls_to(&sb, since, "/crm/v4/associations/contacts/leads/batch/read"), 1);

    // The deal's meetings come with no lead, as in contacts mode.
    let (pages, _) = drain(&c, Stream::Activities, None).await;
    let on_deals: Vec<&Activity> =
        pages.iter().flat_map(|p| &p.activities).filter(|a| a.opportunity_id.is_some()).collect();
    assert!(!on_deals.is_empty());
    assert!(on_deals.iter().all(|a| a.lead_id.is_empty() && a.kind == ActivityKind::Meeting));
}

fn ms(t: &str) -> i64 {
    DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_millis()).unwrap_or_else(|e| panic!("{t}: {e}"))
}
