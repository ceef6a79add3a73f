//! The Salesforce emulator's Opportunities over HTTP: what the timeline's
//! `OpportunityCreated` and `OpportunityMeeting` events become (the
//! conversion's Opportunity, the lead's `ConvertedOpportunityId`, an Event
//! on the Opportunity alone), `describe` and the sObject list, and the SOQL
//! the connector sends for them: the window query on `SystemModstamp`, the
//! lead link (`ConvertedOpportunityId IN (…)`), activities by `WhatId` or by
//! the polymorphic `What.Type`, and `queryAll` for deleted Opportunities.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use handoff_model::CrmKind;
use handoff_sandbox::org::{EventKind, OrgConfig};
use handoff_sandbox::salesforce::materialise::{lead_id, user_id};
use handoff_sandbox::salesforce::store::{fmt_date, fmt_datetime};
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

const V: &str = "/services/data/v62.0";

async fn sandbox() -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads: 300, opportunities: true, ..OrgConfig::default() };
    start(opts).await.expect("sandbox starts")
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(sb: &RunningSandbox) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: sb.base_url.clone(),
            token: sb.credentials["access_token"].as_str().expect("access_token").to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let limit = resp.headers().get("sforce-limit-info").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = resp.text().await.expect("body");
        let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("json body") };
        (status, limit, json)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, _, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Every row `soql` answers (through `queryAll` when `all`), all pages.
    async fn rows(&self, soql: &str, all: bool) -> Vec<Value> {
        let verb = if all { "queryAll" } else { "query" };
        let mut page = self.get(&format!("{V}/{verb}?q={}", url_encode(soql))).await;
        let mut rows = page["records"].as_array().cloned().unwrap_or_default();
        while page["done"] == json!(false) {
            let next = page["nextRecordsUrl"].as_str().expect("nextRecordsUrl").to_string();
            page = self.get(&next).await;
            rows.extend(page["records"].as_array().cloned().unwrap_or_default());
        }
        rows
    }

    async fn admin_delete(&self, object: &str, id: &str) {
        let resp = self
            .http
            .delete(format!("{}/__sandbox/salesforce/records/{object}/{id}", self.base))
            .send()
            .await
            .expect("admin delete");
        assert!(resp.status().is_success(), "admin delete {object} {id}: {}", resp.status());
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn text(row: &Value, field: &str) -> String {
    row[field].as_str().unwrap_or_else(|| panic!("{field} of {row}")).to_string()
}

fn quoted(ids: &[String]) -> String {
    ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ")
}

/// Every conversion's Opportunity is there as the timeline made it: owned
/// and created by the AE at the conversion's instant, at stage Prospecting,
/// closing 30 days on, and its lead names it; each meeting on it is an
/// Event whose `WhatId` is the Opportunity, with no `WhoId`, owned by who
/// held it, half an hour long.
#[tokio::test]
async fn conversions_make_opportunities_and_meetings_are_logged_on_them() {
    let sb = sandbox().await;
    let c = Client::new(&sb);
    let org = &sb.shared.org;
    // lead id → (the conversion's instant, the AE's user id)
    let created: BTreeMap<String, (DateTime<Utc>, String)> = org
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::OpportunityCreated { lead, owner } => Some((lead_id(lead), (e.at, user_id(owner)))),
            _ => None,
        })
        .collect();
    // (lead id, the instant, who held it)
    let meetings: Vec<(String, DateTime<Utc>, String)> = org
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::OpportunityMeeting { lead, by } => Some((lead_id(lead), e.at, user_id(by))),
            _ => None,
        })
        .collect();
    assert!(created.len() > 5 && !meetings.is_empty(), "{} conversions, {} meetings", created.len(), meetings.len());

    // Each converted lead names its Opportunity; nothing else was made.
    let leads = c
        .rows(
            "SELECT Id, IsConverted, ConvertedOpportunityId, ConvertedContactId, ConvertedAccountId FROM Lead \
             WHERE ConvertedOpportunityId != null ORDER BY Id",
            false,
        )
        .await;
    assert_eq!(leads.len(), created.len());
    let mut opportunity_of: BTreeMap<String, String> = BTreeMap::new();
    for l in &leads {
        assert_eq!(l["IsConverted"], json!(true), "{l}");
        assert_eq!((&l["ConvertedContactId"], &l["ConvertedAccountId"]), (&Value::Null, &Value::Null), "{l}");
        opportunity_of.insert(text(l, "Id"), text(l, "ConvertedOpportunityId"));
    }
    let opportunities = c
        .rows(
            "SELECT Id, Name, StageName, CloseDate, Amount, OwnerId, CreatedDate, CreatedById, LastModifiedDate, \
             LastModifiedById, SystemModstamp, IsDeleted FROM Opportunity ORDER BY SystemModstamp, Id",
            false,
        )
        .await;
    assert_eq!(opportunities.len(), created.len());
    let by_id: BTreeMap<String, &Value> = opportunities.iter().map(|o| (text(o, "Id"), o)).collect();
    for (lead, (at, ae)) in &created {
        let o = by_id[&opportunity_of[lead]];
        let id = text(o, "Id");
        assert!(id.starts_with("006") && id.len() == 18, "{id}");
        assert_eq!(o["attributes"]["type"], json!("Opportunity"));
        assert!(!text(o, "Name").is_empty());
        assert_eq!(text(o, "StageName"), "Prospecting");
        assert_eq!(text(o, "CloseDate"), fmt_date(*at + Duration::days(30)));
        assert!(o["Amount"].is_number(), "{o}");
        assert_eq!((text(o, "OwnerId"), text(o, "CreatedById")), (ae.clone(), ae.clone()));
        assert_eq!(text(o, "CreatedDate"), fmt_datetime(*at));
        assert_eq!(o["IsDeleted"], json!(false));
    }

    // The connector's lead link: the leads converted into the named ones.
    let some: Vec<String> = opportunity_of.values().take(3).cloned().collect();
    let linked = c
        .rows(
            &format!(
                "SELECT Id, ConvertedOpportunityId FROM Lead WHERE ConvertedOpportunityId IN ({}) ORDER BY Id",
                quoted(&some)
            ),
            true,
        )
        .await;
    let got: Vec<(String, String)> =
        linked.iter().map(|l| (text(l, "Id"), text(l, "ConvertedOpportunityId"))).collect();
    let want: Vec<(String, String)> =
        opportunity_of.iter().filter(|(_, o)| some.contains(o)).map(|(l, o)| (l.clone(), o.clone())).collect();
    assert_eq!(got, want);

    // Meetings on an Opportunity alone, found by the polymorphic `What.Type`
    // and by `WhatId IN (…)` alike.
    let events = c
        .rows(
            "SELECT Id, WhoId, WhatId, OwnerId, Subject, StartDateTime, EndDateTime, DurationInMinutes FROM Event \
             WHERE What.Type = 'Opportunity' ORDER BY StartDateTime, Id",
            false,
        )
        .await;
    assert_eq!(events.len(), meetings.len());
    let mut want: Vec<(String, String, String, String)> = meetings
        .iter()
        .map(|(lead, at, by)| {
            (opportunity_of[lead].clone(), fmt_datetime(*at), fmt_datetime(*at + Duration::minutes(30)), by.clone())
        })
        .collect();
    want.sort();
    let mut got: Vec<(String, String, String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["WhoId"], Value::Null, "{e}");
            assert!(!text(e, "Subject").is_empty());
            assert_eq!(e["DurationInMinutes"], json!(30));
            (text(e, "WhatId"), text(e, "StartDateTime"), text(e, "EndDateTime"), text(e, "OwnerId"))
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    let all_ids: Vec<String> = opportunity_of.values().cloned().collect();
    let by_what_id = c.rows(&format!("SELECT Id FROM Event WHERE WhatId IN ({})", quoted(&all_ids)), false).await;
    assert_eq!(by_what_id.len(), meetings.len());
    let none = c.rows("SELECT Id FROM Task WHERE What.Type = 'Opportunity'", false).await;
    assert!(none.is_empty(), "the timeline logs no task on an Opportunity");
    sb.stop().await;
}

/// `describe` and the sObject list show Opportunity as the other objects;
/// a deleted one is seen by `queryAll` only; the API may read, not write,
/// it; each call is logged and counted, with the limit header.
#[tokio::test]
async fn opportunity_is_described_deleted_to_query_all_and_read_only() {
    let sb = sandbox().await;
    let c = Client::new(&sb);

    let listing = c.get(&format!("{V}/sobjects")).await;
    let entry = listing["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .find(|s| s["name"] == "Opportunity")
        .cloned()
        .expect("Opportunity listed");
    assert_eq!((&entry["keyPrefix"], &entry["queryable"]), (&json!("006"), &json!(true)), "{entry}");
    let d = c.get(&format!("{V}/sobjects/Opportunity/describe")).await;
    let field = |name: &str| {
        d["fields"].as_array().expect("fields").iter().find(|f| f["name"] == name).cloned().unwrap_or(Value::Null)
    };
    for name in [
        "Id",
        "Name",
        "StageName",
        "CloseDate",
        "Amount",
        "OwnerId",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
        "IsDeleted",
    ] {
        assert!(field(name).is_object(), "Opportunity.{name} described");
    }
    assert_eq!(field("CloseDate")["type"], json!("date"));
    assert_eq!(field("OwnerId")["referenceTo"], json!(["User"]));
    assert!(field("StageName")["picklistValues"].to_string().contains("Prospecting"));
    let lead = c.get(&format!("{V}/sobjects/Lead/describe")).await;
    let converted = lead["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "ConvertedOpportunityId")
        .cloned()
        .expect("Lead.ConvertedOpportunityId");
    assert_eq!((&converted["type"], &converted["referenceTo"]), (&json!("reference"), &json!(["Opportunity"])));

    // The window query the connector sends; one deleted is gone from it
    // and from `query`, and `queryAll` shows it deleted.
    let window = "SELECT Id, OwnerId, CreatedDate, SystemModstamp, IsDeleted FROM Opportunity \
                  WHERE SystemModstamp >= 2000-01-01T00:00:00Z AND SystemModstamp < 2100-01-01T00:00:00Z \
                  ORDER BY SystemModstamp, Id";
    let before = c.rows(window, true).await;
    assert!(!before.is_empty());
    let gone = text(&before[0], "Id");
    c.admin_delete("Opportunity", &gone).await;
    assert_eq!(c.rows(window, false).await.len(), before.len() - 1);
    let after = c.rows(window, true).await;
    assert_eq!(after.len(), before.len());
    let deleted: Vec<&Value> = after.iter().filter(|o| o["IsDeleted"] == json!(true)).collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(text(deleted[0], "Id"), gone);
    let found = c.rows(&format!("SELECT Id FROM Opportunity WHERE IsDeleted = true AND Id = '{gone}'"), true).await;
    assert_eq!(found.len(), 1);

    // Read-only to the API, with Salesforce's own error.
    let (status, limit, body) = c
        .call(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Opportunity"),
            Some(json!({"Name": "x", "StageName": "Prospecting", "CloseDate": "2026-03-01"})),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body.to_string().contains("INSUFFICIENT_ACCESS_OR_READONLY"), "{body}");
    assert!(limit.starts_with("api-usage="), "{limit}");

    // Every Opportunity query went through the request log, counted.
    let log = sb.shared.log.snapshot();
    let reads: Vec<_> = log
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("Opportunity")) && r.path.contains("query"))
        .collect();
    assert_eq!(reads.len(), 4, "{reads:?}");
    assert!(reads.iter().all(|r| r.counted && r.status == 200), "{reads:?}");
    sb.stop().await;
}
