//! Writing against the sandbox: a batch with one bad record lands the
//! others and reports the bad one with its reason and class; replaying the
//! whole batch creates nothing twice; and a create whose answer is lost
//! (a gateway error after the write, or an answer past the timeout) is
//! resolved by looking the `handoff_key` up, never by creating again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;

use chrono::Utc;
use common::*;
use handoff_model::{Action, ActionKey, ActionKind, Connector, ErrorClass, TaskPriority, TaskPurpose};
use handoff_sandbox::{Fault, LoggedRequest, RunningSandbox};
use serde_json::{json, Value};

fn task(key: &str, lead: &str, owner: &str, subject: &str) -> Action {
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

/// Live contacts with a person as owner: `(contact id, owner id)`.
async fn contacts(sb: &RunningSandbox, n: usize) -> Vec<(String, String)> {
    let live = live_records(sb, "contacts").await;
    let picked: Vec<(String, String)> = live
        .iter()
        .filter_map(|(id, r)| {
            r["properties"]["hubspot_owner_id"]
                .as_str()
                .filter(|o| o.starts_with('7'))
                .map(|o| (id.clone(), o.to_string()))
        })
        .take(n)
        .collect();
    assert_eq!(picked.len(), n, "the org has contacts owned by reps");
    picked
}

/// Our tasks in the sandbox, by `handoff_key`.
async fn tasks_by_key(sb: &RunningSandbox) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in dump(sb, "tasks", &["handoff_key"], &[]).await.iter().filter(|r| r["archived"] == false) {
        if let Some(k) = r["properties"]["handoff_key"].as_str() {
            out.entry(k.to_string()).or_default().push(r["id"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}

async fn assert_no_duplicates(sb: &RunningSandbox) {
    let dups = admin_get(sb, "/__sandbox/hubspot/tasks/duplicates").await;
    assert_eq!(dups["by_handoff_key"], json!([]), "{dups}");
    assert_eq!(dups["by_subject_and_contact"], json!([]), "{dups}");
}

fn creates(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter().filter(|r| r.path == "/crm/v3/objects/tasks/batch/create").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_record_lands_the_others_and_a_replay_creates_nothing_twice() {
    let sb = sandbox(60).await;
    let c = connector(settings(&sb)).await;
    c.authenticate().await.expect("authenticates and sets up handoff_key");
    let leads = contacts(&sb, 5).await;
    let mut actions: Vec<Action> = leads
        .iter()
        .enumerate()
        .map(|(i, (lead, owner))| {
            let subject = if i == 2 { "POISON follow up".to_string() } else { format!("Follow up {i}") };
            task(&format!("sla:{lead}:first-touch:reminder"), lead, owner, &subject)
        })
        .collect();
    actions.push(Action {
        key: ActionKey(format!("sla:{}:grade", leads[0].0)),
        lead_id: leads[0].0.clone(),
        kind: ActionKind::UpdateLead { fields: BTreeMap::from([("handoff_sla_status".to_string(), json!("due"))]) },
    });
    sb.shared.faults.arm(Fault::PartialBatchFailure { marker: "POISON".into(), count: 1 });

    let start = sb.shared.log.len();
    let out = c.write(&actions).await.expect("write");
    let log = log_since(&sb, start);
    assert_eq!(out.len(), actions.len());
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.key, actions[i].key, "outcomes come back in input order");
        if i == 2 {
            let err = o.result.as_ref().expect_err("the poisoned record fails");
            assert_eq!(err.class, ErrorClass::Permanent, "{err:?}");
            assert_eq!(err.code, "VALIDATION_ERROR");
            assert!(err.message.contains("not valid"), "{err:?}");
        } else {
            assert!(o.result.is_ok(), "action {i}: {:?}", o.result);
        }
    }
    assert_eq!(log.iter().find(|r| r.path.ends_with("/batch/create")).map(|r| r.status), Some(207));
    // The request shapes of HubSpot's spec (and its SDKs): association ids
    // as strings, `propertiesWithHistory` present in a batch read.
    for create in creates(&log) {
        let inputs = create.body.as_ref().and_then(|b| b["inputs"].as_array().cloned()).expect("create inputs");
        for input in &inputs {
            let to = &input["associations"][0]["to"]["id"];
            assert!(to.is_string(), "association id {to} is sent as a string");
        }
    }
    for lookup in log.iter().filter(|r| r.path == "/crm/v3/objects/tasks/batch/read") {
        let body = lookup.body.as_ref().expect("lookup body");
        assert_eq!(body["propertiesWithHistory"], json!([]), "{body}");
    }
    // One update batch, one key lookup, one create batch.
    let used = log.iter().filter(|r| r.counted).count();
    report("write-partial-batch", used, LowerBound { write_batches: 2, ..LowerBound::default() }, 1.5);

    // Replaying the whole batch lands the failed one and duplicates nothing.
    let start = sb.shared.log.len();
    let again = c.write(&actions).await.expect("replay");
    assert!(again.iter().all(|o| o.result.is_ok()), "{again:?}");
    for (first, second) in out.iter().zip(&again) {
        if let (Ok(a), Ok(b)) = (&first.result, &second.result) {
            assert_eq!(a, b, "a replayed task resolves to the same record");
        }
    }
    let replay_log = log_since(&sb, start);
    let created = creates(&replay_log);
    assert_eq!(created.len(), 1, "only the failed task is created on replay");
    assert_eq!(created[0].body.as_ref().and_then(|b| b["inputs"].as_array()).map(Vec::len), Some(1));
    report(
        "write-replay",
        replay_log.iter().filter(|r| r.counted).count(),
        LowerBound { write_batches: 2, ..LowerBound::default() },
        1.5,
    );
    assert_no_duplicates(&sb).await;
    let ours = tasks_by_key(&sb).await;
    assert_eq!(ours.len(), 5);
    assert!(ours.values().all(|ids| ids.len() == 1));
    let lead = live_records(&sb, "contacts").await;
    assert_eq!(lead[&leads[0].0]["properties"]["handoff_sla_status"], "due");
    sb.stop().await;
}

async fn lost_answer_is_resolved_by_key(fault: Value, timeout_secs: u64, scenario: &str) {
    let sb = sandbox(40).await;
    let mut s = settings(&sb);
    s.http.attempt_deadline = std::time::Duration::from_secs(timeout_secs);
    let c = connector(s).await;
    c.authenticate().await.expect("authenticates");
    let leads = contacts(&sb, 3).await;
    let actions: Vec<Action> = leads
        .iter()
        .enumerate()
        .map(|(i, (lead, owner))| task(&format!("sla:{lead}:escalation:1"), lead, owner, &format!("Escalation {i}")))
        .collect();
    admin_post(&sb, "/__sandbox/hubspot/faults/lost_response", fault).await;

    let start = sb.shared.log.len();
    let out = c.write(&actions).await.expect("write");
    let log = log_since(&sb, start);
    let ours = tasks_by_key(&sb).await;
    for (o, a) in out.iter().zip(&actions) {
        let id = o.result.as_ref().unwrap_or_else(|e| panic!("{}: {e:?}", a.key));
        assert_eq!(ours.get(&a.key.0), Some(&vec![id.clone()]), "{}: the task the lost create made", a.key);
    }
    let created = creates(&log);
    assert_eq!(created.len(), 1, "the create is never sent twice: {created:?}");
    // Lookups before and after the uncertain create: the second finds every key.
    let lookups = log.iter().filter(|r| r.path == "/crm/v3/objects/tasks/batch/read").count();
    assert_eq!(lookups, 2);
    assert_no_duplicates(&sb).await;
    report(
        scenario,
        log.iter().filter(|r| r.counted).count(),
        LowerBound { write_batches: 1, ..LowerBound::default() },
        3.0,
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_with_a_gateway_error_after_the_write_is_found_by_key_not_created_twice() {
    lost_answer_is_resolved_by_key(json!({"count": 1, "status": 502}), 30, "write-lost-answer-502").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_past_the_timeout_is_found_by_key_not_created_twice() {
    lost_answer_is_resolved_by_key(json!({"count": 1, "delay_ms": 3_000}), 1, "write-lost-answer-timeout").await;
}
