//! The connector against the in-process Salesforce sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_model::{
    Action, ActionKey, ActionKind, Connector, ConnectorError, CrmKind, Cursor, ErrorClass, Stream, TaskPriority,
    TaskPurpose,
};
use handoff_salesforce::{connect, MemoryTokenStore, SalesforceAuth, SalesforceConnector, SalesforceSettings};
use handoff_sandbox::faults::Fault;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use handoff_model::Secret;
use serde_json::{json, Value};

async fn sandbox(leads: usize) -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads, ..OrgConfig::default() };
    start(opts).await.expect("sandbox starts")
}

fn settings(sb: &RunningSandbox) -> SalesforceSettings {
    let c = &sb.credentials;
    let key_path = c["jwt_private_key_path"].as_str().expect("key path");
    let auth = SalesforceAuth::JwtBearer {
        client_id: c["client_id"].as_str().expect("client id").to_string(),
        username: c["username"].as_str().expect("username").to_string(),
        private_key_pem: Secret::new(std::fs::read_to_string(key_path).expect("key")),
        audience: c["jwt_audience"].as_str().map(str::to_string),
    };
    let mut s = SalesforceSettings::new(sb.base_url.clone(), auth, Arc::new(MemoryTokenStore::new()));
    let clock = sb.shared.clock.clone();
    s.clock = Arc::new(move || clock.now());
    s.requests_per_sec = 1000;
    s.daily_budget_share = 1.0;
    s.retry.base_delay = Duration::from_millis(10);
    s.required_lead_fields = vec!["Lead_Score__c".into(), "SLA_Status__c".into(), "Disqualification_Reason__c".into()];
    s
}

fn admin(sb: &RunningSandbox, path: &str) -> String {
    format!("{}/salesforce/{}", sb.admin_url.trim_end_matches('/'), path)
}

async fn admin_json(sb: &RunningSandbox, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new().request(method, admin(sb, path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin call");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "admin {path}: {status} {v}");
    v
}

/// Live and deleted Lead ids as the sandbox holds them.
async fn truth(sb: &RunningSandbox) -> (BTreeSet<String>, BTreeSet<String>) {
    let dump = admin_json(sb, reqwest::Method::GET, "records/Lead", None).await;
    let mut live = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for r in dump["records"].as_array().expect("records") {
        let id = r["Id"].as_str().expect("id").to_string();
        if r["IsDeleted"] == json!(true) {
            deleted.insert(id);
        } else {
            live.insert(id);
        }
    }
    (live, deleted)
}

#[derive(Default)]
struct Pulled {
    leads: BTreeMap<String, String>,
    deletions: BTreeMap<String, Option<String>>,
    pages: usize,
}

/// Pull a stream to the end of the current window.
async fn pull_all(c: &SalesforceConnector, stream: Stream, cursor: &mut Option<Cursor>, into: &mut Pulled) {
    loop {
        let page = c.pull(stream, cursor.as_ref()).await.expect("pull");
        into.pages += 1;
        for l in page.leads {
            into.leads.insert(l.id.clone(), l.modified_at.to_rfc3339());
        }
        for d in page.deletions {
            into.deletions.insert(d.id, d.merged_into);
        }
        *cursor = page.cursor.or(cursor.take());
        if !page.has_more {
            return;
        }
    }
}

fn report(scenario: &str, calls: u64, lower_bound: u64) {
    println!("api-calls scenario={scenario} used={calls} lower_bound={lower_bound}");
}

#[tokio::test]
async fn backfill_then_incremental_pulls_miss_nothing() {
    let sb = sandbox(1_000).await;
    let c = connect(settings(&sb)).await.expect("connects");
    let (live, deleted) = truth(&sb).await;

    let before = c.requests_sent();
    let mut cursor = None;
    let mut got = Pulled::default();
    pull_all(&c, Stream::Leads, &mut cursor, &mut got).await;
    let calls = c.requests_sent() - before;
    report("backfill", calls, (live.len() + deleted.len()).div_ceil(2000) as u64);
    assert_eq!(got.leads.keys().cloned().collect::<BTreeSet<_>>(), live);
    assert_eq!(got.deletions.keys().cloned().collect::<BTreeSet<_>>(), deleted);

    // Changes after the backfill: three leads sharing one timestamp, a late
    // commit stamped before the window already read, a deletion and a merge.
    let now: DateTime<Utc> = sb.shared.clock.now();
    let same = (now - chrono::Duration::seconds(1)).to_rfc3339();
    let mut shared_stamp = Vec::new();
    for i in 0..3 {
        let r = admin_json(&sb, reqwest::Method::POST, "records/Lead",
            Some(json!({"LastName": format!("Same{i}"), "Company": "Tie Co", "SystemModstamp": same}))).await;
        shared_stamp.push(r["id"].as_str().expect("id").to_string());
    }
    let mut live_ids = live.iter();
    let to_delete = live_ids.next().expect("a lead").clone();
    let master = live_ids.next().expect("a lead").clone();
    let merged = live_ids.next().expect("a lead").clone();
    let _ = reqwest::Client::new().delete(admin(&sb, &format!("records/Lead/{to_delete}"))).send().await.expect("delete");
    admin_json(&sb, reqwest::Method::POST, "merge", Some(json!({"object": "Lead", "master_id": master, "merged_id": merged}))).await;

    sb.shared.clock.advance(chrono::Duration::minutes(6));
    let mut inc = Pulled::default();
    let before = c.requests_sent();
    pull_all(&c, Stream::Leads, &mut cursor, &mut inc).await;
    // Late commit: stamped a minute before the end of the window just read.
    let late_stamp = (sb.shared.clock.now() - chrono::Duration::minutes(6)).to_rfc3339();
    let late = admin_json(&sb, reqwest::Method::POST, "records/Lead",
        Some(json!({"LastName": "Late", "Company": "Slow Commit Inc", "SystemModstamp": late_stamp}))).await;
    let late_id = late["id"].as_str().expect("id").to_string();
    sb.shared.clock.advance(chrono::Duration::minutes(6));
    pull_all(&c, Stream::Leads, &mut cursor, &mut inc).await;
    report("incremental", c.requests_sent() - before, 2);

    for id in &shared_stamp {
        assert!(inc.leads.contains_key(id), "lead {id} sharing a timestamp was missed");
    }
    assert!(inc.leads.contains_key(&late_id), "late-committed lead was missed");
    assert!(inc.deletions.contains_key(&to_delete), "deletion missed");
    assert_eq!(inc.deletions.get(&merged), Some(&Some(master.clone())), "merge not reported with its survivor");
    // Nothing outside the changes and the lookback overlap came back.
    let (live_now, _) = truth(&sb).await;
    assert!(inc.leads.keys().all(|id| live_now.contains(id)));
    sb.stop().await;
}

#[tokio::test]
async fn expired_token_mid_pull_reauthenticates_once_and_loses_no_page() {
    let sb = sandbox(1_000).await;
    let mut s = settings(&sb);
    s.query_batch_size = 200;
    let c = connect(s).await.expect("connects");
    let (live, deleted) = truth(&sb).await;
    let logins_before = c.logins();
    let mut cursor = None;
    let mut got = Pulled::default();
    let first = c.pull(Stream::Leads, None).await.expect("first page");
    assert!(first.has_more, "a 200-row page size must need several pages");
    for l in first.leads {
        got.leads.insert(l.id.clone(), String::new());
    }
    for d in first.deletions {
        got.deletions.insert(d.id, d.merged_into);
    }
    cursor = first.cursor.or(cursor);
    admin_json(&sb, reqwest::Method::POST, "tokens/expire", Some(json!({}))).await;
    pull_all(&c, Stream::Leads, &mut cursor, &mut got).await;
    assert_eq!(c.logins() - logins_before, 1, "exactly one re-authentication");
    assert_eq!(got.leads.keys().cloned().collect::<BTreeSet<_>>(), live);
    assert_eq!(got.deletions.keys().cloned().collect::<BTreeSet<_>>(), deleted);
    report("token-expiry", got.pages as u64 + 1, (live.len() + deleted.len()).div_ceil(200) as u64);
    sb.stop().await;
}

#[tokio::test]
async fn limit_storm_pauses_without_a_second_violation_and_then_completes() {
    let sb = sandbox(300).await;
    let mut s = settings(&sb);
    s.budget_recheck = Duration::from_secs(120);
    let c = connect(s).await.expect("connects");
    let storm_end = sb.shared.clock.now() + chrono::Duration::seconds(60);
    sb.shared.faults.arm(Fault::RateLimitStorm { until: storm_end });
    let log_before = sb.shared.log.len();

    for _ in 0..5 {
        match c.pull(Stream::Leads, None).await {
            Err(ConnectorError::Budget { retry_after, .. }) => assert!(retry_after > Duration::ZERO),
            other => panic!("expected a budget pause, got {other:?}"),
        }
    }
    let refused: Vec<_> = sb.shared.log.snapshot()[log_before..].iter().filter(|r| r.status == 403).cloned().collect();
    assert_eq!(refused.len(), 1, "only the first request may meet the limit: {refused:?}");
    assert!(c.budget().paused_until.is_some());

    sb.shared.clock.advance(chrono::Duration::seconds(121));
    let mut cursor = None;
    let mut got = Pulled::default();
    pull_all(&c, Stream::Leads, &mut cursor, &mut got).await;
    let (live, _) = truth(&sb).await;
    assert_eq!(got.leads.len(), live.len());
    report("limit-storm", (sb.shared.log.len() - log_before) as u64, 2);
    sb.stop().await;
}

fn task_action(key: &str, lead: &str, owner: &str, subject: &str) -> Action {
    Action {
        key: ActionKey(key.to_string()),
        lead_id: lead.to_string(),
        kind: ActionKind::CreateTask {
            assignee_id: owner.to_string(),
            subject: subject.to_string(),
            body: "Follow up within the SLA".to_string(),
            due_at: Utc::now(),
            priority: TaskPriority::High,
            purpose: TaskPurpose::Reminder,
        },
    }
}

#[tokio::test]
async fn write_batch_with_one_bad_record_lands_the_rest_and_replays_without_duplicates() {
    let sb = sandbox(50).await;
    let c = connect(settings(&sb)).await.expect("connects");
    let dump = admin_json(&sb, reqwest::Method::GET, "records/Lead", None).await;
    let leads: Vec<(String, String)> = dump["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["IsDeleted"] != json!(true) && r["OwnerId"].as_str().is_some_and(|o| o.starts_with("005")))
        .take(5)
        .map(|r| (r["Id"].as_str().unwrap_or_default().to_string(), r["OwnerId"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(leads.len(), 5);
    let mut actions: Vec<Action> = leads
        .iter()
        .enumerate()
        .map(|(i, (lead, owner))| {
            let subject = if i == 2 { "POISON follow up".to_string() } else { format!("Follow up {i}") };
            task_action(&format!("sla:{lead}:first-touch:reminder"), lead, owner, &subject)
        })
        .collect();
    actions.push(Action {
        key: ActionKey(format!("sla:{}:grade", leads[0].0)),
        lead_id: leads[0].0.clone(),
        kind: ActionKind::UpdateLead { fields: BTreeMap::from([("SLA_Status__c".to_string(), json!("due"))]) },
    });
    sb.shared.faults.arm(Fault::PartialBatchFailure { marker: "POISON".into(), count: 1 });
    let before = c.requests_sent();
    let out = c.write(&actions).await.expect("write");
    report("write-batch", c.requests_sent() - before, 2);
    assert_eq!(out.len(), actions.len());
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.key, actions[i].key, "outcomes come back in input order");
        if i == 2 {
            let err = o.result.as_ref().expect_err("the poisoned record fails");
            assert!(!err.code.is_empty() && !err.message.is_empty(), "{err:?}");
        } else {
            assert!(o.result.is_ok(), "action {i}: {:?}", o.result);
        }
    }
    // Replaying the whole batch lands the failed one and duplicates nothing.
    let again = c.write(&actions).await.expect("replay");
    assert!(again.iter().all(|o| o.result.is_ok()), "{again:?}");
    for (first, second) in out.iter().zip(&again) {
        if let (Ok(a), Ok(b)) = (&first.result, &second.result) {
            assert_eq!(a, b, "a replayed task upsert must hit the same record");
        }
    }
    let dups = admin_json(&sb, reqwest::Method::GET, "duplicates/tasks", None).await;
    assert_eq!(dups["by_handoff_key"], json!([]), "{dups}");
    let tasks = admin_json(&sb, reqwest::Method::GET, "records/Task", None).await;
    let ours = tasks["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|t| t["Handoff_Key__c"].as_str().is_some_and(|k| k.ends_with(":first-touch:reminder")))
        .count();
    assert_eq!(ours, 5);
    let lead = admin_json(&sb, reqwest::Method::GET, "records/Lead", None).await;
    let updated = lead["records"].as_array().expect("records").iter().find(|r| r["Id"] == json!(leads[0].0)).cloned();
    assert_eq!(updated.map(|r| r["SLA_Status__c"].clone()), Some(json!("due")));
    let _ = ErrorClass::Permanent;
    sb.stop().await;
}

#[tokio::test]
async fn missing_policy_field_is_named_with_the_setup_step() {
    let sb = sandbox(10).await;
    let mut s = settings(&sb);
    s.required_lead_fields.push("Handoff_Tier__c".into());
    match connect(s).await {
        Err(e) => {
            let text = ConnectorError::from(e).to_string();
            assert!(text.contains("Handoff_Tier__c") && text.contains("Setup"), "{text}");
        }
        Ok(_) => panic!("a missing field must stop the connector"),
    }
    sb.stop().await;
}

#[tokio::test]
async fn owners_activities_and_calendars_come_through() {
    let sb = sandbox(200).await;
    let c = connect(settings(&sb)).await.expect("connects");
    let mut owners = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let p = c.pull(Stream::Owners, cursor.as_ref()).await.expect("owners");
        owners.extend(p.owners);
        cursor = p.cursor.or(cursor);
        if !p.has_more {
            break;
        }
    }
    assert!(owners.iter().any(|o| o.kind == handoff_model::OwnerKind::Queue), "queues are owners");
    assert!(owners.iter().any(|o| o.manager_id.is_some()), "managers come with users");
    assert!(owners.iter().filter(|o| o.kind == handoff_model::OwnerKind::User).all(|o| o.time_zone.is_some()));

    let mut acts = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let p = c.pull(Stream::Activities, cursor.as_ref()).await.expect("activities");
        acts.extend(p.activities);
        cursor = p.cursor.or(cursor);
        if !p.has_more {
            break;
        }
    }
    assert!(!acts.is_empty());
    assert!(acts.iter().all(|a| a.lead_id.starts_with("00Q")));

    let cal = c.pull(Stream::Calendars, None).await.expect("calendars");
    assert!(!cal.calendars.is_empty());
    assert!(!cal.has_more);

    let hub = Cursor(r#"{"crm":"hubspot","v":1,"stream":"leads","done_until_ms":null}"#.into());
    assert!(matches!(c.pull(Stream::Leads, Some(&hub)).await, Err(ConnectorError::BadCursor { .. })));
    sb.stop().await;
}
