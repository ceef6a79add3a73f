//! The connector against the in-process Salesforce sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use handoff_model::{
    Action, ActionKey, ActionKind, Connector, ConnectorError, CrmKind, Cursor, ErrorClass, Lead, Stream, TaskPriority,
    TaskPurpose,
};
mod common;

use handoff_salesforce::{connect, SalesforceConnector, SalesforceSettings};
use handoff_sandbox::faults::Fault;
use handoff_sandbox::org::{EventKind, OrgConfig, OwnerRef};
use handoff_sandbox::salesforce::materialise;
use handoff_sandbox::server::{start, ClockMode, RunningSandbox, SandboxOptions};
use serde_json::{json, Value};

async fn sandbox(leads: usize) -> RunningSandbox {
    let mut opts = SandboxOptions::new(CrmKind::Salesforce);
    opts.clock = ClockMode::Frozen;
    opts.org = OrgConfig { leads, ..OrgConfig::default() };
    start(opts).await.expect("sandbox starts")
}

fn settings(sb: &RunningSandbox) -> SalesforceSettings {
    let mut s = common::sandbox_settings(sb);
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
    /// Rows the API returned: leads and deletions plus the history rows nested in leads.
    rows: u64,
}

/// A lead's row plus the history rows that came nested in it (each is a
/// change after the first entry of either history).
fn lead_rows(l: &Lead) -> u64 {
    1 + (l.assignments.len().saturating_sub(1) + l.status_changes.len().saturating_sub(1)) as u64
}

impl Pulled {
    fn take(&mut self, page: handoff_model::PullPage) -> (Option<Cursor>, bool) {
        self.pages += 1;
        for l in page.leads {
            self.rows += lead_rows(&l);
            self.leads.insert(l.id.clone(), l.modified_at.to_rfc3339());
        }
        for d in page.deletions {
            self.rows += 1;
            self.deletions.insert(d.id, d.merged_into);
        }
        (page.cursor, page.has_more)
    }
}

/// Pull a stream to the end of the current window.
async fn pull_all(c: &SalesforceConnector, stream: Stream, cursor: &mut Option<Cursor>, into: &mut Pulled) {
    loop {
        let page = c.pull(stream, cursor.as_ref()).await.expect("pull");
        let (next, has_more) = into.take(page);
        *cursor = next.or(cursor.take());
        if !has_more {
            return;
        }
    }
}

fn report(scenario: &str, calls: u64, lower_bound: u64) {
    println!("api-calls scenario={scenario} used={calls} lower_bound={lower_bound}");
}

/// Versions of records as a daemon applying pages idempotently by
/// `(id, modified_at)` would hold them.
#[derive(Default)]
struct Ledger {
    versions: BTreeMap<String, DateTime<Utc>>,
    deleted: BTreeMap<String, Option<String>>,
    leads: BTreeMap<String, Lead>,
    activity_leads: BTreeMap<String, String>,
}

/// What one pull pass (one window, every page) delivered.
#[derive(Default, Debug)]
struct Pass {
    /// Ids that got a version the ledger did not hold.
    applied: BTreeSet<String>,
    deletions: BTreeSet<String>,
    /// Versions delivered again (the lookback overlap): no-ops for an idempotent apply.
    redelivered: Vec<(String, DateTime<Utc>)>,
    /// Rows the API returned: parents plus the history rows nested in them.
    rows: u64,
    pages: u64,
    /// Leads delivered without their history (handoff's own write modified
    /// them last): the history held before stands.
    without_history: BTreeSet<String>,
}

impl Ledger {
    fn offer(&mut self, pass: &mut Pass, id: &str, modified_at: DateTime<Utc>) -> bool {
        assert!(!pass.applied.contains(id) && !pass.redelivered.iter().any(|(r, _)| r == id), "{id} twice in one pass");
        match self.versions.get(id) {
            Some(seen) if *seen == modified_at => {
                pass.redelivered.push((id.to_string(), modified_at));
                false
            }
            Some(seen) => {
                assert!(*seen < modified_at, "{id}: an older version {modified_at} after {seen}");
                self.versions.insert(id.to_string(), modified_at);
                pass.applied.insert(id.to_string());
                true
            }
            None => {
                self.versions.insert(id.to_string(), modified_at);
                pass.applied.insert(id.to_string());
                true
            }
        }
    }
}

/// Pull `stream` to the end of the current window, applying into `ledger`.
async fn pass(c: &SalesforceConnector, stream: Stream, cursor: &mut Option<Cursor>, ledger: &mut Ledger) -> Pass {
    let mut p = Pass::default();
    loop {
        let page = c.pull(stream, cursor.as_ref()).await.expect("pull");
        p.pages += 1;
        for mut l in page.leads {
            p.rows += lead_rows(&l);
            if ledger.offer(&mut p, &l.id, l.modified_at) {
                if page.history_not_read.contains(&l.id) {
                    p.without_history.insert(l.id.clone());
                    if let Some(held) = ledger.leads.get(&l.id) {
                        l.assignments = held.assignments.clone();
                        l.status_changes = held.status_changes.clone();
                    }
                }
                ledger.leads.insert(l.id.clone(), l);
            }
        }
        for a in page.activities {
            p.rows += 1;
            if ledger.offer(&mut p, &a.id, a.modified_at) {
                ledger.activity_leads.insert(a.id.clone(), a.lead_id.clone());
            }
        }
        for d in page.deletions {
            p.rows += 1;
            if ledger.offer(&mut p, &d.id, d.deleted_at) {
                p.deletions.insert(d.id.clone());
                ledger.leads.remove(&d.id);
                ledger.deleted.insert(d.id, d.merged_into);
            }
        }
        *cursor = page.cursor.or(cursor.take());
        if !page.has_more {
            return p;
        }
    }
}

fn pages_of(rows: u64, size: u64) -> u64 {
    rows.div_ceil(size).max(1)
}

fn owner_of(o: OwnerRef) -> String {
    match o {
        OwnerRef::User(i) => materialise::user_id(i),
        OwnerRef::Queue(i) => materialise::queue_id(i),
    }
}

const BIG_ORG: usize = 100_000;

#[tokio::test]
async fn backfill_of_100k_leads_with_activities_then_incremental_pulls_apply_each_change_once() {
    let t0 = Instant::now();
    let sb = sandbox(BIG_ORG).await;
    let started = t0.elapsed();
    // An hour past the timeline's end: the backfill window then covers all of
    // it, so everything later pulls pick up is a change made below.
    sb.shared.clock.advance(chrono::Duration::hours(1));
    let c = connect(settings(&sb)).await.expect("connects");
    let org = sb.shared.org.clone();

    // Ground truth from the generated org.
    let mut gone: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut owners: BTreeMap<String, Vec<(String, DateTime<Utc>)>> = BTreeMap::new();
    let mut touches = 0usize;
    for ev in &org.events {
        match &ev.kind {
            EventKind::Deleted { lead } => {
                gone.insert(materialise::lead_id(*lead), None);
            }
            EventKind::Merged { lead, into } => {
                gone.insert(materialise::lead_id(*lead), Some(materialise::lead_id(*into)));
            }
            EventKind::LeadCreated { lead, owner } | EventKind::Assigned { lead, owner } => {
                let seq = owners.entry(materialise::lead_id(*lead)).or_default();
                let o = owner_of(*owner);
                if seq.last().map(|(last, _)| last) != Some(&o) {
                    seq.push((o, ev.at));
                }
            }
            EventKind::Touch { .. } => touches += 1,
            _ => {}
        }
    }

    // Backfill: leads (with history), then activities.
    let t1 = Instant::now();
    let mut leads = Ledger::default();
    let mut lead_cursor = None;
    let before = c.requests_sent();
    let backfill = pass(&c, Stream::Leads, &mut lead_cursor, &mut leads).await;
    let used = c.requests_sent() - before;
    let bound = pages_of(backfill.rows, 2000);
    report("backfill-leads-100k", used, bound);
    assert!(used <= bound + bound / 10 + 1, "{used} calls for {} rows", backfill.rows);
    let leads_took = t1.elapsed();

    let t2 = Instant::now();
    let mut acts = Ledger::default();
    let mut act_cursor = None;
    let before = c.requests_sent();
    let act_backfill = pass(&c, Stream::Activities, &mut act_cursor, &mut acts).await;
    let used = c.requests_sent() - before;
    // Tasks and events are two queries, so at least one page each.
    let bound = pages_of(act_backfill.rows, 2000) + 1;
    report("backfill-activities-100k", used, bound);
    assert!(used <= bound + bound / 10 + 1, "{used} calls for {} activities", act_backfill.rows);
    let acts_took = t2.elapsed();
    println!(
        "timing scenario=backfill-100k sandbox_start_ms={} leads_ms={} activities_ms={} leads={} history_rows={} activities={}",
        started.as_millis(),
        leads_took.as_millis(),
        acts_took.as_millis(),
        leads.leads.len(),
        backfill.rows - leads.leads.len() as u64 - leads.deleted.len() as u64,
        acts.versions.len()
    );

    // Nothing missed: every lead, live or gone, and every activity.
    assert_eq!(leads.leads.len() + leads.deleted.len(), BIG_ORG);
    assert_eq!(leads.deleted, gone, "deletions and merges with their survivors");
    assert_eq!(acts.versions.len(), touches, "one activity per logged touch");
    assert!(acts.activity_leads.values().all(|l| leads.leads.contains_key(l) || leads.deleted.contains_key(l)));
    // Every lead carries its history from the org's own rows, and it is the
    // routing the timeline did.
    for (i, (id, lead)) in leads.leads.iter().enumerate() {
        assert!(!lead.assignments.is_empty() && !lead.status_changes.is_empty(), "{id} has no history");
        assert_eq!(lead.assignments.last().map(|a| Some(a.owner_id.as_str())), Some(lead.owner_id.as_deref()));
        if i % 97 == 0 {
            let got: Vec<(String, DateTime<Utc>)> =
                lead.assignments.iter().map(|a| (a.owner_id.clone(), a.at)).collect();
            assert_eq!(&got, &owners[id], "{id}");
            assert_eq!(lead.status_changes[0].status, "Open - Not Contacted");
        }
    }

    // Changes after the backfill.
    let now = sb.shared.clock.now();
    let same = (now - chrono::Duration::seconds(1)).to_rfc3339();
    let mut ties = Vec::new();
    for i in 0..3 {
        let r = admin_json(&sb, reqwest::Method::POST, "records/Lead",
            Some(json!({"LastName": format!("Same{i}"), "Company": "Tie Co", "SystemModstamp": same, "CreatedDate": same}))).await;
        ties.push(r["id"].as_str().expect("id").to_string());
    }
    let mut quiet = leads.leads.values().filter(|l| l.owner_id.as_deref().is_some_and(|o| o.starts_with("005")));
    let to_delete = quiet.next().expect("a lead").id.clone();
    let master = quiet.next().expect("a lead").id.clone();
    let merged = quiet.next().expect("a lead").id.clone();
    let reassigned = quiet.next().expect("a lead").clone();
    let _ =
        reqwest::Client::new().delete(admin(&sb, &format!("records/Lead/{to_delete}"))).send().await.expect("delete");
    admin_json(
        &sb,
        reqwest::Method::POST,
        "merge",
        Some(json!({"object": "Lead", "master_id": master, "merged_id": merged})),
    )
    .await;
    let moved: BTreeSet<String> =
        acts.activity_leads.iter().filter(|(_, l)| **l == merged).map(|(a, _)| a.clone()).collect();
    let new_owner = (0..org.users.len())
        .map(materialise::user_id)
        .find(|u| Some(u.as_str()) != reassigned.owner_id.as_deref())
        .expect("another user");
    let task_owner = reassigned.owner_id.clone().expect("owner");
    let writes = vec![
        Action {
            key: ActionKey(format!("sla:{}:escalate:reassign", reassigned.id)),
            lead_id: reassigned.id.clone(),
            kind: ActionKind::Reassign { to_owner_id: new_owner.clone() },
        },
        task_action(&format!("sla:{}:first-touch:reminder", reassigned.id), &reassigned.id, &task_owner, "Follow up"),
    ];
    let before = c.requests_sent();
    let out = c.write(&writes).await.expect("write");
    report("incremental-writes", c.requests_sent() - before, 2);
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    let task_id = out[1].result.clone().expect("task id");

    // First incremental round.
    sb.shared.clock.advance(chrono::Duration::minutes(6));
    let before = c.requests_sent();
    let inc1 = pass(&c, Stream::Leads, &mut lead_cursor, &mut leads).await;
    let inc1_acts = pass(&c, Stream::Activities, &mut act_cursor, &mut acts).await;
    let used = c.requests_sent() - before;
    report("incremental-1", used, 4);
    assert!(used <= 4, "one query per object, and one history read of the leads others changed: {used}");
    let want: BTreeSet<String> = ties.iter().cloned().chain([master.clone(), reassigned.id.clone()]).collect();
    assert_eq!(
        inc1.applied.difference(&inc1.deletions).cloned().collect::<BTreeSet<_>>(),
        want,
        "exactly the changed leads"
    );
    assert_eq!(inc1.deletions, BTreeSet::from([to_delete.clone(), merged.clone()]));
    assert_eq!(leads.deleted.get(&merged), Some(&Some(master.clone())), "a merge names its survivor");
    assert!(inc1.redelivered.is_empty(), "nothing changed in the overlap: {:?}", inc1.redelivered);
    // The task handoff created is its own: the ledger knows it, so it is not read back.
    assert_eq!(inc1_acts.applied, moved, "the merged lead's moved activities, and not handoff's own new task");
    assert!(!inc1_acts.applied.contains(&task_id));
    // handoff's own reassignment moved the owner: its history is read
    // (Salesforce dates the change when the write landed).
    assert!(inc1.without_history.is_empty(), "{:?}", inc1.without_history);
    let after = &leads.leads[&reassigned.id];
    assert_eq!(after.owner_id.as_deref(), Some(new_owner.as_str()));
    let last = after.assignments.last().expect("assignments");
    assert_eq!((last.owner_id.as_str(), last.owner_kind), (new_owner.as_str(), handoff_model::OwnerKind::User));
    assert_eq!(last.at, after.modified_at, "dated when the write landed");
    assert_eq!(after.assignments.len(), reassigned.assignments.len() + 1);
    assert_eq!(
        after.assignments[..reassigned.assignments.len()],
        reassigned.assignments[..],
        "earlier history unchanged"
    );

    // A late commit: stamped before the window just read, inside the lookback.
    let late_stamp = (sb.shared.clock.now() - chrono::Duration::minutes(7)).to_rfc3339();
    let late = admin_json(&sb, reqwest::Method::POST, "records/Lead",
        Some(json!({"LastName": "Late", "Company": "Slow Commit Inc", "SystemModstamp": late_stamp, "CreatedDate": late_stamp}))).await;
    let late_id = late["id"].as_str().expect("id").to_string();
    sb.shared.clock.advance(chrono::Duration::minutes(6));
    let before = c.requests_sent();
    let inc2 = pass(&c, Stream::Leads, &mut lead_cursor, &mut leads).await;
    let inc2_acts = pass(&c, Stream::Activities, &mut act_cursor, &mut acts).await;
    let used = c.requests_sent() - before;
    report("incremental-2", used, 4);
    assert!(used <= 4, "a query per object and one history read: {used}");
    assert_eq!(inc2.applied, BTreeSet::from([late_id.clone()]), "only the late commit is new");
    assert!(inc2_acts.applied.is_empty(), "{:?}", inc2_acts.applied);
    // What came again came from the overlap, unchanged: an idempotent apply skips it.
    let overlap: BTreeSet<String> = inc2.redelivered.iter().map(|(id, _)| id.clone()).collect();
    assert!(overlap.is_subset(&inc1.applied), "{overlap:?}");
    assert!(!overlap.is_empty(), "the lookback re-reads the last window's tail");
    let late_lead = &leads.leads[&late_id];
    assert_eq!(late_lead.assignments.len(), 1, "a new lead's history is its first owner");
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
    let before = c.requests_sent();
    let mut got = Pulled::default();
    let first = c.pull(Stream::Leads, None).await.expect("first page");
    let (mut cursor, has_more) = got.take(first);
    assert!(has_more, "a 200-row page size must need several pages");
    admin_json(&sb, reqwest::Method::POST, "tokens/expire", Some(json!({}))).await;
    pull_all(&c, Stream::Leads, &mut cursor, &mut got).await;
    assert_eq!(c.logins() - logins_before, 1, "exactly one re-authentication");
    assert_eq!(got.leads.keys().cloned().collect::<BTreeSet<_>>(), live);
    assert_eq!(got.deletions.keys().cloned().collect::<BTreeSet<_>>(), deleted);
    let used = c.requests_sent() - before;
    // History rows count toward the 200-row batch; the refused request is sent once more.
    let bound = pages_of(got.rows, 200);
    report("token-expiry", used, bound);
    assert_eq!(used, got.pages as u64 + 1, "one request per page, plus the one the expired session refused");
    assert!(used <= bound + bound / 10 + 2, "{used} calls for {} rows", got.rows);
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
    let used = (sb.shared.log.len() - log_before) as u64;
    // The refused request, then one page of 300 leads with their history.
    let bound = 1 + pages_of(got.rows, 2000);
    report("limit-storm", used, bound);
    assert_eq!(used, bound, "no request while paused, none repeated after");
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
            on_opportunity: None,
        },
    }
}

#[tokio::test]
async fn write_batch_with_one_bad_record_lands_the_rest_and_replays_without_duplicates() {
    let sb = sandbox(50).await;
    let c = connect(settings(&sb)).await.expect("connects");
    let leads = rep_leads(&sb, 5).await;
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
    let used = c.requests_sent() - before;
    // One lead collection update and one task upsert collection, both in
    // one Composite request.
    report("write-batch", used, 1);
    assert_eq!(used, 1, "the collections ride in one Composite request");
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
async fn collections_ride_five_to_a_composite_request_and_each_keeps_its_own_results() {
    let sb = sandbox(50).await;
    let mut s = settings(&sb);
    // Small collections, so a few dozen records make many of them.
    s.write_batch_size = 2;
    let c = connect(s).await.expect("connects");
    let leads = rep_leads(&sb, 12).await;
    assert_eq!(leads.len(), 12);
    // 12 lead updates (6 collections) and 6 task upserts (3 collections),
    // one task poisoned: 9 collections, so 2 Composite requests.
    let mut actions: Vec<Action> = leads
        .iter()
        .map(|(lead, _)| Action {
            key: ActionKey(format!("sla:{lead}:fields")),
            lead_id: lead.clone(),
            kind: ActionKind::UpdateLead { fields: BTreeMap::from([("SLA_Status__c".to_string(), json!("at_risk"))]) },
        })
        .collect();
    for (i, (lead, owner)) in leads.iter().take(6).enumerate() {
        let subject = if i == 4 { "POISON follow up".to_string() } else { format!("Follow up {i}") };
        actions.push(task_action(&format!("sla:{lead}:first-touch:composite"), lead, owner, &subject));
    }
    sb.shared.faults.arm(Fault::PartialBatchFailure { marker: "POISON".into(), count: 1 });
    let log_before = sb.shared.log.len();
    let before = c.requests_sent();
    let out = c.write(&actions).await.expect("write");
    let used = c.requests_sent() - before;
    report("write-composite-9-collections", used, 2);
    assert_eq!(used, 2, "nine collections in two Composite requests");
    let composite: Vec<_> =
        sb.shared.log.snapshot()[log_before..].iter().filter(|r| r.path.ends_with("/composite")).cloned().collect();
    assert_eq!(composite.len(), 2, "{composite:?}");
    assert_eq!(out.len(), actions.len());
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.key, actions[i].key, "outcomes come back in input order");
        if i == 12 + 4 {
            assert!(o.result.is_err(), "the poisoned task fails alone: {:?}", o.result);
        } else {
            assert!(o.result.is_ok(), "action {i}: {:?}", o.result);
        }
    }
    let after = admin_json(&sb, reqwest::Method::GET, "records/Lead", None).await;
    let status_of = |id: &str| {
        after["records"]
            .as_array()
            .expect("records")
            .iter()
            .find(|r| r["Id"] == json!(id))
            .map(|r| r["SLA_Status__c"].clone())
    };
    for (lead, _) in &leads {
        assert_eq!(status_of(lead), Some(json!("at_risk")), "lead {lead}");
    }
    // A replay lands the poisoned task and duplicates nothing.
    let again = c.write(&actions).await.expect("replay");
    assert!(again.iter().all(|o| o.result.is_ok()), "{again:?}");
    let dups = admin_json(&sb, reqwest::Method::GET, "duplicates/tasks", None).await;
    assert_eq!(dups["by_handoff_key"], json!([]), "{dups}");
    sb.stop().await;
}

/// Up to `most` live leads a user owns: (lead id, owner id).
async fn rep_leads(sb: &RunningSandbox, most: usize) -> Vec<(String, String)> {
    let dump = admin_json(sb, reqwest::Method::GET, "records/Lead", None).await;
    dump["records"]
        .as_array()
        .expect("records")
        .iter()
        // A converted lead takes no new task (CANNOT_UPDATE_CONVERTED_LEAD).
        .filter(|r| {
            r["IsDeleted"] != json!(true)
                && r["IsConverted"] != json!(true)
                && r["OwnerId"].as_str().is_some_and(|o| o.starts_with("005"))
        })
        .take(most)
        .map(|r| {
            (r["Id"].as_str().unwrap_or_default().to_string(), r["OwnerId"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// The fewest write calls for `collections` sObject Collections (of up to
/// 200 records each): five to a Composite request.
fn composite_bound(collections: u64) -> u64 {
    collections.div_ceil(5)
}

#[tokio::test]
async fn write_calls_for_thousands_of_actions_stay_at_the_composite_bound() {
    let sb = sandbox(3_000).await;
    let c = connect(settings(&sb)).await.expect("connects");
    let leads = rep_leads(&sb, usize::MAX).await;
    assert!(leads.len() > 2_000, "{} leads", leads.len());
    // SLA fields on every lead and a reminder task on half of them.
    let mut actions: Vec<Action> = leads
        .iter()
        .map(|(lead, _)| Action {
            key: ActionKey(format!("sla:{lead}:fields")),
            lead_id: lead.clone(),
            kind: ActionKind::UpdateLead { fields: BTreeMap::from([("SLA_Status__c".to_string(), json!("pending"))]) },
        })
        .collect();
    for (lead, owner) in leads.iter().step_by(2) {
        actions.push(task_action(&format!("sla:{lead}:first-touch:reminder"), lead, owner, "Follow up"));
    }
    let updates = leads.len() as u64;
    let tasks = leads.len().div_ceil(2) as u64;
    let bound = composite_bound(updates.div_ceil(200) + tasks.div_ceil(200));
    let before = c.requests_sent();
    let out = c.write(&actions).await.expect("write");
    let used = c.requests_sent() - before;
    report(&format!("write-{}-actions", actions.len()), used, bound);
    assert!(out.iter().all(|o| o.result.is_ok()), "every action lands");
    assert!(
        used as f64 <= bound as f64 * 1.05,
        "{used} write calls for {} actions; the bound is {bound}",
        actions.len()
    );
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

#[tokio::test]
async fn a_lead_with_more_history_than_a_page_holds_is_read_whole() {
    let sb = sandbox(20).await;
    let mut s = settings(&sb);
    s.query_batch_size = 200;
    let c = connect(s).await.expect("connects");
    let (live, _) = truth(&sb).await;
    let lead = live.iter().next().expect("a lead").clone();
    // 210 reassignments: more id-valued Owner rows than a 200-row page holds.
    let users: Vec<String> = (0..2).map(|i| materialise::user_id(i + 3)).collect();
    for i in 0..210 {
        sb.shared.clock.advance(chrono::Duration::seconds(1));
        admin_json(
            &sb,
            reqwest::Method::PATCH,
            &format!("records/Lead/{lead}"),
            Some(json!({"OwnerId": users[i % 2]})),
        )
        .await;
    }
    sb.shared.clock.advance(chrono::Duration::minutes(10));
    let before = c.requests_sent();
    let mut cursor = None;
    let mut ledger = Ledger::default();
    let p = pass(&c, Stream::Leads, &mut cursor, &mut ledger).await;
    let used = c.requests_sent() - before;
    let got = &ledger.leads[&lead];
    assert!(got.assignments.len() >= 211, "every reassignment, after the first owner: {}", got.assignments.len());
    assert_eq!(got.assignments.last().map(|a| a.owner_id.as_str()), got.owner_id.as_deref());
    assert!(got.assignments.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    // The lead's own child pages are extra requests beyond the parent pages.
    let bound = pages_of(p.rows, 200);
    report("long-history", used, bound);
    assert!(used <= bound + 2, "{used} calls for {} rows", p.rows);
    sb.stop().await;
}
